//! Names of principals, roles and keys.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ProtocolError;

/// A principal of the cooperative: a jurisdiction such as `uk`, `eu`, `ca` or `au`.
///
/// Lower-case ASCII so that config files, roots and CLI flags cannot disagree on case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PrincipalId(String);

impl PrincipalId {
    pub fn new(s: &str) -> Result<Self, ProtocolError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(PrincipalId(s.to_owned()))
        } else {
            Err(ProtocolError::invalid(
                "principal id",
                format!(
                    "{s:?} must be 1-32 characters of a-z, 0-9 and '-', starting with a letter"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PrincipalId {
    type Err = ProtocolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PrincipalId::new(s)
    }
}

impl<'de> Deserialize<'de> for PrincipalId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PrincipalId::new(&s).map_err(serde::de::Error::custom)
    }
}

/// What a key is trusted to do inside its principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Jurisdiction technical lead: approves releases for production.
    Lead,
    /// Security lead (the four together are the security council).
    Security,
    /// Steering committee representative: approves root changes and conditional releases.
    Steering,
    /// A node identity: may join the network and write the catalogue.
    Node,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Lead, Role::Security, Role::Steering, Role::Node];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Lead => "lead",
            Role::Security => "security",
            Role::Steering => "steering",
            Role::Node => "node",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ProtocolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                ProtocolError::invalid(
                    "role",
                    format!("{s:?} is not one of lead, security, steering, node"),
                )
            })
    }
}

/// Identifies an Ed25519 public key: lower-case hex of SHA-256 over the 32 raw public-key
/// bytes (RFC 8032 encoding). Anyone holding the `.pub` file can recompute it with
/// `openssl pkey -pubin -outform DER | tail -c 32 | sha256sum`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    pub fn from_public_key(raw: &[u8; 32]) -> Self {
        KeyId(hex::encode(Sha256::digest(raw)))
    }

    pub fn parse(s: &str) -> Result<Self, ProtocolError> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(KeyId(s.to_owned()))
        } else {
            Err(ProtocolError::invalid(
                "key id",
                format!("{:?} is not 64 lower-case hex digits", truncate(s, 80)),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 16 hex digits, enough for people to tell keys apart in messages.
    pub fn short(&self) -> &str {
        &self.0[..16]
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Cuts untrusted text for inclusion in an error message.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_ids_are_lower_case_words() {
        assert!(PrincipalId::new("uk").is_ok());
        assert!(PrincipalId::new("eu-2").is_ok());
        for bad in ["", "UK", "1uk", "u k", "ü", &"a".repeat(33)] {
            assert!(PrincipalId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn key_id_is_sha256_of_raw_key() {
        let id = KeyId::from_public_key(&[0u8; 32]);
        assert_eq!(
            id.as_str(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
        assert!(KeyId::parse(id.as_str()).is_ok());
        assert!(KeyId::parse("ABC").is_err());
    }
}
