//! Pacing of what this node gossips. Every node announces its heads after each change it
//! applies and its blobs after each mirror update; a burst of edits would otherwise make an
//! honest node gossip as fast as edits arrive, and run it over the gossip budget its peers
//! hold it to (`discipline::Policy::gossip_per_sec`). A paced announcement goes out at most
//! once per interval: the first at once, later ones deferred and coalesced into one that
//! carries the state at the time it is sent. Time is passed in (sans-I/O).

use std::time::{Duration, Instant};

/// At most one announcement per `every`; a wish to announce sooner is remembered.
#[derive(Debug, Clone)]
pub struct Pacer {
    every: Duration,
    last: Option<Instant>,
    pending: bool,
}

impl Pacer {
    pub fn new(every: Duration) -> Self {
        Pacer {
            every,
            last: None,
            pending: false,
        }
    }

    /// Asks to announce at `now`: true if the caller may send now; otherwise the wish is
    /// kept and `due` says when to send it.
    pub fn request(&mut self, now: Instant) -> bool {
        if self.ready(now) {
            self.last = Some(now);
            self.pending = false;
            true
        } else {
            self.pending = true;
            false
        }
    }

    /// Whether a deferred announcement may go out at `now` (then it counts as sent).
    pub fn due(&mut self, now: Instant) -> bool {
        if self.pending && self.ready(now) {
            self.pending = false;
            self.last = Some(now);
            true
        } else {
            false
        }
    }

    /// When a deferred announcement becomes due (`None` when nothing is deferred).
    pub fn next_due(&self) -> Option<Instant> {
        // Pending implies something was sent before (the first request always goes out).
        self.last.filter(|_| self.pending).map(|l| l + self.every)
    }

    fn ready(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|l| now.saturating_duration_since(l) >= self.every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_becomes_one_announcement_now_and_one_deferred() {
        let t0 = Instant::now();
        let every = Duration::from_millis(500);
        let mut p = Pacer::new(every);
        assert!(p.request(t0), "the first goes out at once");
        for i in 1..100 {
            assert!(!p.request(t0 + Duration::from_millis(i)));
        }
        assert!(!p.due(t0 + Duration::from_millis(499)));
        assert!(
            p.due(t0 + every),
            "the burst is sent once, when the interval ends"
        );
        assert!(!p.due(t0 + every * 3), "and only once");
        assert!(
            p.request(t0 + every * 3),
            "a quiet node announces at once again"
        );
    }

    #[test]
    fn at_most_one_announcement_per_interval_whatever_the_requests() {
        let t0 = Instant::now();
        let every = Duration::from_millis(500);
        let mut p = Pacer::new(every);
        let mut sent = Vec::new();
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            if (ms % 3 == 0 && p.request(now)) || p.due(now) {
                sent.push(ms);
            }
        }
        assert!(sent.windows(2).all(|w| w[1] - w[0] >= 500), "{sent:?}");
        assert_eq!(sent.len(), 20);
    }
}
