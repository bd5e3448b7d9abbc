//! RFC 3161 signed timestamps: a timestamp authority's signed statement "I saw this
//! signature at this time".
//!
//! Rekor v2 entries carry no integrated time, so for them a timestamp is the only evidence of
//! when the signing certificate was used; Rekor v1 bundles may carry one beside the SET.
//! A timestamp counts only when all of this holds:
//!
//! 1. it is a granted `TimeStampResp` (or a bare token) holding CMS `SignedData` over a
//!    `TSTInfo`, with exactly one signer and signed attributes whose content type is TSTInfo
//!    and whose message digest is that of the TSTInfo;
//! 2. the signed attributes verify with the leaf certificate of a timestamp authority of the
//!    trusted root, and the signer identifier names that certificate. Certificates embedded
//!    in the token are never trusted: an untrusted TSA that embeds its own chain gains
//!    nothing;
//! 3. that certificate chains to the authority's root with the time-stamping key purpose,
//!    every certificate valid at the timestamp's time (an expired chain is fine when the
//!    timestamp was made while it was valid);
//! 4. the time lies within the authority's `validFor` in the trusted root, both ends
//!    included;
//! 5. the message imprint is the hash of the bundle's signature bytes.

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::Certificate;
use x509_cert::der::asn1::{Any, ObjectIdentifier, OctetString};
use x509_cert::der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::keys::{Hash, PublicKey};
use crate::trusted_root::{TimestampAuthority, TrustedRoot};
use crate::unix_time::Rfc3339;

/// More timestamps than this in one bundle is not a real bundle (sigstore-python's bound).
pub(crate) const MAX_TIMESTAMPS: usize = 32;

const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// id-kp-timeStamping.
const TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];
/// id-ce-subjectKeyIdentifier.
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");

/// Verifies one timestamp over `signature` against the trusted root's authorities and
/// returns its time (Unix seconds) and the authority's name, or why none vouches for it.
pub(crate) fn verify(
    token: &[u8],
    signature: &[u8],
    root: &TrustedRoot,
) -> Result<(i64, String), String> {
    let token = Token::parse(token)?;
    let mut reasons = Vec::new();
    for tsa in root.timestamp_authorities() {
        match token.verify_with(tsa, signature) {
            Ok(time) => return Ok((time, tsa.name.clone())),
            Err(reason) => reasons.push(reason),
        }
    }
    if reasons.is_empty() {
        return Err("the trusted root lists no timestamp authority".into());
    }
    Err(reasons.join("; "))
}

/// A parsed timestamp token, nothing in it believed yet.
struct Token {
    signed_data: SignedData,
    tst_info_der: Vec<u8>,
    imprint_hash: Hash,
    imprint: Vec<u8>,
    gen_time: i64,
}

impl Token {
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let der = |e: x509_cert::der::Error| format!("timestamp is not valid DER: {e}");
        let outer = Any::from_der(bytes).map_err(der)?;
        if outer.tag() != Tag::Sequence {
            return Err("timestamp is not a DER sequence".into());
        }
        // A TimeStampResp starts with PKIStatusInfo (a SEQUENCE); a bare token with the
        // content type OID.
        let mut reader = SliceReader::new(outer.value()).map_err(der)?;
        let content_info = if Tag::peek(&reader).map_err(der)? == Tag::Sequence {
            let status = Any::decode(&mut reader).map_err(der)?;
            let mut status = SliceReader::new(status.value()).map_err(der)?;
            let code = u8::decode(&mut status).map_err(der)?;
            // granted (0) or grantedWithMods (1)
            if code > 1 {
                return Err(format!("timestamp response status is {code}, not granted"));
            }
            let info = ContentInfo::decode(&mut reader).map_err(der)?;
            if !reader.is_finished() {
                return Err("timestamp response has trailing data".into());
            }
            info
        } else {
            ContentInfo::from_der(bytes).map_err(der)?
        };
        if content_info.content_type != SIGNED_DATA {
            return Err("timestamp token is not CMS SignedData".into());
        }
        let signed_data: SignedData = content_info.content.decode_as().map_err(der)?;
        let encap = &signed_data.encap_content_info;
        if encap.econtent_type != TST_INFO {
            return Err("timestamp token does not hold a TSTInfo".into());
        }
        let content = encap
            .econtent
            .as_ref()
            .ok_or("timestamp token has no TSTInfo")?;
        let tst_info_der = content
            .decode_as::<OctetString>()
            .map_err(der)?
            .as_bytes()
            .to_vec();
        let (imprint_hash, imprint, gen_time) = parse_tst_info(&tst_info_der)?;
        Ok(Self {
            signed_data,
            tst_info_der,
            imprint_hash,
            imprint,
            gen_time,
        })
    }

    /// Steps 1–5 of the module documentation for one authority.
    fn verify_with(&self, tsa: &TimestampAuthority, signature: &[u8]) -> Result<i64, String> {
        let leaf_der = tsa.chain.first().ok_or("authority has no certificate")?;
        let leaf = Certificate::from_der(leaf_der).map_err(|e| e.to_string())?;
        let signers = self.signed_data.signer_infos.0.as_slice();
        let [signer] = signers else {
            return Err(format!(
                "timestamp has {} signers, expected one",
                signers.len()
            ));
        };
        if !names(&signer.sid, &leaf) {
            return Err(format!("not signed by {}", tsa.name));
        }
        let attrs = signer
            .signed_attrs
            .as_ref()
            .ok_or("timestamp has no signed attributes")?;
        let attr = |oid: ObjectIdentifier| {
            let found: Vec<_> = attrs.iter().filter(|a| a.oid == oid).collect();
            match found.as_slice() {
                [one] if one.values.len() == 1 => one.values.get(0).cloned(),
                _ => None,
            }
        };
        let content_type: ObjectIdentifier = attr(CONTENT_TYPE)
            .and_then(|v| v.decode_as().ok())
            .ok_or("timestamp has no single content-type attribute")?;
        if content_type != TST_INFO {
            return Err("signed content type is not TSTInfo".into());
        }
        let digest: OctetString = attr(MESSAGE_DIGEST)
            .and_then(|v| v.decode_as().ok())
            .ok_or("timestamp has no single message-digest attribute")?;
        // The signer's digest algorithm must be one SignedData declares (RFC 5652 §5.1): a
        // token whose parts disagree is not one a TSA made.
        if !self
            .signed_data
            .digest_algorithms
            .iter()
            .any(|a| a.oid == signer.digest_alg.oid)
        {
            return Err("the signer's digest algorithm is not among SignedData's".into());
        }
        let digest_hash = hash_of(&signer.digest_alg)?;
        if digest.as_bytes() != digest_hash.digest(&self.tst_info_der) {
            return Err("signed message digest is not that of the TSTInfo".into());
        }
        let signed = attrs.to_der().map_err(|e| e.to_string())?;
        let key = PublicKey::from_spki(leaf.tbs_certificate().subject_public_key_info())?;
        let signature_hash = Hash::from_oid(&signer.signature_algorithm.oid).unwrap_or(digest_hash);
        if !key.verifies_with(signature_hash, signer.signature.as_bytes(), &signed) {
            return Err(format!("signature does not verify with {}", tsa.name));
        }

        let time = self.gen_time;
        chain_valid_at(&tsa.chain, time).map_err(|e| {
            format!(
                "{}'s certificate chain is not valid for time-stamping at {}: {e}",
                tsa.name,
                Rfc3339(time)
            )
        })?;
        if !tsa.valid.contains(time) {
            return Err(format!(
                "time {} is outside {}'s validity in the trusted root ({})",
                Rfc3339(time),
                tsa.name,
                tsa.valid
            ));
        }
        if self.imprint != self.imprint_hash.digest(signature) {
            return Err("timestamp is not over the bundle's signature".into());
        }
        Ok(time)
    }
}

/// Whether a CMS signer identifier names `cert`.
fn names(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    let tbs = cert.tbs_certificate();
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(id) => {
            id.issuer == *tbs.issuer() && id.serial_number == *tbs.serial_number()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => tbs
            .extensions()
            .into_iter()
            .flatten()
            .filter(|e| e.extn_id == SUBJECT_KEY_ID)
            .any(|e| {
                OctetString::from_der(e.extn_value.as_bytes())
                    .is_ok_and(|v| v.as_bytes() == ski.0.as_bytes())
            }),
    }
}

/// Verifies `chain` (leaf first, root last) with the time-stamping key purpose at `time`.
fn chain_valid_at(chain: &[Vec<u8>], time: i64) -> Result<(), String> {
    let [leaf, intermediates @ .., root] = chain else {
        return Err("the trusted root gives no chain to a root".into());
    };
    let root = CertificateDer::from(root.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&root).map_err(|e| format!("{e:?}"))?;
    let intermediates: Vec<_> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let leaf = CertificateDer::from(leaf.as_slice());
    let leaf = EndEntityCert::try_from(&leaf).map_err(|e| format!("{e:?}"))?;
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(time).map_err(|_| "time before 1970")?,
    ));
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        at,
        KeyUsage::required(TIME_STAMPING),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("{e:?}"))
}

fn hash_of(alg: &AlgorithmIdentifierOwned) -> Result<Hash, String> {
    Hash::from_oid(&alg.oid).ok_or_else(|| format!("unsupported digest algorithm {}", alg.oid))
}

/// Reads the message imprint and the time from a DER TSTInfo (RFC 3161 §2.4.2):
/// `SEQUENCE { version, policy, messageImprint, serialNumber, genTime, ... }`.
fn parse_tst_info(der: &[u8]) -> Result<(Hash, Vec<u8>, i64), String> {
    let malformed = |e: x509_cert::der::Error| format!("TSTInfo is malformed: {e}");
    let info = Any::from_der(der).map_err(malformed)?;
    if info.tag() != Tag::Sequence {
        return Err("TSTInfo is not a sequence".into());
    }
    let mut r = SliceReader::new(info.value()).map_err(malformed)?;
    let version = u8::decode(&mut r).map_err(malformed)?;
    if version != 1 {
        return Err(format!("TSTInfo version {version}, expected 1"));
    }
    let _policy: ObjectIdentifier = ObjectIdentifier::decode(&mut r).map_err(malformed)?;
    let imprint = Any::decode(&mut r).map_err(malformed)?;
    let mut imprint = SliceReader::new(imprint.value()).map_err(malformed)?;
    let alg = AlgorithmIdentifierOwned::decode(&mut imprint).map_err(malformed)?;
    let hashed = OctetString::decode(&mut imprint).map_err(malformed)?;
    let _serial = Any::decode(&mut r).map_err(malformed)?;
    let gen_time = Any::decode(&mut r).map_err(malformed)?;
    if gen_time.tag() != Tag::GeneralizedTime {
        return Err("TSTInfo genTime is not a GeneralizedTime".into());
    }
    let time = generalized_time(gen_time.value())?;
    Ok((hash_of(&alg)?, hashed.as_bytes().to_vec(), time))
}

/// `YYYYMMDDHHMMSS[.f*]Z` in Unix seconds; a fraction is dropped (times compare by second).
fn generalized_time(text: &[u8]) -> Result<i64, String> {
    let bad = || {
        format!(
            "genTime {:?} is not YYYYMMDDHHMMSS[.f]Z",
            String::from_utf8_lossy(text)
        )
    };
    let text = std::str::from_utf8(text).map_err(|_| bad())?;
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (whole, fraction) = body.split_once('.').unwrap_or((body, "0"));
    if whole.len() != 14
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || fraction.is_empty()
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let n = |range: std::ops::Range<usize>| whole[range].parse::<u16>().map_err(|_| bad());
    let month =
        time::Month::try_from(u8::try_from(n(4..6)?).map_err(|_| bad())?).map_err(|_| bad())?;
    let small = |v: u16| u8::try_from(v).map_err(|_| bad());
    let date = time::Date::from_calendar_date(i32::from(n(0..4)?), month, small(n(6..8)?)?)
        .map_err(|_| bad())?;
    let clock = time::Time::from_hms(small(n(8..10)?)?, small(n(10..12)?)?, small(n(12..14)?)?)
        .map_err(|_| bad())?;
    Ok(time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_times_parse_with_and_without_fraction() {
        assert_eq!(generalized_time(b"19700101000000Z"), Ok(0));
        assert_eq!(generalized_time(b"20250612120217.123Z"), Ok(1_749_729_737));
        for bad in [
            &b"20250612120217"[..],
            b"2025061212021Z",
            b"20251312120217Z",
            b"20250612120217.Z",
            b"2025061212021aZ",
            b"",
        ] {
            assert!(generalized_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let root = crate::TrustedRoot::from_json(include_bytes!(
            "../tests/data/sigstore-python/staging_trusted_root.json"
        ))
        .expect("root");
        for bytes in [
            &b""[..],
            b"\x30\x00",
            b"\x30\x03\x02\x01\x02",
            b"\x04\x01\x00",
        ] {
            assert!(verify(bytes, b"sig", &root).is_err());
        }
    }
}
