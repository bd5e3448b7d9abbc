//! Per-peer inbound budgets. Sync is request-response with one request in flight per peer,
//! so an honest peer sends a handful of messages per second; a peer far above that is
//! flooding us and is treated like one sending garbage. Time is passed in (sans-I/O), so the
//! limiter is tested without sleeping.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A token bucket: `rate` per second, holding at most `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Limits on what one peer may send us.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub messages_per_sec: f64,
    pub message_burst: f64,
    pub bytes_per_sec: f64,
    pub byte_burst: f64,
}

impl Default for Budget {
    /// Far above honest sync (a few messages per second, a few MiB when catching up), far
    /// below what would let one peer starve the loop.
    fn default() -> Self {
        Budget {
            messages_per_sec: 50.0,
            message_burst: 200.0,
            bytes_per_sec: 16.0 * 1024.0 * 1024.0,
            byte_burst: 64.0 * 1024.0 * 1024.0,
        }
    }
}

/// Why a message was over budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    Messages,
    Bytes,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverBudget::Messages => f.write_str("too many messages per second"),
            OverBudget::Bytes => f.write_str("too many bytes per second"),
        }
    }
}

/// Budgets for every peer, keyed by whatever identifies a peer.
#[derive(Debug)]
pub struct RateLimiter<P> {
    budget: Budget,
    peers: BTreeMap<P, (Bucket, Bucket)>,
}

impl<P: Ord + Clone> RateLimiter<P> {
    pub fn new(budget: Budget) -> Self {
        RateLimiter {
            budget,
            peers: BTreeMap::new(),
        }
    }

    /// Charges one message of `bytes` to `peer` at `now`; refuses (and charges nothing) when
    /// either bucket would go below zero.
    pub fn charge(&mut self, peer: &P, bytes: usize, now: Instant) -> Result<(), OverBudget> {
        let b = self.budget;
        let (msgs, data) = self.peers.entry(peer.clone()).or_insert((
            Bucket {
                tokens: b.message_burst,
                last: now,
            },
            Bucket {
                tokens: b.byte_burst,
                last: now,
            },
        ));
        refill(msgs, b.messages_per_sec, b.message_burst, now);
        refill(data, b.bytes_per_sec, b.byte_burst, now);
        if msgs.tokens < 1.0 {
            return Err(OverBudget::Messages);
        }
        if data.tokens < bytes as f64 {
            return Err(OverBudget::Bytes);
        }
        msgs.tokens -= 1.0;
        data.tokens -= bytes as f64;
        Ok(())
    }

    /// Keeps only the peers `listed` says are still listed (after a root change); a
    /// disconnect forgets nothing, so a reconnect gets no fresh budget.
    pub fn retain(&mut self, listed: impl Fn(&P) -> bool) {
        self.peers.retain(|p, _| listed(p));
    }
}

fn refill(b: &mut Bucket, rate: f64, burst: f64, now: Instant) {
    let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
    b.tokens = (b.tokens + elapsed * rate).min(burst);
    b.last = now;
}

/// How long the budget takes to refill completely (for logs and docs).
pub fn full_refill(budget: &Budget) -> Duration {
    Duration::from_secs_f64(
        (budget.message_burst / budget.messages_per_sec)
            .max(budget.byte_burst / budget.bytes_per_sec),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Budget {
        Budget {
            messages_per_sec: 10.0,
            message_burst: 5.0,
            bytes_per_sec: 1000.0,
            byte_burst: 2000.0,
        }
    }

    #[test]
    fn burst_then_refused_then_refilled() {
        let mut r = RateLimiter::new(small());
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(r.charge(&1, 10, t0), Ok(()));
        }
        assert_eq!(r.charge(&1, 10, t0), Err(OverBudget::Messages));
        // Another peer has its own budget.
        assert_eq!(r.charge(&2, 10, t0), Ok(()));
        // 100 ms later one message's worth has come back.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(r.charge(&1, 10, t1), Ok(()));
        assert_eq!(r.charge(&1, 10, t1), Err(OverBudget::Messages));
    }

    #[test]
    fn bytes_are_limited_and_a_refusal_costs_nothing() {
        let mut r = RateLimiter::new(small());
        let t0 = Instant::now();
        assert_eq!(r.charge(&1, 1500, t0), Ok(()));
        assert_eq!(r.charge(&1, 1000, t0), Err(OverBudget::Bytes));
        // The refused message charged nothing: 500 bytes still fit.
        assert_eq!(r.charge(&1, 500, t0), Ok(()));
        // Only a peer that is no longer listed is forgotten.
        r.retain(|p| *p != 1);
        assert_eq!(r.charge(&1, 2000, t0), Ok(()));
    }

    #[test]
    fn default_budget_refills_within_seconds() {
        assert!(full_refill(&Budget::default()) <= Duration::from_secs(5));
    }
}
