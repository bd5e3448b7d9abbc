//! Reading a bundle as a stream, checking the layout and every digest on the way: the small
//! objects are held (bounded) and checked against their names; each artifact's bytes pass
//! through the caller's sink while their size, SHA-256 and BLAKE3 are computed, and only
//! when all three match what the manifests said is the artifact accepted. Any deviation —
//! an unknown, missing, repeated, reordered or damaged entry, a truncated file — ends the
//! read with the exact reason.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};

use thiserror::Error;

use crate::layout::{
    self, Artifact, BLAKE3, CATALOGUE_REF, EXPORT_ID, EXPORT_KEY, EXPORT_SIGNATURE, EXPORTED_AT,
    EXPORTED_BY, ExportInfo, Index, MAX_OBJECT_BYTES, MAX_OBJECTS_BYTES, Manifest, MediaType,
    REF_NAME, RELEASE, Release, TITLE,
};
use crate::write::Hashing;

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("not a bundle: {0}")]
    Layout(String),
    #[error("damaged: {0}")]
    Damaged(String),
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("cannot read the bundle: {0}")]
    Io(#[from] io::Error),
}

/// What a bundle holds, every digest checked (signatures and rules are the caller's).
#[derive(Debug, Clone)]
pub struct Contents {
    /// The root chain: a JSON array of root envelopes, oldest first.
    pub roots: Vec<u8>,
    /// The catalogue's signed changes (one sync message).
    pub catalogue: Vec<u8>,
    /// Each release, with its statement and artifacts as its manifest names them.
    pub releases: Vec<Release>,
    /// The export this bundle came from: its id, who made it and when.
    pub export: ExportInfo,
}

/// Reads bundles.
#[derive(Debug, Default)]
pub struct Reader;

impl Reader {
    /// Reads the bundle from `input`. Each artifact's bytes go through `sink` as they are
    /// read (it must hold them as unverified until `read` returns `Ok`), then their digests
    /// are checked; the sink is told the artifact first.
    pub fn read(
        input: impl Read,
        mut sink: impl FnMut(&Artifact, &mut dyn Read) -> io::Result<()>,
    ) -> Result<Contents, ReadError> {
        let mut archive = tar::Archive::new(input);
        let mut entries = archive.entries()?;
        let truncated = |what: &str| ReadError::Truncated(format!("the bundle ends before {what}"));

        // 1. The layout marker.
        let mut first = entries
            .next()
            .ok_or_else(|| truncated("its oci-layout"))??;
        if path_of(&first)? != "oci-layout" {
            return Err(ReadError::Layout(format!(
                "the first entry is {:?}, not oci-layout",
                path_of(&first)?
            )));
        }
        let marker = small(&mut first, 4096)?;
        let v: serde_json::Value = serde_json::from_slice(&marker)
            .map_err(|e| ReadError::Layout(format!("oci-layout is not JSON: {e}")))?;
        if v["imageLayoutVersion"] != "1.0.0" {
            return Err(ReadError::Layout(format!(
                "oci-layout says {v}, not imageLayoutVersion 1.0.0"
            )));
        }

        // 2. Small objects, up to index.json.
        let mut objects: HashMap<[u8; 32], Vec<u8>> = HashMap::new();
        let mut total = 0u64;
        let index = loop {
            let mut e = entries
                .next()
                .ok_or_else(|| truncated("its index.json"))??;
            let path = path_of(&e)?;
            if path == "index.json" {
                let bytes = small(&mut e, MAX_OBJECT_BYTES)?;
                break serde_json::from_slice::<Index>(&bytes)
                    .map_err(|e| ReadError::Damaged(format!("index.json: {e}")))?;
            }
            let sha = blob_name(&path)?;
            if objects.contains_key(&sha) {
                return Err(ReadError::Damaged(format!("{path} appears twice")));
            }
            let size = e.header().size()?;
            total = total.saturating_add(size);
            if total > MAX_OBJECTS_BYTES {
                return Err(ReadError::Damaged(format!(
                    "more than {MAX_OBJECTS_BYTES} bytes of objects before index.json (artifacts must come after it)"
                )));
            }
            let bytes = small(&mut e, MAX_OBJECT_BYTES)?;
            if layout::sha256(&bytes) != sha {
                return Err(ReadError::Damaged(format!(
                    "{path} does not match its digest (its bytes hash to {})",
                    hex::encode(layout::sha256(&bytes))
                )));
            }
            objects.insert(sha, bytes);
        };
        if index.schema_version != 2 {
            return Err(ReadError::Layout(format!(
                "index.json has schemaVersion {}, not 2",
                index.schema_version
            )));
        }
        let note = |key: &str| {
            index
                .annotations
                .get(key)
                .cloned()
                .ok_or_else(|| ReadError::Layout(format!("index.json has no {key}")))
        };
        let export = ExportInfo {
            id: note(EXPORT_ID)?,
            jurisdiction: note(EXPORTED_BY)?,
            at: note(EXPORTED_AT)?
                .parse()
                .map_err(|_| ReadError::Layout(format!("index.json: {EXPORTED_AT} is no time")))?,
            key: index
                .annotations
                .get(EXPORT_KEY)
                .cloned()
                .unwrap_or_default(),
            signature: index
                .annotations
                .get(EXPORT_SIGNATURE)
                .cloned()
                .unwrap_or_default(),
        };

        // 3. The manifests the index names, and what they say the artifacts are.
        let object = |d: &layout::Descriptor, what: &str| -> Result<&Vec<u8>, ReadError> {
            let sha = d
                .sha256()
                .ok_or_else(|| ReadError::Damaged(format!("{what}: digest {:?}", d.digest)))?;
            let bytes = objects.get(&sha).ok_or_else(|| {
                ReadError::Damaged(format!(
                    "{what} ({}) is not in the bundle before index.json",
                    d.digest
                ))
            })?;
            if bytes.len() as u64 != d.size {
                return Err(ReadError::Damaged(format!(
                    "{what} ({}) is {} bytes, the descriptor says {}",
                    d.digest,
                    bytes.len(),
                    d.size
                )));
            }
            Ok(bytes)
        };
        let mut catalogue: Option<(Vec<u8>, Vec<u8>)> = None;
        let mut releases = Vec::new();
        for d in &index.manifests {
            let reference = d.annotations.get(REF_NAME).cloned().unwrap_or_default();
            let m: Manifest = serde_json::from_slice(object(d, "a manifest")?)
                .map_err(|e| ReadError::Damaged(format!("manifest {reference}: {e}")))?;
            match m.artifact_type.as_str() {
                MediaType::CATALOGUE_ARTIFACT if reference == CATALOGUE_REF => {
                    let [roots, changes] = m.layers.as_slice() else {
                        return Err(ReadError::Damaged(
                            "the catalogue manifest does not hold exactly the roots and the changes".into(),
                        ));
                    };
                    if roots.media_type != MediaType::ROOTS
                        || changes.media_type != MediaType::CATALOGUE
                        || catalogue.is_some()
                    {
                        return Err(ReadError::Damaged(
                            "the catalogue manifest's layers are not the roots and the changes"
                                .into(),
                        ));
                    }
                    catalogue = Some((
                        object(roots, "the root chain")?.clone(),
                        object(changes, "the catalogue's changes")?.clone(),
                    ));
                }
                MediaType::RELEASE_ARTIFACT => {
                    let label = m.annotations.get(RELEASE).cloned().ok_or_else(|| {
                        ReadError::Damaged(format!("manifest {reference} names no release"))
                    })?;
                    if m.config.media_type != MediaType::STATEMENT {
                        return Err(ReadError::Damaged(format!(
                            "release {label}: its config is not a statement"
                        )));
                    }
                    let statement = object(&m.config, &format!("the statement of {label}"))?;
                    let mut artifacts = Vec::new();
                    for l in &m.layers {
                        let name = l.annotations.get(TITLE).cloned().ok_or_else(|| {
                            ReadError::Damaged(format!("release {label}: an artifact has no title"))
                        })?;
                        let sha256 = l.sha256().ok_or_else(|| {
                            ReadError::Damaged(format!(
                                "release {label}: {name}: digest {:?}",
                                l.digest
                            ))
                        })?;
                        let blake3 = l
                            .annotations
                            .get(BLAKE3)
                            .and_then(|h| {
                                let mut b = [0u8; 32];
                                hex::decode_to_slice(h, &mut b).ok().map(|()| b)
                            })
                            .ok_or_else(|| {
                                ReadError::Damaged(format!("release {label}: {name} has no BLAKE3"))
                            })?;
                        artifacts.push(Artifact {
                            name,
                            size: l.size,
                            sha256,
                            blake3,
                        });
                    }
                    releases.push(Release {
                        label,
                        statement: statement.clone(),
                        artifacts,
                    });
                }
                other => {
                    return Err(ReadError::Damaged(format!(
                        "manifest {reference} has an unknown artifact type {other:?}"
                    )));
                }
            }
        }
        let (roots, catalogue) =
            catalogue.ok_or_else(|| ReadError::Damaged("the bundle has no catalogue".into()))?;

        // 4. The artifacts, in the order the manifests first name them, each once.
        let mut expected: Vec<Artifact> = Vec::new();
        for r in &releases {
            for a in &r.artifacts {
                match expected.iter().find(|e| e.sha256 == a.sha256) {
                    Some(e) if e.size != a.size || e.blake3 != a.blake3 => {
                        return Err(ReadError::Damaged(format!(
                            "two manifests disagree about the artifact {}",
                            layout::digest(&a.sha256)
                        )));
                    }
                    Some(_) => {}
                    None => expected.push(a.clone()),
                }
            }
        }
        if let Some(early) = expected.iter().find(|a| objects.contains_key(&a.sha256)) {
            return Err(ReadError::Damaged(format!(
                "reordered: artifact {} ({}) comes before index.json",
                early.name,
                layout::digest(&early.sha256)
            )));
        }
        let by_sha: BTreeMap<[u8; 32], usize> = expected
            .iter()
            .enumerate()
            .map(|(i, a)| (a.sha256, i))
            .collect();
        let mut next = 0usize;
        for e in entries {
            let mut e = e?;
            let path = path_of(&e)?;
            let sha = blob_name(&path)?;
            let Some(&i) = by_sha.get(&sha) else {
                return Err(ReadError::Damaged(format!(
                    "{path} after index.json is no artifact the manifests name"
                )));
            };
            let Some(want) = expected.get(next) else {
                return Err(ReadError::Damaged(format!("{path} appears twice")));
            };
            if i != next {
                return Err(ReadError::Damaged(format!(
                    "reordered: expected artifact {} ({}) next, found {path}",
                    want.name,
                    layout::digest(&want.sha256)
                )));
            }
            let size = e.header().size()?;
            if size != want.size {
                return Err(ReadError::Damaged(format!(
                    "artifact {} is {size} bytes in the tar, its manifest says {}",
                    want.name, want.size
                )));
            }
            let mut hashing = Hashing::new(&mut e);
            sink(want, &mut hashing)?;
            // Whatever the sink left unread still counts.
            drain(&mut hashing)?;
            let (n, sha256, blake3) = hashing.finish();
            if n != want.size {
                return Err(ReadError::Truncated(format!(
                    "artifact {} stops after {n} of {} bytes",
                    want.name, want.size
                )));
            }
            if sha256 != want.sha256 || blake3 != want.blake3 {
                return Err(ReadError::Damaged(format!(
                    "artifact {} does not match its digests (sha256 {} and BLAKE3 {} expected, its bytes give {} and {})",
                    want.name,
                    hex::encode(want.sha256),
                    hex::encode(want.blake3),
                    hex::encode(sha256),
                    hex::encode(blake3)
                )));
            }
            next += 1;
        }
        if let Some(missing) = expected.get(next) {
            return Err(ReadError::Truncated(format!(
                "the bundle ends before artifact {} ({})",
                missing.name,
                layout::digest(&missing.sha256)
            )));
        }
        Ok(Contents {
            roots,
            catalogue,
            releases,
            export,
        })
    }
}

fn path_of<R: Read>(e: &tar::Entry<'_, R>) -> Result<String, ReadError> {
    Ok(e.path()?.to_string_lossy().into_owned())
}

/// The SHA-256 a `blobs/sha256/<hex>` path names.
fn blob_name(path: &str) -> Result<[u8; 32], ReadError> {
    let hex = path.strip_prefix("blobs/sha256/").ok_or_else(|| {
        ReadError::Damaged(format!(
            "unexpected entry {path:?} (only blobs/sha256/… and index.json)"
        ))
    })?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out)
        .map_err(|_| ReadError::Damaged(format!("{path:?} is not a SHA-256 blob name")))?;
    Ok(out)
}

/// A small entry's bytes, its size checked before reading.
fn small<R: Read>(e: &mut tar::Entry<'_, R>, max: u64) -> Result<Vec<u8>, ReadError> {
    let size = e.header().size()?;
    if size > max {
        return Err(ReadError::Damaged(format!(
            "an object of {size} bytes (at most {max})"
        )));
    }
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    e.take(size).read_to_end(&mut out)?;
    if out.len() as u64 != size {
        return Err(ReadError::Truncated(format!(
            "an object stops after {} of {size} bytes",
            out.len()
        )));
    }
    Ok(out)
}

/// Reads `r` to its end in large chunks (the hashes run per chunk), discarding the bytes;
/// returns how many there were.
pub fn drain(r: &mut dyn Read) -> io::Result<u64> {
    copy(r, &mut io::sink())
}

/// Copies `r` to its end into `w` in 1 MiB chunks (the hashes run per chunk; `io::copy`
/// would hand them 8 KiB at a time); returns how many bytes.
pub fn copy(r: &mut dyn Read, w: &mut dyn io::Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(buf.get(..k).unwrap_or_default())?;
        n += k as u64;
    }
}
