//! The blob store: iroh-blobs' persistent store in the node's data dir (`blobs/`, its own
//! redb file beside `node.redb`).
//!
//! Invariants kept here, whoever calls:
//! - a blob is only ever read out when it is complete, through the bao outboard
//!   (`export_bao` re-checks every 16 KiB group against the BLAKE3 tree), and written to a
//!   temporary file that is renamed into place only after the SHA-256 and BLAKE3 of what was
//!   written match what the caller expects; a corrupt blob is never visible under its name;
//! - every blob the node wants is pinned by a named tag before it is fetched, so garbage
//!   collection can remove neither a complete artifact nor the verified prefix of a partial
//!   download; GC runs only when asked (`gc_now`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use iroh_blobs::api::blobs::{AddPathOptions, AddProgressItem, EncodedItem, ImportMode};
use iroh_blobs::protocol::ChunkRanges;
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::store::fs::options::Options;
use iroh_blobs::store::{GcConfig, ProtectCb, ProtectOutcome};
use iroh_blobs::{BlobFormat, Hash, HashAndFormat};
use sha2::Digest;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::MirrorError;
use accord_mirror::BlobHash;

/// Tags that pin blobs are named `<prefix><anything>`; everything Accord pins starts with
/// one of these, so `accord gc` can tell its own pins from anything else.
pub use accord_mirror::wants::RELEASE_TAG;

/// What a verified export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    pub sha256: [u8; 32],
    pub blake3: [u8; 32],
}

/// How much of a blob is held locally, all of it verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    pub bytes: u64,
    pub complete: bool,
}

type GcRequest = oneshot::Sender<()>;

#[derive(Debug, Clone)]
pub struct BlobStore {
    store: FsStore,
    gc: mpsc::Sender<GcRequest>,
}

impl BlobStore {
    /// Opens (creating) the store in `dir`.
    pub async fn open(dir: &Path) -> Result<BlobStore, MirrorError> {
        let (gc, gc_rx) = mpsc::channel::<GcRequest>(4);
        let mut options = Options::new(dir);
        // The store commits its metadata (which blobs exist, how much is verified) in
        // batches; a shorter batch bounds what a crash can lose to 100 ms of progress, so a
        // restarted download resumes from nearly where it stopped.
        options.batch.max_write_duration = Duration::from_millis(100);
        options.gc = Some(GcConfig {
            interval: Duration::from_millis(20),
            add_protected: Some(gc_gate(gc_rx)),
        });
        let store = FsStore::load_with_opts(dir.join("blobs.db"), options)
            .await
            .map_err(|e| MirrorError::Store(format!("cannot open {}: {e}", dir.display())))?;
        Ok(BlobStore { store, gc })
    }

    /// The iroh-blobs store handle (for the provider and fetches).
    pub fn inner(&self) -> &iroh_blobs::api::Store {
        &self.store
    }

    /// Imports a file (copied), pinned under `tag`; reports bytes hashed so far.
    pub async fn import(
        &self,
        path: &Path,
        tag: &str,
        mut progress: impl FnMut(u64),
    ) -> Result<(BlobHash, u64), MirrorError> {
        let path = std::path::absolute(path)
            .map_err(|e| MirrorError::Store(format!("{}: {e}", path.display())))?;
        let mut stream = self
            .store
            .blobs()
            .add_path_with_opts(AddPathOptions {
                path: path.clone(),
                format: BlobFormat::Raw,
                mode: ImportMode::Copy,
            })
            .stream()
            .await;
        let mut size = 0;
        while let Some(item) = stream.next().await {
            match item {
                AddProgressItem::Size(s) => size = s,
                AddProgressItem::CopyProgress(n) | AddProgressItem::OutboardProgress(n) => {
                    progress(n)
                }
                AddProgressItem::CopyDone => {}
                AddProgressItem::Done(temp) => {
                    let hash = temp.hash();
                    self.pin(tag, hash.into()).await?;
                    drop(temp);
                    return Ok((hash.into(), size));
                }
                AddProgressItem::Error(e) => {
                    return Err(MirrorError::Store(format!(
                        "cannot import {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Err(MirrorError::Store(format!(
            "import of {} ended without a result",
            path.display()
        )))
    }

    /// Imports bytes as they arrive (a proposal streamed through the API), pinned under
    /// `tag`; nothing outside the store is read.
    pub async fn import_stream(
        &self,
        data: impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Sync + 'static,
        tag: &str,
    ) -> Result<(BlobHash, u64), MirrorError> {
        let mut stream = self.store.blobs().add_stream(data).await.stream().await;
        let mut size = 0;
        while let Some(item) = stream.next().await {
            match item {
                AddProgressItem::Size(s) => size = s,
                AddProgressItem::CopyProgress(_)
                | AddProgressItem::OutboardProgress(_)
                | AddProgressItem::CopyDone => {}
                AddProgressItem::Done(temp) => {
                    let hash = temp.hash();
                    self.pin(tag, hash.into()).await?;
                    drop(temp);
                    return Ok((hash.into(), size));
                }
                AddProgressItem::Error(e) => {
                    return Err(MirrorError::Store(format!("cannot import: {e}")));
                }
            }
        }
        Err(MirrorError::Store("import ended without a result".into()))
    }

    /// A complete blob's bytes, verified against its BLAKE3 tree as they are read (bao), in
    /// order, sent through a bounded channel (the reader's pace sets the store's). An error
    /// ends the stream; the receiver checks the digests of what it got.
    pub fn read_verified(
        &self,
        hash: BlobHash,
    ) -> mpsc::Receiver<Result<bytes::Bytes, MirrorError>> {
        let (tx, rx) = mpsc::channel(8);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(
                store
                    .blobs()
                    .export_bao(Hash::from_bytes(hash), ChunkRanges::all())
                    .stream()
            );
            let mut offset = 0u64;
            while let Some(item) = stream.next().await {
                let out = match item {
                    EncodedItem::Leaf(leaf) if leaf.offset == offset => {
                        offset += leaf.data.len() as u64;
                        Ok(leaf.data)
                    }
                    EncodedItem::Leaf(_) => Err(MirrorError::Corrupt(format!(
                        "blob {} is not contiguous at {offset}",
                        hex::encode(hash)
                    ))),
                    EncodedItem::Size(_) | EncodedItem::Parent(_) => continue,
                    EncodedItem::Done => return,
                    EncodedItem::Error(e) => Err(MirrorError::Corrupt(format!(
                        "blob {} failed verification in the store: {e:?}",
                        hex::encode(hash)
                    ))),
                };
                let stop = out.is_err();
                if tx.send(out).await.is_err() || stop {
                    return;
                }
            }
        });
        rx
    }

    /// Pins `hash` under `tag` (the blob need not be present yet).
    pub async fn pin(&self, tag: &str, hash: BlobHash) -> Result<(), MirrorError> {
        self.store
            .tags()
            .set(tag, HashAndFormat::raw(Hash::from_bytes(hash)))
            .await
            .map_err(|e| MirrorError::Store(format!("cannot pin {tag}: {e}")))
    }

    /// Every pin Accord made: tag name -> hash.
    pub async fn pins(&self) -> Result<Vec<(String, BlobHash)>, MirrorError> {
        let err = |e: &dyn std::fmt::Display| MirrorError::Store(format!("cannot list tags: {e}"));
        let mut out = Vec::new();
        let mut list = self
            .store
            .tags()
            .list_prefix(RELEASE_TAG)
            .await
            .map_err(|e| err(&e))?;
        while let Some(t) = list.next().await {
            let t = t.map_err(|e| err(&e))?;
            out.push((
                String::from_utf8_lossy(t.name.as_ref()).into_owned(),
                *t.hash.as_bytes(),
            ));
        }
        Ok(out)
    }

    pub async fn unpin(&self, tag: &str) -> Result<(), MirrorError> {
        self.store
            .tags()
            .delete(tag)
            .await
            .map(|_| ())
            .map_err(|e| MirrorError::Store(format!("cannot unpin {tag}: {e}")))
    }

    /// How much of `hash` is held (verified bytes; complete or not).
    pub async fn local(&self, hash: &BlobHash) -> Result<Local, MirrorError> {
        let bits = self
            .store
            .blobs()
            .observe(Hash::from_bytes(*hash))
            .await
            .map_err(|e| MirrorError::Store(format!("cannot read blob state: {e}")))?;
        Ok(Local {
            bytes: bits.total_bytes(),
            complete: bits.is_complete(),
        })
    }

    /// Every blob in the store, complete or partial.
    pub async fn list(&self) -> Result<HashSet<BlobHash>, MirrorError> {
        let hashes = self
            .store
            .blobs()
            .list()
            .hashes()
            .await
            .map_err(|e| MirrorError::Store(format!("cannot list blobs: {e}")))?;
        Ok(hashes.into_iter().map(|h| *h.as_bytes()).collect())
    }

    /// Writes a complete blob to `dest`, verified on the way out (bao against the BLAKE3
    /// tree, then SHA-256 and BLAKE3 of the bytes written against `expect`), through a
    /// temporary file that only becomes `dest` when everything matched.
    pub async fn export_verified(
        &self,
        hash: &BlobHash,
        expect_sha256: &[u8; 32],
        dest: &Path,
        mut progress: impl FnMut(u64),
    ) -> Result<Written, MirrorError> {
        use tokio::io::AsyncWriteExt;
        let local = self.local(hash).await?;
        if !local.complete {
            return Err(MirrorError::Incomplete {
                hash: hex::encode(hash),
                have: local.bytes,
            });
        }
        let (_private, tmp) = private_temp(dest)?;
        let io = |e: std::io::Error| MirrorError::Io(format!("{}: {e}", tmp.display()));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(io)?;
        let mut sha = sha2::Sha256::new();
        let mut b3 = blake3::Hasher::new();
        let mut size = 0u64;
        let mut stream = std::pin::pin!(
            self.store
                .blobs()
                .export_bao(Hash::from_bytes(*hash), ChunkRanges::all())
                .stream()
        );
        let result: Result<(), MirrorError> = async {
            while let Some(item) = stream.next().await {
                match item {
                    EncodedItem::Leaf(leaf) => {
                        if leaf.offset != size {
                            return Err(MirrorError::Corrupt(format!(
                                "blob {} is not contiguous at {size}",
                                hex::encode(hash)
                            )));
                        }
                        sha.update(&leaf.data);
                        b3.update(&leaf.data);
                        file.write_all(&leaf.data).await.map_err(io)?;
                        size += leaf.data.len() as u64;
                        progress(size);
                    }
                    EncodedItem::Size(_) | EncodedItem::Parent(_) => {}
                    EncodedItem::Done => return Ok(()),
                    EncodedItem::Error(e) => {
                        return Err(MirrorError::Corrupt(format!(
                            "blob {} failed verification in the store: {e:?}",
                            hex::encode(hash)
                        )));
                    }
                }
            }
            Ok(())
        }
        .await;
        let written = Written {
            size,
            sha256: sha.finalize().into(),
            blake3: *b3.finalize().as_bytes(),
        };
        let checked = result.and_then(|()| {
            if &written.blake3 != hash {
                Err(MirrorError::Corrupt(format!(
                    "blob {} read back with BLAKE3 {}",
                    hex::encode(hash),
                    hex::encode(written.blake3)
                )))
            } else if &written.sha256 != expect_sha256 {
                Err(MirrorError::Corrupt(format!(
                    "blob {} has SHA-256 {}, the signed statement says {}",
                    hex::encode(hash),
                    hex::encode(written.sha256),
                    hex::encode(expect_sha256)
                )))
            } else {
                Ok(())
            }
        });
        if let Err(e) = checked {
            drop(file);
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        file.sync_all().await.map_err(io)?;
        drop(file);
        tokio::fs::rename(&tmp, dest)
            .await
            .map_err(|e| MirrorError::Io(format!("{}: {e}", dest.display())))?;
        Ok(written)
    }

    /// Runs one garbage collection now: every blob not pinned by a tag is deleted (partial
    /// ones too). Waits until the run has finished.
    pub async fn gc_now(&self) -> Result<(), MirrorError> {
        let (tx, rx) = oneshot::channel();
        self.gc
            .send(tx)
            .await
            .map_err(|_| MirrorError::Store("garbage collection is not running".into()))?;
        tokio::time::timeout(Duration::from_secs(300), rx)
            .await
            .map_err(|_| MirrorError::Store("garbage collection did not finish in 5 min".into()))?
            .map_err(|_| MirrorError::Store("garbage collection stopped".into()))
    }

    /// Flushes and closes the store (its redb file stays locked until this is done).
    pub async fn shutdown(&self) -> Result<(), MirrorError> {
        self.store
            .shutdown()
            .await
            .map_err(|e| MirrorError::Store(format!("cannot close the blob store: {e}")))
    }
}

/// iroh-blobs runs GC on a timer with no manual trigger; this callback holds every run until
/// `gc_now` asks for one, and answers the request when the next run begins, which is after
/// the previous one has swept.
fn gc_gate(rx: mpsc::Receiver<GcRequest>) -> ProtectCb {
    let rx = Arc::new(Mutex::new(rx));
    let pending: Arc<Mutex<Option<GcRequest>>> = Arc::new(Mutex::new(None));
    Arc::new(move |_live: &mut HashSet<Hash>| {
        let rx = rx.clone();
        let pending = pending.clone();
        Box::pin(async move {
            if let Some(done) = pending.lock().await.take() {
                let _ = done.send(());
            }
            match rx.lock().await.recv().await {
                Some(next) => {
                    *pending.lock().await = Some(next);
                    ProtectOutcome::Continue
                }
                // The store is going away: never sweep.
                None => ProtectOutcome::Abort,
            }
        })
    })
}

/// A temporary file for `dest`: in a fresh directory of its own (mode 0700, random name)
/// beside `dest`, so nothing planted at a predictable name — a symlink, a file another user
/// controls — is ever written through. The directory goes when the guard is dropped.
pub fn private_temp(dest: &Path) -> Result<(tempfile::TempDir, PathBuf), MirrorError> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = tempfile::Builder::new()
        .prefix(".accord-partial-")
        .tempdir_in(parent)
        .map_err(|e| MirrorError::Io(format!("{}: {e}", parent.display())))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "artifact".into());
    let path = dir.path().join(name);
    Ok((dir, path))
}
