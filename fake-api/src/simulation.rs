//! The email tracking simulation: which contacts each sent activity reaches and what
//! they do with it, drawn from the seed at generation and by `/__sandbox/mutate`.

use super::data::{between, Campaign, CampaignStatus, Contact, Permission, DAY_MS};
use super::tracking::{
    is_sendable, Event, EventKind, Link, Tracking, MAX_RECIPIENTS, OPT_OUT_REASONS,
};
use rand::{seq::index::sample, Rng};
use std::collections::BTreeMap;

/// Relative weights of `DEVICES`, then of "not captured".
const DEVICE_WEIGHTS: [u32; 5] = [45, 38, 10, 4, 3];
const BOUNCE_WEIGHTS: [u32; 7] = [30, 15, 12, 8, 15, 10, 10];
/// Link paths used in campaign content.
const LINK_PATHS: &[&str] = &[
    "shop",
    "events",
    "blog/spring-arrangements",
    "gift-cards",
    "workshops",
    "about",
    "contact-us",
    "sale",
];
/// Sends recorded per second while an activity goes out.
const SENDS_PER_SECOND: i64 = 50;

impl Tracking {
    /// Appends `n` opens, each followed by a click, by contacts the activity reached (and
    /// that did not bounce), all after `now` and after every earlier event.
    pub(crate) fn add_engagement(
        &mut self,
        rng: &mut impl Rng,
        links: usize,
        now: i64,
        n: usize,
    ) -> bool {
        let reached: Vec<u32> = self
            .recipients()
            .filter(|&c| !self.has(c, EventKind::Bounce))
            .collect();
        if reached.is_empty() || links == 0 {
            return false;
        }
        let latest = self.events.iter().map(|e| e.at).max().unwrap_or(now);
        let start = now.max(latest) + 1;
        for i in 0..n as i64 {
            let contact = reached[rng.gen_range(0..reached.len())];
            let device = pick(rng, &DEVICE_WEIGHTS) as u8;
            let event = |at, kind, detail| Event {
                at,
                contact,
                kind,
                device,
                detail,
            };
            let open = event(start + 2 * i, EventKind::Open, 0);
            let click = event(
                start + 2 * i + 1,
                EventKind::Click,
                rng.gen_range(0..links) as u8,
            );
            self.events.extend([open, click]);
        }
        true
    }
}

/// Index drawn with the given relative weights.
fn pick(rng: &mut impl Rng, weights: &[u32]) -> usize {
    let mut draw = rng.gen_range(0..weights.iter().sum::<u32>());
    weights
        .iter()
        .position(|&w| {
            let hit = draw < w;
            draw = draw.saturating_sub(w);
            hit
        })
        .unwrap_or_default()
}

/// Links of a sendable activity's content.
pub(crate) fn links(rng: &mut impl Rng, domain: &str, lists: usize) -> Vec<Link> {
    let n = rng.gen_range(3..=5);
    let mut links: Vec<Link> = sample(rng, LINK_PATHS.len(), n)
        .iter()
        .map(|i| Link {
            url_id: rng.gen_range(1_100_000_000_000..1_200_000_000_000),
            url: format!("https://{domain}/{}", LINK_PATHS[i]),
            list: None,
        })
        .collect();
    if rng.gen_bool(0.3) {
        links[0].list = Some(rng.gen_range(0..lists));
    }
    links
}

/// Whether a contact could be sent email at `at`.
fn reachable(c: &Contact, at: i64) -> bool {
    c.created_at < at
        && c.opt_out_at.is_none_or(|t| t > at)
        && c.deleted_at.is_none_or(|t| t > at)
        && !matches!(
            c.permission,
            Permission::PendingConfirmation | Permission::NotSet
        )
}

/// A deterministic subset (at most `MAX_RECIPIENTS`) of the contacts reachable at `at`.
pub(crate) fn audience(rng: &mut impl Rng, contacts: &[Contact], at: i64) -> Vec<u32> {
    let reachable: Vec<u32> = (0..contacts.len() as u32)
        .filter(|&i| reachable(&contacts[i as usize], at))
        .collect();
    let cap = reachable.len().min(MAX_RECIPIENTS);
    let n = rng.gen_range(cap * 7 / 10..=cap);
    let mut picked: Vec<u32> = sample(rng, reachable.len(), n)
        .iter()
        .map(|i| reachable[i])
        .collect();
    picked.sort_unstable();
    picked
}

/// Sends to `recipients` from `sent_at`, then what they did up to `horizon`.
pub(crate) fn simulate(
    rng: &mut impl Rng,
    recipients: &[u32],
    sent_at: i64,
    horizon: i64,
    links: usize,
) -> Tracking {
    let mut events = Vec::new();
    for (pos, &contact) in recipients.iter().enumerate() {
        let sent = sent_at + pos as i64 / SENDS_PER_SECOND * 1000;
        let mut last = sent;
        // The next event of this contact, 1 s to `max_secs` after their previous one.
        let mut next = |rng: &mut dyn rand::RngCore, min_secs: i64, max_secs: i64| {
            let at = last + 1000 * rng.gen_range(min_secs..=max_secs);
            (at <= horizon).then(|| {
                last = at;
                at
            })
        };
        let event = |at, kind, device, detail| Event {
            at,
            contact,
            kind,
            device,
            detail,
        };
        events.push(event(sent, EventKind::Send, 0, 0));
        if rng.gen_ratio(3, 100) {
            let code = pick(rng, &BOUNCE_WEIGHTS) as u8;
            if let Some(at) = next(rng, 5, 3600) {
                events.push(event(at, EventKind::Bounce, 0, code));
            }
            continue;
        }
        if !rng.gen_bool(0.45) {
            continue;
        }
        let device = pick(rng, &DEVICE_WEIGHTS) as u8;
        let mut opens = 0;
        while opens == 0 || rng.gen_bool(0.35) {
            opens += 1;
            let Some(at) = next(rng, 60, 2 * DAY_MS / 1000) else {
                break;
            };
            events.push(event(at, EventKind::Open, device, 0));
            while links > 0 && rng.gen_bool(0.3) {
                let link = rng.gen_range(0..links) as u8;
                let Some(at) = next(rng, 5, 600) else { break };
                events.push(event(at, EventKind::Click, device, link));
            }
            if rng.gen_ratio(2, 100) {
                if let Some(at) = next(rng, 30, 1800) {
                    events.push(event(at, EventKind::Forward, 0, 0));
                }
            }
        }
    }
    Tracking {
        sent_at,
        abuse: rng.gen_range(0..=2).min(recipients.len() as u32),
        events,
    }
}

/// Sends every sent campaign: its primary email, then a resend to the non-openers.
/// Contacts that unsubscribed themselves did so from the last email they got before.
pub(crate) fn populate(
    rng: &mut impl Rng,
    campaigns: &mut [Campaign],
    contacts: &[Contact],
    domain: &str,
    lists: usize,
    now: i64,
) {
    let horizon = |sent: i64| (sent + 14 * DAY_MS).min(now - 60_000);
    for c in campaigns.iter_mut() {
        for a in c.activities.iter_mut().filter(|a| is_sendable(a.role)) {
            a.links = links(rng, domain, lists);
        }
        match c.status {
            CampaignStatus::Scheduled => {
                let delay = rng.gen_range(3600..14 * 86_400);
                c.activities[0].scheduled_at = Some(now + 1000 * delay);
            }
            CampaignStatus::Error => {
                let at = between(rng, c.created_at, c.updated_at);
                c.activities[0].failed = Some((at, [1, 2, 3, 6, 7][rng.gen_range(0..5)]));
            }
            CampaignStatus::Done => {
                let sent = between(rng, c.created_at, c.updated_at);
                let to = audience(rng, contacts, sent);
                let links = c.activities[0].links.len();
                let primary = simulate(rng, &to, sent, horizon(sent), links);
                let Some(resend) = c.activities.iter_mut().find(|a| a.role == "resend") else {
                    c.activities[0].tracking = Some(primary);
                    continue;
                };
                // Resends go 12 hours to 10 days later, and before now.
                let latest = (10 * 86_400).min((now - sent) / 1000 - 3600);
                let at = sent + 1000 * rng.gen_range(43_200..=latest);
                let again: Vec<u32> = to
                    .iter()
                    .copied()
                    .filter(|&i| {
                        !primary.has(i, EventKind::Open)
                            && !primary.has(i, EventKind::Bounce)
                            && reachable(&contacts[i as usize], at)
                    })
                    .collect();
                let links = resend.links.len();
                resend.tracking = Some(simulate(rng, &again, at, horizon(at), links));
                c.activities[0].tracking = Some(primary);
            }
            _ => {}
        }
    }
    attribute_opt_outs(rng, campaigns, contacts);
}

/// Records each self-service unsubscribe as an opt-out from the last email the contact
/// received before it.
fn attribute_opt_outs(rng: &mut impl Rng, campaigns: &mut [Campaign], contacts: &[Contact]) {
    let mut sent: Vec<&mut Tracking> = campaigns
        .iter_mut()
        .flat_map(|c| c.activities.iter_mut())
        .filter_map(|a| a.tracking.as_mut())
        .collect();
    // Per contact, every (send time, activity) that reached them.
    let mut received: BTreeMap<u32, Vec<(i64, usize)>> = BTreeMap::new();
    for (i, t) in sent.iter().enumerate() {
        for e in t.of(EventKind::Send) {
            received.entry(e.contact).or_default().push((e.at, i));
        }
    }
    for (contact, got) in received {
        let c = &contacts[contact as usize];
        let (Some(out), None) = (c.opt_out_at, c.deleted_at) else {
            continue;
        };
        let reason = rng.gen_range(0..=OPT_OUT_REASONS.len()) as u8;
        let Some(&(_, i)) = got.iter().filter(|(at, _)| *at < out).max() else {
            continue;
        };
        let t = &mut sent[i];
        if !t.events.iter().any(|e| e.contact == contact && e.at == out) {
            t.events.push(Event {
                at: out,
                contact,
                kind: EventKind::Optout,
                device: 0,
                detail: reason,
            });
        }
    }
}
