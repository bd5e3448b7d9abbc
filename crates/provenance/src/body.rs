//! The log entry's body must describe this very signature, certificate and content, or the
//! inclusion proof proves the inclusion of something else (CVE-2022-36056).
//!
//! Rekor v1 kinds: `hashedrekord` 0.0.1, `dsse` 0.0.1 and `intoto` 0.0.2. Rekor v2 kind:
//! `hashedrekord` 0.0.2, for message signatures and for DSSE envelopes (whose digest is then
//! that of the PAE). Fields are compared after decoding (base64, PEM), so an equivalent
//! spelling is accepted and any different value refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::bundle::LogEntry;
use crate::certificate::SigningCertificate;
use crate::content::{Signed, pae};
use crate::error::Error;

/// Checks the entry body against the bundle.
pub(crate) fn check(
    entry: &LogEntry<'_>,
    signed: &Signed<'_>,
    cert: &SigningCertificate,
    sha256: &[u8; 32],
) -> Result<(), Error> {
    let body: Value = serde_json::from_slice(entry.body)
        .map_err(|e| Error::MalformedBundle(format!("log entry body: {e}")))?;
    if body.get("kind").and_then(Value::as_str) != Some(entry.kind)
        || body.get("apiVersion").and_then(Value::as_str) != Some(entry.version)
    {
        return Err(Error::LogEntryMismatch);
    }
    let spec = body.get("spec").ok_or(Error::LogEntryMismatch)?;
    let consistent = match (entry.kind, entry.version, signed) {
        ("hashedrekord", "0.0.1", Signed::Message { signature }) => {
            str_at(spec, "/data/hash/algorithm") == Some("sha256")
                && hex_at(spec, "/data/hash/value").as_deref() == Some(sha256.as_slice())
                && b64_at(spec, "/signature/content").as_deref() == Some(*signature)
                && pem_cert_at(spec, "/signature/publicKey/content").as_deref() == Some(cert.der())
        }
        ("hashedrekord", "0.0.2", _) => {
            let digest = match signed {
                Signed::Message { .. } => sha256.to_vec(),
                Signed::Dsse {
                    payload_type,
                    payload,
                    ..
                } => cert
                    .key
                    .kind()
                    .default_hash()
                    .digest(&pae(payload_type, payload)),
            };
            let algorithm = match digest.len() {
                32 => "SHA2_256",
                48 => "SHA2_384",
                _ => "SHA2_512",
            };
            let v2 = spec
                .get("hashedRekordV002")
                .ok_or(Error::LogEntryMismatch)?;
            str_at(v2, "/data/algorithm") == Some(algorithm)
                && b64_at(v2, "/data/digest") == Some(digest)
                && b64_at(v2, "/signature/content").as_deref() == Some(signed.signature())
                && b64_at(v2, "/signature/verifier/x509Certificate/rawBytes").as_deref()
                    == Some(cert.der())
                && str_at(v2, "/signature/verifier/keyDetails")
                    == Some(cert.key.kind().details_name())
        }
        (
            "dsse",
            "0.0.1",
            Signed::Dsse {
                payload, signature, ..
            },
        ) => {
            let payload_hash = crate::keys::Hash::Sha256.digest(payload);
            let signatures = spec.get("signatures").and_then(Value::as_array);
            str_at(spec, "/payloadHash/algorithm") == Some("sha256")
                && hex_at(spec, "/payloadHash/value") == Some(payload_hash)
                && signatures.is_some_and(|s| {
                    matches!(s.as_slice(), [one]
                        if b64_at(one, "/signature").as_deref() == Some(*signature)
                            && pem_cert_at(one, "/verifier").as_deref() == Some(cert.der()))
                })
        }
        (
            "intoto",
            "0.0.2",
            Signed::Dsse {
                payload_type,
                payload,
                signature,
            },
        ) => {
            // intoto 0.0.2 stores the envelope's base64 fields base64-encoded once more.
            let twice =
                |pointer: &str| b64_at(spec, pointer).and_then(|inner| STANDARD.decode(inner).ok());
            let payload_hash = crate::keys::Hash::Sha256.digest(payload);
            let signatures = spec
                .pointer("/content/envelope/signatures")
                .and_then(Value::as_array);
            str_at(spec, "/content/envelope/payloadType") == Some(*payload_type)
                && twice("/content/envelope/payload").as_deref() == Some(*payload)
                && str_at(spec, "/content/payloadHash/algorithm") == Some("sha256")
                && hex_at(spec, "/content/payloadHash/value") == Some(payload_hash)
                && signatures.is_some_and(|s| {
                    matches!(s.as_slice(), [one]
                        if b64_at(one, "/sig")
                            .and_then(|inner| STANDARD.decode(inner).ok())
                            .as_deref() == Some(*signature)
                            && pem_cert_at(one, "/publicKey").as_deref() == Some(cert.der()))
                })
        }
        (kind, version, _) => {
            return Err(Error::UnsupportedLogEntry {
                kind: kind.to_owned(),
                version: version.to_owned(),
            });
        }
    };
    if consistent {
        Ok(())
    } else {
        Err(Error::LogEntryMismatch)
    }
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn b64_at(value: &Value, pointer: &str) -> Option<Vec<u8>> {
    STANDARD.decode(str_at(value, pointer)?).ok()
}

fn hex_at(value: &Value, pointer: &str) -> Option<Vec<u8>> {
    hex::decode(str_at(value, pointer)?).ok()
}

/// A base64 field holding a PEM certificate, as DER.
fn pem_cert_at(value: &Value, pointer: &str) -> Option<Vec<u8>> {
    let pem = String::from_utf8(b64_at(value, pointer)?).ok()?;
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN CERTIFICATE-----")?
        .strip_suffix("-----END CERTIFICATE-----")?;
    let joined: String = body.split_whitespace().collect();
    STANDARD.decode(joined).ok()
}
