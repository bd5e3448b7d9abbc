//! Rekor checkpoints: the log's signed statement "my tree of N leaves has root hash R".
//!
//! A checkpoint is a signed note (c2sp.org/signed-note, c2sp.org/tlog-checkpoint):
//!
//! ```text
//! rekor.sigstage.dev - 8050909264565447525      origin
//! 25901138                                      tree size, decimal
//! iGAoHccJIyFemFxmEftti2YC8hvPqixBi5y1EyvfF4c=  root hash, base64
//!                                               (optional extension lines, then a blank line)
//! — rekor.sigstage.dev 0y8wozBFAiAM…            em dash, key name, base64(key hint ‖ signature)
//! ```
//!
//! The signature covers the text up to and including the newline before the blank line.
//! The 4-byte key hint is the start of the log's checkpoint key id (for Rekor v1 ECDSA logs,
//! SHA-256 of the DER public key; for Ed25519 note keys, SHA-256 of name ‖ "\n" ‖ 0x01 ‖ key,
//! as the trusted root records it). sigstore-rs 0.15 ignores the checkpoint entirely.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::Error;
use crate::keys::LogKey;
use crate::merkle::Hash;

/// What a verified checkpoint says about the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) origin: String,
    pub(crate) tree_size: u64,
    pub(crate) root_hash: Hash,
}

/// One signature line of a note.
#[derive(Debug)]
struct NoteSignature {
    key_hint: [u8; 4],
    signature: Vec<u8>,
}

/// Verifies the checkpoint's signature by the log whose checkpoint key id is `key_id`, then
/// reads what it says. Nothing in it is believed before the signature verifies.
pub(crate) fn verify(
    envelope: &str,
    key: &LogKey,
    key_id: &[u8],
    log_id_hex: &str,
) -> Result<Checkpoint, Error> {
    let (text, signatures) = split_note(envelope)?;
    let hint = key_id.get(..4).ok_or_else(|| Error::UnusableLogKey {
        log_id: log_id_hex.to_owned(),
        reason: "its checkpoint key id is shorter than 4 bytes".into(),
    })?;
    let mut by_log = signatures.iter().filter(|s| s.key_hint == hint).peekable();
    if by_log.peek().is_none() {
        return Err(Error::CheckpointNotSignedByLog {
            log_id: log_id_hex.to_owned(),
        });
    }
    if !by_log.any(|s| key.verifies(&s.signature, text.as_bytes())) {
        return Err(Error::CheckpointSignature {
            log_id: log_id_hex.to_owned(),
        });
    }
    parse_body(text)
}

/// Splits a signed note into the signed text (ending in its last newline) and its
/// signature lines, refusing anything that is not exactly that shape.
fn split_note(note: &str) -> Result<(&str, Vec<NoteSignature>), Error> {
    let malformed = |what: &str| Error::MalformedCheckpoint(what.to_owned());
    let blank = note
        .find("\n\n")
        .ok_or_else(|| malformed("no blank line before the signatures"))?;
    let (text, rest) = note.split_at(blank + 1);
    let block = &rest[1..];
    let lines = block
        .strip_suffix('\n')
        .ok_or_else(|| malformed("signature block does not end with a newline"))?;
    if lines.is_empty() {
        return Err(malformed("no signature"));
    }
    let signatures = lines
        .split('\n')
        .map(|line| {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| malformed("signature line does not start with an em dash"))?;
            let (name, sig) = rest
                .split_once(' ')
                .ok_or_else(|| malformed("signature line has no key name"))?;
            if name.is_empty() || sig.is_empty() || sig.contains(' ') {
                return Err(malformed("signature line is not \"— name signature\""));
            }
            let bytes = STANDARD
                .decode(sig)
                .map_err(|_| malformed("signature is not base64"))?;
            match bytes.split_first_chunk::<4>() {
                Some((hint, signature)) if !signature.is_empty() => Ok(NoteSignature {
                    key_hint: *hint,
                    signature: signature.to_vec(),
                }),
                _ => Err(malformed("signature is shorter than its key hint")),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((text, signatures))
}

/// Reads origin, tree size and root hash from the signed text (extension lines ignored).
fn parse_body(text: &str) -> Result<Checkpoint, Error> {
    let malformed = |what: &str| Error::MalformedCheckpoint(what.to_owned());
    let mut lines = text.strip_suffix('\n').unwrap_or(text).split('\n');
    let origin = lines
        .next()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| malformed("empty origin"))?;
    let size = lines.next().ok_or_else(|| malformed("no tree size"))?;
    // Decimal without sign or leading zeros, so one tree size has one spelling.
    let canonical = !size.is_empty()
        && size.bytes().all(|b| b.is_ascii_digit())
        && (size == "0" || !size.starts_with('0'));
    let tree_size = size
        .parse::<u64>()
        .ok()
        .filter(|_| canonical)
        .ok_or_else(|| malformed("tree size is not a decimal number"))?;
    let root = lines.next().ok_or_else(|| malformed("no root hash"))?;
    let root_hash = STANDARD
        .decode(root)
        .ok()
        .and_then(|h| Hash::try_from(h).ok())
        .ok_or_else(|| malformed("root hash is not 32 bytes of base64"))?;
    Ok(Checkpoint {
        origin: origin.to_owned(),
        tree_size,
        root_hash,
    })
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use ed25519_dalek::{Signer, SigningKey};
    use sha2::{Digest, Sha256};
    use sigstore_protobuf_specs::dev::sigstore::common::v1::PublicKeyDetails;

    use super::*;

    const NAME: &str = "log.example";
    const TEXT: &str =
        "log.example - 42\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nTimestamp: 1\n";

    /// An Ed25519 note key as Rekor v2 uses it: (key, checkpoint key id, SPKI DER).
    fn note_key(seed: u8) -> (SigningKey, Vec<u8>, LogKey) {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let vk = sk.verifying_key();
        let mut id = Sha256::new();
        id.update(NAME.as_bytes());
        id.update(b"\n\x01");
        id.update(vk.as_bytes());
        let spki = vk.to_public_key_der().expect("SPKI encoding");
        let key = LogKey::new(spki.as_bytes(), PublicKeyDetails::PkixEd25519 as i32)
            .expect("Ed25519 key");
        (sk, id.finalize().to_vec(), key)
    }

    fn sign(sk: &SigningKey, key_id: &[u8], text: &str) -> String {
        let mut blob = key_id[..4].to_vec();
        blob.extend_from_slice(&sk.sign(text.as_bytes()).to_bytes());
        format!("{text}\n\u{2014} {NAME} {}\n", STANDARD.encode(blob))
    }

    #[test]
    fn ed25519_checkpoint_verifies_and_parses() {
        let (sk, id, key) = note_key(1);
        let note = sign(&sk, &id, TEXT);
        let cp = verify(&note, &key, &id, "id").expect("signed by the log");
        assert_eq!(cp.origin, "log.example - 42");
        assert_eq!(cp.tree_size, 7);
        assert_eq!(cp.root_hash, [0; 32]);
    }

    #[test]
    fn a_signature_by_another_key_is_not_the_logs() {
        let (sk, id, key) = note_key(1);
        let (other_sk, other_id, _) = note_key(2);
        // Another key's line only: nothing with our hint.
        let note = sign(&other_sk, &other_id, TEXT);
        assert!(matches!(
            verify(&note, &key, &id, "id"),
            Err(Error::CheckpointNotSignedByLog { .. })
        ));
        // Our hint, someone else's signature.
        let note = sign(&other_sk, &id, TEXT);
        assert!(matches!(
            verify(&note, &key, &id, "id"),
            Err(Error::CheckpointSignature { .. })
        ));
        // A cosignature by another key next to ours is fine.
        let ours = sign(&sk, &id, TEXT);
        let theirs = sign(&other_sk, &other_id, TEXT);
        let both = format!("{ours}{}", theirs.split_at(TEXT.len() + 1).1);
        assert!(verify(&both, &key, &id, "id").is_ok());
    }

    #[test]
    fn altered_text_fails_the_signature() {
        let (sk, id, key) = note_key(1);
        let note = sign(&sk, &id, TEXT).replacen("\n7\n", "\n8\n", 1);
        assert!(matches!(
            verify(&note, &key, &id, "id"),
            Err(Error::CheckpointSignature { .. })
        ));
    }

    #[test]
    fn malformed_notes_are_refused() {
        let (sk, id, key) = note_key(1);
        let good = sign(&sk, &id, TEXT);
        let cases = [
            good.replace("\n\n", "\n"),
            good.trim_end().to_owned(),
            good.replace('\u{2014}', "-"),
            good.replacen(&format!("\u{2014} {NAME} "), "\u{2014} ", 1),
            format!("{TEXT}\n"),
            format!("{TEXT}\n\u{2014} {NAME} AAAA\n"),
            format!("{TEXT}\n\u{2014} {NAME} !!!!\n"),
        ];
        for case in cases {
            assert!(
                matches!(
                    verify(&case, &key, &id, "id"),
                    Err(Error::MalformedCheckpoint(_))
                ),
                "{case:?}"
            );
        }
        // Signed but malformed bodies: checked after the signature.
        for text in [
            "\n7\nAAAA\n",
            "o\n07\nAAAA\n",
            "o\n7\nAAAA\n",
            "o\n-7\n",
            "o\n",
        ] {
            let note = sign(&sk, &id, text);
            assert!(
                matches!(
                    verify(&note, &key, &id, "id"),
                    Err(Error::MalformedCheckpoint(_))
                ),
                "{text:?}"
            );
        }
    }
}
