//! The state every handler is given (`Shared`, locked piece by piece) and the types a
//! handler works with (`St`, `Reply`, `Route`).

use super::clients::AuthState;
use super::clock::Clock;
use super::data::Data;
use super::error::ApiError;
use super::export_jobs::Exports;
use super::limits::Limits;
use super::options::SandboxOptions;
use super::paging::EnumParam;
use axum::{extract::State, routing::MethodRouter, Json};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

/// What a handler answers, and the state it is given (shared by every route module).
pub(crate) type Reply = Result<Json<Value>, ApiError>;
pub(crate) type St = State<Arc<Shared>>;
/// A route template, its enum query parameters (checked before the handler runs) and
/// its handler.
pub(crate) type Route = (
    &'static str,
    &'static [EnumParam],
    MethodRouter<Arc<Shared>>,
);

/// State shared by all handlers.
pub(crate) struct Shared {
    pub opts: SandboxOptions,
    pub started: DateTime<Utc>,
    pub data: RwLock<Data>,
    pub auth: Mutex<AuthState>,
    pub limits: Mutex<Limits>,
    pub requests: Mutex<BTreeMap<String, usize>>,
    pub exports: Mutex<Exports>,
    /// The time limits and credentials go by (tests move it forward).
    pub clock: Clock,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn data(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn data_mut(&self) -> RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn auth(&self) -> MutexGuard<'_, AuthState> {
        lock(&self.auth)
    }

    pub(crate) fn limits(&self) -> MutexGuard<'_, Limits> {
        lock(&self.limits)
    }

    pub(crate) fn exports(&self) -> MutexGuard<'_, Exports> {
        lock(&self.exports)
    }

    pub(crate) fn count_request(&self, route: String) {
        *lock(&self.requests).entry(route).or_default() += 1;
    }

    pub(crate) fn request_counts(&self) -> BTreeMap<String, usize> {
        lock(&self.requests).clone()
    }
}
