//! What the bundle signs: either the artifact's SHA-256 directly (a message signature), or
//! an in-toto statement in a DSSE envelope whose subjects name the artifact.

use sigstore_protobuf_specs::dev::sigstore::bundle::v1::Bundle;
use sigstore_protobuf_specs::dev::sigstore::bundle::v1::bundle;

use crate::error::Error;
use crate::keys::{Hash, PublicKey};

/// The only DSSE payload type Accord accepts: an in-toto statement.
const IN_TOTO: &str = "application/vnd.in-toto+json";
/// Statements with more subjects than this are not release provenance.
const MAX_SUBJECTS: usize = 4096;

/// The signed content of a bundle.
#[derive(Debug)]
pub(crate) enum Signed<'a> {
    /// A signature over SHA-256(artifact).
    Message { signature: &'a [u8] },
    /// A DSSE envelope with exactly one signature, over the pre-authentication encoding.
    Dsse {
        payload_type: &'a str,
        payload: &'a [u8],
        signature: &'a [u8],
    },
}

impl<'a> Signed<'a> {
    pub(crate) fn from_bundle(bundle: &'a Bundle) -> Result<Self, Error> {
        match &bundle.content {
            Some(bundle::Content::MessageSignature(m)) if !m.signature.is_empty() => {
                Ok(Self::Message {
                    signature: &m.signature,
                })
            }
            Some(bundle::Content::MessageSignature(_)) => {
                Err(Error::MalformedBundle("message signature is empty".into()))
            }
            Some(bundle::Content::DsseEnvelope(envelope)) => match envelope.signatures.as_slice() {
                [one] if !one.sig.is_empty() => Ok(Self::Dsse {
                    payload_type: &envelope.payload_type,
                    payload: &envelope.payload,
                    signature: &one.sig,
                }),
                signatures => Err(Error::MalformedBundle(format!(
                    "DSSE envelope has {} signatures, expected one",
                    signatures.len()
                ))),
            },
            None => Err(Error::MalformedBundle("bundle has no signature".into())),
        }
    }

    /// The signature bytes (what timestamps are over and the log entry records).
    pub(crate) fn signature(&self) -> &'a [u8] {
        match self {
            Self::Message { signature } | Self::Dsse { signature, .. } => signature,
        }
    }

    /// Verifies the signature with the certificate's key and that it covers the artifact.
    pub(crate) fn verify(&self, key: &PublicKey, sha256: &[u8; 32]) -> Result<(), Error> {
        match self {
            Self::Message { signature } => {
                if key.verifies_prehashed(Hash::Sha256, signature, sha256) {
                    Ok(())
                } else {
                    Err(Error::ArtifactSignature)
                }
            }
            Self::Dsse {
                payload_type,
                payload,
                signature,
            } => {
                if !key.verifies(signature, &pae(payload_type, payload)) {
                    return Err(Error::ArtifactSignature);
                }
                if *payload_type != IN_TOTO {
                    return Err(Error::MalformedBundle(format!(
                        "DSSE payload type is {payload_type:?}, expected {IN_TOTO:?}"
                    )));
                }
                if statement_names(payload, sha256)? {
                    Ok(())
                } else {
                    Err(Error::ArtifactNotInStatement(hex::encode(sha256)))
                }
            }
        }
    }
}

/// DSSE's pre-authentication encoding: `DSSEv1 LEN(type) type LEN(payload) payload`.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Whether any subject of the in-toto statement has `sha256` as its SHA-256 digest.
fn statement_names(payload: &[u8], sha256: &[u8; 32]) -> Result<bool, Error> {
    let statement: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| Error::MalformedBundle(format!("in-toto statement: {e}")))?;
    let subjects = statement
        .get("subject")
        .and_then(|s| s.as_array())
        .ok_or_else(|| Error::MalformedBundle("in-toto statement has no subjects".into()))?;
    if subjects.len() > MAX_SUBJECTS {
        return Err(Error::MalformedBundle(format!(
            "in-toto statement has {} subjects, more than {MAX_SUBJECTS}",
            subjects.len()
        )));
    }
    let want = hex::encode(sha256);
    Ok(subjects.iter().any(|subject| {
        subject
            .pointer("/digest/sha256")
            .and_then(|d| d.as_str())
            .is_some_and(|d| d.eq_ignore_ascii_case(&want))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_specification_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }
}
