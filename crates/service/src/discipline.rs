//! What a node remembers about each peer's behaviour, per node key and across reconnects:
//! its sync and gossip budgets, the messages it had refused, and bans. A peer that keeps
//! breaking the rules is banned for a while, and each ban lasts twice as long as the one
//! before (up to `Policy::max_ban`); a reconnect gets no fresh budget. Refusals are counted
//! for one aggregated audit row per peer and interval, not one signed, fsynced row per
//! message. Sans-I/O: time is passed in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::rate::{Budget, OverBudget, RateLimiter};

/// When strikes become a ban, and how long bans last.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Strikes within `window` that earn a ban.
    pub strikes: u32,
    pub window: Duration,
    /// The first ban; each later one doubles.
    pub first_ban: Duration,
    pub max_ban: Duration,
    /// Gossip messages per second and burst, per signing node. An honest node sends at most
    /// two announcements per second per topic (they are paced, `crate::pace`).
    pub gossip_per_sec: f64,
    pub gossip_burst: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            strikes: 3,
            window: Duration::from_secs(60),
            first_ban: Duration::from_secs(30),
            max_ban: Duration::from_secs(3600),
            gossip_per_sec: 10.0,
            gossip_burst: 50.0,
        }
    }
}

/// What to do with a peer after something it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep talking (an over-budget or refused message is still dropped by the caller).
    Continue,
    /// Banned until then: disconnect and refuse its connections.
    Banned { until: Instant, ban: Duration },
}

/// Refusals since the last audit flush, for one aggregated row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub refused: u64,
    pub over_budget: u64,
    pub first_reason: Option<String>,
}

#[derive(Debug, Default)]
struct Record {
    strikes: Vec<Instant>,
    banned_until: Option<Instant>,
    bans: u32,
    tally: Tally,
}

/// Every peer's record, keyed by node key (PeerId).
#[derive(Debug)]
pub struct Discipline<P> {
    policy: Policy,
    sync: RateLimiter<P>,
    gossip: RateLimiter<P>,
    records: BTreeMap<P, Record>,
}

impl<P: Ord + Clone> Discipline<P> {
    pub fn new(sync: Budget, policy: Policy) -> Self {
        Discipline {
            policy,
            sync: RateLimiter::new(sync),
            gossip: RateLimiter::new(Budget {
                messages_per_sec: policy.gossip_per_sec,
                message_burst: policy.gossip_burst,
                bytes_per_sec: 64.0 * 1024.0 * policy.gossip_per_sec,
                byte_burst: 64.0 * 1024.0 * policy.gossip_burst,
            }),
            records: BTreeMap::new(),
        }
    }

    /// Whether `peer` is banned at `now`.
    pub fn banned(&self, peer: &P, now: Instant) -> Option<Instant> {
        self.records
            .get(peer)
            .and_then(|r| r.banned_until)
            .filter(|u| *u > now)
    }

    /// Charges a sync message; over budget is a strike.
    pub fn sync_message(&mut self, peer: &P, bytes: usize, now: Instant) -> Result<(), Verdict> {
        match self.sync.charge(peer, bytes, now) {
            Ok(()) => Ok(()),
            Err(over) => Err(self.over_budget(peer, over, now)),
        }
    }

    /// Charges a gossip message; over budget is a strike.
    pub fn gossip_message(&mut self, peer: &P, bytes: usize, now: Instant) -> Result<(), Verdict> {
        match self.gossip.charge(peer, bytes, now) {
            Ok(()) => Ok(()),
            Err(over) => Err(self.over_budget(peer, over, now)),
        }
    }

    fn over_budget(&mut self, peer: &P, over: OverBudget, now: Instant) -> Verdict {
        let r = self.records.entry(peer.clone()).or_default();
        r.tally.over_budget += 1;
        r.tally
            .first_reason
            .get_or_insert_with(|| format!("over budget: {over}"));
        self.strike(peer, now)
    }

    /// A message from `peer` broke a rule (refused as a violation).
    pub fn refused(&mut self, peer: &P, reason: &str, now: Instant) -> Verdict {
        let r = self.records.entry(peer.clone()).or_default();
        r.tally.refused += 1;
        r.tally
            .first_reason
            .get_or_insert_with(|| reason.chars().take(300).collect());
        self.strike(peer, now)
    }

    fn strike(&mut self, peer: &P, now: Instant) -> Verdict {
        let policy = self.policy;
        let r = self.records.entry(peer.clone()).or_default();
        if let Some(until) = r.banned_until.filter(|u| *u > now) {
            let ban = until.saturating_duration_since(now);
            return Verdict::Banned { until, ban };
        }
        r.strikes
            .retain(|t| now.saturating_duration_since(*t) < policy.window);
        r.strikes.push(now);
        if (r.strikes.len() as u32) < policy.strikes {
            return Verdict::Continue;
        }
        let ban = policy
            .first_ban
            .saturating_mul(2u32.saturating_pow(r.bans.min(16)))
            .min(policy.max_ban);
        r.bans = r.bans.saturating_add(1);
        r.strikes.clear();
        let until = now + ban;
        r.banned_until = Some(until);
        Verdict::Banned { until, ban }
    }

    /// The refusals counted since the last call, per peer (for one audit row each).
    pub fn take_tallies(&mut self) -> Vec<(P, Tally)> {
        self.records
            .iter_mut()
            .filter(|(_, r)| r.tally != Tally::default())
            .map(|(p, r)| (p.clone(), std::mem::take(&mut r.tally)))
            .collect()
    }

    /// When the earliest ban ends (`None` when nobody is banned).
    pub fn next_ban_end(&self) -> Option<Instant> {
        self.records.values().filter_map(|r| r.banned_until).min()
    }

    /// Peers whose ban ended by `now` (to let them in again), cleared as they are returned.
    pub fn expired_bans(&mut self, now: Instant) -> Vec<P> {
        let mut out = Vec::new();
        for (p, r) in &mut self.records {
            if r.banned_until.is_some_and(|u| u <= now) {
                r.banned_until = None;
                out.push(p.clone());
            }
        }
        out
    }

    /// Forgets peers that are no longer listed (after a root change).
    pub fn retain(&mut self, listed: impl Fn(&P) -> bool) {
        self.records.retain(|p, _| listed(p));
        self.sync.retain(&listed);
        self.gossip.retain(&listed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strikes_become_bans_that_double_and_reconnects_get_no_fresh_budget() {
        let t0 = Instant::now();
        let mut d = Discipline::<u8>::new(Budget::default(), Policy::default());
        assert_eq!(d.refused(&1, "forged", t0), Verdict::Continue);
        assert_eq!(d.refused(&1, "forged", t0), Verdict::Continue);
        let Verdict::Banned { ban, until } = d.refused(&1, "forged", t0) else {
            panic!("not banned");
        };
        assert_eq!(ban, Duration::from_secs(30));
        assert_eq!(d.banned(&1, t0), Some(until));
        assert_eq!(d.banned(&2, t0), None);
        // During the ban every strike just reports it.
        assert!(matches!(d.refused(&1, "x", t0), Verdict::Banned { .. }));
        let later = until + Duration::from_secs(1);
        assert_eq!(d.expired_bans(later), vec![1]);
        assert_eq!(d.banned(&1, later), None);
        for _ in 0..2 {
            assert_eq!(d.refused(&1, "again", later), Verdict::Continue);
        }
        let Verdict::Banned { ban, .. } = d.refused(&1, "again", later) else {
            panic!("not banned again");
        };
        assert_eq!(ban, Duration::from_secs(60), "the second ban doubles");
        let t = d.take_tallies();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].1.refused, 7);
        assert_eq!(t[0].1.first_reason.as_deref(), Some("forged"));
        assert!(d.take_tallies().is_empty(), "a tally is taken once");
    }

    #[test]
    fn gossip_has_its_own_budget() {
        let t0 = Instant::now();
        let mut d = Discipline::<u8>::new(Budget::default(), Policy::default());
        let mut refused = 0;
        for _ in 0..60 {
            if d.gossip_message(&1, 100, t0).is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 10, "a burst of 50, then refused");
        assert!(d.sync_message(&1, 100, t0).is_ok(), "sync keeps its budget");
    }
}
