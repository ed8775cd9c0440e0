//! Query-parameter parsing, the check of each route's enum parameters, and the cursor
//! pagination shared by every collection endpoint.
//!
//! A cursor is URL-safe base64 (no padding) of a form-encoded string holding the endpoint
//! path, every original query parameter and `next`, the position of the next record in
//! the endpoint's fixed ordering. A request carrying `cursor` is answered from the cursor
//! alone; any other parameters on it are ignored.

use super::error::ApiError;
use axum::Json;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, NaiveDate};
use serde_json::{json, Map, Value};
use url::form_urlencoded;
use uuid::Uuid;

/// Decoded query string, in order; the first occurrence of a name wins.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(raw: &str) -> Self {
        Self(
            form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every (name, value), in order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every value of a repeated parameter, in order.
    pub(crate) fn all(&self, key: &str) -> impl Iterator<Item = &str> + '_ {
        let key = key.to_owned();
        self.0
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key)
            .ok_or_else(|| ApiError::bad(format!("{key} is required")))
    }

    /// Required ISO-8601 instant as Unix ms: RFC 3339, an offset without a colon
    /// (`2019-01-01T00:00:00-0500`) or a bare date (midnight UTC).
    pub(crate) fn iso8601(&self, key: &str) -> Result<i64, ApiError> {
        let v = self.required(key)?;
        DateTime::parse_from_rfc3339(v)
            .or_else(|_| DateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .map(|t| t.timestamp_millis())
            .or_else(|_| {
                NaiveDate::parse_from_str(v, "%Y-%m-%d").map(|d| {
                    d.and_time(chrono::NaiveTime::MIN)
                        .and_utc()
                        .timestamp_millis()
                })
            })
            .map_err(|_| ApiError::bad(format!("{key} must be an ISO-8601 date-time, got '{v}'")))
    }

    fn take(&mut self, key: &str) -> Option<String> {
        let value = self.get(key).map(str::to_owned);
        self.0.retain(|(k, _)| k != key);
        value
    }

    /// Boolean parameter; absent means false.
    pub(crate) fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(ApiError::bad(format!(
                "{key} must be true or false, got '{v}'"
            ))),
        }
    }

    pub(crate) fn int(&self, key: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::bad(format!(
                        "{key} must be an integer from 1 to {max}, got '{v}'"
                    ))
                }),
        }
    }

    /// Single value from a fixed set.
    pub(crate) fn one_of(
        &self,
        key: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        self.get(key).map(|v| pick(key, v, allowed)).transpose()
    }

    /// Comma-separated values from a fixed set; empty when absent.
    pub(crate) fn csv(
        &self,
        key: &str,
        allowed: &[&'static str],
    ) -> Result<Vec<&'static str>, ApiError> {
        self.get(key).map_or(Ok(Vec::new()), |v| {
            v.split(',').map(|p| pick(key, p.trim(), allowed)).collect()
        })
    }

    /// Comma-separated UUIDs, at most `max`; empty when absent.
    pub(crate) fn uuids(&self, key: &str, max: usize) -> Result<Vec<Uuid>, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let ids = v
            .split(',')
            .map(|p| {
                Uuid::parse_str(p.trim())
                    .map_err(|_| ApiError::bad(format!("{key} contains an invalid id '{p}'")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if ids.len() > max {
            return Err(ApiError::bad(format!("{key} accepts at most {max} ids")));
        }
        Ok(ids)
    }

    /// ISO-8601 instant as Unix ms; `dates_ok` also accepts a bare date (midnight UTC).
    pub(crate) fn instant(&self, key: &str, dates_ok: bool) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let parsed = DateTime::parse_from_rfc3339(v)
            .map(|t| t.timestamp_millis())
            .or_else(|e| match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
                Ok(d) if dates_ok => Ok(d
                    .and_time(chrono::NaiveTime::MIN)
                    .and_utc()
                    .timestamp_millis()),
                _ => Err(e),
            });
        parsed.map(Some).map_err(|_| {
            let what = if dates_ok {
                "an ISO-8601 date or date-time"
            } else {
                "an ISO-8601 date-time"
            };
            ApiError::bad(format!("{key} must be {what}, got '{v}'"))
        })
    }
}

/// A query parameter whose values come from a fixed set: the contract's enum for it.
/// Every route declares its own beside its handler (`state::Route`), and the router
/// checks them all before the handler runs (`Params::check_enums`).
pub(crate) struct EnumParam {
    pub name: &'static str,
    pub values: &'static [&'static str],
    /// Whether a value is a comma-separated list (the contract's `format: csv`).
    pub list: bool,
}

impl EnumParam {
    /// One value a time (a repeated parameter gives one each time).
    pub(crate) const fn single(name: &'static str, values: &'static [&'static str]) -> Self {
        Self {
            name,
            values,
            list: false,
        }
    }

    /// Comma-separated values, each from the set.
    pub(crate) const fn list(name: &'static str, values: &'static [&'static str]) -> Self {
        Self {
            name,
            values,
            list: true,
        }
    }
}

impl Params {
    /// 400 naming the first value outside its parameter's set: every occurrence of each
    /// parameter is checked, a list item by item (an empty item is outside too). The
    /// request's own parameters are checked, also next to a cursor.
    pub(crate) fn check_enums(&self, enums: &[EnumParam]) -> Result<(), ApiError> {
        for e in enums {
            for value in self.all(e.name) {
                if e.list {
                    for item in value.split(',') {
                        pick(e.name, item.trim(), e.values)?;
                    }
                } else {
                    pick(e.name, value, e.values)?;
                }
            }
        }
        Ok(())
    }
}

fn pick(key: &str, value: &str, allowed: &[&'static str]) -> Result<&'static str, ApiError> {
    allowed
        .iter()
        .copied()
        .find(|a| *a == value)
        .ok_or_else(|| {
            ApiError::bad(format!(
                "{key} has invalid value '{value}'; allowed: {}",
                allowed.join(", ")
            ))
        })
}

/// How one collection endpoint pages.
pub(crate) struct ListSpec {
    pub path: &'static str,
    pub records_key: &'static str,
    pub default_limit: usize,
    pub max_limit: usize,
    /// Whether `_links` is present (possibly `{}`) on the last page too.
    pub links_always: bool,
}

/// Names the cursor itself uses; never copied from the request into a cursor.
const RESERVED: [&str; 3] = ["cursor", "path", "next"];

/// A resolved collection request: effective parameters, start position and page size.
pub(crate) struct ListQuery {
    spec: &'static ListSpec,
    /// Request path the cursor belongs to (the route with its path parameters filled in).
    path: String,
    pub params: Params,
    start: usize,
    limit: usize,
}

impl ListQuery {
    pub(crate) fn parse(spec: &'static ListSpec, raw: Option<&str>) -> Result<Self, ApiError> {
        Self::parse_at(spec, spec.path.to_owned(), raw)
    }

    /// Like `parse`, for a route with path parameters: `path` is the concrete path.
    pub(crate) fn parse_at(
        spec: &'static ListSpec,
        path: String,
        raw: Option<&str>,
    ) -> Result<Self, ApiError> {
        let mut params = Params::parse(raw.unwrap_or(""));
        let mut start = 0;
        if let Some(cursor) = params.get("cursor") {
            (params, start) = decode_cursor(&path, cursor)?;
        }
        let limit = params.int("limit", spec.default_limit, spec.max_limit)?;
        Ok(Self {
            spec,
            path,
            params,
            start,
            limit,
        })
    }

    /// One page of `items` (in the endpoint's stable order) that pass `keep`, rendered,
    /// with `_links.next` when more remain and, when `count_key` is given, the total.
    pub(crate) fn page<'a, T: 'a, I>(
        &self,
        items: I,
        keep: impl Fn(&T) -> bool,
        render: impl Fn(&T) -> Value,
        count_key: Option<&str>,
    ) -> Result<Json<Value>, ApiError>
    where
        I: ExactSizeIterator<Item = &'a T> + Clone,
    {
        if self.start > items.len() {
            return Err(invalid_cursor());
        }
        let mut records = Vec::new();
        let mut next = None;
        for (pos, item) in items.clone().enumerate().skip(self.start) {
            if !keep(item) {
                continue;
            }
            if records.len() == self.limit {
                next = Some(pos);
                break;
            }
            records.push(render(item));
        }
        let mut body = Map::new();
        body.insert(self.spec.records_key.into(), Value::Array(records));
        if let Some(key) = count_key {
            body.insert(key.into(), items.filter(|t| keep(t)).count().into());
        }
        if let Some(pos) = next {
            let href = format!("{}?cursor={}", self.path, self.cursor(pos));
            body.insert("_links".into(), json!({"next": {"href": href}}));
        } else if self.spec.links_always {
            body.insert("_links".into(), json!({}));
        }
        Ok(Json(Value::Object(body)))
    }

    fn cursor(&self, next: usize) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("path", &self.path);
        for (k, v) in self
            .params
            .0
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        {
            s.append_pair(k, v);
        }
        s.append_pair("next", &next.to_string());
        URL_SAFE_NO_PAD.encode(s.finish())
    }
}

fn invalid_cursor() -> ApiError {
    ApiError::bad("cursor is invalid or expired")
}

fn decode_cursor(path: &str, cursor: &str) -> Result<(Params, usize), ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid_cursor())?;
    let mut params = Params::parse(&text);
    if params.take("path").as_deref() != Some(path) {
        return Err(invalid_cursor());
    }
    let next = params
        .take("next")
        .and_then(|n| n.parse().ok())
        .ok_or_else(invalid_cursor)?;
    Ok((params, next))
}
