//! Deterministic fake account data. Everything derives from the seed; timestamps are
//! offsets from the sandbox start, stored as Unix milliseconds.

use super::reports::REPORTS;
use super::tracking::{self, is_sendable, Link, Stats, Tracking};
use chrono::{DateTime, SecondsFormat, Utc};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
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
const LIST_NAMES: &[&str] = &[
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
const TAG_NAMES: &[&str] = &[
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
const TAG_SOURCES: &[&str] = &["Contact", "Account", "Shopify", "Etsy"];
/// (label, type)
const CUSTOM_FIELDS: &[(&str, &str)] = &[
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
const SEGMENTS: &[(&str, &str)] = &[
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
const GENERATED_TYPES: usize = 8;
const CAMPAIGN_TOPICS: &[&str] = &[
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
const BULK_ACTIVITIES: &[(usize, &str)] = &[
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
    /// Landing pages (each a campaign with one `landing_page` activity) and their events.
    pub landing_pages: Vec<super::landing_pages::LandingPage>,
    /// Segments whose `/contacts?segment_id=` result was already prepared (answered 202).
    pub prepared_segments: BTreeSet<i64>,
    rng: ChaCha8Rng,
}

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
        tracking::populate(
            &mut tracking_rng,
            &mut campaigns,
            &contacts,
            account.domain,
            lists.len(),
            now,
        );
        super::abtests::mark(&mut campaigns);
        let landing_pages = super::landing_pages::generate(seed, &contacts, &mut campaigns, now);
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
            rng,
        }
    }

    /// Number of records a full read of each stream returns.
    pub(crate) fn expected_counts(&self) -> BTreeMap<String, usize> {
        [
            ("contacts", self.contacts.len()),
            ("contact_lists", self.lists.len()),
            ("contact_tags", self.tags.len()),
            ("segments", self.segments.len()),
            ("custom_fields", self.custom_fields.len()),
            ("email_campaigns", self.campaigns.len()),
            ("email_campaign_summaries", self.summaries().len()),
            ("account_summary", 1),
            ("account_emails", self.account_emails.len()),
            ("user_privileges", PRIVILEGES.len()),
            ("email_campaign_activities", self.live_activities().count()),
            (
                "campaign_activity_schedules",
                self.live_sendable()
                    .filter(|a| a.scheduled_at.is_some())
                    .count(),
            ),
            (
                "campaign_activity_send_history",
                self.live_sendable().map(|a| a.send_history().len()).sum(),
            ),
            ("campaign_activity_previews", self.live_sendable().count()),
            ("email_links", self.live_sendable().count()),
            ("email_campaign_stats", self.campaigns.len()),
            (
                "email_campaign_activity_stats",
                self.live_sendable().count(),
            ),
            ("bulk_activities", self.bulk_activities.len()),
        ]
        .into_iter()
        .chain(super::abtests::expected_counts(self))
        .chain(super::landing_pages::expected_counts(self))
        .chain(super::contact_consent::expected_counts())
        .chain(super::exports::expected_counts(self))
        .chain(REPORTS.iter().map(|r| {
            let rows = self.sent().map(|(_, _, t)| t.rows(r.view).len()).sum();
            (r.stream, rows)
        }))
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Every activity `GET /emails/activities/{id}` serves (not those of removed campaigns).
    pub(crate) fn live_activities(&self) -> impl Iterator<Item = (&Campaign, &Activity)> + '_ {
        self.campaigns
            .iter()
            .filter(|c| c.status != CampaignStatus::Removed)
            .flat_map(|c| c.activities.iter().map(move |a| (c, a)))
    }

    fn live_sendable(&self) -> impl Iterator<Item = &Activity> + '_ {
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
        let to = tracking::audience(&mut self.rng, &self.contacts, at);
        let c = &mut self.campaigns[i];
        c.status = CampaignStatus::Done;
        c.updated_at = at;
        let primary = &mut c.activities[0];
        let links = primary.links.len();
        primary.tracking = Some(tracking::simulate(&mut self.rng, &to, at, at, links));
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
