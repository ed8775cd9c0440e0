//! The config `auth` writes: merged into an existing file (other keys untouched) and
//! replaced atomically with mode 0600, since it holds tokens and any client secret.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use super::Issued;
use crate::config::DEFAULT_TOKEN_URL;

/// The existing config, if the file exists; it must be a JSON object.
pub fn load(path: &Path) -> Result<Option<Value>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(value) if value.is_object() => Ok(Some(value)),
        _ => bail!(
            "{} exists but is not a JSON object; refusing to overwrite it (move it away or \
             choose another --config)",
            path.display()
        ),
    }
}

/// `existing` with the OAuth credentials replaced, and `token_url` / `api_base_url`
/// set when the flow used non-default ones; every other key is kept. A public client
/// has no `client_secret`: one left in the file belongs to another client ID (the
/// secret of the same one would have been used) and would be sent with this one's.
pub fn merge(existing: Option<Value>, issued: &Issued) -> Value {
    let mut config = existing.unwrap_or_else(|| json!({}));
    let root = config.as_object_mut().expect("load returns objects only");
    let credentials = root.entry("credentials").or_insert_with(|| json!({}));
    if !credentials.is_object() {
        *credentials = json!({});
    }
    let credentials = credentials.as_object_mut().expect("an object");
    match &issued.client_secret {
        Some(secret) => credentials.insert("client_secret".into(), secret.expose().into()),
        None => credentials.remove("client_secret"),
    };
    for (key, value) in [
        ("auth_type", "oauth2.0"),
        ("client_id", issued.client_id.as_str()),
        ("refresh_token", issued.refresh_token.expose()),
        ("access_token", issued.access_token.expose()),
        ("token_expiry_date", issued.token_expiry_date.as_str()),
    ] {
        credentials.insert(key.into(), value.into());
    }
    set_url(
        root,
        "token_url",
        issued.token_url.as_ref(),
        Some(DEFAULT_TOKEN_URL),
    );
    set_url(root, "api_base_url", issued.api_base_url.as_ref(), None);
    config
}

/// Sets `key` to `url`; without one, resets a present key to `default` (the tokens
/// belong to that server now).
fn set_url(
    root: &mut Map<String, Value>,
    key: &str,
    url: Option<&url::Url>,
    default: Option<&str>,
) {
    match (url, default) {
        (Some(url), _) => {
            root.insert(key.into(), url.as_str().into());
        }
        (None, Some(default)) if root.contains_key(key) => {
            root.insert(key.into(), default.into());
        }
        (None, _) => {}
    }
}

/// Replaces `path` with `config`, private to the user (0600).
pub fn write(path: &Path, config: &Value) -> Result<()> {
    crate::files::write_json_atomically(path, config, 0o600)
        .with_context(|| format!("cannot write {}", path.display()))
}
