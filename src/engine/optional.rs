//! Optional parameter values ([`OptionalValue`]): values a stream asks for
//! that the API may refuse. Until the API has answered one, the request
//! carrying it is the only one of its kind in flight (the others wait for
//! its answer): a 200 accepts the value for the run; a 400 whose messages
//! name the value (or, naming no value, its parameter, as the contract's
//! example of such an error does) refuses it. A refused value is left out of
//! that request, which is sent again, and of every later request of the
//! run, with one warning. The cost is one extra request per refused value
//! and run; the stream never fails for it. A value whose config switch is
//! off is never asked for.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use url::Url;

use crate::error::{Error, Result};
use crate::protocol::{Level, Output};
use crate::streams::{OptionalValue, StreamDef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Refused,
}

/// A stream's optional value.
type Key = (String, OptionalValue);

/// The API's verdicts on optional values this run.
pub struct OptionalValues {
    verdicts: Mutex<HashMap<Key, Verdict>>,
    /// Held by the request that carries values without a verdict.
    trial: tokio::sync::Mutex<()>,
    /// Config switches (`OptionalValue::switch`) set to false.
    switched_off: HashSet<String>,
    output: Arc<dyn Output>,
}

impl OptionalValues {
    pub fn new(output: Arc<dyn Output>, switched_off: HashSet<String>) -> OptionalValues {
        OptionalValues {
            verdicts: Mutex::new(HashMap::new()),
            trial: tokio::sync::Mutex::new(()),
            switched_off,
            output,
        }
    }

    /// Sends a request of `def` for `url` with `send` (which answers with
    /// the requests it took), without the values the API refused; a refusal
    /// of a value it carries is taken, and the request sent again without
    /// it. The requests counted include the refused one.
    pub async fn get<T, F, Fut>(&self, def: &StreamDef, url: &Url, send: F) -> Result<(T, u32)>
    where
        F: Fn(Url) -> Fut,
        Fut: Future<Output = Result<(T, u32)>>,
    {
        if def.optional.is_empty() {
            return send(url.clone()).await;
        }
        let mut refusals = 0;
        loop {
            let _trial = if self.undecided(def, url).is_empty() {
                None
            } else {
                Some(self.trial.lock().await)
            };
            // Verdicts reached while this request waited count.
            let sent = self.without_refused(def, url);
            let on_trial = self.undecided(def, &sent);
            let answer = send(sent).await;
            let refused = match &answer {
                Err(error) => named(error, &on_trial),
                Ok(_) => Vec::new(),
            };
            if refused.is_empty() {
                if answer.is_ok() {
                    self.decide(def, &on_trial, Verdict::Accepted);
                }
                return answer.map(|(value, requests)| (value, requests + refusals));
            }
            refusals += 1;
            self.decide(def, &refused, Verdict::Refused);
            let error = answer.err().expect("a refusal is an error");
            for value in &refused {
                self.output.log(
                    Level::Warn,
                    &format!(
                        "{}: {error}; asking again without the optional `{}` value `{}`, \
                         which is left out for the rest of the run (set `{}` to false \
                         to stop asking for it)",
                        def.name, value.param, value.value, value.switch
                    ),
                );
            }
        }
    }

    fn verdict(&self, def: &StreamDef, value: &OptionalValue) -> Option<Verdict> {
        if self.switched_off.contains(&value.switch) {
            return Some(Verdict::Refused);
        }
        let verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        verdicts.get(&(def.name.clone(), value.clone())).copied()
    }

    fn decide(&self, def: &StreamDef, values: &[OptionalValue], verdict: Verdict) {
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        for value in values {
            verdicts.insert((def.name.clone(), value.clone()), verdict);
        }
    }

    /// The optional values of `def` that `url` carries and the API has not
    /// answered yet.
    fn undecided(&self, def: &StreamDef, url: &Url) -> Vec<OptionalValue> {
        def.optional
            .iter()
            .filter(|value| carries(url, value) && self.verdict(def, value).is_none())
            .cloned()
            .collect()
    }

    /// `url` without the values of `def` the API refused.
    fn without_refused(&self, def: &StreamDef, url: &Url) -> Url {
        let refused: Vec<&OptionalValue> = def
            .optional
            .iter()
            .filter(|value| carries(url, value))
            .filter(|value| self.verdict(def, value) == Some(Verdict::Refused))
            .collect();
        if refused.is_empty() {
            return url.clone();
        }
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter_map(|(param, values)| {
                let left: Vec<&str> = values
                    .split(',')
                    .filter(|v| !refused.iter().any(|r| r.param == param && r.value == *v))
                    .collect();
                (!left.is_empty()).then(|| (param.to_string(), left.join(",")))
            })
            .collect();
        let mut url = url.clone();
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
        url
    }
}

/// Whether `url` asks for `value` of its parameter.
fn carries(url: &Url, value: &OptionalValue) -> bool {
    url.query_pairs()
        .any(|(param, values)| param == value.param && values.split(',').any(|v| v == value.value))
}

/// The values of `on_trial` that a 400 `error` names: by value, or, if it
/// names none of them, by parameter.
fn named(error: &Error, on_trial: &[OptionalValue]) -> Vec<OptionalValue> {
    let Some(messages) = &error.invalid_request else {
        return Vec::new();
    };
    let words: Vec<&str> = messages
        .iter()
        .flat_map(|m| m.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .collect();
    let by_value: Vec<OptionalValue> = on_trial
        .iter()
        .filter(|v| words.contains(&v.value.as_str()))
        .cloned()
        .collect();
    if !by_value.is_empty() {
        return by_value;
    }
    on_trial
        .iter()
        .filter(|v| words.contains(&v.param.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{RecordRef, StreamStatus};
    use serde_json::Value;

    /// Keeps the log lines; nothing else is written here.
    #[derive(Default)]
    struct Logged(Mutex<Vec<String>>);

    impl Output for Logged {
        fn record(&self, _: &str, _: RecordRef<'_>) {}
        fn state(&self, _: &str, _: &Value, _: u64) {}
        fn stream_status(&self, _: &str, _: StreamStatus) {}
        fn log(&self, _: Level, message: &str) {
            self.0.lock().unwrap().push(message.to_string());
        }
        fn estimate(&self, _: &str, _: u64) {}
        fn config_updated(&self, _: &Value) {}
        fn flush(&self) {}
    }

    fn contacts() -> StreamDef {
        StreamDef::new("contacts", "/contacts")
            .params(&[("include", "notes,sms_channel"), ("status", "all")])
            .optional("include", "sms_channel", "contacts_include_sms_channel")
    }

    fn first_page() -> Url {
        Url::parse("https://api.test/v3/contacts?include=notes%2Csms_channel&status=all&limit=500")
            .unwrap()
    }

    fn refusal(message: &str) -> Error {
        Error {
            invalid_request: Some(vec![message.to_string()]),
            ..Error::system(format!(
                "GET /v3/contacts: the API refused the request (400: {message})"
            ))
        }
    }

    /// An API that refuses `sms_channel` with `message`, recording every
    /// URL it is sent.
    struct Api {
        sent: Mutex<Vec<String>>,
        refuses_with: Option<&'static str>,
    }

    impl Api {
        fn new(refuses_with: Option<&'static str>) -> Api {
            Api {
                sent: Mutex::new(Vec::new()),
                refuses_with,
            }
        }

        async fn get(&self, url: Url) -> Result<(String, u32)> {
            self.sent.lock().unwrap().push(url.to_string());
            // Others may be sent meanwhile, as over a network.
            tokio::task::yield_now().await;
            match self.refuses_with {
                Some(message) if url.as_str().contains("sms_channel") => Err(refusal(message)),
                _ => Ok((url.to_string(), 1)),
            }
        }

        fn sent(&self) -> Vec<String> {
            self.sent.lock().unwrap().clone()
        }
    }

    #[tokio::test]
    async fn a_refused_value_costs_one_request_and_one_warning_a_run() {
        let output = Arc::new(Logged::default());
        let optional = OptionalValues::new(output.clone(), HashSet::new());
        let api = Api::new(Some("Invalid include value: sms_channel"));
        let (def, url) = (contacts(), first_page());
        let (first, second) = tokio::join!(
            optional.get(&def, &url, |url| api.get(url)),
            optional.get(&def, &url, |url| api.get(url)),
        );
        let without = "https://api.test/v3/contacts?include=notes&status=all&limit=500";
        // The refused request counts for the one that drew the refusal.
        let mut answers = [first.unwrap(), second.unwrap()];
        answers.sort_by_key(|(_, requests)| *requests);
        assert_eq!(
            answers.map(|(url, requests)| (url == without, requests)),
            [(true, 1), (true, 2)]
        );
        let next_link = Url::parse("https://api.test/v3/contacts?cursor=abc").unwrap();
        optional
            .get(&def, &next_link, |url| api.get(url))
            .await
            .unwrap();
        let sent = api.sent();
        assert_eq!(
            sent.iter().filter(|u| u.contains("sms_channel")).count(),
            1,
            "one request carried the value, even with two at once: {sent:?}"
        );
        assert_eq!(sent.len(), 4);
        let warnings = output.0.lock().unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("contacts: GET /v3/contacts: ")
                && warnings[0].contains("`include` value `sms_channel`"),
            "{}",
            warnings[0]
        );
    }

    #[tokio::test]
    async fn a_refusal_naming_only_the_parameter_drops_the_value_too() {
        let optional = OptionalValues::new(Arc::new(Logged::default()), HashSet::new());
        let api = Api::new(Some("include does not have a valid value"));
        let (url, requests) = optional
            .get(&contacts(), &first_page(), |url| api.get(url))
            .await
            .unwrap();
        assert!(!url.contains("sms_channel") && requests == 2);
        assert_eq!(api.sent().len(), 2);
    }

    #[tokio::test]
    async fn an_accepted_value_is_kept_and_no_request_waits_for_it_again() {
        let output = Arc::new(Logged::default());
        let optional = OptionalValues::new(output.clone(), HashSet::new());
        let api = Api::new(None);
        let def = contacts();
        for _ in 0..2 {
            let (url, _) = optional
                .get(&def, &first_page(), |url| api.get(url))
                .await
                .unwrap();
            assert!(url.contains("sms_channel"));
        }
        assert_eq!(api.sent().len(), 2);
        assert!(output.0.lock().unwrap().is_empty());
        assert!(optional.undecided(&def, &first_page()).is_empty());
    }

    #[tokio::test]
    async fn a_value_switched_off_in_the_config_is_never_asked_for() {
        let output = Arc::new(Logged::default());
        let switched_off = HashSet::from(["contacts_include_sms_channel".to_string()]);
        let optional = OptionalValues::new(output.clone(), switched_off);
        let api = Api::new(Some("Invalid include value: sms_channel"));
        let (url, requests) = optional
            .get(&contacts(), &first_page(), |url| api.get(url))
            .await
            .unwrap();
        assert!(
            !url.contains("sms_channel") && url.contains("notes"),
            "{url}"
        );
        assert_eq!((requests, api.sent().len()), (1, 1));
        assert!(output.0.lock().unwrap().is_empty(), "no warning");
    }

    #[tokio::test]
    async fn another_400_fails_the_request_and_decides_nothing() {
        let output = Arc::new(Logged::default());
        let optional = OptionalValues::new(output.clone(), HashSet::new());
        // Names neither the value nor its parameter (`include_count` is
        // another parameter).
        let api = Api::new(Some("include_count does not have a valid value"));
        let def = contacts();
        let error = optional
            .get(&def, &first_page(), |url| api.get(url))
            .await
            .unwrap_err();
        assert!(error.message.contains("include_count"), "{error}");
        assert_eq!(api.sent().len(), 1, "not sent again");
        assert_eq!(optional.undecided(&def, &first_page()).len(), 1);
        assert!(output.0.lock().unwrap().is_empty());
    }

    /// Through the engine and real HTTP: the page loop of `contacts` takes
    /// the refusal and reads on.
    #[tokio::test]
    async fn a_contacts_read_goes_on_without_a_refused_include_value() {
        use crate::auth::Auth;
        use crate::config::LoadedConfig;
        use crate::diagnostics::Diagnostics;
        use crate::engine::{read_stream, Context};
        use crate::http::{ApiClient, RequestLimits, RetryPolicy};
        use crate::protocol::catalog::Selected;
        use crate::scripted_server::{Answer, ScriptedServer};
        use crate::streams::Registry;

        let refusal = r#"[{"error_key":"contacts.api.validation.error","error_message":"sms_channel is not a valid include value"}]"#;
        let page = r#"{"contacts":[{"contact_id":"c1","updated_at":"2025-01-01T00:00:00Z"}],"contacts_count":1}"#;
        let server =
            ScriptedServer::start(vec![Answer::json(400, refusal), Answer::json(200, page)]).await;
        let config = LoadedConfig::from_value(serde_json::json!({
            "credentials": {"auth_type": "access_token", "access_token": "token"},
            "api_base_url": server.url.join("v3").unwrap().as_str(),
        }))
        .unwrap();
        let quiet = Diagnostics::new(|_, _| {});
        let auth = Auth::new(&config, quiet.clone(), Arc::new(|_| {})).unwrap();
        let limits = RequestLimits {
            per_second: 100,
            per_run: None,
        };
        let api = ApiClient::new(
            config.api_base_url.clone(),
            limits,
            Arc::new(auth),
            RetryPolicy::SYNC,
            quiet,
        )
        .unwrap();
        let output = Arc::new(Logged::default());
        let registry = Arc::new(Registry::built_in());
        let ctx = Context::new(Arc::new(api), output.clone(), registry.clone(), &config);
        let contacts = Selected {
            def: registry.find("contacts").unwrap().clone(),
            incremental: false,
            properties: None,
        };
        let report = read_stream(&ctx, &contacts, None).await.unwrap();
        assert_eq!((report.records, report.requests), (1, 2));

        let asked = server.asked();
        assert_eq!(asked.len(), 2);
        assert!(asked[0].target.contains("sms_channel"));
        assert!(!asked[1].target.contains("sms_channel") && asked[1].target.contains("notes"));
        let warnings: Vec<String> = output
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains("sms_channel"))
            .cloned()
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }
}
