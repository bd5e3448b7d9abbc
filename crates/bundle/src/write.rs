//! Writing a bundle as a stream: everything small first, then each artifact's bytes as
//! they come from the blob store, hashed again on the way (a bundle never carries bytes
//! other than the statement's). Memory stays bounded by the small objects; nothing is
//! staged on disk.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use crate::layout::{
    self, Artifact, BLAKE3, CATALOGUE_REF, Descriptor, EXPORT_ID, EXPORT_KEY, EXPORT_SIGNATURE,
    EXPORTED_AT, EXPORTED_BY, ExportInfo, Index, Manifest, MediaType, REF_NAME, RELEASE, Release,
    TITLE,
};

/// A bundle being written. `begin` writes all but the artifacts; then `artifact` once for
/// each of `pending()`, in that order; then `finish`.
pub struct Writer<W: Write> {
    tar: tar::Builder<W>,
    pending: Vec<Artifact>,
    next: usize,
}

impl<W: Write> std::fmt::Debug for Writer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("pending", &self.pending.len())
            .field("next", &self.next)
            .finish()
    }
}

impl<W: Write> Writer<W> {
    /// Writes the layout, the root chain (`roots`, JSON array), the catalogue's changes
    /// (`catalogue`, one sync message), each release's statement and manifest, and the
    /// index naming them, tagged with who exported it and when.
    pub fn begin(
        out: W,
        roots: &[u8],
        catalogue: &[u8],
        releases: &[Release],
        export: &ExportInfo,
    ) -> io::Result<Writer<W>> {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        put(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let empty = b"{}";
        let empty_desc = Descriptor::of(MediaType::EMPTY, empty);
        put_blob(&mut tar, empty)?;
        let roots_desc = Descriptor::of(MediaType::ROOTS, roots);
        put_blob(&mut tar, roots)?;
        let cat_desc = Descriptor::of(MediaType::CATALOGUE, catalogue);
        put_blob(&mut tar, catalogue)?;
        let catalogue_manifest = Manifest {
            schema_version: 2,
            media_type: MediaType::MANIFEST.into(),
            artifact_type: MediaType::CATALOGUE_ARTIFACT.into(),
            config: empty_desc,
            layers: vec![roots_desc, cat_desc],
            annotations: BTreeMap::new(),
        };
        let mut manifests = vec![manifest_entry(
            &mut tar,
            &catalogue_manifest,
            CATALOGUE_REF,
        )?];
        let mut pending: Vec<Artifact> = Vec::new();
        for r in releases {
            let statement = Descriptor::of(MediaType::STATEMENT, &r.statement);
            put_blob(&mut tar, &r.statement)?;
            let layers = r
                .artifacts
                .iter()
                .map(|a| Descriptor {
                    media_type: MediaType::ARTIFACT.into(),
                    digest: layout::digest(&a.sha256),
                    size: a.size,
                    annotations: BTreeMap::from([
                        (TITLE.to_owned(), a.name.clone()),
                        (BLAKE3.to_owned(), hex::encode(a.blake3)),
                    ]),
                })
                .collect();
            let m = Manifest {
                schema_version: 2,
                media_type: MediaType::MANIFEST.into(),
                artifact_type: MediaType::RELEASE_ARTIFACT.into(),
                config: statement,
                layers,
                annotations: BTreeMap::from([(RELEASE.to_owned(), r.label.clone())]),
            };
            manifests.push(manifest_entry(&mut tar, &m, &layout::ref_name(&r.label))?);
            for a in &r.artifacts {
                if !pending.iter().any(|p| p.sha256 == a.sha256) {
                    pending.push(a.clone());
                }
            }
        }
        let index = Index {
            schema_version: 2,
            media_type: MediaType::INDEX.into(),
            manifests,
            annotations: BTreeMap::from([
                (EXPORT_ID.to_owned(), export.id.clone()),
                (EXPORTED_BY.to_owned(), export.jurisdiction.clone()),
                (EXPORTED_AT.to_owned(), export.at.to_string()),
                (EXPORT_KEY.to_owned(), export.key.clone()),
                (EXPORT_SIGNATURE.to_owned(), export.signature.clone()),
            ]),
        };
        put(&mut tar, "index.json", &json(&index)?)?;
        Ok(Writer {
            tar,
            pending,
            next: 0,
        })
    }

    /// The output, e.g. to cut a split bundle before the next artifact
    /// (`parts::SplitWriter::boundary`).
    pub fn output(&mut self) -> &mut W {
        self.tar.get_mut()
    }

    /// The artifacts still to write, in the order they must come.
    pub fn pending(&self) -> &[Artifact] {
        &self.pending[self.next..]
    }

    /// Writes the next artifact's bytes from `data`, checking as they pass that they are
    /// exactly its size, SHA-256 and BLAKE3. On a mismatch the bundle is unusable: the
    /// caller removes the file.
    pub fn artifact(&mut self, data: impl Read) -> io::Result<()> {
        let Some(a) = self.pending.get(self.next).cloned() else {
            return Err(io::Error::other("every artifact is written already"));
        };
        let mut header = header(a.size);
        let mut check = Hashing::new(data.take(a.size));
        self.tar
            .append_data(&mut header, layout::blob_path(&a.sha256), &mut check)?;
        let (n, sha, b3) = check.finish();
        if n != a.size || sha != a.sha256 || b3 != a.blake3 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "artifact {} is not the statement's bytes ({n} of {} bytes, sha256 {})",
                    a.name,
                    a.size,
                    hex::encode(sha)
                ),
            ));
        }
        self.next += 1;
        Ok(())
    }

    /// Ends the tar; refuses if an artifact was not written.
    pub fn finish(self) -> io::Result<W> {
        if let Some(a) = self.pending.get(self.next) {
            return Err(io::Error::other(format!(
                "artifact {} was not written",
                a.name
            )));
        }
        self.tar.into_inner()
    }
}

fn json<T: serde::Serialize>(v: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(io::Error::other)
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn put<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> io::Result<()> {
    let mut h = header(bytes.len() as u64);
    tar.append_data(&mut h, path, bytes)
}

fn put_blob<W: Write>(tar: &mut tar::Builder<W>, bytes: &[u8]) -> io::Result<()> {
    put(tar, &layout::blob_path(&layout::sha256(bytes)), bytes)
}

/// Writes a manifest blob and returns its entry for the index, named `reference`.
fn manifest_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    m: &Manifest,
    reference: &str,
) -> io::Result<Descriptor> {
    let bytes = json(m)?;
    put_blob(tar, &bytes)?;
    let mut d = Descriptor::of(MediaType::MANIFEST, &bytes);
    d.annotations.insert(REF_NAME.into(), reference.into());
    Ok(d)
}

/// A reader that hashes (SHA-256 and BLAKE3) and counts what passes through it. SHA-256
/// runs on a second thread while this one computes BLAKE3 and hands the bytes on: on two
/// cores a bundle is checked at the speed of the slower hash, not of both in a row.
pub(crate) struct Hashing<R> {
    inner: R,
    sha: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    sha_thread: Option<std::thread::JoinHandle<[u8; 32]>>,
    b3: blake3::Hasher,
    n: u64,
}

impl<R: Read> Hashing<R> {
    pub(crate) fn new(inner: R) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
        let sha_thread = std::thread::spawn(move || {
            use sha2::Digest;
            let mut sha = sha2::Sha256::new();
            for chunk in rx {
                sha.update(&chunk);
            }
            sha.finalize().into()
        });
        Hashing {
            inner,
            sha: Some(tx),
            sha_thread: Some(sha_thread),
            b3: blake3::Hasher::new(),
            n: 0,
        }
    }

    pub(crate) fn finish(mut self) -> (u64, [u8; 32], [u8; 32]) {
        drop(self.sha.take());
        let sha = self
            .sha_thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or([0; 32]);
        (self.n, sha, *self.b3.finalize().as_bytes())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(got) = buf.get(..n)
            && !got.is_empty()
        {
            if let Some(tx) = &self.sha {
                tx.send(got.to_vec())
                    .map_err(|_| io::Error::other("the SHA-256 thread stopped"))?;
            }
            self.b3.update(got);
        }
        self.n += n as u64;
        Ok(n)
    }
}
