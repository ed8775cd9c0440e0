//! source-constant-contact: reads a Constant Contact account through the V3
//! API and writes it as Airbyte protocol messages or Singer messages. The
//! binary (`src/main.rs`) is the command line over these modules.
//!
//! Data flows one way: config → auth → rate-limited HTTP → stream engine →
//! protocol writer.

pub mod airbyte;
pub mod auth;
pub mod authorize;
pub mod catalog;
pub mod config;
pub mod custom_streams;
#[cfg(feature = "sandbox")]
pub mod demo;
pub mod engine;
pub mod error;
pub mod files;
pub mod http;
pub mod protocol;
pub mod singer;
pub mod spec;
pub mod state;
pub mod streams;
pub mod token_cache;
