//! The signed entry timestamp (SET, the bundle's `inclusionPromise`): Rekor v1's signature
//! over the entry's body, log position and integration time.
//!
//! The signed bytes are the RFC 8785 canonical JSON of
//! `{"body": base64(canonicalizedBody), "integratedTime": n, "logID": hex(logId), "logIndex": n}`.
//! With these four keys (already in sorted order), values that are base64 or hex strings
//! (nothing to escape) and integers below 2^53 (checked when the entry was read), RFC 8785
//! output is exactly the `format!` below, so no canonicalizer is needed to reproduce it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::bundle::{LogEntry, Promise};
use crate::error::Error;
use crate::keys::LogKey;

/// The bytes Rekor signed for `entry`'s SET.
pub(crate) fn signed_payload(entry: &LogEntry<'_>, integrated_time: i64) -> String {
    format!(
        r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
        STANDARD.encode(entry.body),
        integrated_time,
        hex::encode(entry.log_id),
        entry.log_index,
    )
}

/// Verifies the SET `promise` of `entry` with the log's key.
pub(crate) fn verify(
    entry: &LogEntry<'_>,
    promise: &Promise<'_>,
    key: &LogKey,
    log_id_hex: &str,
) -> Result<(), Error> {
    let payload = signed_payload(entry, promise.integrated_time);
    if key.verifies(promise.signed_entry_timestamp, payload.as_bytes()) {
        Ok(())
    } else {
        Err(Error::SignedEntryTimestamp {
            log_id: log_id_hex.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::InclusionProof;

    #[test]
    fn payload_is_rfc8785_canonical_json() {
        let entry = LogEntry {
            log_index: 25_915_956,
            log_id: &[0xd3, 0x2f],
            kind: "hashedrekord",
            version: "0.0.1",
            body: b"{\"a\":1}",
            promise: None,
            proof: InclusionProof {
                index: 0,
                tree_size: 1,
                root_hash: &[],
                hashes: &[],
                checkpoint: "",
            },
        };
        let payload = signed_payload(&entry, 1_712_085_549);
        assert_eq!(
            payload,
            r#"{"body":"eyJhIjoxfQ==","integratedTime":1712085549,"logID":"d32f","logIndex":25915956}"#
        );
        // Same as serde_json's compact output of a sorted map, which is RFC 8785 here.
        let value: serde_json::Value = serde_json::from_str(&payload).expect("valid JSON");
        assert_eq!(
            serde_json::to_string(&value).expect("serializable"),
            payload
        );
    }
}
