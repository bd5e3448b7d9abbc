//! One fetch of one blob from one provider, with the outcome classified for the queue:
//! data that fails verification is `Corrupt` (the provider is penalised), anything else is
//! `Failed`. Either way the verified prefix stays in the store and the next attempt asks
//! only for what is missing.

use futures::StreamExt;
use iroh::{Endpoint, EndpointId};
use iroh_blobs::api::remote::GetProgressItem;
use iroh_blobs::get::GetError;
use iroh_blobs::get::fsm::DecodeError;
use iroh_blobs::{Hash, HashAndFormat};

use accord_mirror::{BlobHash, Outcome};

/// What one fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub outcome: Outcome,
    /// Payload bytes received from this provider in this fetch (verified or not).
    pub bytes: u64,
}

/// Fetches what is missing of `hash` from `from`; `progress` sees payload bytes so far.
/// A provider that sends nothing for `stall_after` (connecting included) is cut off:
/// `Stalled`.
pub async fn fetch(
    store: &iroh_blobs::api::Store,
    endpoint: &Endpoint,
    from: EndpointId,
    hash: &BlobHash,
    stall_after: std::time::Duration,
    mut progress: impl FnMut(u64),
) -> Fetched {
    let conn =
        match tokio::time::timeout(stall_after, endpoint.connect(from, iroh_blobs::ALPN)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Fetched {
                    outcome: Outcome::Failed(format!("cannot connect: {e}")),
                    bytes: 0,
                };
            }
            Err(_) => {
                return Fetched {
                    outcome: Outcome::Stalled,
                    bytes: 0,
                };
            }
        };
    let mut bytes = 0;
    let mut stream = std::pin::pin!(
        store
            .remote()
            .fetch(conn.clone(), HashAndFormat::raw(Hash::from_bytes(*hash)))
            .stream()
    );
    let outcome = loop {
        let Ok(item) = tokio::time::timeout(stall_after, stream.next()).await else {
            break Outcome::Stalled;
        };
        match item {
            Some(GetProgressItem::Progress(n)) => {
                bytes = n;
                progress(n);
            }
            Some(GetProgressItem::Done(stats)) => {
                bytes = stats.payload_bytes_read;
                break Outcome::Complete;
            }
            Some(GetProgressItem::Error(e)) => break classify(&e),
            None => break Outcome::Failed("the fetch ended without a result".into()),
        }
    };
    conn.close(0u32.into(), b"done");
    Fetched { outcome, bytes }
}

fn classify(e: &GetError) -> Outcome {
    match e {
        GetError::Decode {
            source: DecodeError::LeafHashMismatch { .. } | DecodeError::ParentHashMismatch { .. },
            ..
        } => Outcome::Corrupt,
        other => Outcome::Failed(other.to_string()),
    }
}
