//! Timestamps as they appear in signed documents: RFC 3339, UTC, whole seconds.
//!
//! Whole seconds because other implementations (python-tuf among them) reject fractional
//! seconds, and a signed document must read the same everywhere.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ProtocolError;

/// Seconds since the Unix epoch, UTC. Logic receives the current time as one of these,
/// never reads the clock itself, so decisions can be replayed and simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_unix(secs: i64) -> Self {
        Timestamp(secs)
    }

    pub const fn unix(self) -> i64 {
        self.0
    }

    /// The wall clock. Only binaries call this; libraries take time as an argument.
    pub fn now() -> Self {
        Timestamp(OffsetDateTime::now_utc().unix_timestamp())
    }

    pub fn plus_days(self, days: i64) -> Self {
        Timestamp(self.0.saturating_add(days.saturating_mul(86_400)))
    }

    pub fn parse(s: &str) -> Result<Self, ProtocolError> {
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
            ProtocolError::invalid(
                "timestamp",
                format!("{:?} is not RFC 3339: {e}", crate::ids::truncate(s, 64)),
            )
        })?;
        if t.nanosecond() != 0 || t.offset() != time::UtcOffset::UTC {
            return Err(ProtocolError::invalid(
                "timestamp",
                format!("{s:?} must be UTC ('Z') with whole seconds"),
            ));
        }
        Ok(Timestamp(t.unix_timestamp()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
        {
            Some(s) => f.write_str(&s),
            None => write!(f, "@{}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_whole_seconds_utc() {
        let t = Timestamp::parse("2027-01-02T03:04:05Z").expect("valid");
        assert_eq!(t.to_string(), "2027-01-02T03:04:05Z");
        assert!(Timestamp::parse("2027-01-02T03:04:05.5Z").is_err());
        assert!(Timestamp::parse("2027-01-02T03:04:05+01:00").is_err());
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
