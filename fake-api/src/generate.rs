//! Generating the account from the seed, and the scripted changes
//! (`/__sandbox/mutate`) that move it on afterwards.

use super::data::{
    ab_test_kind, between, new_uuid, Account, AccountEmail, Activity, BulkActivity, Campaign,
    CampaignStatus, Contact, ContactList, CustomField, Data, Permission, Segment, Tag,
    BULK_ACTIVITIES, CAMPAIGN_TOPICS, CAMPAIGN_TYPES, COMPANIES, CUSTOM_FIELDS, DAY_MS,
    FIRST_NAMES, GENERATED_TYPES, JOB_TITLES, LAST_NAMES, LIST_NAMES, SEGMENTS, TAG_NAMES,
    TAG_SOURCES, YEAR_MS,
};
use super::engagement::Engagement;
use super::simulation;
use super::tracking::DEVICES;
use super::visits::{Event, Kind, LandingPage};
use rand::{
    seq::{index::sample, SliceRandom},
    Rng, SeedableRng,
};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use uuid::Uuid;

/// Ids changed by one `/__sandbox/mutate` call; each contact changes in one way at most.
pub(crate) struct Mutation {
    /// Personal details updated (the only change that moves the contact's `updated_at`).
    pub contacts: Vec<Uuid>,
    pub unsubscribed_contacts: Vec<Uuid>,
    pub resubscribed_contacts: Vec<Uuid>,
    pub list_changed_contacts: Vec<Uuid>,
    pub deleted_contacts: Vec<Uuid>,
    pub campaigns: Vec<Uuid>,
    /// (campaign id, primary activity id) of the campaign `send_campaign` sent.
    pub sent_campaign: Option<(Uuid, Uuid)>,
    /// Activity that `tracking` added opens and clicks to.
    pub tracking_activity: Option<Uuid>,
}

/// What one `/__sandbox/mutate` call asks for.
#[derive(Default)]
pub(crate) struct MutationRequest {
    /// Personal-details updates.
    pub contacts: usize,
    pub unsubscribes: usize,
    pub resubscribes: usize,
    pub list_changes: usize,
    pub deletes: usize,
    pub campaigns: usize,
    pub send_campaign: bool,
    pub tracking: usize,
}

fn bits(rng: &mut impl Rng, width: usize, min: usize, max: usize) -> u16 {
    let n = rng.gen_range(min..=max);
    rand::seq::index::sample(rng, width, n)
        .iter()
        .fold(0u16, |acc, i| acc | (1u16 << i))
}

impl Data {
    pub(crate) fn generate(seed: u64, contacts: usize, campaigns: usize, now: i64) -> Data {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let epoch = now - YEAR_MS;
        let mut lists: Vec<ContactList> = LIST_NAMES
            .iter()
            .map(|&name| {
                let created_at = between(&mut rng, epoch, epoch + 60 * DAY_MS);
                ContactList {
                    id: new_uuid(&mut rng),
                    name,
                    favorite: rng.gen_bool(0.25),
                    created_at,
                    updated_at: between(&mut rng, created_at, now - DAY_MS),
                }
            })
            .collect();
        lists.sort_by_key(|l| l.name);
        let mut tags: Vec<Tag> = TAG_NAMES
            .iter()
            .map(|&name| {
                let created_at = between(&mut rng, epoch, now - 30 * DAY_MS);
                Tag {
                    id: new_uuid(&mut rng),
                    name,
                    source: TAG_SOURCES[rng.gen_range(0..TAG_SOURCES.len())],
                    created_at,
                    updated_at: between(&mut rng, created_at, now - DAY_MS),
                }
            })
            .collect();
        tags.sort_by_key(|t| t.name);
        let custom_fields = CUSTOM_FIELDS
            .iter()
            .map(|&(label, kind)| {
                let created_at = between(&mut rng, epoch, epoch + 30 * DAY_MS);
                CustomField {
                    id: new_uuid(&mut rng),
                    label,
                    kind,
                    created_at,
                    updated_at: between(&mut rng, created_at, now - DAY_MS),
                }
            })
            .collect();
        let mut segment_id = 2;
        let segments: Vec<Segment> = SEGMENTS
            .iter()
            .map(|&(name, criteria)| {
                segment_id += rng.gen_range(1..4);
                let created_at = between(&mut rng, epoch, now - 20 * DAY_MS);
                Segment {
                    id: segment_id,
                    name,
                    criteria,
                    created_at,
                    edited_at: between(&mut rng, created_at, now - DAY_MS),
                }
            })
            .collect();
        let contacts = generate_contacts(&mut rng, contacts, now);
        let mut campaigns = generate_campaigns(&mut rng, campaigns, now, segments[0].id);
        let account = Account {
            encoded_id: (0..14)
                .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)]))
                .collect(),
            organization: "Harborview Florists",
            domain: "harborviewflorists.example.com",
        };
        let account_emails = generate_account_emails(&mut rng, &account, epoch);
        let bulk_activities = generate_bulk_activities(&mut rng, now);
        // Tracking draws from its own stream so it leaves the data above unchanged.
        let mut tracking_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7EAC_0A11_5E4D);
        simulation::populate(
            &mut tracking_rng,
            &mut campaigns,
            &contacts,
            account.domain,
            lists.len(),
            now,
        );
        mark_ab_tests(&mut campaigns);
        let landing_pages = generate_landing_pages(seed, &contacts, now);
        Data {
            landing_pages,
            contacts,
            lists,
            tags,
            custom_fields,
            segments,
            campaigns,
            account,
            account_emails,
            bulk_activities,
            prepared_segments: BTreeSet::new(),
            engagement: Engagement::generate(seed, now),
            denied_privileges: BTreeSet::new(),
            rng,
        }
    }

    /// Changes contacts the way the real API does, each picked among the contacts the change
    /// makes sense for and changed at most once per call (fewer when too few qualify):
    ///
    /// - `contacts` live contacts get new personal details (`job_title`) and `updated_at`;
    /// - `unsubscribes` live subscribed contacts opt out (by the contact: permission
    ///   `unsubscribed`, opt-out source/date/reason, `email_address.updated_at`);
    /// - `resubscribes` live unsubscribed contacts opt back in (`explicit`, opt-out fields
    ///   gone, new opt-in date, `email_address.updated_at`);
    /// - `list_changes` live contacts join and/or leave a list;
    /// - `deletes` live contacts are deleted (`deleted_at`; like an account opt-out, and
    ///   off every list).
    ///
    /// Only personal details move the contact's `updated_at`: as Constant Contact support
    /// confirmed for unsubscribes (and as the API documents no change date for the
    /// others), `GET /contacts?updated_after=` does not see the other four. Nothing else
    /// visible changes either (list memberships survive an opt-out; lists keep their
    /// `updated_at`). `campaigns` campaigns get a new `updated_at`. Every change is
    /// stamped strictly after `now`.
    ///
    /// Then `send_campaign` sends the newest draft campaign at `now + 1` (sends only: nobody
    /// has opened it yet) and `tracking` appends that many opens, each followed by a click,
    /// to the most recently sent activity, after every earlier event.
    pub(crate) fn mutate(&mut self, now: i64, req: &MutationRequest) -> Result<Mutation, String> {
        let draft = self
            .campaigns
            .iter()
            .position(|c| c.status == CampaignStatus::Draft);
        if req.send_campaign && draft.is_none() {
            return Err("send_campaign: no draft campaign is left to send".into());
        }
        let stamp = now + 1;
        let mut taken = BTreeSet::new();
        let live = |c: &Contact| c.deleted_at.is_none();
        let updated = self.pick(req.contacts, &mut taken, live);
        let unsubscribed = self.pick(req.unsubscribes, &mut taken, Contact::is_active);
        let resubscribed = self.pick(req.resubscribes, &mut taken, |c| {
            live(c) && c.permission == Permission::Unsubscribed
        });
        let list_changed = self.pick(req.list_changes, &mut taken, live);
        let deleted = self.pick(req.deletes, &mut taken, live);
        for &i in &updated {
            let c = &mut self.contacts[i];
            c.job = (c.job + 1) % JOB_TITLES.len() as u8;
            c.updated_by_contact = false;
            c.updated_at = stamp;
        }
        for &i in &unsubscribed {
            let c = &mut self.contacts[i];
            c.permission = Permission::Unsubscribed;
            c.opt_out_at = Some(stamp);
            c.email_updated_at = stamp;
        }
        for &i in &resubscribed {
            // Only the contact can undo its own opt-out, so the new opt-in is its own.
            let c = &mut self.contacts[i];
            c.permission = Permission::Explicit;
            c.opt_out_at = None;
            c.opt_in_at = stamp;
            c.opt_in_by_contact = true;
            c.email_updated_at = stamp;
        }
        let lists = self.lists.len();
        for &i in &list_changed {
            let old = self.contacts[i].lists;
            let (members, others): (Vec<usize>, Vec<usize>) =
                (0..lists).partition(|&l| old & (1 << l) != 0);
            let mut new = old;
            // Move from one list to another; join one when on none, leave one when on all.
            if let Some(&l) = members.choose(&mut self.rng).filter(|_| !others.is_empty()) {
                new &= !(1 << l);
            } else if let Some(&l) = members.first().filter(|_| others.is_empty()) {
                new &= !(1 << l);
            }
            if let Some(&l) = others.choose(&mut self.rng) {
                new |= 1 << l;
            }
            self.contacts[i].lists = new;
        }
        for &i in &deleted {
            let c = &mut self.contacts[i];
            c.permission = Permission::Unsubscribed;
            c.opt_out_at = Some(stamp);
            c.email_updated_at = stamp;
            c.deleted_at = Some(stamp);
            c.lists = 0;
        }
        let n = req.campaigns.min(self.campaigns.len());
        let touched: Vec<usize> =
            rand::seq::index::sample(&mut self.rng, self.campaigns.len(), n).into_vec();
        for &i in &touched {
            self.campaigns[i].updated_at = stamp;
        }
        let sent_campaign = match draft {
            Some(i) if req.send_campaign => Some(self.send_campaign(i, stamp)),
            _ => None,
        };
        let tracking_activity = match req.tracking {
            0 => None,
            n => Some(self.add_engagement(now, n)?),
        };
        let ids = |idx: &[usize]| idx.iter().map(|&i| self.contacts[i].id).collect::<Vec<_>>();
        Ok(Mutation {
            contacts: ids(&updated),
            unsubscribed_contacts: ids(&unsubscribed),
            resubscribed_contacts: ids(&resubscribed),
            list_changed_contacts: ids(&list_changed),
            deleted_contacts: ids(&deleted),
            campaigns: touched.iter().map(|&i| self.campaigns[i].id).collect(),
            sent_campaign,
            tracking_activity,
        })
    }

    /// Up to `n` random contacts, not yet in `taken`, that pass `eligible`; adds them to `taken`.
    fn pick(
        &mut self,
        n: usize,
        taken: &mut BTreeSet<usize>,
        eligible: impl Fn(&Contact) -> bool,
    ) -> Vec<usize> {
        let pool: Vec<usize> = (0..self.contacts.len())
            .filter(|i| !taken.contains(i) && eligible(&self.contacts[*i]))
            .collect();
        let picked: Vec<usize> =
            rand::seq::index::sample(&mut self.rng, pool.len(), n.min(pool.len()))
                .iter()
                .map(|i| pool[i])
                .collect();
        taken.extend(&picked);
        picked
    }

    /// Sends campaign `i` (a draft) at `at`; returns its id and its primary activity's.
    fn send_campaign(&mut self, i: usize, at: i64) -> (Uuid, Uuid) {
        let to = simulation::audience(&mut self.rng, &self.contacts, at);
        let c = &mut self.campaigns[i];
        c.status = CampaignStatus::Done;
        c.updated_at = at;
        let primary = &mut c.activities[0];
        let links = primary.links.len();
        primary.tracking = Some(simulation::simulate(&mut self.rng, &to, at, at, links));
        (c.id, primary.id)
    }

    /// Appends `n` opens and `n` clicks to the most recently sent activity.
    fn add_engagement(&mut self, now: i64, n: usize) -> Result<Uuid, String> {
        let latest = self
            .campaigns
            .iter_mut()
            .flat_map(|c| c.activities.iter_mut())
            .filter(|a| a.tracking.is_some())
            .max_by_key(|a| a.tracking.as_ref().map(|t| t.sent_at));
        let Some(a) = latest else {
            return Err("tracking: no activity has been sent".into());
        };
        let links = a.links.len();
        let t = a.tracking.as_mut().expect("filtered on tracking");
        if !t.add_engagement(&mut self.rng, links, now, n) {
            return Err("tracking: the last sent activity reached no contact".into());
        }
        Ok(a.id)
    }
}

fn generate_contacts(rng: &mut ChaCha8Rng, n: usize, now: i64) -> Vec<Contact> {
    let epoch = now - YEAR_MS;
    let mut contacts: Vec<Contact> = (0..n)
        .map(|serial| {
            let created_at = between(rng, epoch, now - DAY_MS);
            let updated_at = if rng.gen_bool(0.3) {
                created_at
            } else {
                between(rng, created_at, now - 60_000)
            };
            let permission = match rng.gen_range(0..100) {
                0..=34 => Permission::Implicit,
                35..=79 => Permission::Explicit,
                80..=87 => Permission::Unsubscribed,
                88..=92 => Permission::PendingConfirmation,
                93..=94 => Permission::TempHold,
                _ => Permission::NotSet,
            };
            let opt_out_at = (permission == Permission::Unsubscribed)
                .then(|| between(rng, created_at, updated_at));
            Contact {
                id: new_uuid(rng),
                seed: rng.gen(),
                serial: serial as u32,
                first: rng.gen_range(0..FIRST_NAMES.len()) as u8,
                last: rng.gen_range(0..LAST_NAMES.len()) as u8,
                job: rng.gen_range(0..JOB_TITLES.len()) as u8,
                company: rng.gen_range(0..COMPANIES.len()) as u8,
                permission,
                created_by_contact: rng.gen_bool(0.4),
                updated_by_contact: rng.gen_bool(0.3),
                created_at,
                updated_at,
                opt_out_at,
                deleted_at: None,
                lists: bits(rng, LIST_NAMES.len(), 1, 4),
                tags: bits(rng, TAG_NAMES.len(), 1, 3),
                sms: [0, 0, 0, 0, 0, 0, 0, 0, 1, 2][rng.gen_range(0..10)],
                // Set below, once opt-outs and deletions are final.
                email_updated_at: created_at,
                opt_in_at: created_at,
                opt_in_by_contact: false,
            }
        })
        .collect();
    // Share updated_at between some contacts so cursors and state land on ties.
    for i in (5..n).step_by(17) {
        let updated_at = contacts[i - 5].updated_at;
        let c = &mut contacts[i];
        c.updated_at = updated_at;
        c.created_at = c.created_at.min(updated_at);
        c.opt_out_at = c.opt_out_at.map(|t| t.clamp(c.created_at, updated_at));
    }
    // About 5% deleted; deletion is their last update.
    for c in contacts.iter_mut().filter(|_| rng.gen_ratio(1, 20)) {
        c.permission = Permission::Unsubscribed;
        c.opt_out_at = Some(c.updated_at);
        c.deleted_at = Some(c.updated_at);
        c.lists = 0;
    }
    for c in &mut contacts {
        c.email_updated_at = c.opt_out_at.unwrap_or(c.created_at);
        c.opt_in_at = c.created_at;
        c.opt_in_by_contact = c.created_by_contact;
    }
    contacts.sort_by_key(|c| c.id);
    contacts
}

/// The statuses of the default account's campaigns; more campaigns repeat the mix.
fn campaign_statuses() -> Vec<CampaignStatus> {
    use CampaignStatus::*;
    [
        [Done; 18].as_slice(),
        &[Draft; 5],
        &[Scheduled; 2],
        &[Removed; 3],
        &[Executing, Error],
    ]
    .concat()
}

fn generate_campaigns(rng: &mut ChaCha8Rng, n: usize, now: i64, segment_id: i64) -> Vec<Campaign> {
    use CampaignStatus::*;
    let statuses = campaign_statuses();
    let mut campaigns: Vec<Campaign> = statuses
        .iter()
        .cycle()
        .take(n)
        .enumerate()
        .map(|(i, &status)| {
            let topic = CAMPAIGN_TOPICS[i % CAMPAIGN_TOPICS.len()];
            let kind = rng.gen_range(0..GENERATED_TYPES);
            let created_at = between(rng, now - YEAR_MS, now - 2 * DAY_MS);
            let updated_at = between(rng, created_at, now - DAY_MS);
            let id = new_uuid(rng);
            let mut roles = vec!["primary_email", "permalink"];
            if status == Done && rng.gen_bool(0.3) {
                roles.push("resend");
            }
            let activities = roles
                .into_iter()
                .map(|role| Activity {
                    id: new_uuid(rng),
                    role,
                    lists: if role == "permalink" {
                        0
                    } else {
                        bits(rng, LIST_NAMES.len(), 1, 2)
                    },
                    segment_id: None,
                    template_id: rng.gen_range(1_000_000_000_000..2_000_000_000_000),
                    permalink: (0..7)
                        .map(|_| {
                            char::from(
                                b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
                                    [rng.gen_range(0..57)],
                            )
                        })
                        .collect(),
                    links: Vec::new(),
                    tracking: None,
                    scheduled_at: None,
                    failed: None,
                })
                .collect();
            Campaign {
                id,
                name: format!("{} {} #{}", topic, CAMPAIGN_TYPES[kind].0, i + 1),
                kind,
                status,
                created_at,
                updated_at,
                subject: format!("{topic}: news from Harborview Florists"),
                activities,
            }
        })
        .collect();
    campaigns.shuffle(rng);
    // A couple of campaigns target a segment as well as lists.
    for c in campaigns.iter_mut().take(3) {
        c.activities[0].segment_id = Some(segment_id);
    }
    campaigns.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    campaigns
}

fn generate_bulk_activities(rng: &mut ChaCha8Rng, now: i64) -> Vec<BulkActivity> {
    let mut at = now - 10 * DAY_MS;
    let mut activities: Vec<BulkActivity> = BULK_ACTIVITIES
        .iter()
        .map(|&(kind, state)| {
            at = between(rng, at + 60_000, at + DAY_MS);
            let started_at = at + 1000 * rng.gen_range(1..30);
            BulkActivity {
                id: new_uuid(rng),
                kind,
                state,
                created_at: at,
                started_at,
                finished_at: (state != "processing")
                    .then(|| started_at + 1000 * rng.gen_range(2..600)),
                items: rng.gen_range(5..400),
                errors: if state == "failed" { 1 } else { 0 },
            }
        })
        .collect();
    activities.reverse();
    activities
}

fn generate_account_emails(
    rng: &mut ChaCha8Rng,
    account: &Account,
    epoch: i64,
) -> Vec<AccountEmail> {
    let mut id = rng.gen_range(1..50);
    let mut email = |local: &str, confirmed: bool, source, roles, pending_roles| {
        id += rng.gen_range(1..9);
        AccountEmail {
            id,
            address: format!("{local}@{}", account.domain),
            confirmed_at: confirmed.then(|| between(rng, epoch - YEAR_MS, epoch)),
            source,
            roles,
            pending_roles,
        }
    };
    vec![
        email("owner", true, "SITE_OWNER", &["CONTACT", "BILLING"], &[]),
        email(
            "marketing",
            true,
            "FORCEVERIFY",
            &["REPLY_TO", "JOURNALING"],
            &[],
        ),
        email("events", false, "SITE_OWNER", &[], &["OTHER"]),
    ]
}

const PAGES: &[(&str, &[&str])] = &[
    ("Spring Workshop Signup", &["schedule", "directions"]),
    (
        "Holiday Gift Guide",
        &["bouquets", "gift-cards", "delivery"],
    ),
    ("Loyalty Club", &["rewards"]),
];

/// The landing pages with their visitors' events. A landing page is not a campaign of
/// `/emails` and no activity of one: no documented endpoint lists landing pages or says
/// how a client finds their `campaign_activity_id` (the contract's activity roles are
/// primary_email, permalink and resend), so the fake serves their reports by id only and
/// `Sandbox::connector_config` names the ids.
/// They draw from their own random stream after everything else, so the rest of the data
/// is the same with or without them; their ids are drawn first, so they depend on the seed
/// alone (`integration_tests/sample_config.json` names those of seed 42).
fn generate_landing_pages(seed: u64, contacts: &[Contact], now: i64) -> Vec<LandingPage> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x001A_4D1A_6E0F_A6E5);
    let ids: Vec<Uuid> = PAGES.iter().map(|_| new_uuid(&mut rng)).collect();
    PAGES
        .iter()
        .zip(ids)
        .map(|(&(_, paths), activity)| {
            let created_at = between(&mut rng, now - 200 * DAY_MS, now - 30 * DAY_MS);
            let published_at = between(&mut rng, created_at, created_at + 5 * DAY_MS);
            let links: Vec<(u64, String)> = paths
                .iter()
                .map(|p| {
                    let url_id = rng.gen_range(1_000_000_000u64..9_000_000_000);
                    (
                        url_id,
                        format!("https://harborviewflorists.example.com/{p}"),
                    )
                })
                .collect();
            let events = visits(&mut rng, contacts, published_at, now - 60_000, links.len());
            LandingPage {
                activity,
                links,
                events,
            }
        })
        .collect()
}

/// Visitors' events between `from` and `to`: opens (one to three), clicks, and some
/// adds, updates and SMS opt-ins.
fn visits(
    rng: &mut ChaCha8Rng,
    contacts: &[Contact],
    from: i64,
    to: i64,
    links: usize,
) -> Vec<Event> {
    let n = rng.gen_range(20..=60).min(contacts.len());
    let mut events = Vec::new();
    for i in sample(rng, contacts.len(), n).iter() {
        let contact = i as u32;
        let mut at = between(rng, from, to);
        let mut push = |rng: &mut ChaCha8Rng, kind, at| {
            events.push(Event {
                at,
                contact,
                kind,
                device: rng.gen_range(0..DEVICES.len()) as u8,
                link: rng.gen_range(0..links) as u8,
            });
        };
        for _ in 0..rng.gen_range(1..=3) {
            push(rng, Kind::Open, at);
            let later = between(rng, at, to);
            if rng.gen_bool(0.5) {
                push(rng, Kind::Click, later);
            }
            at = later;
        }
        let action = rng.gen_range(0..100);
        let kind = match action {
            0..=24 => Some(Kind::Add),
            25..=49 => Some(Kind::Update),
            _ => None,
        };
        if let Some(kind) = kind {
            push(rng, kind, at);
        }
        if rng.gen_bool(0.2) {
            push(rng, Kind::SmsOptIn, at);
        }
    }
    events
}

/// Turns every fourth campaign (by position, so drafts and sent ones alike) into an A/B
/// test, except removed ones.
fn mark_ab_tests(campaigns: &mut [Campaign]) {
    let kind = ab_test_kind();
    for c in campaigns.iter_mut().skip(1).step_by(4) {
        if c.status != CampaignStatus::Removed {
            c.kind = kind;
        }
    }
}
