//! The signing certificate's embedded signed certificate timestamp (RFC 6962 §3.2): a CT
//! log's promise that Fulcio's precertificate was logged, so a mis-issued certificate is
//! publicly visible.
//!
//! The SCT signs a TLS-encoded `digitally-signed` structure over the precertificate: the
//! leaf's TBSCertificate without the SCT extension, bound to the issuer by the SHA-256 of its
//! public key. It is rebuilt here from the leaf and the issuer the chain check found, and
//! verified with the CT log key of the trusted root the SCT names, which must have been
//! valid when the SCT was made. SCT extensions (Static CT puts a leaf index there) are
//! signed data like the rest.

use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::asn1::{Any, ObjectIdentifier, OctetString};
use x509_cert::der::{Decode, Encode, Tag, TagNumber, Tagged};
use x509_cert::ext::Extension;

use crate::keys::Hash;
use crate::trusted_root::TrustedRoot;

/// The embedded SCT list extension.
const SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// One parsed SCT.
struct Sct<'a> {
    log_id: &'a [u8],
    timestamp_ms: u64,
    extensions: &'a [u8],
    hash: u8,
    signature: &'a [u8],
}

/// Verifies that at least one embedded SCT of `leaf` verifies with a CT log of `root`,
/// for the issuer whose DER SubjectPublicKeyInfo is `issuer_spki`.
pub(crate) fn verify(
    leaf_der: &[u8],
    leaf: &Certificate,
    issuer_spki: &[u8],
    root: &TrustedRoot,
) -> Result<(), String> {
    let tbs = leaf.tbs_certificate();
    let extensions = tbs.extensions().map(Vec::as_slice).unwrap_or_default();
    let list = match extensions
        .iter()
        .filter(|e| e.extn_id == SCT_LIST)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [one] => OctetString::from_der(one.extn_value.as_bytes())
            .map_err(|e| format!("SCT list is not an OCTET STRING: {e}"))?,
        [] => return Err("certificate has no embedded SCT".into()),
        _ => return Err("certificate has more than one SCT list".into()),
    };
    let scts = parse_list(list.as_bytes())?;

    let precert_der = precert_tbs_der(leaf_der).map_err(|e| e.to_string())?;
    let issuer_key_hash = Sha256::digest(issuer_spki);

    let mut reasons = Vec::new();
    for sct in &scts {
        match verify_one(sct, &issuer_key_hash, &precert_der, root) {
            Ok(()) => return Ok(()),
            Err(reason) => reasons.push(reason),
        }
    }
    Err(reasons.join("; "))
}

fn verify_one(
    sct: &Sct<'_>,
    issuer_key_hash: &[u8],
    precert_der: &[u8],
    root: &TrustedRoot,
) -> Result<(), String> {
    let log = root.ct_log(sct.log_id).ok_or_else(|| {
        format!(
            "CT log {} is not in the trusted root",
            hex::encode(sct.log_id)
        )
    })?;
    let seconds = i64::try_from(sct.timestamp_ms / 1000).map_err(|_| "SCT time out of range")?;
    if !log.valid.contains(seconds) {
        return Err(format!(
            "CT log {} was not valid when the SCT was made",
            hex::encode(sct.log_id)
        ));
    }
    // TLS HashAlgorithm: 4 = sha256, 5 = sha384, 6 = sha512.
    let hash = match sct.hash {
        4 => Hash::Sha256,
        5 => Hash::Sha384,
        6 => Hash::Sha512,
        other => return Err(format!("SCT hash algorithm {other} is not supported")),
    };
    let tbs_len = u32::try_from(precert_der.len())
        .ok()
        .filter(|n| *n < 1 << 24)
        .ok_or("TBSCertificate too large for an SCT")?;
    let ext_len = u16::try_from(sct.extensions.len()).map_err(|_| "SCT extensions too large")?;
    let mut signed = Vec::with_capacity(precert_der.len() + 64);
    signed.push(0); // version v1
    signed.push(0); // signature_type certificate_timestamp
    signed.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
    signed.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
    signed.extend_from_slice(issuer_key_hash);
    signed.extend_from_slice(&tbs_len.to_be_bytes()[1..]);
    signed.extend_from_slice(precert_der);
    signed.extend_from_slice(&ext_len.to_be_bytes());
    signed.extend_from_slice(sct.extensions);
    let key = log.key()?;
    if key.verifies_with(hash, sct.signature, &signed) {
        Ok(())
    } else {
        Err(format!(
            "SCT signature does not verify with CT log {}",
            hex::encode(sct.log_id)
        ))
    }
}

/// The precertificate's TBSCertificate: the leaf's TBSCertificate without the SCT list
/// extension, cut from the original DER (a decoded certificate does not re-encode byte for
/// byte: x509-cert writes times before 2050 as UTCTime whatever the certificate used).
fn precert_tbs_der(leaf_der: &[u8]) -> x509_cert::der::Result<Vec<u8>> {
    const EXTENSIONS: Tag = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber(3),
    };
    let certificate = Vec::<Any>::from_der(leaf_der)?;
    let tbs = certificate
        .first()
        .ok_or_else(|| Tag::Sequence.value_error())?;
    let mut fields: Vec<Any> = tbs.decode_as()?;
    if let Some(extensions) = fields.iter_mut().find(|f| f.tag() == EXTENSIONS) {
        let mut kept = Vec::new();
        for extension in Vec::<Any>::from_der(extensions.value())? {
            if extension.decode_as::<Extension>()?.extn_id != SCT_LIST {
                kept.push(extension);
            }
        }
        *extensions = Any::new(EXTENSIONS, kept.to_der()?)?;
    }
    fields.to_der()
}

/// A cursor over TLS-encoded bytes that refuses to read past the end.
struct Tls<'a>(&'a [u8]);

impl<'a> Tls<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("SCT list is truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, String> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// A `u16`-length-prefixed vector.
    fn vec16(&mut self) -> Result<&'a [u8], String> {
        let n = self.u16()?;
        self.take(n)
    }
}

fn parse_list(bytes: &[u8]) -> Result<Vec<Sct<'_>>, String> {
    let mut outer = Tls(bytes);
    let mut list = Tls(outer.vec16()?);
    if !outer.0.is_empty() {
        return Err("SCT list has trailing bytes".into());
    }
    let mut scts = Vec::new();
    while !list.0.is_empty() {
        let mut sct = Tls(list.vec16()?);
        let version = sct.u8()?;
        if version != 0 {
            return Err(format!("SCT version {version} is not v1"));
        }
        let log_id = sct.take(32)?;
        let time = sct.take(8)?;
        let timestamp_ms = u64::from_be_bytes(time.try_into().map_err(|_| "SCT time")?);
        let extensions = sct.vec16()?;
        let hash = sct.u8()?;
        let _signature_algorithm = sct.u8()?;
        let signature = sct.vec16()?;
        if !sct.0.is_empty() {
            return Err("SCT has trailing bytes".into());
        }
        scts.push(Sct {
            log_id,
            timestamp_ms,
            extensions,
            hash,
            signature,
        });
    }
    if scts.is_empty() {
        return Err("SCT list is empty".into());
    }
    Ok(scts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_padded_lists_are_refused() {
        for bytes in [
            &b""[..],
            b"\x00",
            b"\x00\x05\x00\x03\x00",
            b"\x00\x00",
            b"\x00\x00\x00",
        ] {
            assert!(parse_list(bytes).is_err(), "{bytes:?}");
        }
    }
}
