//! Cursor paging by a field of the page ([`NextCursor`]): the events and
//! their registrations name the next page with `next_cursor`, to be asked
//! for with `next=`. The page after is the same request with that parameter
//! set (and any `prev` left out: the two exclude each other). A page with a
//! `_links.next.href` is followed by its link instead (`pages`), so the
//! connector works whichever of the two the API fills.

use serde_json::Value;
use url::Url;

use crate::streams::{NextCursor, StreamDef};

/// The URL of the page after the page at `url` whose body is `page`, when
/// `def` pages by a cursor field and the page has one.
pub fn next_page(
    def: &StreamDef,
    url: &Url,
    page: &Value,
) -> std::result::Result<Option<String>, String> {
    let Some(NextCursor { field, param }) = &def.next_cursor else {
        return Ok(None);
    };
    let cursor = match page.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(cursor)) if cursor.is_empty() => return Ok(None),
        Some(Value::String(cursor)) => cursor,
        Some(other) => return Err(format!("`{field}` is {other}, not a cursor")),
    };
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != param && k != "prev")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut next = url.clone();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(param, cursor);
    Ok(Some(next.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_next_page_is_the_same_request_with_the_cursor() {
        let def = StreamDef::new("rows", "/rows")
            .records_key("records")
            .next_cursor("next_cursor", "next");
        let first = Url::parse("http://api.test/v3/rows?limit=100&include=true").unwrap();
        let next = next_page(
            &def,
            &first,
            &json!({"records": [], "next_cursor": "a/b+c"}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            next,
            "http://api.test/v3/rows?limit=100&include=true&next=a%2Fb%2Bc"
        );
        // The cursor of a later page replaces the earlier one.
        let second = Url::parse(&next).unwrap();
        let third = next_page(&def, &second, &json!({"next_cursor": "d"}))
            .unwrap()
            .unwrap();
        assert_eq!(
            third,
            "http://api.test/v3/rows?limit=100&include=true&next=d"
        );
        // A last page has none, or an empty one.
        for last in [
            json!({}),
            json!({"next_cursor": null}),
            json!({"next_cursor": ""}),
        ] {
            assert_eq!(next_page(&def, &first, &last).unwrap(), None);
        }
        assert!(next_page(&def, &first, &json!({"next_cursor": 5})).is_err());
        // Streams that page by links only ignore the field.
        let linked = StreamDef::new("rows", "/rows");
        assert_eq!(
            next_page(&linked, &first, &json!({"next_cursor": "a"})).unwrap(),
            None
        );
    }
}
