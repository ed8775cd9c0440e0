//! The fake account's records (`Data`) and the queries handlers share. `generate` fills
//! them in from the seed; timestamps are offsets from the sandbox start, stored as Unix
//! milliseconds.

use super::engagement::Engagement;
use super::tracking::{is_sendable, Link, Stats, Tracking};
use super::visits::LandingPage;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use uuid::Uuid;

pub(crate) const DAY_MS: i64 = 86_400_000;
pub(crate) const YEAR_MS: i64 = 365 * DAY_MS;

pub(crate) const FIRST_NAMES: &[&str] = &[
    "Ava", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Sofia", "Lucas", "Mia", "Ethan", "Amara",
    "Kenji", "Priya", "Diego", "Chloe", "Omar", "Grace", "Hugo", "Leila", "Jonah", "Nora", "Ravi",
    "Elena", "Felix", "Ines", "Tariq", "Maya", "Owen", "Zoe", "Anders", "Yuki", "Carmen",
];
pub(crate) const LAST_NAMES: &[&str] = &[
    "Nguyen",
    "Garcia",
    "Smith",
    "Okafor",
    "Kowalski",
    "Rossi",
    "Haddad",
    "Johansson",
    "Patel",
    "Murphy",
    "Schmidt",
    "Tanaka",
    "Dubois",
    "Silva",
    "Cohen",
    "Novak",
    "Brown",
    "Fischer",
    "Moreau",
    "Ivanova",
    "Khan",
    "Lopez",
    "Walsh",
    "Bauer",
    "Costa",
    "Reyes",
    "Park",
    "Adeyemi",
];
pub(crate) const JOB_TITLES: &[&str] = &[
    "Owner",
    "Marketing Manager",
    "Office Administrator",
    "Sales Director",
    "Chef",
    "Teacher",
    "Software Engineer",
    "Nurse",
    "Accountant",
    "Photographer",
    "Event Planner",
    "Barista",
    "Store Manager",
    "Consultant",
    "Graphic Designer",
    "Volunteer Coordinator",
];
pub(crate) const COMPANIES: &[&str] = &[
    "Acme Corp.",
    "Blue Harbor Bakery",
    "Northwind Traders",
    "Maple Street Dental",
    "Riverside Yoga",
    "Brightside Realty",
    "Pinecone Outfitters",
    "Copperleaf Cafe",
    "Summit Legal Group",
    "Harborview Florists",
    "Lakeside Auto",
    "Evergreen Landscaping",
];
/// (city, state, postal code prefix)
pub(crate) const CITIES: &[(&str, &str, &str)] = &[
    ("Boston", "Massachusetts", "021"),
    ("Chicago", "Illinois", "606"),
    ("Denver", "Colorado", "802"),
    ("Portland", "Oregon", "972"),
    ("Austin", "Texas", "787"),
    ("Waltham", "Massachusetts", "024"),
    ("Madison", "Wisconsin", "537"),
    ("Raleigh", "North Carolina", "276"),
    ("Tucson", "Arizona", "857"),
    ("Burlington", "Vermont", "054"),
];
pub(crate) const STREETS: &[&str] = &[
    "Maple Street",
    "Oak Avenue",
    "Kashmir Valley Road",
    "Harbor Drive",
    "Elm Court",
    "Sunset Boulevard",
    "Mill Lane",
    "Cedar Way",
    "Lincoln Road",
    "Bay View Terrace",
];
pub(crate) const NOTES: &[&str] = &[
    "Met at the spring open house.",
    "Prefers email over phone calls.",
    "Asked about the loyalty program.",
    "Resubscribed after the winter sale.",
    "Interested in volunteering at events.",
    "Requested a quote for catering.",
    "Referred by an existing customer.",
    "Follow up about the annual membership renewal.",
];
pub(crate) const LIST_NAMES: &[&str] = &[
    "General Interest",
    "Monthly Newsletter",
    "VIP Customers",
    "Event Attendees",
    "Webinar Signups",
    "Holiday Promotions",
    "New Subscribers",
    "Volunteers",
    "Donors",
    "Wholesale Partners",
    "Workshop Alumni",
    "Product Updates",
];
pub(crate) const TAG_NAMES: &[&str] = &[
    "Gold card member",
    "Trade show lead",
    "Website signup",
    "Repeat buyer",
    "Referral",
    "Newsletter fan",
    "Coupon user",
    "Survey responder",
    "Beta tester",
    "Local",
    "High spender",
    "Inactive 90 days",
    "Facebook lead",
    "Event 2024",
    "Partner contact",
];
pub(crate) const TAG_SOURCES: &[&str] = &["Contact", "Account", "Shopify", "Etsy"];
/// (label, type)
pub(crate) const CUSTOM_FIELDS: &[(&str, &str)] = &[
    ("Vehicle make and model year", "string"),
    ("Favorite product", "string"),
    ("Membership level", "string"),
    ("Last purchase date", "date"),
    ("Shoe size", "string"),
    ("Preferred store", "string"),
    ("Renewal date", "date"),
    ("Referral code", "string"),
    // Labels a column name must be derived from with care: one that differs
    // from "Shoe size" only in case and punctuation, and one with accents.
    ("shoe-SIZE", "string"),
    ("Café préféré", "string"),
];
/// (name, criteria) — criteria is the escaped JSON string the API stores.
pub(crate) const SEGMENTS: &[(&str, &str)] = &[
    (
        "Did not open the last 5 campaigns",
        r#"{"version":"1.0.0","criteria":{"type":"and","group":[{"source":"tracking","field":"not_opened","op":"contains-any","const_value":"last-n-campaigns","param":"5"}]}}"#,
    ),
    (
        "Clicked in the last 30 days",
        r#"{"version":"1.0.0","criteria":{"type":"and","group":[{"source":"tracking","field":"clicked","op":"contains-any","const_value":"last-n-days","param":"30"}]}}"#,
    ),
    (
        "Boston area contacts",
        r#"{"version":"1.0.0","criteria":{"type":"and","group":[{"source":"contact","field":"city","op":"eq","const_value":"Boston"}]}}"#,
    ),
    (
        "VIP list members",
        r#"{"version":"1.0.0","criteria":{"type":"or","group":[{"source":"list_membership","field":"list_id","op":"contains-any","const_value":"vip"}]}}"#,
    ),
    (
        "Tagged repeat buyers",
        r#"{"version":"1.0.0","criteria":{"type":"or","group":[{"source":"tags","field":"tag_id","op":"contains-any","const_value":"repeat"}]}}"#,
    ),
    (
        "Opened but never clicked",
        r#"{"version":"1.0.0","criteria":{"type":"and","group":[{"source":"tracking","field":"opened","op":"contains-any","const_value":"last-n-campaigns","param":"10"},{"source":"tracking","field":"not_clicked","op":"contains-any","const_value":"last-n-campaigns","param":"10"}]}}"#,
    ),
];
/// Campaign `type` values with their numeric `type_code`.
pub(crate) const CAMPAIGN_TYPES: &[(&str, i64)] = &[
    ("Newsletter", 10),
    ("Custom Code Email", 1),
    ("Announcement", 2),
    ("Product/Service News", 3),
    ("Event Announcement", 11),
    ("Sale Promotion", 13),
    ("Fundraiser", 16),
    ("Feedback Request", 8),
    // Never drawn: campaigns become A/B tests after generation (`abtests`).
    ("A/B Test", 57),
];
/// The `CAMPAIGN_TYPES` campaigns are generated with.
pub(crate) const GENERATED_TYPES: usize = 8;
pub(crate) const CAMPAIGN_TOPICS: &[&str] = &[
    "Spring Sale",
    "Summer Kickoff",
    "Back to School",
    "Holiday Gift Guide",
    "Customer Survey",
    "Open House",
    "Member Appreciation",
    "New Arrivals",
    "Year in Review",
    "Workshop Series",
];
pub(crate) const PRIVILEGES: &[(i64, &str)] = &[
    (1, "account:read"),
    (2, "account:update"),
    (3, "ui:campaign:metrics"),
    (30, "campaign:create"),
    (31, "campaign:read"),
    (32, "campaign:delete"),
    (33, "campaign:write"),
    (34, "campaign:send"),
    (40, "contacts:read"),
    (41, "contacts:write"),
    (42, "contacts:lists:read"),
    (43, "contacts:lists:write"),
    (50, "customer-journey:read"),
];

/// `sms_consent_permission` values, with the `sms_status` filter value each matches.
pub(crate) const SMS_PERMISSIONS: &[(&str, &str)] = &[
    ("explicit", "explicit"),
    ("pending_confirmation", "pending_confirmation"),
    ("opt_out", "unsubscribed"),
];

/// `email_address.permission_to_send` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permission {
    Implicit,
    Explicit,
    PendingConfirmation,
    Unsubscribed,
    TempHold,
    NotSet,
}

impl Permission {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Implicit => "implicit",
            Self::Explicit => "explicit",
            Self::PendingConfirmation => "pending_confirmation",
            Self::Unsubscribed => "unsubscribed",
            Self::TempHold => "temp_hold",
            Self::NotSet => "not_set",
        }
    }
}

/// One contact, kept compact: names are table indices and the sub-resources are
/// regenerated from `seed` when rendered.
pub(crate) struct Contact {
    pub id: Uuid,
    pub seed: u64,
    pub serial: u32,
    pub first: u8,
    pub last: u8,
    pub job: u8,
    pub company: u8,
    pub permission: Permission,
    pub created_by_contact: bool,
    pub updated_by_contact: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub opt_out_at: Option<i64>,
    pub deleted_at: Option<i64>,
    /// Bit i = member of `Data::lists[i]`.
    pub lists: u16,
    /// Bit i = tagged with `Data::tags[i]`.
    pub tags: u16,
    /// Index into `SMS_PERMISSIONS` for the contact's SMS channel consent.
    pub sms: u8,
    /// `email_address.updated_at`: the last change of the address's permission (opt-in,
    /// opt-out, deletion). Separate from `updated_at`, which follows personal details only.
    pub email_updated_at: i64,
    /// `email_address.opt_in_date`, and whether the contact (not the account) opted in.
    pub opt_in_at: i64,
    pub opt_in_by_contact: bool,
}

impl Contact {
    pub(crate) fn email(&self) -> String {
        format!(
            "{}.{}{}@example.com",
            FIRST_NAMES[self.first as usize], LAST_NAMES[self.last as usize], self.serial
        )
        .to_lowercase()
    }

    pub(crate) fn first_name(&self) -> &'static str {
        FIRST_NAMES[self.first as usize]
    }

    pub(crate) fn last_name(&self) -> &'static str {
        LAST_NAMES[self.last as usize]
    }

    pub(crate) fn is_active(&self) -> bool {
        self.deleted_at.is_none()
            && matches!(self.permission, Permission::Implicit | Permission::Explicit)
    }
}

pub(crate) struct ContactList {
    pub id: Uuid,
    pub name: &'static str,
    pub favorite: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) struct Tag {
    pub id: Uuid,
    pub name: &'static str,
    pub source: &'static str,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) struct CustomField {
    pub id: Uuid,
    pub label: &'static str,
    pub kind: &'static str,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) struct Segment {
    pub id: i64,
    pub name: &'static str,
    pub criteria: &'static str,
    pub created_at: i64,
    pub edited_at: i64,
}

impl Segment {
    /// Whether the contact meets the segment's criteria. The sandbox does not evaluate
    /// criteria: a fixed quarter of the live contacts, chosen by hash, meet each segment.
    pub(crate) fn contains(&self, c: &Contact) -> bool {
        let mixed = (c.seed ^ self.id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        c.deleted_at.is_none() && mixed >> 62 == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CampaignStatus {
    Draft,
    Scheduled,
    Executing,
    Done,
    Error,
    Removed,
}

impl CampaignStatus {
    /// Spelling used by campaigns (`Done`); activities use the upper-case form.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "Draft",
            Self::Scheduled => "Scheduled",
            Self::Executing => "Executing",
            Self::Done => "Done",
            Self::Error => "Error",
            Self::Removed => "Removed",
        }
    }
}

pub(crate) struct Activity {
    pub id: Uuid,
    pub role: &'static str,
    pub lists: u16,
    pub segment_id: Option<i64>,
    pub template_id: u64,
    pub permalink: String,
    /// Links in the content (sendable roles only).
    pub links: Vec<Link>,
    /// Set once the activity was sent.
    pub tracking: Option<Tracking>,
    /// When a scheduled activity goes out.
    pub scheduled_at: Option<i64>,
    /// Failed send attempt: (run date, `reason_code`).
    pub failed: Option<(i64, u8)>,
}

impl Activity {
    /// `EmailSendHistory` entries, oldest first: (run date, contacts sent to, reason code).
    pub(crate) fn send_history(&self) -> Vec<(i64, usize, u8)> {
        let sent = self
            .tracking
            .as_ref()
            .map(|t| (t.sent_at, t.recipients().count(), 0));
        self.failed
            .map(|(at, reason)| (at, 0, reason))
            .into_iter()
            .chain(sent)
            .collect()
    }
}

pub(crate) struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub kind: usize,
    pub status: CampaignStatus,
    pub created_at: i64,
    pub updated_at: i64,
    pub subject: String,
    pub activities: Vec<Activity>,
}

impl Campaign {
    fn sent(&self) -> impl Iterator<Item = &Tracking> + '_ {
        self.activities.iter().filter_map(|a| a.tracking.as_ref())
    }

    /// Latest send of any of its activities.
    pub(crate) fn last_sent(&self) -> Option<i64> {
        self.sent().map(|t| t.sent_at).max()
    }

    /// Unique counts of each sent activity, added up.
    pub(crate) fn stats(&self) -> Stats {
        self.sent().fold(Stats::default(), |mut total, t| {
            total.add(&t.stats());
            total
        })
    }
}

/// A bulk activity (`/activities`), e.g. a contact import or export.
pub(crate) struct BulkActivity {
    pub id: Uuid,
    /// Index into `BULK_KINDS`.
    pub kind: usize,
    pub state: &'static str,
    pub created_at: i64,
    pub started_at: i64,
    /// Set for every state but `processing`.
    pub finished_at: Option<i64>,
    pub items: u32,
    pub errors: u32,
}

/// Bulk activity kinds: (name, source file name when it is an import).
pub(crate) const BULK_KINDS: &[(&str, Option<&str>)] = &[
    ("file_import", Some("spring-open-house-signups.csv")),
    ("add_list_memberships", None),
    ("export_contacts", None),
    ("add_tags", None),
    ("delete_contacts", None),
    ("json_import", None),
    ("remove_list_memberships", None),
];
/// (kind, state) of the generated bulk activities, oldest first.
pub(crate) const BULK_ACTIVITIES: &[(usize, &str)] = &[
    (0, "completed"),
    (1, "completed"),
    (2, "completed"),
    (3, "completed"),
    (4, "completed"),
    (5, "failed"),
    (6, "cancelled"),
    (0, "processing"),
];

pub(crate) struct AccountEmail {
    pub id: i64,
    pub address: String,
    pub confirmed_at: Option<i64>,
    pub source: &'static str,
    pub roles: &'static [&'static str],
    pub pending_roles: &'static [&'static str],
}

pub(crate) struct Account {
    pub encoded_id: String,
    pub organization: &'static str,
    pub domain: &'static str,
}

pub(crate) struct Data {
    pub contacts: Vec<Contact>,
    pub lists: Vec<ContactList>,
    pub tags: Vec<Tag>,
    pub custom_fields: Vec<CustomField>,
    pub segments: Vec<Segment>,
    pub campaigns: Vec<Campaign>,
    pub account: Account,
    pub account_emails: Vec<AccountEmail>,
    /// Newest first.
    pub bulk_activities: Vec<BulkActivity>,
    /// Landing pages (known by their activity id only, see `landing_pages`) and their
    /// events.
    pub landing_pages: Vec<LandingPage>,
    /// Segments whose `/contacts?segment_id=` result was already prepared (answered 202).
    pub prepared_segments: BTreeSet<i64>,
    /// Events, automations, SMS campaigns and social accounts.
    pub engagement: Engagement,
    /// Privileges the token's user lacks (`--without-privilege`): not listed by
    /// `/account/user/privileges`, and the endpoints that need one answer 403.
    pub denied_privileges: BTreeSet<String>,
    pub rng: ChaCha8Rng,
}

pub(crate) fn new_uuid(rng: &mut impl Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.gen()).into_uuid()
}

/// RFC 3339 UTC timestamp; whole seconds unless the value carries milliseconds.
pub(crate) fn timestamp(ms: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    let precision = if ms % 1000 == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Millis
    };
    t.to_rfc3339_opts(precision, true)
}

pub(crate) fn date(ms: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    t.format("%Y-%m-%d").to_string()
}

/// Uniform whole-second instant in `[from, to]` (ms), or `to` when no whole second fits.
/// Always consumes exactly one draw, so later draws do not depend on the bounds.
pub(crate) fn between(rng: &mut impl Rng, from: i64, to: i64) -> i64 {
    let draw: u64 = rng.gen();
    let (lo, hi) = ((from + 999).div_euclid(1000), to.div_euclid(1000));
    if hi < lo {
        return to;
    }
    (lo + (draw % (hi - lo + 1) as u64) as i64) * 1000
}

impl Data {
    /// The privileges of the token's user: every one the sandbox knows but those
    /// `--without-privilege` took away.
    pub(crate) fn privileges(&self) -> impl Iterator<Item = &'static (i64, &'static str)> + '_ {
        PRIVILEGES
            .iter()
            .filter(|(_, name)| !self.denied_privileges.contains(*name))
    }

    /// Every activity `GET /emails/activities/{id}` serves (not those of removed campaigns).
    pub(crate) fn live_activities(&self) -> impl Iterator<Item = (&Campaign, &Activity)> + '_ {
        self.campaigns
            .iter()
            .filter(|c| c.status != CampaignStatus::Removed)
            .flat_map(|c| c.activities.iter().map(move |a| (c, a)))
    }

    /// Served activities that are sent to contacts.
    pub(crate) fn live_sendable(&self) -> impl Iterator<Item = &Activity> + '_ {
        self.live_activities()
            .map(|(_, a)| a)
            .filter(|a| is_sendable(a.role))
    }

    /// A served activity by id.
    pub(crate) fn activity(&self, id: &str) -> Option<(&Campaign, &Activity)> {
        self.live_activities().find(|(_, a)| a.id.to_string() == id)
    }

    /// Every sent activity with its tracking.
    pub(crate) fn sent(&self) -> impl Iterator<Item = (&Campaign, &Activity, &Tracking)> + '_ {
        self.campaigns.iter().flat_map(|c| {
            c.activities
                .iter()
                .filter_map(move |a| a.tracking.as_ref().map(|t| (c, a, t)))
        })
    }

    /// Sent campaigns, most recent send first, with their last send.
    pub(crate) fn summaries(&self) -> Vec<(&Campaign, i64)> {
        let mut sent: Vec<(&Campaign, i64)> = self
            .campaigns
            .iter()
            .filter_map(|c| c.last_sent().map(|at| (c, at)))
            .collect();
        sent.sort_by_key(|&(c, at)| (std::cmp::Reverse(at), c.id));
        sent
    }

    /// Index of the contact with this id.
    pub(crate) fn contact_index(&self, id: &str) -> Option<u32> {
        let id = Uuid::parse_str(id).ok()?;
        let i = self.contacts.binary_search_by_key(&id, |c| c.id).ok()?;
        Some(i as u32)
    }

    /// Per-bit totals of `field` over all contacts (list memberships or taggings).
    pub(crate) fn bit_counts(&self, field: impl Fn(&Contact) -> u16) -> [usize; 16] {
        let mut counts = [0; 16];
        for c in &self.contacts {
            let bits = field(c);
            for (i, n) in counts.iter_mut().enumerate() {
                *n += usize::from(bits & (1 << i) != 0);
            }
        }
        counts
    }
}

/// Index of A/B Test in `CAMPAIGN_TYPES`.
pub(crate) fn ab_test_kind() -> usize {
    CAMPAIGN_TYPES
        .iter()
        .position(|&(_, code)| code == 57)
        .expect("CAMPAIGN_TYPES has A/B Test")
}
