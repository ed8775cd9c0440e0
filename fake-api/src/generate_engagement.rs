//! Generating the account's events, automations, SMS campaigns and social accounts
//! (`engagement`) from the seed, with a random stream of their own, so adding them left
//! every other generated record as it was; and the changes `/__sandbox/mutate` makes.
//!
//! The default account holds more of each than one page of its endpoint carries at the
//! contract's largest `limit`: 105 events (limit ≤ 100), two tracks of more than 50
//! registrations (the connector asks 50 a page), 55 SMS campaigns (limit ≤ 50) and 7
//! hashtag groups (limit ≤ 5); automations, profiles and connections are not paged.

use super::data::{between, new_uuid, CITIES, DAY_MS, FIRST_NAMES, LAST_NAMES};
use super::engagement::{
    Automation, Engagement, Event, HashtagGroup, Registration, SmsCampaign, SocialConnection, Track,
};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

/// Events of the default account: more than one page of the largest `limit` (100).
pub(crate) const EVENTS: usize = 105;
/// Events whose track has more registrations than one page of 50 holds.
const CROWDED_EVENTS: usize = 2;
/// SMS campaigns sent: more than one page of the largest `limit` (50).
pub(crate) const SMS_CAMPAIGNS: usize = 55;
/// Saved hashtag groups: more than one page of the largest `limit` (5).
const HASHTAG_GROUPS: &[(&str, &[&str])] = &[
    ("Spring", &["#spring", "#blooms", "#freshcut"]),
    ("Weddings", &["#weddingflowers", "#bridalbouquet"]),
    ("Local", &["#shoplocal", "#harborview", "#smallbusiness"]),
    ("Holidays", &["#holidaygifts", "#wreaths"]),
    ("Events", &["#workshop", "#openhouse", "#flowerclass"]),
    ("Sales", &["#sale", "#deal"]),
    ("Care tips", &["#plantcare", "#flowertips", "#diy"]),
];

const EVENT_TOPICS: &[&str] = &[
    "Flower Arranging Workshop",
    "Spring Open House",
    "Wreath Making Night",
    "Garden Tour",
    "Wedding Florals Q&A",
    "Succulent Potting Class",
    "Holiday Centerpiece Class",
    "Members' Evening",
];
/// (name, description, status, (trigger type, action), goal tag)
type AutomationSeed = (
    &'static str,
    &'static str,
    &'static str,
    (&'static str, &'static str),
    &'static str,
);

const AUTOMATIONS: &[AutomationSeed] = &[
    (
        "Welcome series",
        "Three emails for new subscribers",
        "ACTIVE",
        ("contact_list", "list_joined"),
        "welcome_new_contacts",
    ),
    (
        "Birthday bouquet",
        "A coupon on each contact's birthday",
        "ACTIVE",
        ("contact_date", "birthday"),
        "celebrate_contacts",
    ),
    (
        "Workshop follow-up",
        "Thanks and a survey after a workshop",
        "ACTIVE",
        ("event", "event_registered"),
        "post_event_followup",
    ),
    (
        "Win-back",
        "Reach contacts who stopped opening",
        "PAUSED",
        ("engagement", "not_opened"),
        "re_engage",
    ),
    (
        "Post-purchase thanks",
        "Care tips after an order",
        "ACTIVE",
        ("ecommerce", "order_placed"),
        "post_purchase_followup",
    ),
    (
        "Abandoned cart",
        "Reminder of items left in the cart",
        "DRAFT",
        ("ecommerce", "cart_abandoned"),
        "up_sell_and_cross_sell",
    ),
    (
        "Anniversary",
        "A note on each contact's signup anniversary",
        "ACTIVE",
        ("contact_date", "anniversary"),
        "celebrate_contacts",
    ),
    (
        "Volunteer onboarding",
        "Introduce new volunteers",
        "DRAFT",
        ("contact_list", "list_joined"),
        "welcome_new_contacts",
    ),
];

/// What one `/__sandbox/mutate` call changes here.
#[derive(Default)]
pub(crate) struct EngagementChange {
    /// Automations edited now (new `update_date`).
    pub automations: usize,
    /// SMS campaigns sent now.
    pub sms_campaigns: usize,
    /// Registrations added now to the newest active event.
    pub registrations: usize,
}

fn track_key(rng: &mut impl Rng) -> String {
    (0..6)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)]))
        .collect()
}

impl Engagement {
    /// The records as of `now` (Unix ms), from `seed`.
    pub(crate) fn generate(seed: u64, now: i64) -> Engagement {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xE7E2_7500_5EED);
        let mut serial = 0;
        let mut events: Vec<Event> = (0..EVENTS)
            .map(|i| generate_event(&mut rng, &mut serial, i, now))
            .collect();
        events.sort_by_key(|e| (e.created_at, e.id));
        let automations = AUTOMATIONS
            .iter()
            .map(|&(name, description, status, trigger, goal)| {
                let created_at = between(&mut rng, now - 400 * DAY_MS, now - 60 * DAY_MS);
                Automation {
                    id: new_uuid(&mut rng),
                    name: name.to_string(),
                    description,
                    status,
                    trigger,
                    template: rng.gen_bool(0.5).then(|| new_uuid(&mut rng)),
                    emails: (0..rng.gen_range(1..=3))
                        .map(|_| new_uuid(&mut rng))
                        .collect(),
                    wait_days: rng.gen_range(1..=7),
                    created_at,
                    updated_at: between(&mut rng, created_at, now - DAY_MS),
                    goal,
                }
            })
            .collect();
        let mut sms_campaigns: Vec<SmsCampaign> = (0..SMS_CAMPAIGNS)
            .map(|i| {
                let at = between(&mut rng, now - 540 * DAY_MS, now - DAY_MS);
                generate_sms(&mut rng, i, at)
            })
            .collect();
        sms_campaigns.sort_by_key(|c| (std::cmp::Reverse(c.last_sent), c.id));
        let profile = |rng: &mut ChaCha8Rng, name, handle, accessible| {
            (new_uuid(rng), name, handle, accessible)
        };
        let connections = vec![
            SocialConnection {
                network: "facebook",
                account_id: format!("{}", rng.gen_range(10_000_000_000u64..99_999_999_999)),
                display_name: "Harborview Florists",
                username: "harborviewflorists",
                token_valid: true,
                profiles: vec![
                    profile(&mut rng, "Harborview Florists", "harborviewflorists", true),
                    profile(&mut rng, "Harborview Events", "harborviewevents", false),
                ],
            },
            SocialConnection {
                network: "instagram",
                account_id: format!("{}", rng.gen_range(10_000_000_000u64..99_999_999_999)),
                display_name: "Harborview Florists",
                username: "harborview.florists",
                token_valid: true,
                profiles: vec![profile(
                    &mut rng,
                    "harborview.florists",
                    "harborview.florists",
                    true,
                )],
            },
            SocialConnection {
                network: "linkedin",
                account_id: format!(
                    "urn:li:organization:{}",
                    rng.gen_range(1_000_000..9_999_999)
                ),
                display_name: "Harborview Florists LLC",
                username: "harborview-florists",
                token_valid: false,
                profiles: vec![profile(
                    &mut rng,
                    "Harborview Florists LLC",
                    "harborview-florists",
                    false,
                )],
            },
        ];
        let hashtag_groups = HASHTAG_GROUPS
            .iter()
            .map(|&(name, hashtags)| HashtagGroup {
                id: new_uuid(&mut rng),
                name,
                hashtags,
            })
            .collect();
        Engagement {
            events,
            automations,
            sms_campaigns,
            connections,
            hashtag_groups,
            rng,
            serial,
        }
    }

    /// Edits automations, sends SMS campaigns and adds registrations, all stamped at `at`.
    /// Returns what changed: (automation ids, SMS campaign ids, event id of the
    /// registrations).
    pub(crate) fn mutate(
        &mut self,
        at: i64,
        change: &EngagementChange,
    ) -> (Vec<Uuid>, Vec<Uuid>, Option<Uuid>) {
        let n = change.automations.min(self.automations.len());
        let picked = rand::seq::index::sample(&mut self.rng, self.automations.len(), n);
        let mut edited = Vec::new();
        for i in picked.iter() {
            let a = &mut self.automations[i];
            a.updated_at = at;
            a.wait_days = a.wait_days % 7 + 1;
            edited.push(a.id);
        }
        let mut sent = Vec::new();
        for i in 0..change.sms_campaigns {
            let c = generate_sms(&mut self.rng, self.sms_campaigns.len() + i, at);
            sent.push(c.id);
            self.sms_campaigns.insert(0, c);
        }
        let mut event = None;
        if change.registrations > 0 {
            let newest = self
                .events
                .iter_mut()
                .filter(|e| e.status == "ACTIVE")
                .max_by_key(|e| e.created_at);
            if let Some(e) = newest {
                for _ in 0..change.registrations {
                    self.serial += 1;
                    let r = registration(&mut self.rng, self.serial, e.price, at, at);
                    e.track.registrations.push(r);
                }
                e.updated_at = at;
                event = Some(e.id);
            }
        }
        (edited, sent, event)
    }
}

fn generate_sms(rng: &mut ChaCha8Rng, i: usize, at: i64) -> SmsCampaign {
    let sends = rng.gen_range(40..400);
    let delivers = sends - rng.gen_range(0..sends / 10 + 1);
    SmsCampaign {
        id: new_uuid(rng),
        name: format!("Text offer #{}", i + 1),
        last_sent: at,
        sends,
        delivers,
        clicks: rng.gen_range(0..delivers / 3 + 1),
        optouts: rng.gen_range(0..delivers / 20 + 1),
    }
}

fn registration(
    rng: &mut ChaCha8Rng,
    serial: u32,
    price: Option<f64>,
    from: i64,
    to: i64,
) -> Registration {
    let status = *[
        "REGISTERED",
        "REGISTERED",
        "REGISTERED",
        "REGISTERED",
        "CANCELED",
        "PENDING",
    ]
    .choose(rng)
    .expect("not empty");
    let tickets = rng.gen_range(1..=3);
    Registration {
        id: new_uuid(rng),
        first: rng.gen_range(0..FIRST_NAMES.len()),
        last: rng.gen_range(0..LAST_NAMES.len()),
        serial,
        status,
        payment: price.map(|_| match status {
            "CANCELED" => "REFUNDED",
            "PENDING" => "PENDING",
            _ => "PAID",
        }),
        tickets,
        checked_in: if status == "REGISTERED" {
            rng.gen_range(0..=tickets)
        } else {
            0
        },
        new_contact: rng.gen_bool(0.3),
        at: between(rng, from, to),
    }
}

fn generate_event(rng: &mut ChaCha8Rng, serial: &mut u32, i: usize, now: i64) -> Event {
    let created_at = between(rng, now - 500 * DAY_MS, now - 10 * DAY_MS);
    let status = match i % 10 {
        0 => "DRAFT",
        1 => "CANCELLED",
        2 => "DELETED",
        3..=5 => "COMPLETE",
        _ => "ACTIVE",
    };
    // Completed events are over; the others lie ahead.
    let start = if status == "COMPLETE" {
        between(rng, created_at + DAY_MS, now - DAY_MS)
    } else {
        between(rng, now + DAY_MS, now + 200 * DAY_MS)
    };
    let price = rng
        .gen_bool(0.4)
        .then(|| f64::from(rng.gen_range(2..12u32)) * 5.0);
    let count = match (status, i) {
        ("DRAFT", _) => 0,
        // The first two active events draw a crowd.
        ("ACTIVE", _) if i < 6 + CROWDED_EVENTS => rng.gen_range(55..=75),
        ("CANCELLED" | "DELETED", _) => rng.gen_range(0..=2),
        _ => rng.gen_range(0..=8),
    };
    let registered_until = start.min(now - DAY_MS).max(created_at + 1000);
    let registrations = (0..count)
        .map(|_| {
            *serial += 1;
            registration(rng, *serial, price, created_at, registered_until)
        })
        .collect();
    Event {
        id: new_uuid(rng),
        campaign_id: new_uuid(rng),
        name: format!("{} #{}", EVENT_TOPICS[i % EVENT_TOPICS.len()], i + 1),
        status,
        online: rng.gen_bool(0.3),
        price,
        city: rng.gen_range(0..CITIES.len()),
        created_at,
        updated_at: between(rng, created_at, now - DAY_MS),
        start,
        end: start + i64::from(rng.gen_range(1..=4u32)) * 3_600_000,
        track: Track {
            id: track_key(rng),
            activity: new_uuid(rng),
            confirmation_activity: new_uuid(rng),
            capacity: rng.gen_range(80..=150),
            registrations,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_pages_at_its_largest_limit() {
        let now = chrono::Utc::now().timestamp_millis();
        let e = Engagement::generate(42, now);
        assert!(e.events.len() > 100);
        let crowded = e
            .events
            .iter()
            .filter(|e| e.track.registrations.len() > 50)
            .count();
        assert!(crowded >= 1, "a track pages at 50 registrations");
        assert!(e.sms_campaigns.len() > 50);
        assert!(e.hashtag_groups.len() > 5);
        assert!(!e.automations.is_empty());
        // Same seed, same account.
        let again = Engagement::generate(42, now);
        assert_eq!(e.events[0].id, again.events[0].id);
        assert_eq!(e.registrations().count(), again.registrations().count());
    }
}
