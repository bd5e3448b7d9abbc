//! Why a release is not (or no longer) in production here, as data: the status page, the
//! API and the simulations read the same values, and the text is written in one place.

use accord_protocol::ReleaseId;
use accord_trust::Blocker;

/// One reason a release is not live on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The cooperative rule, a local rule, a recall, a conditional or the production
    /// version blocks it (`accord_trust::evaluate`).
    Blocked(Blocker),
    /// An artifact is not held here yet, verified (the mirror's line for it).
    NotHere(String),
    /// A recall that met its rule took it out of production here.
    Recalled(String),
    /// Another statement of the same `CAP@VER` was promoted here: this one never will be.
    OtherPromoted {
        key: String,
        other: ReleaseId,
        this: ReleaseId,
    },
    /// Several statements of one `CAP@VER` are fully approved: none is promoted until all
    /// but one are recalled.
    Contested { key: String, rivals: Vec<ReleaseId> },
    /// The engine decided to promote, but the decision could not be committed (the
    /// database refused); it is tried again.
    NotCommitted,
    /// This node's view of another jurisdiction is older than the configured maximum
    /// (`max_staleness_secs`): production promotions wait for a sync with one of its nodes
    /// or a bundle import. `age_secs` is `None` when it was never brought up to date.
    Stale {
        jurisdiction: String,
        age_secs: Option<u64>,
        max_secs: u64,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Blocked(b) => b.fmt(f),
            Reason::NotHere(line) => f.write_str(line),
            Reason::Recalled(why) => write!(f, "recalled: {why}"),
            Reason::OtherPromoted { key, other, this } => write!(
                f,
                "another statement of {key} ({}) was promoted here; this one ({}) never will be",
                other.short(),
                this.short()
            ),
            Reason::Contested { key, rivals } => {
                let ids: Vec<String> = rivals.iter().map(ReleaseId::short).collect();
                write!(
                    f,
                    "{} statements of {key} are fully approved ({}); none is promoted until all but one are recalled",
                    rivals.len(),
                    ids.join(", ")
                )
            }
            Reason::NotCommitted => {
                f.write_str("promotion decided but not yet committed; retrying")
            }
            Reason::Stale {
                jurisdiction,
                age_secs,
                max_secs,
            } => match age_secs {
                Some(age) => write!(
                    f,
                    "this node's view of {jurisdiction} is {} old, more than the {} allowed; production promotions wait for a sync with it or a bundle import",
                    crate::reason::span(*age),
                    crate::reason::span(*max_secs)
                ),
                None => write!(
                    f,
                    "this node has never synced with {jurisdiction} nor imported a bundle from it (at most {} allowed); production promotions wait",
                    crate::reason::span(*max_secs)
                ),
            },
        }
    }
}

/// Written as its sentence: what a person or a script reads in `release status`.
impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A duration for people: "3 d 4 h", "5 h 12 min", "40 s".
pub fn span(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {} s", secs % 60)
    } else {
        format!("{secs} s")
    }
}
