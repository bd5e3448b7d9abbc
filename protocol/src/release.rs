//! How a release is named. A release *is* its signed statement (ADR 0005): its identity is
//! the SHA-256 of the statement payload, and `CAP@VER` is read from that payload. People
//! still type `CAP@VER`; when two statements claim one `CAP@VER` they name one of them by a
//! prefix of its id (`CAP-B01@1.4.0#3f2a9c01b7e4`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::ProtocolError;
use crate::ids::truncate;

/// Hex digits shown when an id is abbreviated.
pub const SHORT_HEX: usize = 12;
/// Fewest hex digits accepted as a prefix: 8 (32 bits) keeps accidental matches rare
/// among the few statements one capability version ever has.
pub const MIN_PREFIX_HEX: usize = 8;

/// The identity of a statement (release, recall or conditional): SHA-256 of its payload.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseId(pub [u8; 32]);

impl ReleaseId {
    /// The id of a statement payload.
    pub fn of_payload(payload: &[u8]) -> ReleaseId {
        ReleaseId(Sha256::digest(payload).into())
    }

    /// Lower-case hex, 64 digits.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first `SHORT_HEX` hex digits, for people.
    pub fn short(&self) -> String {
        self.hex()[..SHORT_HEX].to_owned()
    }

    /// Parses 64 hex digits, with or without a `sha256:` prefix.
    pub fn parse_hex(s: &str) -> Result<ReleaseId, ProtocolError> {
        let h = s.strip_prefix("sha256:").unwrap_or(s);
        let bytes = hex::decode(h)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                ProtocolError::invalid(
                    "release id",
                    format!("{:?} is not 64 hex digits", truncate(s, 80)),
                )
            })?;
        let mut a = [0u8; 32];
        a.copy_from_slice(&bytes);
        Ok(ReleaseId(a))
    }

    /// Whether this id starts with the hex digits `prefix`.
    pub fn matches_prefix(&self, prefix: &str) -> bool {
        self.hex().starts_with(&prefix.to_ascii_lowercase())
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReleaseId({})", self.short())
    }
}

impl Serialize for ReleaseId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for ReleaseId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ReleaseId::parse_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// `CAP-B01@1.4.0`: the name people give a release (not unique when statements conflict).
pub fn display_key(capability: &str, version: &semver::Version) -> String {
    format!("{capability}@{version}")
}

/// What a user typed to name a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `CAP@VER`, optionally narrowed by `#HEXPREFIX`.
    Key {
        capability: String,
        version: semver::Version,
        prefix: Option<String>,
    },
    /// `sha256:HEX` or 64 hex digits.
    Id(ReleaseId),
}

impl Selector {
    /// Whether a statement with this id and `CAP@VER` is named by the selector.
    pub fn matches(&self, id: &ReleaseId, capability: &str, version: &semver::Version) -> bool {
        match self {
            Selector::Id(want) => want == id,
            Selector::Key {
                capability: c,
                version: v,
                prefix,
            } => {
                c == capability
                    && v == version
                    && prefix.as_deref().is_none_or(|p| id.matches_prefix(p))
            }
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Id(id) => write!(f, "{id}"),
            Selector::Key {
                capability,
                version,
                prefix: None,
            } => write!(f, "{capability}@{version}"),
            Selector::Key {
                capability,
                version,
                prefix: Some(p),
            } => write!(f, "{capability}@{version}#{p}"),
        }
    }
}

impl FromStr for Selector {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with("sha256:") || (s.len() == 64 && !s.contains('@')) {
            return ReleaseId::parse_hex(s).map(Selector::Id);
        }
        let (key, prefix) = match s.split_once('#') {
            Some((k, p)) => (k, Some(p)),
            None => (s, None),
        };
        let (capability, version) = key.split_once('@').ok_or_else(|| {
            ProtocolError::invalid(
                "release",
                format!(
                    "{:?} is not CAPABILITY@VERSION (e.g. CAP-B01@1.4.0), CAP@VER#IDPREFIX or sha256:ID",
                    truncate(s, 80)
                ),
            )
        })?;
        let version = semver::Version::parse(version).map_err(|e| {
            ProtocolError::invalid(
                "release",
                format!("{:?} is not a semantic version: {e}", truncate(version, 40)),
            )
        })?;
        if let Some(p) = prefix
            && (p.len() < MIN_PREFIX_HEX
                || p.len() > 64
                || !p.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(ProtocolError::invalid(
                "release",
                format!(
                    "the id prefix {:?} must be {MIN_PREFIX_HEX} to 64 hex digits",
                    truncate(p, 80)
                ),
            ));
        }
        crate::statement::check_name("capability id", capability)?;
        Ok(Selector::Key {
            capability: capability.to_owned(),
            version,
            prefix: prefix.map(str::to_ascii_lowercase),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_back() {
        let id = ReleaseId::of_payload(b"{}");
        assert_eq!(ReleaseId::parse_hex(&id.to_string()).expect("parse"), id);
        assert_eq!(ReleaseId::parse_hex(&id.hex()).expect("parse"), id);
        assert_eq!(id.short().len(), SHORT_HEX);
        assert!(ReleaseId::parse_hex("abc").is_err());
        assert!(ReleaseId::parse_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn selectors() {
        let id = ReleaseId::of_payload(b"x");
        let v = semver::Version::new(1, 4, 0);
        let plain: Selector = "CAP-B01@1.4.0".parse().expect("plain");
        assert!(plain.matches(&id, "CAP-B01", &v));
        assert!(!plain.matches(&id, "CAP-B02", &v));
        let narrowed: Selector = format!("CAP-B01@1.4.0#{}", &id.hex()[..10])
            .parse()
            .expect("narrowed");
        assert!(narrowed.matches(&id, "CAP-B01", &v));
        assert!(!narrowed.matches(&ReleaseId::of_payload(b"y"), "CAP-B01", &v));
        let by_id: Selector = id.to_string().parse().expect("id");
        assert!(by_id.matches(&id, "anything", &semver::Version::new(9, 9, 9)));
        for bad in [
            "CAP-B01",
            "CAP-B01@x",
            "CAP-B01@1.4.0#12",
            "CAP-B01@1.4.0#zzzzzzzzzz",
            "sha256:12",
            "../x@1.0.0",
        ] {
            assert!(bad.parse::<Selector>().is_err(), "{bad} parsed");
        }
    }
}
