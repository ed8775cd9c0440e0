//! Deterministic fake account data. Everything derives from the seed; timestamps are
//! offsets from the sandbox start, stored as Unix milliseconds.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
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
];
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
}

impl Contact {
    pub(crate) fn email(&self) -> String {
        format!(
            "{}.{}{}@example.com",
            FIRST_NAMES[self.first as usize], LAST_NAMES[self.last as usize], self.serial
        )
        .to_lowercase()
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

/// Send report of a sent campaign (`BulkEmailCampaignSummary`).
pub(crate) struct Summary {
    pub campaign_id: Uuid,
    pub kind: usize,
    pub last_sent: i64,
    pub sends: i64,
    pub opens: i64,
    pub clicks: i64,
    pub forwards: i64,
    pub optouts: i64,
    pub abuse: i64,
    pub bounces: i64,
}

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
    /// Newest send first.
    pub summaries: Vec<Summary>,
    pub account: Account,
    pub account_emails: Vec<AccountEmail>,
    rng: ChaCha8Rng,
}

/// Ids changed by one `/__sandbox/mutate` call.
pub(crate) struct Mutation {
    pub contacts: Vec<Uuid>,
    pub campaigns: Vec<Uuid>,
    pub deleted_contacts: Vec<Uuid>,
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
    pub(crate) fn generate(seed: u64, contacts: usize, now: i64) -> Data {
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
        let (campaigns, summaries) =
            generate_campaigns(&mut rng, now, contacts.len(), segments[0].id);
        let account = Account {
            encoded_id: (0..14)
                .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)]))
                .collect(),
            organization: "Harborview Florists",
            domain: "harborviewflorists.example.com",
        };
        let account_emails = generate_account_emails(&mut rng, &account, epoch);
        Data {
            contacts,
            lists,
            tags,
            custom_fields,
            segments,
            campaigns,
            summaries,
            account,
            account_emails,
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
            ("email_campaign_summaries", self.summaries.len()),
            ("account_summary", 1),
            ("account_emails", self.account_emails.len()),
            ("user_privileges", PRIVILEGES.len()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
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

    /// Updates `contacts` live contacts, deletes `deletes` other live contacts and touches
    /// `campaigns` campaigns. Changed records get `updated_at` strictly after `now`.
    pub(crate) fn mutate(
        &mut self,
        now: i64,
        contacts: usize,
        campaigns: usize,
        deletes: usize,
    ) -> Mutation {
        let stamp = now + 1;
        let live: Vec<usize> = (0..self.contacts.len())
            .filter(|&i| self.contacts[i].deleted_at.is_none())
            .collect();
        let picked: Vec<usize> = rand::seq::index::sample(
            &mut self.rng,
            live.len(),
            (contacts + deletes).min(live.len()),
        )
        .iter()
        .map(|i| live[i])
        .collect();
        let (updated, deleted) = picked.split_at(contacts.min(picked.len()));
        for &i in updated {
            let c = &mut self.contacts[i];
            c.job = (c.job + 1) % JOB_TITLES.len() as u8;
            c.updated_by_contact = false;
            c.updated_at = stamp;
        }
        for &i in deleted {
            let c = &mut self.contacts[i];
            c.permission = Permission::Unsubscribed;
            c.opt_out_at = Some(stamp);
            c.deleted_at = Some(stamp);
            c.lists = 0;
            c.updated_by_contact = false;
            c.updated_at = stamp;
        }
        let n = campaigns.min(self.campaigns.len());
        let touched: Vec<usize> =
            rand::seq::index::sample(&mut self.rng, self.campaigns.len(), n).into_vec();
        for &i in &touched {
            self.campaigns[i].updated_at = stamp;
        }
        let ids = |idx: &[usize]| idx.iter().map(|&i| self.contacts[i].id).collect::<Vec<_>>();
        Mutation {
            contacts: ids(updated),
            deleted_contacts: ids(deleted),
            campaigns: touched.iter().map(|&i| self.campaigns[i].id).collect(),
        }
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
    contacts.sort_by_key(|c| c.id);
    contacts
}

fn generate_campaigns(
    rng: &mut ChaCha8Rng,
    now: i64,
    audience: usize,
    segment_id: i64,
) -> (Vec<Campaign>, Vec<Summary>) {
    use CampaignStatus::*;
    let statuses = [
        [Done; 18].as_slice(),
        &[Draft; 5],
        &[Scheduled; 2],
        &[Removed; 3],
        &[Executing, Error],
    ]
    .concat();
    let mut summaries = Vec::new();
    let mut campaigns: Vec<Campaign> = statuses
        .iter()
        .enumerate()
        .map(|(i, &status)| {
            let topic = CAMPAIGN_TOPICS[i % CAMPAIGN_TOPICS.len()];
            let kind = rng.gen_range(0..CAMPAIGN_TYPES.len());
            let created_at = between(rng, now - YEAR_MS, now - 2 * DAY_MS);
            let updated_at = between(rng, created_at, now - DAY_MS);
            let id = new_uuid(rng);
            if status == Done {
                let sends = rng.gen_range(audience / 4..=audience.max(1)).max(1) as i64;
                let bounces = sends * rng.gen_range(1..6) / 100;
                let opens = (sends - bounces) * rng.gen_range(15..55) / 100;
                summaries.push(Summary {
                    campaign_id: id,
                    kind,
                    last_sent: between(rng, created_at, updated_at),
                    sends,
                    opens,
                    clicks: opens * rng.gen_range(5..30) / 100,
                    forwards: opens * rng.gen_range(0..4) / 100,
                    optouts: sends * rng.gen_range(0..2) / 100,
                    abuse: rng.gen_range(0..3).min(sends),
                    bounces,
                });
            }
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
    summaries.sort_by(|a, b| {
        b.last_sent
            .cmp(&a.last_sent)
            .then(a.campaign_id.cmp(&b.campaign_id))
    });
    (campaigns, summaries)
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
