//! A stream whose endpoint needs a user privilege ([`StreamDef::privilege`])
//! that the token's user lacks: the API answers 403, and the stream is then
//! empty for the run with one warning that names the privilege, rather than
//! a failed run. Other 403s (and 403s of streams without a declared
//! privilege) stay errors.

use crate::error::Error;
use crate::streams::StreamDef;

/// The warning for `error` when it is a 403 of a stream that declares the
/// privilege it needs; `None` for any other error.
pub fn missing_privilege(def: &StreamDef, error: &Error) -> Option<String> {
    let privilege = def.privilege.as_deref().filter(|_| error.forbidden)?;
    Some(format!(
        "{}: the API refused it (403): the user who authorized the connector lacks the \
         `{privilege}` user privilege (or the token lacks the scope); the stream is empty \
         this run. Grant the privilege (an account owner or administrator can), or deselect \
         the stream; `check` lists which privileges the token has. The API said: {}",
        def.name, error.message
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_403_of_a_stream_that_declares_its_privilege_is_a_warning() {
        let forbidden = Error {
            forbidden: true,
            ..Error::config("GET /events: forbidden (403)")
        };
        let events = StreamDef::new("events", "/events").privilege("campaign:read");
        let warning = missing_privilege(&events, &forbidden).unwrap();
        assert!(warning.contains("`campaign:read`"), "{warning}");
        assert!(warning.starts_with("events: "), "{warning}");
        let plain = StreamDef::new("contacts", "/contacts");
        assert_eq!(missing_privilege(&plain, &forbidden), None);
        let other = Error::system("GET /events: server error 500");
        assert_eq!(missing_privilege(&events, &other), None);
    }
}
