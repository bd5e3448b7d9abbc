//! The mirror's I/O on loopback with real stores and endpoints: a provider that serves corrupt
//! bytes is caught within a chunk group and penalised, the blob completes from an honest
//! provider without refetching the verified prefix, strangers are refused, nothing
//! unverified is ever exported, and GC keeps exactly what is pinned.

use std::net::SocketAddr;
use std::path::Path;

use accord_blobs::fetch::fetch;
use accord_blobs::provider::{AllowList, GatedProvider};
use accord_blobs::{BlobStore, MirrorError, endpoint};
use accord_mirror::{MirrorQueue, Outcome, Want};
use iroh::address_lookup::MemoryLookup;
use iroh::endpoint::{Connection, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, EndpointId};
use iroh_blobs::provider::events::EventSender;
use iroh_blobs::provider::{StreamPair, handle_stream};
use iroh_blobs::util::SendStream;
use sha2::Digest;

const SIZE: usize = 4 << 20;

fn data(seed: u8) -> Vec<u8> {
    // Incompressible and different per seed, without a RNG dependency.
    let mut out = Vec::with_capacity(SIZE);
    let mut h = blake3::Hasher::new();
    h.update(&[seed]);
    let mut xof = h.finalize_xof();
    out.resize(SIZE, 0);
    xof.fill(&mut out);
    out
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn node(seed: u8, dir: &Path, lookup: &MemoryLookup) -> (BlobStore, Endpoint) {
    let store = BlobStore::open(dir).await.expect("store");
    let ep = endpoint::bind([seed; 32], loopback(), lookup)
        .await
        .expect("endpoint");
    (store, ep)
}

fn addr_of(ep: &Endpoint) -> Vec<SocketAddr> {
    ep.bound_sockets()
}

/// Serves the real provider protocol but flips one byte of everything it sends, at
/// `FLIP_AT` bytes into each response stream.
#[derive(Debug, Clone)]
struct CorruptProvider {
    store: iroh_blobs::api::Store,
}

const FLIP_AT: u64 = 1 << 20;

struct Corrupting {
    inner: iroh::endpoint::SendStream,
    sent: u64,
}

impl SendStream for Corrupting {
    async fn send_bytes(&mut self, bytes: bytes::Bytes) -> std::io::Result<()> {
        let v = self.corrupt(&bytes);
        self.inner.send_bytes(v.into()).await
    }
    async fn send(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let v = self.corrupt(buf);
        SendStream::send(&mut self.inner, &v).await
    }
    async fn sync(&mut self) -> std::io::Result<()> {
        SendStream::sync(&mut self.inner).await
    }
    fn reset(&mut self, code: VarInt) -> std::io::Result<()> {
        SendStream::reset(&mut self.inner, code)
    }
    async fn stopped(&mut self) -> std::io::Result<Option<VarInt>> {
        SendStream::stopped(&mut self.inner).await
    }
    fn id(&self) -> u64 {
        SendStream::id(&self.inner)
    }
}

impl Corrupting {
    fn corrupt(&mut self, buf: &[u8]) -> Vec<u8> {
        let mut v = buf.to_vec();
        let start = self.sent;
        self.sent += buf.len() as u64;
        if (start..self.sent).contains(&FLIP_AT) {
            v[(FLIP_AT - start) as usize] ^= 0x40;
        }
        v
    }
}

impl ProtocolHandler for CorruptProvider {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        while let Ok((send, recv)) = conn.accept_bi().await {
            let pair = StreamPair::new(
                conn.stable_id() as u64,
                recv,
                Corrupting {
                    inner: send,
                    sent: 0,
                },
                EventSender::DEFAULT,
            );
            let store = self.store.clone();
            tokio::spawn(async move {
                let _ = handle_stream(pair, store).await;
            });
        }
        Ok(())
    }
}

fn want(hash: [u8; 32]) -> Want {
    Want {
        hash,
        size: SIZE as u64,
        wanted_by: ["CAP-B01@1.0.0/app.bin".to_owned()].into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_provider_is_caught_and_the_blob_completes_from_another() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lookup = MemoryLookup::new();
    let content = data(1);
    let file = tmp.path().join("app.bin");
    std::fs::write(&file, &content).expect("write");

    // A: honest provider. B: serves the same blob, corrupted in flight. C: mirrors.
    let (a_store, a_ep) = node(1, &tmp.path().join("a"), &MemoryLookup::new()).await;
    let (b_store, b_ep) = node(2, &tmp.path().join("b"), &MemoryLookup::new()).await;
    let (c_store, c_ep) = node(3, &tmp.path().join("c"), &lookup).await;
    let (hash, size) = a_store
        .import(&file, "release/CAP-B01@1.0.0/app.bin", |_| {})
        .await
        .expect("import a");
    assert_eq!(size, SIZE as u64);
    assert_eq!(
        hash,
        *blake3::hash(&content).as_bytes(),
        "store hash is BLAKE3"
    );
    b_store
        .import(&file, "release/CAP-B01@1.0.0/app.bin", |_| {})
        .await
        .expect("import b");

    let allow = AllowList::default();
    allow.set([c_ep.id()]);
    let a_router = Router::builder(a_ep.clone())
        .accept(
            iroh_blobs::ALPN,
            GatedProvider::new(a_store.inner().clone(), allow.clone(), 4, 8),
        )
        .spawn();
    let b_router = Router::builder(b_ep.clone())
        .accept(
            iroh_blobs::ALPN,
            CorruptProvider {
                store: b_store.inner().clone(),
            },
        )
        .spawn();
    endpoint::set_address(&lookup, a_ep.id(), &addr_of(&a_ep));
    endpoint::set_address(&lookup, b_ep.id(), &addr_of(&b_ep));

    c_store
        .pin("release/CAP-B01@1.0.0/app.bin", hash)
        .await
        .expect("pin");
    let mut q: MirrorQueue<EndpointId> = MirrorQueue::new(Default::default());
    q.set_wanted(vec![want(hash)]);
    let now = std::time::Instant::now();

    // Only B is known at first: the corruption is detected, the verified prefix is kept.
    q.set_provider(b_ep.id(), [hash].into());
    let acts = q.poll(now);
    assert_eq!(acts.len(), 1);
    let got = fetch(
        c_store.inner(),
        &c_ep,
        b_ep.id(),
        &hash,
        std::time::Duration::from_secs(120),
        |_| {},
    )
    .await;
    assert_eq!(got.outcome, Outcome::Corrupt, "{got:?}");
    let after_b = c_store.local(&hash).await.expect("local");
    assert!(!after_b.complete);
    // Caught within the chunk group holding the flipped byte: everything before the
    // 16 KiB group that contains it is kept.
    assert!(
        after_b.bytes > 0 && after_b.bytes < FLIP_AT,
        "verified prefix {}",
        after_b.bytes
    );
    q.finished(&hash, &b_ep.id(), got.outcome, after_b.bytes, now);
    assert!(q.is_penalised(&b_ep.id()));
    // Nothing unverified can be exported.
    let dest = tmp.path().join("out.bin");
    let err = c_store
        .export_verified(&hash, &[0; 32], &dest, |_| {})
        .await
        .expect_err("partial export");
    assert!(matches!(err, MirrorError::Incomplete { .. }), "{err}");
    assert!(!dest.exists());

    // A appears: the queue picks it (B is penalised), and only the missing bytes move.
    q.set_provider(a_ep.id(), [hash].into());
    let acts = q.poll(now);
    assert_eq!(
        acts,
        vec![accord_mirror::Action::Fetch {
            hash,
            from: a_ep.id()
        }]
    );
    let got = fetch(
        c_store.inner(),
        &c_ep,
        a_ep.id(),
        &hash,
        std::time::Duration::from_secs(120),
        |_| {},
    )
    .await;
    assert_eq!(got.outcome, Outcome::Complete);
    // Only what was missing moves: at most what C lacked when B was cut off (the store may
    // have committed more of B's verified prefix since that reading, never less), and at
    // least everything from the corrupt chunk group on (nothing after it was kept).
    assert!(
        got.bytes <= SIZE as u64 - after_b.bytes && got.bytes >= SIZE as u64 - FLIP_AT,
        "A sent {} bytes; C lacked {} after B, and nothing from {FLIP_AT} on was kept",
        got.bytes,
        SIZE as u64 - after_b.bytes
    );
    let local = c_store.local(&hash).await.expect("local");
    assert!(local.complete);
    q.finished(&hash, &a_ep.id(), Outcome::Complete, local.bytes, now);
    assert_eq!(q.pending(), 0);
    assert_eq!(q.counters().corrupt, 1);

    // Export re-verifies against the signed SHA-256: a wrong digest writes nothing.
    let sha: [u8; 32] = sha2::Sha256::digest(&content).into();
    let err = c_store
        .export_verified(&hash, &[7; 32], &dest, |_| {})
        .await
        .expect_err("wrong sha");
    assert!(matches!(err, MirrorError::Corrupt(_)), "{err}");
    assert!(!dest.exists());
    let w = c_store
        .export_verified(&hash, &sha, &dest, |_| {})
        .await
        .expect("export");
    assert_eq!(w.size, SIZE as u64);
    assert_eq!(std::fs::read(&dest).expect("read"), content);

    // A stranger (not on A's allow-list) gets nothing.
    let (d_store, d_ep) = node(4, &tmp.path().join("d"), &lookup).await;
    let got = fetch(
        d_store.inner(),
        &d_ep,
        a_ep.id(),
        &hash,
        std::time::Duration::from_secs(120),
        |_| {},
    )
    .await;
    assert!(matches!(got.outcome, Outcome::Failed(_)), "{got:?}");
    assert_eq!(d_store.local(&hash).await.expect("local").bytes, 0);

    a_router.shutdown().await.expect("a");
    b_router.shutdown().await.expect("b");
    for s in [&a_store, &b_store, &c_store, &d_store] {
        s.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_rot_in_the_store_is_caught_on_export_and_gc_keeps_only_pins() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("s");
    let store = BlobStore::open(&dir).await.expect("store");
    let (one, two) = (data(5), data(6));
    std::fs::write(tmp.path().join("one"), &one).expect("w");
    std::fs::write(tmp.path().join("two"), &two).expect("w");
    let (h1, _) = store
        .import(&tmp.path().join("one"), "release/X@1.0.0/one", |_| {})
        .await
        .expect("import");
    let (h2, _) = store
        .import(&tmp.path().join("two"), "release/X@2.0.0/two", |_| {})
        .await
        .expect("import");
    assert_eq!(store.pins().await.expect("pins").len(), 2);

    // Unpin release 1.0.0 and collect: its blob goes, the pinned one stays.
    store.unpin("release/X@1.0.0/one").await.expect("unpin");
    store.gc_now().await.expect("gc");
    store.gc_now().await.expect("gc twice in a row works");
    let left = store.list().await.expect("list");
    assert!(!left.contains(&h1), "unpinned blob survived GC");
    assert!(left.contains(&h2), "pinned blob was collected");

    // Flip a byte of the stored data file: export notices, writes nothing.
    let data_file = dir.join("data").join(format!("{}.data", hex::encode(h2)));
    let mut bytes = std::fs::read(&data_file).expect("data file");
    bytes[3 << 20] ^= 1;
    std::fs::write(&data_file, bytes).expect("rot");
    let dest = tmp.path().join("two.out");
    let sha: [u8; 32] = sha2::Sha256::digest(&two).into();
    let err = store
        .export_verified(&h2, &sha, &dest, |_| {})
        .await
        .expect_err("rotten export");
    assert!(matches!(err, MirrorError::Corrupt(_)), "{err}");
    assert!(!dest.exists());
    store.shutdown().await.expect("shutdown");
}

/// Announces every blob, accepts the request, then sends nothing.
#[derive(Debug, Clone)]
struct SilentProvider;

impl ProtocolHandler for SilentProvider {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let _held = conn.accept_bi().await;
        conn.closed().await;
        Ok(())
    }
}

/// A provider that stalls is cut off after the stall deadline (`Stalled`, not a hang), so
/// the queue penalises it and gives the blob to another provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_stalls_is_cut_off() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lookup = MemoryLookup::new();
    let (_s_store, s_ep) = node(7, &tmp.path().join("s"), &MemoryLookup::new()).await;
    let (c_store, c_ep) = node(8, &tmp.path().join("c"), &lookup).await;
    let _router = Router::builder(s_ep.clone())
        .accept(iroh_blobs::ALPN, SilentProvider)
        .spawn();
    endpoint::set_address(&lookup, s_ep.id(), &addr_of(&s_ep));
    let hash = *blake3::hash(b"never sent").as_bytes();
    let got = fetch(
        c_store.inner(),
        &c_ep,
        s_ep.id(),
        &hash,
        std::time::Duration::from_secs(2),
        |_| {},
    )
    .await;
    assert_eq!(got.outcome, Outcome::Stalled, "{got:?}");
}
