//! Deleted records as deletions. The API keeps a deleted contact, with the
//! date it was deleted in `deleted_at` (`StreamDef::deleted_when`); each
//! protocol has its own field that tells a destination to delete the row:
//! Airbyte's `_ab_cdc_deleted_at` (append + deduped), Singer's
//! `_sdc_deleted_at` (a target with hard deletes). The writers declare it in
//! the stream's schema and set it on the deleted records.
//!
//! On the raw path (records passed through as the API's text) a record is
//! parsed only when its text holds the field's key: live contacts, nearly
//! all of them, go out as they came, at the cost of one substring search.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{json, Value};

use super::RecordRef;
use crate::streams::StreamDef;

/// The field that marks a deleted record for Airbyte destinations.
pub const AIRBYTE: &str = "_ab_cdc_deleted_at";
/// The field that marks a deleted record for Singer targets.
pub const SINGER: &str = "_sdc_deleted_at";

/// Adds the protocol's `marker` to the schema of a stream whose records may
/// be deleted ones (a copy of `def.schema`; others' schema unchanged).
pub fn schema(def: &StreamDef, marker: &str) -> Value {
    let mut schema = def.schema.clone();
    declare(def, &mut schema, marker);
    schema
}

/// Declares `marker` among the properties of `schema`, when `def`'s records
/// may be deleted ones.
pub fn declare(def: &StreamDef, schema: &mut Value, marker: &str) {
    if def.deleted_when.is_none() {
        return;
    }
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert(
            marker.to_string(),
            json!({"type": ["null", "string"], "format": "date-time"}),
        );
    }
}

/// Per stream, how its deleted records are recognised; written with the
/// protocol's marker.
#[derive(Debug, Clone, Default)]
pub struct Deletions {
    marker: &'static str,
    /// Stream → its field set on deleted records, and that field's key as
    /// it appears in a record's compact JSON text (`"deleted_at":`).
    streams: BTreeMap<String, (String, String)>,
}

/// No stream's records are marked.
pub static NONE: Deletions = Deletions {
    marker: "",
    streams: BTreeMap::new(),
};

impl Deletions {
    /// The deletions of `defs`, marked with `marker` ([`AIRBYTE`],
    /// [`SINGER`]).
    pub fn new<'a>(marker: &'static str, defs: impl IntoIterator<Item = &'a StreamDef>) -> Self {
        let streams = defs
            .into_iter()
            .filter_map(|def| {
                let field = def.deleted_when.as_ref()?;
                let key = format!("{}:", Value::from(field.as_str()));
                Some((def.name.clone(), (field.clone(), key)))
            })
            .collect();
        Deletions { marker, streams }
    }

    /// Writes `record` of `stream` as compact JSON, with the marker added
    /// when it is a deleted one.
    pub fn write_json<W: Write + ?Sized>(
        &self,
        out: &mut W,
        stream: &str,
        record: RecordRef<'_>,
    ) -> io::Result<()> {
        let Some((field, key)) = self.streams.get(stream) else {
            return record.write_json(out);
        };
        let deleted_at = match record {
            RecordRef::Raw(text) if !may_be_set(text, key) => None,
            // The few that may be deleted: their top-level field read, the
            // rest skipped, nothing built.
            RecordRef::Raw(text) => top_level_string(text, field)
                .as_deref()
                .and_then(marker_value),
            RecordRef::Value(value) => value
                .get(field.as_str())
                .and_then(Value::as_str)
                .and_then(marker_value),
        };
        let Some(deleted_at) = deleted_at else {
            return record.write_json(out);
        };
        match record {
            RecordRef::Raw(text) => {
                // A JSON object: all of it but its closing brace, then the
                // marker.
                let open = text.strip_suffix('}').unwrap_or(text);
                out.write_all(open.as_bytes())?;
                if open.trim_end() != "{" {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, self.marker)?;
                out.write_all(b":")?;
                serde_json::to_writer(&mut *out, &deleted_at)?;
                out.write_all(b"}")
            }
            RecordRef::Value(value) => {
                let mut marked = value.clone();
                if let Some(fields) = marked.as_object_mut() {
                    fields.insert(self.marker.to_string(), Value::from(deleted_at));
                }
                serde_json::to_writer(out, &marked).map_err(io::Error::from)
            }
        }
    }
}

/// Whether the field whose key (`"field":`) is `key` may hold a value in
/// the canonical compact text of a record: only then is the record parsed.
/// Absent, or `null` wherever the key appears (at the top or nested), it
/// holds none.
fn may_be_set(text: &str, key: &str) -> bool {
    // `contains` first: the quick search, for the many records without it.
    text.contains(key)
        && text
            .match_indices(key)
            .any(|(at, _)| !text[at + key.len()..].starts_with("null"))
}

/// The string value of top-level `field` of the JSON object `text`, if it
/// has one; other values are skipped unparsed into values.
fn top_level_string(text: &str, field: &str) -> Option<String> {
    struct Seek<'f>(&'f str);
    impl<'de> Visitor<'de> for Seek<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == self.0 {
                    found = map.next_value::<Option<Value>>()?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found.and_then(|v| v.as_str().map(str::to_string)))
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Seek(field)).ok().flatten()
}

/// The marker's value for a record whose deletion field holds the string
/// `text` (a live record has none, or `null`): `None` when it is empty; a
/// date (the API gives
/// `deleted_at` as one) as midnight UTC, the `date-time` the marker is
/// declared as; any other string as it is.
fn marker_value(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => Some(format!("{}T00:00:00Z", date.format("%Y-%m-%d"))),
        Err(_) => Some(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::Registry;

    fn written(deletions: &Deletions, stream: &str, record: RecordRef<'_>) -> Value {
        let mut out = Vec::new();
        deletions.write_json(&mut out, stream, record).unwrap();
        serde_json::from_slice(&out).expect("the record is JSON")
    }

    /// Raw or parsed, a deleted contact gets the marker and a live one does
    /// not; other streams' records (with a `deleted_at` of their own) are
    /// left alone.
    #[test]
    fn deleted_records_are_marked_raw_or_parsed() {
        let registry = Registry::built_in();
        let deletions = Deletions::new(SINGER, registry.visible().map(|d| &**d));
        let deleted =
            r#"{"contact_id":"a","deleted_at":"2025-03-01","updated_at":"2025-01-01T00:00:00Z"}"#;
        let live = r#"{"contact_id":"b","updated_at":"2025-01-01T00:00:00Z"}"#;
        let live_null = r#"{"contact_id":"c","deleted_at":null}"#;
        assert!(!may_be_set(live_null, r#""deleted_at":"#));
        assert!(!may_be_set(r#"{"a":1}"#, r#""deleted_at":"#));
        assert!(may_be_set(deleted, r#""deleted_at":"#));
        let nested = r#"{"contact_id":"d","notes":[{"deleted_at":"2025-03-01"}]}"#;
        for (text, marked) in [
            (deleted, Some("2025-03-01T00:00:00Z")),
            (live, None),
            (live_null, None),
            (nested, None),
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            for record in [RecordRef::Raw(text), RecordRef::Value(&value)] {
                let out = written(&deletions, "contacts", record);
                let mut expected = value.clone();
                if let Some(at) = marked {
                    expected[SINGER] = json!(at);
                }
                assert_eq!(out, expected, "{text}");
            }
        }
        // Untouched: the raw text goes out byte for byte.
        let mut out = Vec::new();
        deletions
            .write_json(&mut out, "contacts", RecordRef::Raw(live))
            .unwrap();
        assert_eq!(out, live.as_bytes());
        let opens = r#"{"contact_id":"a","deleted_at":"2025-03-01"}"#;
        let mut out = Vec::new();
        deletions
            .write_json(&mut out, "email_opens", RecordRef::Raw(opens))
            .unwrap();
        assert_eq!(out, opens.as_bytes(), "a tracking row is not deleted");
        let airbyte = Deletions::new(AIRBYTE, registry.visible().map(|d| &**d));
        let out = written(&airbyte, "contacts", RecordRef::Raw(deleted));
        assert_eq!(out[AIRBYTE], "2025-03-01T00:00:00Z");
        assert!(out.get(SINGER).is_none());
    }

    #[test]
    fn only_streams_with_deletions_declare_the_marker() {
        let registry = Registry::built_in();
        let contacts = registry.find("contacts").unwrap();
        assert_eq!(
            schema(contacts, AIRBYTE)["properties"][AIRBYTE]["format"],
            "date-time"
        );
        let lists = registry.find("contact_lists").unwrap();
        assert_eq!(schema(lists, AIRBYTE), lists.schema);
    }
}
