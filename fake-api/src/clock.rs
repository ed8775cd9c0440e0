//! The sandbox's clock: UTC now plus an offset that only moves forward (`POST
//! /__sandbox/clock`), so that tests reach the next day's quota, an access token's expiry
//! or a refresh token's 180 days unused without waiting. It drives the limits and the
//! credentials; the records (contacts, campaigns, tracking) keep real time.

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Default)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock `by` forward (a negative `by` is ignored: time never runs back).
    pub(crate) fn advance(&self, by: Duration) {
        let ms = by.num_milliseconds().max(0);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}
