//! How the connector names itself to every server it talks to: the API, the
//! token endpoint and the authorization commands' OAuth server. A module of
//! its own, below auth and HTTP, so that neither imports the other for it.

pub const USER_AGENT: &str = concat!("source-constant-contact/", env!("CARGO_PKG_VERSION"));
