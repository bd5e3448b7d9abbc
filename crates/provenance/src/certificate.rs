//! The signing certificate: a Fulcio leaf that binds a short-lived key to an identity.
//!
//! It counts when, at every verified time of the bundle, it chains to a Fulcio CA of the
//! trusted root that was valid then (webpki, code-signing key purpose); when one of its
//! embedded SCTs verifies with a CT log of the root; when its key usage allows digital
//! signatures; and when its identity (a SAN) and OIDC issuer are exactly the policy's.

use rustls_pki_types::{CertificateDer, UnixTime};
use sigstore_protobuf_specs::dev::sigstore::bundle::v1::Bundle;
use sigstore_protobuf_specs::dev::sigstore::bundle::v1::verification_material;
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::Certificate;
use x509_cert::der::asn1::{Any, Ia5String, ObjectIdentifier, Utf8StringRef};
use x509_cert::der::{Decode, Encode, Tag};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage as KeyUsageExt, SubjectAltName};

use crate::Policy;
use crate::error::Error;
use crate::keys::PublicKey;
use crate::trusted_root::TrustedRoot;
use crate::unix_time::Rfc3339;

/// id-kp-codeSigning.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// Fulcio's OIDC issuer extension, v1 (raw UTF-8 bytes) and v2 (a DER UTF8String).
const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// The SAN "other name" Fulcio uses for identities that are neither e-mail nor URI.
const OTHER_NAME_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.7");

/// The bundle's signing certificate, parsed.
#[derive(Debug)]
pub(crate) struct SigningCertificate {
    der: Vec<u8>,
    cert: Certificate,
    pub(crate) key: PublicKey,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
}

impl SigningCertificate {
    /// The first certificate of the bundle (v0.3: the only one; older: the chain's first).
    ///
    /// Public-key bundles are refused: Accord's policy is about who signed (a Fulcio
    /// identity), and a bare key carries none. A chain that includes a root CA is refused
    /// (the specification forbids it: trust comes from the trusted root, never the bundle);
    /// other chain certificates are not used, the trusted root supplies the path.
    pub(crate) fn from_bundle(bundle: &Bundle) -> Result<Self, Error> {
        let der = match bundle
            .verification_material
            .as_ref()
            .and_then(|m| m.content.as_ref())
        {
            Some(verification_material::Content::Certificate(cert)) => cert.raw_bytes.clone(),
            Some(verification_material::Content::X509CertificateChain(chain)) => {
                let (leaf, rest) = chain
                    .certificates
                    .split_first()
                    .ok_or_else(|| Error::MalformedBundle("certificate chain is empty".into()))?;
                for other in rest {
                    let cert = Certificate::from_der(&other.raw_bytes)
                        .map_err(|e| Error::MalformedCertificate(e.to_string()))?;
                    if is_self_signed_ca(&cert) {
                        return Err(Error::MalformedBundle(
                            "certificate chain contains a root certificate".into(),
                        ));
                    }
                }
                leaf.raw_bytes.clone()
            }
            Some(verification_material::Content::PublicKey(_)) => {
                return Err(Error::MalformedBundle(
                    "bundle is signed with a bare public key, not a Fulcio certificate".into(),
                ));
            }
            None => return Err(Error::MalformedBundle("bundle has no certificate".into())),
        };
        let cert =
            Certificate::from_der(&der).map_err(|e| Error::MalformedCertificate(e.to_string()))?;
        let tbs = cert.tbs_certificate();
        let validity = tbs.validity();
        let seconds = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs())
                .map_err(|_| Error::MalformedCertificate("validity out of range".into()))
        };
        let key = PublicKey::from_spki(tbs.subject_public_key_info())
            .map_err(Error::MalformedCertificate)?;
        Ok(Self {
            not_before: seconds(validity.not_before)?,
            not_after: seconds(validity.not_after)?,
            der,
            cert,
            key,
        })
    }

    /// The certificate's DER, as the log entry must name it.
    pub(crate) fn der(&self) -> &[u8] {
        &self.der
    }

    /// Whether the certificate was valid at `t`, both ends included (RFC 5280).
    pub(crate) fn valid_at(&self, t: i64) -> bool {
        self.not_before <= t && t <= self.not_after
    }

    /// Checks the chain to a Fulcio CA whose `validFor` contains `t`, the leaf (and any
    /// intermediate) valid at `t` (a trusted-root certificate is an anchor: its `validFor`,
    /// not its own dates, bounds it), and returns the issuer's DER SubjectPublicKeyInfo
    /// (what the SCT is bound to).
    pub(crate) fn chain_at(&self, root: &TrustedRoot, t: i64) -> Result<Vec<u8>, Error> {
        let certs: Vec<CertificateDer<'_>> = root
            .fulcio_at(t)
            .flat_map(|ca| ca.chain.iter())
            .map(|der| CertificateDer::from(der.as_slice()))
            .collect();
        if certs.is_empty() {
            return Err(Error::NoFulcioCaAt(Rfc3339(t)));
        }
        // Every Fulcio certificate is an anchor, as sigstore-rs and sigstore-python treat
        // them: the trusted root vouches for each, intermediates included.
        let anchors = certs
            .iter()
            .map(|c| webpki::anchor_from_trusted_cert(c).map_err(|e| format!("{e:?}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::MalformedTrustedRoot)?;
        let leaf = CertificateDer::from(self.der.as_slice());
        let leaf = EndEntityCert::try_from(&leaf)
            .map_err(|e| Error::MalformedCertificate(format!("{e:?}")))?;
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(t).map_err(|_| Error::NoFulcioCaAt(Rfc3339(t)))?,
        ));
        let path = leaf
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &[],
                at,
                KeyUsage::required(CODE_SIGNING),
                None,
                None,
            )
            .map_err(|e| Error::CertificateChain(format!("at {}: {e:?}", Rfc3339(t))))?;
        let issuer = Any::new(Tag::Sequence, &*path.anchor().subject_public_key_info)
            .and_then(|spki| spki.to_der())
            .map_err(|e| Error::MalformedTrustedRoot(e.to_string()))?;
        Ok(issuer)
    }

    /// The SCT check for the issuer `chain_at` found.
    pub(crate) fn check_sct(&self, issuer_spki: &[u8], root: &TrustedRoot) -> Result<(), Error> {
        crate::sct::verify(&self.der, &self.cert, issuer_spki, root)
            .map_err(Error::CertificateTimestamp)
    }

    /// The key usage must allow digital signatures.
    pub(crate) fn check_key_usage(&self) -> Result<(), Error> {
        let usage = self
            .cert
            .tbs_certificate()
            .get_extension::<KeyUsageExt>()
            .map_err(|e| Error::MalformedCertificate(e.to_string()))?;
        match usage {
            Some((_, usage)) if usage.digital_signature() => Ok(()),
            Some(_) => Err(Error::MalformedCertificate(
                "key usage does not include digital signature".into(),
            )),
            None => Err(Error::MissingCertificateExtension("KeyUsage".into())),
        }
    }

    /// The identity and issuer must be exactly the policy's; returns them.
    pub(crate) fn check_policy(&self, policy: &Policy) -> Result<(), Error> {
        let identities = self.identities()?;
        if !identities.contains(&policy.identity) {
            return Err(Error::IdentityMismatch {
                found: identities.join(", "),
                expected: policy.identity.clone(),
            });
        }
        let issuer = self.oidc_issuer()?;
        if issuer != policy.oidc_issuer {
            return Err(Error::IssuerMismatch {
                found: issuer,
                expected: policy.oidc_issuer.clone(),
            });
        }
        Ok(())
    }

    /// The SAN identities: e-mail addresses, URIs and Fulcio's UTF-8 other names.
    fn identities(&self) -> Result<Vec<String>, Error> {
        let san = self
            .cert
            .tbs_certificate()
            .get_extension::<SubjectAltName>()
            .map_err(|e| Error::MalformedCertificate(e.to_string()))?
            .ok_or_else(|| Error::MissingCertificateExtension("SubjectAltName".into()))?;
        let text = |s: &Ia5String| s.to_string();
        let names: Vec<String> = san
            .1
            .0
            .iter()
            .filter_map(|name| match name {
                GeneralName::Rfc822Name(s) | GeneralName::UniformResourceIdentifier(s) => {
                    Some(text(s))
                }
                GeneralName::OtherName(other) if other.type_id == OTHER_NAME_SAN => other
                    .value
                    .decode_as::<Utf8StringRef<'_>>()
                    .ok()
                    .map(|s| s.as_str().to_owned()),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            return Err(Error::MissingCertificateExtension(
                "SubjectAltName identity".into(),
            ));
        }
        Ok(names)
    }

    /// The OIDC issuer: the v2 extension if present, else the v1 one.
    fn oidc_issuer(&self) -> Result<String, Error> {
        let extensions = self.cert.tbs_certificate().extensions();
        let find = |oid: ObjectIdentifier| {
            extensions
                .into_iter()
                .flatten()
                .find(|e| e.extn_id == oid)
                .map(|e| e.extn_value.as_bytes())
        };
        let bad = || Error::MalformedCertificate("OIDC issuer extension is not UTF-8".into());
        if let Some(v2) = find(ISSUER_V2) {
            return Utf8StringRef::from_der(v2)
                .map(|s| s.as_str().to_owned())
                .map_err(|_| bad());
        }
        if let Some(v1) = find(ISSUER_V1) {
            return String::from_utf8(v1.to_vec()).map_err(|_| bad());
        }
        Err(Error::MissingCertificateExtension(
            "OIDC issuer (1.3.6.1.4.1.57264.1.8 or .1.1)".into(),
        ))
    }
}

/// A CA certificate that names itself as issuer: a root.
fn is_self_signed_ca(cert: &Certificate) -> bool {
    let tbs = cert.tbs_certificate();
    let ca = matches!(tbs.get_extension::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca);
    ca && tbs.subject() == tbs.issuer()
}
