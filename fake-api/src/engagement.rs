//! The account's records beyond email: events with their track and registrations,
//! automated journeys, SMS campaigns and connected social accounts, and the queries the
//! handlers share. `generate_engagement` fills them in from the seed and moves them on
//! for `/__sandbox/mutate`.

use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use uuid::Uuid;

/// `status` of an event, as `GET /events?event_status=` takes it.
pub(crate) const EVENT_STATUSES: &[&str] = &[
    "ACTIVE",
    "DRAFT",
    "COMPLETE",
    "DELETED",
    "CANCELLED",
    "ERROR",
];
/// `registration_status` values, as the registrations filter takes them.
pub(crate) const REGISTRATION_STATUSES: &[&str] = &[
    "PENDING",
    "REGISTERED",
    "CANCELED",
    "EXPIRED",
    "IN_PROGRESS, FAILED",
];
/// `payment_status` values, as the registrations filter takes them.
pub(crate) const PAYMENT_STATUSES: &[&str] = &[
    "PENDING",
    "PAID",
    "REFUNDED",
    "CANCELLED",
    "FAILED",
    "CHARGED_BACK",
];

pub(crate) struct Registration {
    pub id: Uuid,
    pub first: usize,
    pub last: usize,
    pub serial: u32,
    pub status: &'static str,
    /// Set for paid events only.
    pub payment: Option<&'static str>,
    pub tickets: u32,
    pub checked_in: u32,
    pub new_contact: bool,
    pub at: i64,
}

/// An event's one track (`default_track`: the contract gives an event no other).
pub(crate) struct Track {
    /// A short key, as the API's examples show (`s8zabc`).
    pub id: String,
    pub activity: Uuid,
    pub confirmation_activity: Uuid,
    pub capacity: u32,
    pub registrations: Vec<Registration>,
}

pub(crate) struct Event {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub name: String,
    pub status: &'static str,
    pub online: bool,
    /// Ticket price; free events have none.
    pub price: Option<f64>,
    /// Index into `data::CITIES`.
    pub city: usize,
    pub created_at: i64,
    pub updated_at: i64,
    pub start: i64,
    pub end: i64,
    pub track: Track,
}

impl Event {
    /// Registrations that hold tickets (not canceled, failed or expired).
    pub(crate) fn tickets_sold(&self) -> u32 {
        self.track
            .registrations
            .iter()
            .filter(|r| matches!(r.status, "REGISTERED" | "PENDING"))
            .map(|r| r.tickets)
            .sum()
    }
}

/// An automated journey (`/automations/workflows`).
pub(crate) struct Automation {
    pub id: Uuid,
    pub name: String,
    pub description: &'static str,
    pub status: &'static str,
    /// Trigger type and the list (or date field) it watches.
    pub trigger: (&'static str, &'static str),
    pub template: Option<Uuid>,
    pub emails: Vec<Uuid>,
    pub wait_days: u32,
    pub created_at: i64,
    pub updated_at: i64,
    pub goal: &'static str,
}

/// A sent SMS campaign and its unique counts.
pub(crate) struct SmsCampaign {
    pub id: Uuid,
    pub name: String,
    pub last_sent: i64,
    pub sends: u32,
    pub delivers: u32,
    pub clicks: u32,
    pub optouts: u32,
}

/// A connected social account: a connection (the authorization) and its profiles.
pub(crate) struct SocialConnection {
    pub network: &'static str,
    pub account_id: String,
    pub display_name: &'static str,
    pub username: &'static str,
    pub token_valid: bool,
    /// (profile id, profile name, handle, accessible)
    pub profiles: Vec<(Uuid, &'static str, &'static str, bool)>,
}

pub(crate) struct HashtagGroup {
    pub id: Uuid,
    pub name: &'static str,
    pub hashtags: &'static [&'static str],
}

pub(crate) struct Engagement {
    pub events: Vec<Event>,
    pub automations: Vec<Automation>,
    /// Most recently sent first.
    pub sms_campaigns: Vec<SmsCampaign>,
    pub connections: Vec<SocialConnection>,
    pub hashtag_groups: Vec<HashtagGroup>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) serial: u32,
}

impl Engagement {
    /// Every registration of every event's track.
    pub(crate) fn registrations(&self) -> impl Iterator<Item = (&Event, &Registration)> + '_ {
        self.events
            .iter()
            .flat_map(|e| e.track.registrations.iter().map(move |r| (e, r)))
    }

    /// The key fields of `stream` and the key of each of its records (see
    /// `ground_truth`), for the streams of these records.
    #[allow(clippy::type_complexity)]
    pub(crate) fn ground_truth(
        &self,
        stream: &str,
    ) -> Option<(Vec<&'static str>, Vec<Vec<Value>>)> {
        let one = |field: &'static str, keys: Vec<Value>| {
            Some((vec![field], keys.into_iter().map(|k| vec![k]).collect()))
        };
        match stream {
            "events" => one(
                "event_id",
                self.events.iter().map(|e| json!(e.id)).collect(),
            ),
            // The connector adds the event's id to each registration.
            "event_registrations" => Some((
                vec!["event_id", "registration_id"],
                self.registrations()
                    .map(|(e, r)| vec![json!(e.id), json!(r.id)])
                    .collect(),
            )),
            "automation_workflows" => {
                one("id", self.automations.iter().map(|a| json!(a.id)).collect())
            }
            "sms_campaign_summaries" => one(
                "campaign_id",
                self.sms_campaigns.iter().map(|c| json!(c.id)).collect(),
            ),
            "social_profiles" => one(
                "profile_id",
                self.connections
                    .iter()
                    .flat_map(|c| c.profiles.iter().map(|p| json!(p.0)))
                    .collect(),
            ),
            // A connection has no id of its own: the connector lifts its account's
            // network and id out of `account_info`.
            "social_connections" => Some((
                vec!["network", "network_account_id"],
                self.connections
                    .iter()
                    .map(|c| vec![json!(c.network), json!(c.account_id)])
                    .collect(),
            )),
            "social_hashtag_groups" => one(
                "hashtag_group_id",
                self.hashtag_groups.iter().map(|g| json!(g.id)).collect(),
            ),
            _ => None,
        }
    }

    pub(crate) fn event(&self, id: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.id.to_string() == id)
    }
}
