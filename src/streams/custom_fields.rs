//! Custom fields as columns (`custom_fields_as_columns`): one typed property
//! of the `contacts` schema per custom field of the account, filled from the
//! record's `custom_fields` array (which stays as it is).
//!
//! The naming rule, kept deterministic so that discover and read agree:
//! `cf_` + the label in snake case — accents dropped (`é` → `e`, `ß` → `ss`),
//! lowercase, every run of other characters one `_`, trimmed, at most 50
//! characters. A label with nothing left (`日本語`) gives `cf_` + the first
//! 8 hex digits of its `custom_field_id`. When several fields get the same
//! name, the one created first (then the smallest id) keeps it and the others
//! get `_` + those 8 hex digits; a name that is already a contact property
//! always gets the suffix. Adding a field therefore never renames an existing
//! column.
//!
//! Each column's schema carries its field's id under [`ID_KEYWORD`], so that a
//! read maps values to the columns of the catalog the destination was set up
//! with, whatever the fields' labels have become since.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// The column property's keyword naming the custom field it holds.
pub const ID_KEYWORD: &str = "x-custom-field-id";
pub const PREFIX: &str = "cf_";
/// Longest label part of a name: with the prefix and a suffix a name stays
/// within 62 characters (PostgreSQL keeps 63).
const MAX_SLUG: usize = 50;

/// What a custom field's values are, from its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `date`: the column holds `YYYY-MM-DD`.
    Date,
    /// `string`, and any type the connector does not know.
    Text,
}

/// One custom field and the column that holds its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub custom_field_id: String,
    pub label: String,
    pub kind: Kind,
    pub name: String,
}

impl Column {
    /// The column's JSON Schema.
    pub fn property(&self) -> Value {
        let kind = match self.kind {
            Kind::Date => "date",
            Kind::Text => "string",
        };
        let mut property = json!({
            "type": ["null", "string"],
            "description": format!(
                "Custom field {:?} ({kind}), custom_field_id {}", self.label, self.custom_field_id
            ),
            ID_KEYWORD: self.custom_field_id,
        });
        if self.kind == Kind::Date {
            property["format"] = json!("date");
        }
        property
    }

    /// A value of `custom_fields` as this column holds it; `None` when a
    /// date field's value is not a date.
    pub fn value(&self, value: &Value) -> Option<Value> {
        match (self.kind, value) {
            (_, Value::Null) => Some(Value::Null),
            (Kind::Text, Value::String(_)) => Some(value.clone()),
            (Kind::Text, other) => Some(Value::String(other.to_string())),
            (Kind::Date, Value::String(text)) => iso_date(text).map(Value::String),
            (Kind::Date, _) => None,
        }
    }
}

/// `YYYY-MM-DD`, from that, an RFC 3339 date-time (its date as written), or
/// `MM/DD/YYYY` (the date format of Constant Contact's UI).
fn iso_date(text: &str) -> Option<String> {
    use chrono::NaiveDate;
    let text = text.trim();
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|at| at.date_naive())
        })
        .or_else(|| NaiveDate::parse_from_str(text, "%m/%d/%Y").ok())?;
    Some(date.format("%Y-%m-%d").to_string())
}

/// The columns of the account's custom fields (records of
/// `/contact_custom_fields`), named by the rule above; `taken` are the names
/// of the stream's own properties. Fields without an id are left out.
pub fn columns(fields: &[Value], taken: &BTreeSet<String>) -> Vec<Column> {
    struct Field<'a> {
        id: &'a str,
        label: &'a str,
        kind: Kind,
        created_at: Option<chrono::DateTime<chrono::Utc>>,
    }
    let mut fields: Vec<Field> = fields
        .iter()
        .filter_map(|f| {
            Some(Field {
                id: f.get("custom_field_id")?.as_str()?,
                label: f.get("label").and_then(Value::as_str).unwrap_or_default(),
                kind: match f.get("type").and_then(Value::as_str) {
                    Some("date") => Kind::Date,
                    _ => Kind::Text,
                },
                created_at: f
                    .get("created_at")
                    .and_then(Value::as_str)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.to_utc()),
            })
        })
        .collect();
    // Oldest first (undated last), then by id: the order names are handed out in.
    fields.sort_by(|a, b| {
        (a.created_at.is_none(), a.created_at, a.id).cmp(&(
            b.created_at.is_none(),
            b.created_at,
            b.id,
        ))
    });
    fields.dedup_by(|a, b| a.id == b.id);
    let mut used: BTreeSet<String> = taken.clone();
    let mut named: BTreeMap<usize, String> = BTreeMap::new();
    // Plain names first, so that no suffixed name can take one.
    let bases: Vec<Option<String>> = fields.iter().map(|f| base_name(f.label)).collect();
    for (index, base) in bases.iter().enumerate() {
        if let Some(base) = base.as_ref().filter(|b| !used.contains(*b)) {
            used.insert(base.clone());
            named.insert(index, base.clone());
        }
    }
    for (index, field) in fields.iter().enumerate() {
        if named.contains_key(&index) {
            continue;
        }
        let stem = bases[index]
            .clone()
            .unwrap_or_else(|| PREFIX.trim_end_matches('_').to_string());
        let hex: String = field
            .id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let short: String = hex.chars().take(8).collect();
        let mut name = format!("{stem}_{short}");
        let mut extra = 1;
        while used.contains(&name) {
            // Another field's id shares the 8 digits (or a label looks like
            // this name): the whole id, then a counter, settle it.
            name = if extra == 1 {
                format!("{stem}_{hex}")
            } else {
                format!("{stem}_{hex}_{extra}")
            };
            extra += 1;
        }
        used.insert(name.clone());
        named.insert(index, name);
    }
    let mut columns: Vec<Column> = fields
        .iter()
        .enumerate()
        .map(|(index, f)| Column {
            custom_field_id: f.id.to_string(),
            label: f.label.to_string(),
            kind: f.kind,
            name: named.remove(&index).expect("every field is named"),
        })
        .collect();
    columns.sort_by(|a, b| a.name.cmp(&b.name));
    columns
}

/// `cf_` + the label's slug, or `None` when the label has no letter or
/// digit the rule keeps.
pub fn base_name(label: &str) -> Option<String> {
    let mut slug = String::new();
    for c in label.chars() {
        match fold(c) {
            Some(ascii) => slug.push_str(ascii),
            None if c.is_ascii_alphanumeric() => slug.push(c.to_ascii_lowercase()),
            None => slug.push('_'),
        }
    }
    let words: Vec<&str> = slug.split('_').filter(|w| !w.is_empty()).collect();
    let mut slug = words.join("_");
    if slug.is_empty() {
        return None;
    }
    if slug.len() > MAX_SLUG {
        slug.truncate(MAX_SLUG);
        slug = slug.trim_end_matches('_').to_string();
    }
    Some(format!("{PREFIX}{slug}"))
}

/// The ASCII letters a Latin letter with a diacritic (or a ligature) stands
/// for, lowercase; `None` for every other character.
fn fold(c: char) -> Option<&'static str> {
    // U+0100..=U+017F (Latin Extended-A), one base letter each; `?` marks
    // the ligatures handled below.
    const EXTENDED_A: &str = concat!(
        "aaaaaaccccccccdd", // U+0100
        "ddeeeeeeeeeegggg", // U+0110
        "gggghhhhiiiiiiii", // U+0120
        "ii??jjkkklllllll", // U+0130
        "lllnnnnnnnnnoooo", // U+0140
        "oo??rrrrrrssssss", // U+0150
        "ssttttttuuuuuuuu", // U+0160
        "uuuuwwyyyzzzzzzs", // U+0170
    );
    Some(match c {
        'À'..='Å' | 'à'..='å' => "a",
        'Æ' | 'æ' => "ae",
        'Ç' | 'ç' => "c",
        'È'..='Ë' | 'è'..='ë' => "e",
        'Ì'..='Ï' | 'ì'..='ï' => "i",
        'Ð' | 'ð' => "d",
        'Ñ' | 'ñ' => "n",
        'Ò'..='Ö' | 'Ø' | 'ò'..='ö' | 'ø' => "o",
        'Ù'..='Ü' | 'ù'..='ü' => "u",
        'Ý' | 'ý' | 'ÿ' => "y",
        'Þ' | 'þ' => "th",
        'ß' => "ss",
        'Ĳ' | 'ĳ' => "ij",
        'Œ' | 'œ' => "oe",
        '\u{0100}'..='\u{017F}' => {
            let at = c as usize - 0x100;
            &EXTENDED_A[at..=at]
        }
        _ => return None,
    })
}

/// `schema` (of `contacts`) with a property per column.
pub fn with_columns(schema: &Value, columns: &[Column]) -> Value {
    let mut schema = schema.clone();
    if let Some(properties) = schema
        .as_object_mut()
        .map(|s| s.entry("properties").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    {
        for column in columns {
            properties.insert(column.name.clone(), column.property());
        }
    }
    schema
}

/// The columns a schema declares (properties with [`ID_KEYWORD`]): how a
/// catalog from an earlier discover names them. `None` when the schema has
/// no properties at all (a catalog that does not carry schemas).
pub fn columns_of_schema(schema: &Value) -> Option<Vec<Column>> {
    let properties = schema.get("properties")?.as_object()?;
    let columns = properties
        .iter()
        .filter_map(|(name, property)| {
            let id = property.get(ID_KEYWORD)?.as_str()?;
            Some(Column {
                custom_field_id: id.to_string(),
                label: String::new(),
                kind: if property.get("format").and_then(Value::as_str) == Some("date") {
                    Kind::Date
                } else {
                    Kind::Text
                },
                name: name.clone(),
            })
        })
        .collect();
    Some(columns)
}

/// The names of a schema's properties that are not custom-field columns.
pub fn own_properties(schema: &Value) -> BTreeSet<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(_, p)| p.get(ID_KEYWORD).is_none())
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A custom-field value a record carries that gets no column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmapped {
    /// No column has this id (a field created after discover).
    UnknownField(String),
    /// The column is a date column and the value is not a date.
    NotADate { column: String, value: String },
}

/// Adds the columns' values to a `contacts` record, from its `custom_fields`
/// array (left as it is); says which values got no column.
pub fn fill(record: &mut Map<String, Value>, columns: &BTreeMap<String, Column>) -> Vec<Unmapped> {
    let mut unmapped = Vec::new();
    let mut values: Vec<(String, Value)> = Vec::new();
    for entry in record
        .get("custom_fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = entry.get("custom_field_id").and_then(Value::as_str) else {
            continue;
        };
        let value = entry.get("value").unwrap_or(&Value::Null);
        match columns.get(id) {
            None => unmapped.push(Unmapped::UnknownField(id.to_string())),
            Some(column) => match column.value(value) {
                Some(value) => values.push((column.name.clone(), value)),
                None => unmapped.push(Unmapped::NotADate {
                    column: column.name.clone(),
                    value: value.to_string(),
                }),
            },
        }
    }
    record.extend(values);
    unmapped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(id: &str, label: &str, kind: &str, created: &str) -> Value {
        json!({"custom_field_id": id, "label": label, "type": kind, "created_at": created})
    }

    fn names(columns: &[Column]) -> BTreeMap<String, String> {
        columns
            .iter()
            .map(|c| (c.custom_field_id.clone(), c.name.clone()))
            .collect()
    }

    #[test]
    fn labels_become_snake_case_ascii() {
        for (label, name) in [
            (
                "Vehicle make and model year",
                Some("cf_vehicle_make_and_model_year"),
            ),
            ("  Shoe   size (EU)!! ", Some("cf_shoe_size_eu")),
            ("Café Crème", Some("cf_cafe_creme")),
            ("Straße Łódź Œuvre", Some("cf_strasse_lodz_oeuvre")),
            ("2024 goals", Some("cf_2024_goals")),
            ("ÀÉÎÕÜ-çñ", Some("cf_aeiou_cn")),
            ("e-mail__2nd", Some("cf_e_mail_2nd")),
            ("日本語", None),
            ("", None),
            ("!!!", None),
        ] {
            assert_eq!(base_name(label).as_deref(), name, "{label:?}");
        }
        let long = base_name(&"a".repeat(80)).unwrap();
        assert_eq!(long.len(), PREFIX.len() + MAX_SLUG);
        // A name always starts with a letter and is a plain identifier.
        let odd = base_name("9 lives — ½ price").unwrap();
        assert_eq!(odd, "cf_9_lives_price");
    }

    #[test]
    fn the_extended_latin_table_covers_its_block() {
        // One letter per code point U+0100..=U+017F (ligatures aside).
        for c in '\u{0100}'..='\u{017F}' {
            let folded = fold(c).unwrap();
            assert!(
                folded.chars().all(|l| l.is_ascii_lowercase()),
                "{c:?} → {folded:?}"
            );
        }
        assert_eq!(fold('Ž'), Some("z"));
        assert_eq!(fold('ſ'), Some("s"));
        assert_eq!(fold('ğ'), Some("g"));
        assert_eq!(fold('Ő'), Some("o"));
    }

    #[test]
    fn collisions_resolve_by_age_then_id() {
        let taken: BTreeSet<String> = ["contact_id".to_string(), "cf_notes".to_string()].into();
        let fields = [
            field(
                "bbbbbbbb-0000-0000-0000-000000000002",
                "Shoe size",
                "string",
                "2024-02-01T00:00:00Z",
            ),
            field(
                "aaaaaaaa-0000-0000-0000-000000000001",
                "shoe-size",
                "string",
                "2024-03-01T00:00:00Z",
            ),
            field(
                "cccccccc-0000-0000-0000-000000000003",
                "Notes",
                "string",
                "2024-01-01T00:00:00Z",
            ),
            field(
                "dddddddd-0000-0000-0000-000000000004",
                "",
                "date",
                "2024-01-01T00:00:00Z",
            ),
            field(
                "eeeeeeee-0000-0000-0000-000000000005",
                "日本",
                "string",
                "2024-01-01T00:00:00Z",
            ),
        ];
        let columns = columns(&fields, &taken);
        let by_id = names(&columns);
        // The older field keeps the plain name.
        assert_eq!(
            by_id["bbbbbbbb-0000-0000-0000-000000000002"],
            "cf_shoe_size"
        );
        assert_eq!(
            by_id["aaaaaaaa-0000-0000-0000-000000000001"],
            "cf_shoe_size_aaaaaaaa"
        );
        // A name the stream already has is never used plain.
        assert_eq!(
            by_id["cccccccc-0000-0000-0000-000000000003"],
            "cf_notes_cccccccc"
        );
        // Nothing left of the label: the id names it.
        assert_eq!(by_id["dddddddd-0000-0000-0000-000000000004"], "cf_dddddddd");
        assert_eq!(by_id["eeeeeeee-0000-0000-0000-000000000005"], "cf_eeeeeeee");
        let kinds: Vec<Kind> = columns.iter().map(|c| c.kind).collect();
        assert!(kinds.contains(&Kind::Date));

        // The order the API lists them in changes nothing.
        let mut reversed = fields.to_vec();
        reversed.reverse();
        assert_eq!(super::columns(&reversed, &taken), columns);

        // A new field never renames an existing column.
        let mut more = fields.to_vec();
        more.push(field(
            "00000000-0000-0000-0000-000000000009",
            "Shoe Size",
            "string",
            "2025-01-01T00:00:00Z",
        ));
        let after = names(&super::columns(&more, &taken));
        for (id, name) in &by_id {
            assert_eq!(&after[id], name);
        }
        assert_eq!(
            after["00000000-0000-0000-0000-000000000009"],
            "cf_shoe_size_00000000"
        );
    }

    #[test]
    fn suffixed_names_never_clash() {
        // A label that spells another field's suffixed name, and ids that
        // share their first 8 digits.
        let fields = [
            field(
                "12345678-aaaa-0000-0000-000000000001",
                "Size",
                "string",
                "2024-01-01T00:00:00Z",
            ),
            field(
                "12345678-bbbb-0000-0000-000000000002",
                "Size",
                "string",
                "2024-01-02T00:00:00Z",
            ),
            field(
                "12345678-cccc-0000-0000-000000000003",
                "Size",
                "string",
                "2024-01-03T00:00:00Z",
            ),
            field(
                "99999999-0000-0000-0000-000000000004",
                "Size 12345678",
                "string",
                "2024-01-04T00:00:00Z",
            ),
        ];
        let columns = columns(&fields, &BTreeSet::new());
        let unique: BTreeSet<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(unique.len(), 4, "{columns:?}");
        let by_id = names(&columns);
        assert_eq!(by_id["12345678-aaaa-0000-0000-000000000001"], "cf_size");
        assert_eq!(
            by_id["99999999-0000-0000-0000-000000000004"],
            "cf_size_12345678"
        );
        assert_eq!(
            by_id["12345678-bbbb-0000-0000-000000000002"],
            "cf_size_12345678bbbb00000000000000000002"
        );
    }

    #[test]
    fn schemas_carry_the_ids_back() {
        let fields = [
            field(
                "aaaaaaaa-0000-0000-0000-000000000001",
                "Renewal date",
                "date",
                "2024-01-01T00:00:00Z",
            ),
            field(
                "bbbbbbbb-0000-0000-0000-000000000002",
                "Tier",
                "picklist",
                "2024-01-01T00:00:00Z",
            ),
        ];
        let base = json!({"type": "object", "properties": {"contact_id": {"type": "string"}}});
        let columns = columns(&fields, &own_properties(&base));
        let schema = with_columns(&base, &columns);
        assert_eq!(
            schema["properties"]["cf_renewal_date"]["type"],
            json!(["null", "string"])
        );
        assert_eq!(schema["properties"]["cf_renewal_date"]["format"], "date");
        // An unknown type is a string.
        assert!(schema["properties"]["cf_tier"].get("format").is_none());
        let mut back = columns_of_schema(&schema).unwrap();
        back.sort_by(|a, b| a.name.cmp(&b.name));
        let strip = |c: &Column| (c.custom_field_id.clone(), c.name.clone(), c.kind);
        assert_eq!(
            back.iter().map(strip).collect::<Vec<_>>(),
            columns.iter().map(strip).collect::<Vec<_>>()
        );
        assert_eq!(own_properties(&schema), own_properties(&base));
        assert_eq!(columns_of_schema(&json!({"type": "object"})), None);
    }

    #[test]
    fn records_get_their_values_and_keep_the_array() {
        let columns: BTreeMap<String, Column> = [
            Column {
                custom_field_id: "a".into(),
                label: "A".into(),
                kind: Kind::Text,
                name: "cf_a".into(),
            },
            Column {
                custom_field_id: "d".into(),
                label: "D".into(),
                kind: Kind::Date,
                name: "cf_d".into(),
            },
        ]
        .into_iter()
        .map(|c| (c.custom_field_id.clone(), c))
        .collect();
        let array = json!([
            {"custom_field_id": "a", "value": "Tesla"},
            {"custom_field_id": "d", "value": "05/14/2021"},
            {"custom_field_id": "new", "value": "x"},
        ]);
        let mut record = json!({"contact_id": "c", "custom_fields": array.clone()});
        let unmapped = fill(record.as_object_mut().unwrap(), &columns);
        assert_eq!(record["cf_a"], "Tesla");
        assert_eq!(record["cf_d"], "2021-05-14");
        assert_eq!(record["custom_fields"], array);
        assert_eq!(unmapped, [Unmapped::UnknownField("new".into())]);

        let mut bad = json!({"custom_fields": [{"custom_field_id": "d", "value": "soon"}]});
        let unmapped = fill(bad.as_object_mut().unwrap(), &columns);
        assert!(bad.get("cf_d").is_none());
        assert!(matches!(&unmapped[..], [Unmapped::NotADate { column, .. }] if column == "cf_d"));
        // No array, or null: nothing to do.
        let mut none = json!({"contact_id": "c", "custom_fields": null});
        assert!(fill(none.as_object_mut().unwrap(), &columns).is_empty());
        assert_eq!(none, json!({"contact_id": "c", "custom_fields": null}));
    }
}
