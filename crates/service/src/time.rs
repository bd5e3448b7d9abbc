//! The one time type of the core. The reactor reads both clocks once per event and passes
//! them in; nothing in this crate reads a clock. A simulator makes `Now` up.

use std::time::{Duration, Instant};

/// "Now", as the reactor saw it for one event: a monotonic instant for timers, budgets and
/// pacing, and Unix time for what is written down (change times, audit rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: i64,
}

impl Now {
    pub fn new(mono: Instant, unix_ms: i64) -> Now {
        Now { mono, unix_ms }
    }

    /// Unix seconds (what catalogue changes and audit rows record).
    pub fn unix(&self) -> i64 {
        self.unix_ms.div_euclid(1000)
    }

    /// This moment plus `d` on both clocks (simulations and tests advance time this way).
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            unix_ms: self
                .unix_ms
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }
}
