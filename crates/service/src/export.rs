//! Who exported an offline bundle, and when: a site's view of a jurisdiction is refreshed
//! by an import only when a node key of that jurisdiction signed the export's id, time and
//! catalogue (issue 16). The time is otherwise the bundle's word: set to the far future, it
//! would switch the staleness check off for good; replayed with a fresh time, an old
//! bundle would pass for a recent one.

use accord_protocol::KeyId;
use accord_trust::RootChain;

/// A clock may run this far ahead of ours before an export time counts as in the future.
const SKEW_SECS: i64 = 300;

/// Checks the export's signature: by a node key (current or retired) that `chain` lists for
/// `jurisdiction`, over `signed` (`accord_bundle::ExportInfo::signed_bytes`), with `at` no
/// later than `now` (Unix seconds) allows.
pub fn verify(
    chain: &RootChain,
    jurisdiction: &str,
    at: i64,
    now: i64,
    signed: &[u8],
    key: &str,
    signature: &str,
) -> Result<(), String> {
    if key.is_empty() || signature.is_empty() {
        return Err("the export is not signed by the node that made it".into());
    }
    let id = KeyId::parse(key).map_err(|_| format!("the export's key id {key:?} is malformed"))?;
    let standing = chain.node_key(&id).ok_or_else(|| {
        format!("the export is signed by key {key}, which no root of the chain lists as a node key")
    })?;
    if standing.principal().as_str() != jurisdiction {
        return Err(format!(
            "the export says {jurisdiction} made it, but it is signed by a node key of {}",
            standing.principal()
        ));
    }
    let sig = hex::decode(signature)
        .ok()
        .filter(|s| s.len() == 64)
        .ok_or("the export's signature is not 64 bytes of hex")?;
    if !standing.key().verify(signed, &sig) {
        return Err(
            "the export's signature does not verify: its id, time or catalogue was changed".into(),
        );
    }
    if at > now.saturating_add(SKEW_SECS) {
        return Err(format!(
            "the export claims to be made at {}, later than now",
            accord_protocol::Timestamp::from_unix(at)
        ));
    }
    Ok(())
}
