//! source-constant-contact: reads a Constant Contact account through the V3
//! API and writes it as Airbyte protocol messages or Singer messages.
//!
//! Data flows one way, one module per stage:
//! [`config`] → [`auth`] → [`http`] (rate-limited, retried) → [`engine`]
//! (reading the [`streams`] table) → [`protocol`] writers. The [`cli`]
//! commands wire the stages together; nothing reaches back up.

pub mod auth;
pub mod cli;
pub mod config;
pub mod diagnostics;
pub mod engine;
pub mod error;
pub mod files;
pub mod http;
pub mod plan;
pub mod protocol;
#[cfg(test)]
mod scripted_server;
pub mod streams;
pub mod user_agent;
