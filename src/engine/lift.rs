//! Nested fields copied to the top level of a record ([`StreamDef::lift`]),
//! where a key must be a top-level field: a social connection is known by
//! its account's network and id, which it keeps under `account_info`.

use std::borrow::Cow;

use serde_json::Value;

use crate::streams::StreamDef;

/// `record` with `def`'s lifted fields, where it has the nested value and
/// lacks the top-level field.
pub fn lifted<'r>(def: &StreamDef, record: Cow<'r, Value>) -> Cow<'r, Value> {
    let missing = |record: &Value| {
        def.lift.iter().any(|(pointer, field)| {
            record.get(field).is_none() && record.pointer(pointer).is_some()
        })
    };
    if !record.is_object() || !missing(&record) {
        return record;
    }
    let mut record = record.into_owned();
    for (pointer, field) in &def.lift {
        if let Some(value) = record.pointer(pointer).cloned() {
            if let Some(map) = record.as_object_mut() {
                map.entry(field.as_str()).or_insert(value);
            }
        }
    }
    Cow::Owned(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_values_are_copied_up_unless_the_record_has_the_field() {
        let def = StreamDef::new("c", "/c")
            .lift("/account_info/network", "network")
            .lift("/account_info/id", "id");
        let record = json!({"account_info": {"network": "facebook", "id": "7"}});
        assert_eq!(
            lifted(&def, Cow::Borrowed(&record)).into_owned(),
            json!({"account_info": {"network": "facebook", "id": "7"},
                   "network": "facebook", "id": "7"})
        );
        let has = json!({"network": "x", "id": "1", "account_info": {"network": "y"}});
        assert!(matches!(
            lifted(&def, Cow::Borrowed(&has)),
            Cow::Borrowed(_)
        ));
        let none = json!({"other": 1});
        assert!(matches!(
            lifted(&def, Cow::Borrowed(&none)),
            Cow::Borrowed(_)
        ));
    }
}
