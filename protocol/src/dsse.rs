//! DSSE envelopes (<https://github.com/secure-systems-lab/dsse>, protocol v1).
//!
//! Signatures cover `PAE(payloadType, payload)`, the exact payload bytes, so the payload is
//! kept as bytes and parsed only after (or independently of) verification; it is never
//! re-serialized. The JSON form is the standard one, so securesystemslib, go-securesystemslib
//! or sigstore verify our envelopes given the public keys.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ProtocolError;
use crate::limits::{MAX_ENVELOPE_BYTES, MAX_SIGNATURES};

/// The payload type of in-toto statements inside DSSE.
pub const PAYLOAD_TYPE_IN_TOTO: &str = "application/vnd.in-toto+json";
/// The payload type of Accord root documents.
pub const PAYLOAD_TYPE_ROOT: &str = "application/vnd.accord.root+json";

/// A DSSE envelope as read from a file or the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature. `keyid` is a hint (DSSE makes it optional); the verifier decides which
/// key a signature belongs to by checking it, never by trusting the hint alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    #[serde(with = "b64")]
    pub sig: Vec<u8>,
}

impl Envelope {
    pub fn new(payload_type: &str, payload: Vec<u8>) -> Self {
        Envelope {
            payload,
            payload_type: payload_type.to_owned(),
            signatures: Vec::new(),
        }
    }

    /// Parses an envelope from untrusted bytes, with size and count limits.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(ProtocolError::TooLarge {
                what: "envelope",
                size: bytes.len(),
                limit: MAX_ENVELOPE_BYTES,
            });
        }
        let env: Envelope =
            serde_json::from_slice(bytes).map_err(|e| ProtocolError::Malformed {
                what: "DSSE envelope",
                detail: e.to_string(),
            })?;
        if env.signatures.len() > MAX_SIGNATURES {
            return Err(ProtocolError::TooLarge {
                what: "signature list",
                size: env.signatures.len(),
                limit: MAX_SIGNATURES,
            });
        }
        Ok(env)
    }

    /// Pretty JSON with a trailing newline, for files people look at.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The bytes every signature covers.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// SHA-256 of the payload: names "this exact statement" independently of signatures.
    pub fn payload_digest(&self) -> [u8; 32] {
        Sha256::digest(&self.payload).into()
    }

    /// True when both envelopes carry the same statement (type and exact bytes).
    pub fn same_statement(&self, other: &Envelope) -> bool {
        self.payload_type == other.payload_type && self.payload == other.payload
    }

    /// Adds signatures from `other` that this envelope does not already hold.
    /// Returns how many were added. The caller checks `same_statement` first.
    pub fn merge_signatures(&mut self, other: &Envelope) -> usize {
        let mut added = 0;
        for s in &other.signatures {
            if !self
                .signatures
                .iter()
                .any(|t| t.sig == s.sig && t.keyid == s.keyid)
            {
                self.signatures.push(s.clone());
                added += 1;
            }
        }
        added
    }
}

/// DSSE v1 Pre-Authentication Encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths as ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// DSSE allows standard or URL-safe base64, padded or not; we write standard, padded.
mod b64 {
    use super::*;

    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STD_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    const URL_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STD_LENIENT
            .decode(s.as_bytes())
            .or_else(|_| URL_LENIENT.decode(s.as_bytes()))
            .or_else(|_| URL_SAFE.decode(s.as_bytes()))
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn json_round_trip_and_lenient_base64() {
        let mut e = Envelope::new(PAYLOAD_TYPE_IN_TOTO, b"{}".to_vec());
        e.signatures.push(EnvelopeSignature {
            keyid: "k".into(),
            sig: vec![0xfb, 0xff],
        });
        let back = Envelope::from_json(&e.to_json()).expect("round trip");
        assert_eq!(back, e);
        // URL-safe, unpadded signature still decodes.
        let url = br#"{"payload":"e30","payloadType":"x","signatures":[{"sig":"-_8"}]}"#;
        let env = Envelope::from_json(url).expect("url-safe");
        assert_eq!(env.signatures[0].sig, vec![0xfb, 0xff]);
    }

    #[test]
    fn refuses_garbage_and_oversize() {
        assert!(Envelope::from_json(b"not json").is_err());
        assert!(
            Envelope::from_json(br#"{"payload":"!!","payloadType":"x","signatures":[]}"#).is_err()
        );
        let big = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(
            Envelope::from_json(&big),
            Err(ProtocolError::TooLarge { .. })
        ));
    }
}
