//! `accord bundle export|verify|import`: carrying a cooperative's state across an air gap
//! (issue 16). The format is `accord-bundle`'s (an OCI image layout in a tar); what the
//! objects mean is checked here with the same code a node uses on a peer's message:
//! every catalogue change through `Replica::receive_message` (signatures, authors in the
//! root chain, write authority), every release against its signed statement, the rule
//! with `accord_promote::plan`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use accord_bundle::{Artifact, Contents, ExportInfo, Reader, Release, Writer};
use accord_catalogue::{Catalogue, Replica, Seed, Stored, genesis};
use accord_promote::Mirror;
use accord_protocol::{Envelope, PrincipalId, ReleaseId, Timestamp};
use accord_trust::{RootChain, SecretKey, TrustedRoot};
use anyhow::{Context, Result, bail};
use automerge::{ChangeHash, ReadDoc};
use serde::{Deserialize, Serialize};

use crate::client::Node;
use crate::datadir::DataDir;
use crate::files::write_atomic;

/// The payload type of a signed verification report.
pub const REPORT_TYPE: &str = "application/vnd.accord.bundle-verification+json";

/// What a site writes after an import, for the next `export --since`: what it now holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    /// The export imported last.
    pub export: String,
    /// The catalogue's heads after the import (hex).
    pub heads: Vec<String>,
    /// SHA-256 (hex) of every artifact the site's store holds complete.
    pub artifacts: Vec<String>,
    /// When it was imported (Unix seconds).
    pub imported_at: i64,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// `accord bundle import` into a running node: the bundle is streamed to it (the node reads
/// no path of ours); it stages and checks the artifacts, takes the catalogue through its
/// core as it would a peer's message, and answers with the receipt, written here.
fn import_online(
    node: &Node,
    dir: &DataDir,
    file: &Path,
    receipt_out: Option<&Path>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let (input, list) = open_bundle(file)?;
    let len = match &list {
        Some(env) => {
            check_part_list(env, &dir.chain()?)
                .with_context(|| format!("{} is refused; nothing was imported", file.display()))?;
            let parts: accord_bundle::parts::PartList = serde_json::from_slice(&env.payload)?;
            parts.parts.iter().map(|p| p.size).sum()
        }
        None => std::fs::metadata(file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .len(),
    };
    let bar = super::artifacts::bytes_bar(len, "sending to the node");
    let mut reader = super::artifacts::Progress {
        inner: input,
        bar: bar.clone(),
    };
    let answer = node.post_stream("/v1/bundles", "application/x-tar", &mut reader, len);
    bar.finish_and_clear();
    let answer =
        answer.with_context(|| format!("{} is refused; nothing was imported", file.display()))?;
    let receipt: Receipt = serde_json::from_value(answer["receipt"].clone())
        .context("the node's answer has no receipt")?;
    let receipt_path = write_receipt(dir, receipt_out, &receipt)?;
    println!(
        "imported {} into the running node (export {} by {}): {} catalogue change(s), {} artifact(s) verified and stored ({:.1} s); receipt {}",
        file.display(),
        receipt.export,
        answer["jurisdiction"].as_str().unwrap_or("?"),
        answer["changes"],
        answer["artifacts"],
        started.elapsed().as_secs_f64(),
        receipt_path.display()
    );
    Ok(())
}

/// What an export writes besides the artifacts' bytes, decided from a node's catalogue:
/// the root chain, the catalogue's changes (since a receipt), the releases whose artifacts
/// the node holds whole, and who exports when. A running node computes it for the CLI
/// (`POST /v1/bundles/plan`), so it travels as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportPlan {
    /// The root chain, a JSON array of root envelopes (base64).
    roots: String,
    root_count: usize,
    /// The catalogue's signed changes as one sync message (base64).
    catalogue: String,
    releases: Vec<PlannedRelease>,
    /// Releases left out: their artifacts are not all held there.
    skipped: Vec<String>,
    id: String,
    jurisdiction: String,
    at: i64,
    /// The exporting node's key id and its signature (hex) over the export's id, time and
    /// catalogue (`ExportInfo::signed_bytes`).
    key: String,
    signature: String,
    since: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PlannedRelease {
    label: String,
    /// The statement with every signature (DSSE JSON).
    statement: String,
    artifacts: Vec<PlannedArtifact>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PlannedArtifact {
    name: String,
    size: u64,
    sha256: String,
    blake3: String,
}

/// What `POST /v1/bundles/plan` takes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanRequest {
    #[serde(default)]
    pub since: Option<Receipt>,
    #[serde(default)]
    pub releases: Vec<String>,
}

/// The export of `doc` (a node's catalogue, with its `genesis` and change `signatures`)
/// for a site that holds what `receipt` says, of the releases `selectors` name (all by
/// default) whose artifacts are all in `held` (BLAKE3). Shared by the offline export and
/// the running node.
#[allow(clippy::too_many_arguments)]
pub fn plan_export(
    doc: &automerge::Automerge,
    genesis: ChangeHash,
    signatures: &HashMap<ChangeHash, [u8; 64]>,
    chain: &RootChain,
    me: &str,
    receipt: Option<&Receipt>,
    selectors: &[String],
    held: &dyn Fn(&[u8; 32]) -> bool,
    node_key: &SecretKey,
) -> Result<ExportPlan> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let since_heads: Vec<ChangeHash> = match receipt {
        Some(r) => r
            .heads
            .iter()
            .map(|h| -> Result<ChangeHash> {
                let mut b = [0u8; 32];
                hex::decode_to_slice(h, &mut b).with_context(|| format!("head {h}"))?;
                let hash = ChangeHash(b);
                if doc.get_change_by_hash(&hash).is_none() {
                    bail!(
                        "the receipt names change {h}, which this node does not hold: export from a node that has synced at least as far"
                    );
                }
                Ok(hash)
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let held_there: BTreeSet<&String> = receipt
        .map(|r| r.artifacts.iter().collect())
        .unwrap_or_default();
    let catalogue =
        accord_catalogue::replica::export_message(doc, genesis, signatures, &since_heads)?;
    let roots: Vec<serde_json::Value> = chain
        .roots()
        .iter()
        .map(|r| serde_json::from_slice(&r.envelope().to_json()))
        .collect::<Result<_, _>>()?;
    let (cat, _) = accord_catalogue::schema::read(doc);
    let mut releases = Vec::new();
    let mut skipped = Vec::new();
    for r in select(&cat, chain, selectors)? {
        if !r.artifacts.is_empty()
            && r.artifacts
                .iter()
                .all(|a| held_there.contains(&hex::encode(a.sha256)))
        {
            continue;
        }
        if !r.artifacts.iter().all(|a| held(&a.blake3)) {
            skipped.push(r.label());
            continue;
        }
        releases.push(PlannedRelease {
            label: r.label(),
            statement: String::from_utf8(r.signed_envelope().to_json())?,
            artifacts: r
                .artifacts
                .iter()
                .map(|a| PlannedArtifact {
                    name: a.name.clone(),
                    size: a.size,
                    sha256: hex::encode(a.sha256),
                    blake3: hex::encode(a.blake3),
                })
                .collect(),
        });
    }
    let at = Timestamp::now().unix();
    let id = hex::encode(
        &accord_bundle::layout::sha256(
            &[catalogue.as_slice(), &at.to_le_bytes(), me.as_bytes()].concat(),
        )[..8],
    );
    let signed = ExportInfo::signed_bytes(&id, me, at, &catalogue);
    Ok(ExportPlan {
        key: node_key.id().to_string(),
        signature: hex::encode(node_key.sign(&signed)),
        roots: STANDARD.encode(serde_json::to_vec(&roots)?),
        root_count: roots.len(),
        catalogue: STANDARD.encode(&catalogue),
        releases,
        skipped,
        id,
        jurisdiction: me.to_owned(),
        at,
        since: receipt.is_some(),
    })
}

fn read_receipt(since: Option<&Path>) -> Result<Option<Receipt>> {
    since
        .map(|p| -> Result<Receipt> {
            let bytes = crate::files::read_limited(p, 16 << 20)?;
            serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not an import receipt", p.display()))
        })
        .transpose()
}

/// `accord bundle export`: from the running node through its API (it plans, and serves
/// each artifact's verified bytes), or straight from a stopped node's data dir. Either way
/// the bundle is written here, streaming, and every artifact is hashed again on the way in.
pub fn export(
    dir: &DataDir,
    out: &Path,
    selectors: &[String],
    since: Option<&Path>,
    max_part: Option<u64>,
    passphrase: &crate::cli::PassphraseArgs,
) -> Result<()> {
    let started = std::time::Instant::now();
    let receipt = read_receipt(since)?;
    // The node key signs the export (a running node signs its plan itself) and a split
    // bundle's part list.
    let node_key = |dir: &DataDir| -> Result<SecretKey> {
        let pass = crate::passphrase::existing(passphrase, "the node key")?;
        dir.node_key(&pass)
    };
    if let Some(node) = Node::running(dir) {
        let split = match max_part {
            Some(max) => Some((max, node_key(dir)?)),
            None => None,
        };
        let answer = node.post_json(
            "/v1/bundles/plan",
            &PlanRequest {
                since: receipt,
                releases: selectors.to_vec(),
            },
        )?;
        let plan: ExportPlan =
            serde_json::from_value(answer).context("the node's export plan is unreadable")?;
        return write_export(plan, out, split, started, &mut |a: &Artifact| {
            let reader = node.get_stream(&format!("/v1/blobs/{}", hex::encode(a.blake3)))?;
            Ok(Box::new(reader) as Box<dyn Read + Send>)
        });
    }
    let mut key = Some(node_key(dir)?);
    let (doc, db) = dir.document()?;
    let genesis = DataDir::genesis(&db)?;
    let stored = db.load_catalogue()?;
    let mut signatures: HashMap<ChangeHash, [u8; 64]> = stored
        .signatures
        .iter()
        .map(|(h, s)| (ChangeHash(*h), *s))
        .collect();
    for c in &stored.changes {
        if let Some(s) = c.signature {
            signatures.insert(ChangeHash(c.hash), s);
        }
    }
    let chain = dir.chain()?;
    let me = dir.jurisdiction()?;
    let rt = runtime()?;
    let store = rt.block_on(accord_blobs::BlobStore::open(&dir.path.join("blobs")))?;
    let result = (|| {
        let (cat, _) = accord_catalogue::schema::read(&doc);
        let mut held = std::collections::HashSet::new();
        for a in cat.releases.iter().flat_map(|r| r.artifacts.iter()) {
            if rt.block_on(store.local(&a.blake3))?.complete {
                held.insert(a.blake3);
            }
        }
        let plan = plan_export(
            &doc,
            genesis,
            &signatures,
            &chain,
            &me,
            receipt.as_ref(),
            selectors,
            &|h| held.contains(h),
            key.as_ref().context("the node key")?,
        )?;
        let split = match max_part {
            Some(max) => Some((max, key.take().context("the node key")?)),
            None => None,
        };
        write_export(plan, out, split, started, &mut |a: &Artifact| {
            // The store's stream is a task on the runtime; it is read from here, blocking.
            let rx = rt.block_on(async { store.read_verified(a.blake3) });
            Ok(Box::new(ChannelReader::new(rx)) as Box<dyn Read + Send>)
        })
    })();
    rt.block_on(store.shutdown())?;
    result
}

/// Writes the bundle `plan` describes to `out` (or its parts), reading each artifact's
/// bytes from `open`; removes what it wrote if anything fails.
fn write_export(
    plan: ExportPlan,
    out: &Path,
    split: Option<(u64, SecretKey)>,
    started: std::time::Instant,
    open: &mut dyn FnMut(&Artifact) -> Result<Box<dyn Read + Send>>,
) -> Result<()> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let roots = STANDARD.decode(&plan.roots).context("export plan: roots")?;
    let catalogue = STANDARD
        .decode(&plan.catalogue)
        .context("export plan: catalogue")?;
    let digest = |h: &str| -> Result<[u8; 32]> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(h, &mut b).with_context(|| format!("export plan: digest {h}"))?;
        Ok(b)
    };
    let releases = plan
        .releases
        .iter()
        .map(|r| -> Result<Release> {
            Ok(Release {
                label: r.label.clone(),
                statement: r.statement.clone().into_bytes(),
                artifacts: r
                    .artifacts
                    .iter()
                    .map(|a| -> Result<Artifact> {
                        Ok(Artifact {
                            name: a.name.clone(),
                            size: a.size,
                            sha256: digest(&a.sha256)?,
                            blake3: digest(&a.blake3)?,
                        })
                    })
                    .collect::<Result<_>>()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let info = ExportInfo {
        id: plan.id.clone(),
        jurisdiction: plan.jurisdiction.clone(),
        at: plan.at,
        key: plan.key.clone(),
        signature: plan.signature.clone(),
    };
    let partial = out.with_extension("partial");
    let sink = match &split {
        None => Sink::One(std::io::BufWriter::new(
            std::fs::File::create(&partial)
                .with_context(|| format!("cannot create {}", partial.display()))?,
        )),
        Some((max, _)) => Sink::Split(accord_bundle::parts::SplitWriter::new(out, *max)?),
    };
    let result = (|| {
        let mut w = Writer::begin(sink, &roots, &catalogue, &releases, &info)?;
        let total: u64 = w.pending().iter().map(|a| a.size).sum();
        let bar = super::artifacts::bytes_bar(total, "writing and verifying artifacts");
        for a in w.pending().to_vec() {
            w.output()
                .boundary(accord_bundle::layout::entry_bytes(a.size))?;
            let reader = super::artifacts::Progress {
                inner: open(&a)?,
                bar: bar.clone(),
            };
            w.artifact(reader)?;
        }
        bar.finish_and_clear();
        let parts = match w.finish()? {
            Sink::One(f) => {
                let file = f.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                None
            }
            Sink::Split(s) => Some(s.finish(&plan.id)?),
        };
        anyhow::Ok((total, parts))
    })();
    let (total, parts) = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            remove_parts(out);
            return Err(e);
        }
    };
    match (parts, &split) {
        (Some((paths, list)), Some((_, key))) => {
            let mut env = Envelope::new(
                accord_bundle::parts::PART_LIST_TYPE,
                serde_json::to_vec_pretty(&list)?,
            );
            accord_trust::sign_envelope(&mut env, key);
            let list_path = parts_list_path(out);
            write_atomic(&list_path, &env.to_json(), false)?;
            println!(
                "split into {} part(s) at blob boundaries; the part list {} is signed by node key {}",
                paths.len(),
                list_path.display(),
                key.id().short()
            );
            for (p, part) in paths.iter().zip(&list.parts) {
                println!(
                    "  {}  {} bytes  sha256 {}",
                    p.display(),
                    part.size,
                    part.sha256
                );
            }
        }
        _ => std::fs::rename(&partial, out)
            .with_context(|| format!("cannot rename {} to {}", partial.display(), out.display()))?,
    }
    println!(
        "wrote {} (export {} by {}): root chain of {}, {} catalogue bytes{}, {} release(s), {} artifact bytes ({:.1} s)",
        out.display(),
        plan.id,
        plan.jurisdiction,
        plan.root_count,
        catalogue.len(),
        if plan.since { " since the receipt" } else { "" },
        releases.len(),
        total,
        started.elapsed().as_secs_f64()
    );
    for r in &releases {
        println!("  {}  {} artifact(s)", r.label, r.artifacts.len());
    }
    for s in &plan.skipped {
        println!("  {s}  left out: its artifacts are not all held here");
    }
    Ok(())
}

/// Where a bundle goes: one file, or parts of at most a given size.
enum Sink {
    One(std::io::BufWriter<std::fs::File>),
    Split(accord_bundle::parts::SplitWriter),
}

impl Sink {
    /// An entry of `next` bytes comes: a split bundle may start its next part here.
    fn boundary(&mut self, next: u64) -> std::io::Result<()> {
        match self {
            Sink::One(_) => Ok(()),
            Sink::Split(s) => s.boundary(next),
        }
    }
}

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::One(w) => w.write(buf),
            Sink::Split(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::One(w) => w.flush(),
            Sink::Split(w) => w.flush(),
        }
    }
}

/// `OUT.parts`: the signed list of a split bundle's parts.
fn parts_list_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".parts");
    PathBuf::from(name)
}

/// Removes `OUT.001`, `OUT.002`, … of a split export that failed.
fn remove_parts(out: &Path) {
    for n in 1..10_000 {
        let mut name = out.as_os_str().to_owned();
        name.push(format!(".{n:03}"));
        if std::fs::remove_file(PathBuf::from(name)).is_err() {
            break;
        }
    }
}

/// "4G", "100M", "512K" or bytes; at least 1M.
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('G' | 'g') => (&s[..s.len() - 1], 1u64 << 30),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('K' | 'k') => (&s[..s.len() - 1], 1 << 10),
        _ => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .with_context(|| format!("{s:?} is not a size (e.g. 4G, 700M)"))?;
    let size = n.checked_mul(mult).context("size too large")?;
    if size < 1 << 20 {
        bail!("a part of {size} bytes is too small (at least 1M)");
    }
    Ok(size)
}

/// A bundle to read: one file, or the signed list of a split bundle's parts (`OUT.parts`)
/// with the parts beside it. Returns the stream and, for parts, the list's envelope (its
/// signature is checked once the root chain is known).
fn open_bundle(file: &Path) -> Result<(Box<dyn Read>, Option<Envelope>)> {
    let list = crate::files::read_limited(file, 1 << 20)
        .ok()
        .and_then(|b| Envelope::from_json(&b).ok())
        .filter(|e| e.payload_type == accord_bundle::parts::PART_LIST_TYPE);
    if let Some(env) = list {
        let list: accord_bundle::parts::PartList =
            serde_json::from_slice(&env.payload).context("the part list is damaged")?;
        let base = file.parent().unwrap_or(Path::new("."));
        let files = list.parts.iter().map(|p| base.join(&p.name)).collect();
        let reader = accord_bundle::parts::PartsReader::new(files, list)?;
        return Ok((
            Box::new(std::io::BufReader::with_capacity(1 << 20, reader)),
            Some(env),
        ));
    }
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    Ok((
        Box::new(std::io::BufReader::with_capacity(1 << 20, input)),
        None,
    ))
}

/// `accord bundle check-part`: one part against the list, by its place (its name).
pub fn check_part(part: &Path, list_path: &Path) -> Result<()> {
    let env = Envelope::from_json(&crate::files::read_limited(list_path, 1 << 20)?)
        .with_context(|| format!("{} is not a part list", list_path.display()))?;
    if env.payload_type != accord_bundle::parts::PART_LIST_TYPE {
        bail!("{} is not a part list", list_path.display());
    }
    let list: accord_bundle::parts::PartList =
        serde_json::from_slice(&env.payload).context("the part list is damaged")?;
    let name = part
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = list
        .parts
        .iter()
        .position(|p| p.name == name)
        .with_context(|| format!("export {} has no part named {name}", list.export))?;
    accord_bundle::parts::PartsReader::check_part(part, &list, n)
        .with_context(|| format!("{} is refused", part.display()))?;
    println!(
        "{}: part {} of {} of export {}, {} bytes, sha256 {} as listed",
        part.display(),
        n + 1,
        list.parts.len(),
        list.export,
        list.parts[n].size,
        list.parts[n].sha256
    );
    Ok(())
}

/// A split bundle's part list must be signed by a node key of the cooperative.
fn check_part_list(list: &Envelope, chain: &RootChain) -> Result<String> {
    let pae = accord_protocol::dsse::pae(&list.payload_type, &list.payload);
    for sig in &list.signatures {
        if let Some(k) = chain
            .node_keys()
            .find(|k| k.key().id().to_string() == sig.keyid)
            && k.key().verify(&pae, &sig.sig)
        {
            return Ok(format!(
                "{} (node key {})",
                k.principal(),
                k.key().id().short()
            ));
        }
    }
    bail!("the part list is not signed by a node key of the cooperative")
}

/// The releases to carry: those named, or every release.
fn select<'c>(
    cat: &'c Catalogue,
    chain: &RootChain,
    selectors: &[String],
) -> Result<Vec<&'c accord_catalogue::Release>> {
    if selectors.is_empty() {
        return Ok(cat.releases.iter().collect());
    }
    selectors
        .iter()
        .map(|s| crate::artifacts::select(cat, &s.parse()?, chain))
        .collect()
}

/// A blocking `Read` over a channel of byte chunks (the blob store's verified stream, or a
/// request body), for the synchronous bundle writer and reader on a blocking thread.
pub(crate) struct ChannelReader<E> {
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, E>>,
    buf: bytes::Bytes,
}

impl<E> ChannelReader<E> {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, E>>) -> Self {
        ChannelReader {
            rx,
            buf: bytes::Bytes::new(),
        }
    }
}

impl<E: std::fmt::Display> Read for ChannelReader<E> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}

/// What a verified bundle holds, with the catalogue it makes.
struct Verified {
    contents: Contents,
    chain: RootChain,
    catalogue: Catalogue,
}

/// Checks a bundle's objects against `anchor` (the cooperative's first root): the root
/// chain walks from it, every change is taken as a node takes a peer's message, and each
/// release is exactly its signed statement. Artifacts' digests are checked by the reader
/// as `sink` receives their bytes. `base` is the replica the changes go into: the
/// importing node's own (an incremental bundle builds on what it holds), or, with none, a
/// fresh one from the genesis (a full bundle, checked with no data dir). Nothing is
/// committed here: the caller commits the returned delta.
fn verify_contents(
    contents: Contents,
    anchor: TrustedRoot,
    base: Option<Replica>,
) -> Result<(Verified, Replica, accord_catalogue::Delta)> {
    let envelopes: Vec<serde_json::Value> = serde_json::from_slice(&contents.roots)
        .context("the bundle's root chain is not a JSON array of roots")?;
    let mut chain = RootChain::from_trusted(anchor.clone());
    for (i, env) in envelopes.iter().enumerate() {
        let bytes = serde_json::to_vec(env)?;
        let root = TrustedRoot::inspect(&bytes)
            .with_context(|| format!("root {} of the bundle", i + 1))?;
        if i == 0 {
            if root.envelope().payload != anchor.envelope().payload {
                bail!(
                    "the bundle's first root is not the pinned root: another cooperative's bundle, or a forged chain"
                );
            }
            continue;
        }
        chain.extend(&bytes).with_context(|| {
            format!(
                "the bundle's root v{} does not follow v{} (TUF rules)",
                root.version(),
                chain.current().version()
            )
        })?;
    }
    let mut replica = match base {
        Some(r) => r,
        None => {
            let seed = Seed::parse(crate::datadir::EMBEDDED_SEED, "the seed catalogue")?;
            let (doc, hash) =
                genesis::build(&seed, &hex::encode(anchor.envelope().payload_digest()))?;
            Replica::open(
                hash,
                Stored {
                    snapshot: Some(doc.save()),
                    ..Stored::default()
                },
                SecretKey::generate()?,
                RootChain::from_trusted(anchor),
            )?
        }
    };
    let delta = replica
        .receive_message("bundle", &contents.catalogue, Timestamp::now().unix())
        .context("the bundle's catalogue changes were refused (an incremental bundle is checked against the site that wrote its receipt: import it there)")?;
    let (catalogue, _) = accord_catalogue::schema::read(replica.doc());
    for r in &contents.releases {
        let env =
            Envelope::from_json(&r.statement).with_context(|| format!("{}: statement", r.label))?;
        let id = ReleaseId::of_payload(&env.payload);
        let Some(signed) = catalogue.release(&id) else {
            bail!(
                "release {} in the bundle is not in its catalogue (statement {id})",
                r.label
            );
        };
        if !same_artifacts(&signed.artifacts, &r.artifacts) {
            bail!(
                "release {}: the bundle's artifacts are not the ones its signed statement names",
                r.label
            );
        }
    }
    // Who exported it, and when: signed by a node key of that jurisdiction, or the bundle
    // is refused (the time refreshes the importing site's view of that jurisdiction).
    let e = &contents.export;
    accord_service::export::verify(
        replica.chain(),
        &e.jurisdiction,
        e.at,
        Timestamp::now().unix(),
        &ExportInfo::signed_bytes(&e.id, &e.jurisdiction, e.at, &contents.catalogue),
        &e.key,
        &e.signature,
    )
    .map_err(anyhow::Error::msg)?;
    let verified = Verified {
        contents,
        chain: replica.chain().clone(),
        catalogue,
    };
    Ok((verified, replica, delta))
}

/// Per release in the bundle and per jurisdiction, whether the rule lets it into
/// production there now (with the artifacts the bundle carries).
fn decisions(v: &Verified, only: Option<&str>) -> Result<Vec<(String, String, String)>> {
    let carried: BTreeSet<ReleaseId> = v
        .contents
        .releases
        .iter()
        .filter_map(|r| Envelope::from_json(&r.statement).ok())
        .map(|e| ReleaseId::of_payload(&e.payload))
        .collect();
    let mirror: BTreeMap<ReleaseId, Mirror> = v
        .catalogue
        .releases
        .iter()
        .map(|r| {
            let m = if carried.contains(&r.id) {
                Mirror::Complete
            } else {
                Mirror::Incomplete {
                    missing: vec!["its artifacts are not in this bundle".into()],
                }
            };
            (r.id, m)
        })
        .collect();
    let candidates = accord_promote::candidates(&v.catalogue, &mirror);
    let root = v.chain.current();
    let mut out = Vec::new();
    let jurisdictions: Vec<PrincipalId> = root
        .body()
        .principals
        .keys()
        .filter(|p| only.is_none_or(|o| p.as_str() == o))
        .cloned()
        .collect();
    for j in &jurisdictions {
        let plan = accord_promote::plan(
            &accord_promote::State::default(),
            &accord_promote::Context {
                root,
                local_rules: &[],
                jurisdiction: j,
                now: Timestamp::now(),
            },
            &candidates,
        );
        for e in plan.explanations.iter().filter(|e| carried.contains(&e.id)) {
            let label = v
                .catalogue
                .release(&e.id)
                .map(accord_catalogue::Release::label)
                .unwrap_or_else(|| e.id.to_string());
            let verdict = if e.state == accord_promote::Status::Live {
                "PROMOTABLE".to_owned()
            } else {
                let reasons: Vec<String> = e.reasons.iter().map(ToString::to_string).collect();
                format!("not promotable: {}", reasons.join("; "))
            };
            out.push((label, j.to_string(), verdict));
        }
    }
    Ok(out)
}

/// `accord bundle verify`.
pub fn verify(
    file: &Path,
    root: &Path,
    only: Option<&str>,
    report: Option<&Path>,
    signer: Option<&SecretKey>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let anchor = crate::cmd::root::load_trusted(root)?;
    let (input, list) = open_bundle(file)?;
    let mut bytes = 0u64;
    let contents = Reader::read(input, |_, r| {
        bytes += accord_bundle::read::drain(r)?;
        Ok(())
    })
    .with_context(|| format!("{} is refused", file.display()))?;
    let (v, _, _) = verify_contents(contents, anchor, None)
        .with_context(|| format!("{} is refused", file.display()))?;
    if let Some(list) = &list {
        let by = check_part_list(list, &v.chain)
            .with_context(|| format!("{} is refused", file.display()))?;
        println!("part list signed by {by}; every part matched it");
    }
    let decisions = decisions(&v, only)?;
    println!(
        "{}: verified (export {} by {} at {}): root chain to v{}, {} catalogue bytes, {} release(s), {bytes} artifact bytes, every SHA-256 and BLAKE3 checked ({:.1} s)",
        file.display(),
        v.contents.export.id,
        v.contents.export.jurisdiction,
        Timestamp::from_unix(v.contents.export.at),
        v.chain.current().version(),
        v.contents.catalogue.len(),
        v.contents.releases.len(),
        started.elapsed().as_secs_f64()
    );
    for (label, j, verdict) in &decisions {
        println!("  {label} in {j}: {verdict}");
    }
    if let Some(path) = report {
        let body = serde_json::json!({
            "bundle": file.display().to_string(),
            "export": v.contents.export.id,
            "exported_by": v.contents.export.jurisdiction,
            "exported_at": Timestamp::from_unix(v.contents.export.at).to_string(),
            "verified_at": Timestamp::now().to_string(),
            "root_version": v.chain.current().version(),
            "artifact_bytes_checked": bytes,
            "decisions": decisions.iter().map(|(l, j, d)| serde_json::json!({"release": l, "jurisdiction": j, "decision": d})).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec_pretty(&body)?;
        match signer {
            Some(key) => {
                let mut env = Envelope::new(REPORT_TYPE, bytes);
                accord_trust::sign_envelope(&mut env, key);
                write_atomic(path, &env.to_json(), false)?;
                println!(
                    "wrote the verification report {}, signed by key {}",
                    path.display(),
                    key.id().short()
                );
            }
            None => {
                write_atomic(path, &bytes, false)?;
                println!("wrote the verification report {}", path.display());
            }
        }
    }
    Ok(())
}

/// `accord bundle import`: everything verified first, artifacts into the store, then the
/// catalogue in one transaction, then the receipt.
/// Artifacts read from a bundle, each in a private file of the data dir whose digests were
/// checked against its manifest as it was read; removed with the directory unless imported.
pub struct Staged {
    pub dir: tempfile::TempDir,
    pub artifacts: Vec<(Artifact, PathBuf)>,
    pub contents: Contents,
}

/// Reads a whole bundle from `input`, staging its artifacts in a private directory of
/// `data_dir` (one left by an import that was killed is removed first). Nothing in it is
/// believed yet except that each artifact has the digests its manifest gives.
pub fn stage(input: impl Read, data_dir: &Path) -> Result<Staged> {
    for e in std::fs::read_dir(data_dir)?.flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with(".bundle-import-")
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let dir = tempfile::Builder::new()
        .prefix(".bundle-import-")
        .tempdir_in(data_dir)
        .context("cannot make a staging directory in the data dir")?;
    let mut artifacts: Vec<(Artifact, PathBuf)> = Vec::new();
    let contents = Reader::read(input, |a, r| {
        let path = dir.path().join(hex::encode(a.sha256));
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        accord_bundle::read::copy(r, &mut f)?;
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        artifacts.push((a.clone(), path));
        Ok(())
    })?;
    Ok(Staged {
        dir,
        artifacts,
        contents,
    })
}

/// Each release of the bundle carries exactly the artifacts its statement names (a running
/// node checks this before it takes the catalogue; the offline import checks it against
/// the catalogue it built).
pub fn check_statements(contents: &Contents) -> Result<()> {
    for r in &contents.releases {
        let env =
            Envelope::from_json(&r.statement).with_context(|| format!("{}: statement", r.label))?;
        let accord_protocol::StatementKind::Release { artifacts, .. } =
            accord_protocol::Statement::from_envelope(&env)
                .with_context(|| format!("{}: statement", r.label))?
        else {
            bail!("{}: the statement is not a release", r.label);
        };
        if !same_artifacts(&artifacts, &r.artifacts) {
            bail!(
                "release {}: the bundle's artifacts are not the ones its signed statement names",
                r.label
            );
        }
    }
    Ok(())
}

/// Whether a bundle's release carries exactly the artifacts its signed statement names, in
/// its order.
fn same_artifacts(signed: &[accord_protocol::statement::Artifact], bundled: &[Artifact]) -> bool {
    signed.len() == bundled.len()
        && signed.iter().zip(bundled).all(|(s, b)| {
            s.name == b.name && s.size == b.size && s.sha256 == b.sha256 && s.blake3 == b.blake3
        })
}

/// The tag prefix under which an import holds its artifacts until the catalogue is in.
const STAGING_TAG: &str = "bundle-import/";

/// The tag under which an import holds `a` until the catalogue naming it is committed.
pub fn staging_tag(a: &Artifact) -> String {
    format!("{STAGING_TAG}{}", hex::encode(a.sha256))
}

/// Unpins every staging tag: an import's own once its releases pin their artifacts, or
/// what a killed one left (imports run one at a time). Tries them all; says the first
/// failure.
pub async fn clear_staging_tags(store: &accord_blobs::BlobStore) -> Result<()> {
    let mut first = None;
    for (tag, _) in store.pins().await? {
        if tag.starts_with(STAGING_TAG)
            && let Err(e) = store.unpin(&tag).await
        {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), |e| Err(e.into()))
}

/// Pins each imported release's artifacts under the release's own tags (the node pins what
/// it mirrors too). Tries them all; fails naming those that could not be pinned.
pub async fn pin_releases(store: &accord_blobs::BlobStore, releases: &[Release]) -> Result<()> {
    let mut failures = Vec::new();
    for r in releases {
        let id = ReleaseId::of_payload(&Envelope::from_json(&r.statement)?.payload);
        for a in &r.artifacts {
            if let Err(e) = store
                .pin(&accord_mirror::wants::pin_tag(&id, &a.name), a.blake3)
                .await
            {
                failures.push(format!("{}: {e}", a.name));
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("pinning failed for {}", failures.join("; "))
    }
}

/// Writes an import's receipt (to `out`, or the data dir's `bundle-receipt.json`).
fn write_receipt(dir: &DataDir, out: Option<&Path>, receipt: &Receipt) -> Result<PathBuf> {
    let path = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.path.join("bundle-receipt.json"));
    write_atomic(&path, &serde_json::to_vec_pretty(receipt)?, false)?;
    Ok(path)
}

/// `accord bundle import`: into the running node through its API, or straight into the
/// data dir when the node is stopped.
pub fn import(
    dir: &DataDir,
    file: &Path,
    passphrase: &crate::cli::PassphraseArgs,
    receipt_out: Option<&Path>,
) -> Result<()> {
    if let Some(node) = Node::running(dir) {
        return import_online(&node, dir, file, receipt_out);
    }
    let passphrase = crate::passphrase::existing(passphrase, "the node key")?;
    let started = std::time::Instant::now();
    let chain = dir.chain()?;
    let anchor = chain
        .roots()
        .first()
        .cloned()
        .context("the node trusts no root")?;
    // Artifacts land in a private directory of the data dir while their digests are
    // checked, and enter the store only once the whole bundle has verified.
    let (input, list) = open_bundle(file)?;
    let Staged {
        dir: _staging,
        artifacts: staged,
        contents,
    } = stage(input, &dir.path)
        .with_context(|| format!("{} is refused; nothing was imported", file.display()))?;
    let (node_replica, db) = dir.replica(&passphrase)?;
    let (v, replica, delta) = verify_contents(contents, anchor, Some(node_replica))
        .with_context(|| format!("{} is refused; nothing was imported", file.display()))?;
    if let Some(list) = &list {
        check_part_list(list, &v.chain)
            .with_context(|| format!("{} is refused; nothing was imported", file.display()))?;
    }
    crate::testpoint::pause("bundle-verified");
    let rt = runtime()?;
    let held: BTreeSet<[u8; 32]> = rt.block_on(async {
        let store = accord_blobs::BlobStore::open(&dir.path.join("blobs")).await?;
        let r = async {
            // Staging tags an import that was killed left behind go first.
            clear_staging_tags(&store).await?;
            for (a, path) in &staged {
                let (hash, size) = store.import(path, &staging_tag(a), |_| {}).await?;
                if hash != a.blake3 || size != a.size {
                    bail!("artifact {} changed in the staging directory", a.name);
                }
            }
            crate::testpoint::pause("bundle-artifacts-in");
            db.apply(&delta)?;
            crate::testpoint::pause("bundle-committed");
            // The imported artifacts are held under their releases' own tags from now on;
            // the staging tags go.
            pin_releases(&store, &v.contents.releases).await?;
            clear_staging_tags(&store).await?;
            let mut held = BTreeSet::new();
            for h in store.list().await? {
                if store.local(&h).await?.complete {
                    held.insert(h);
                }
            }
            anyhow::Ok(held)
        }
        .await;
        store.shutdown().await?;
        r
    })?;
    // The view of the exporting jurisdiction is as fresh as the export.
    accord_service::store::record_view(&db, &v.contents.export.jurisdiction, v.contents.export.at)
        .map_err(anyhow::Error::msg)?;
    let (cat, _) = accord_catalogue::schema::read(replica.doc());
    let artifacts: BTreeSet<String> = cat
        .releases
        .iter()
        .flat_map(|r| r.artifacts.iter())
        .filter(|a| held.contains(&a.blake3))
        .map(|a| hex::encode(a.sha256))
        .collect();
    let receipt = Receipt {
        export: v.contents.export.id.clone(),
        heads: replica.heads().iter().map(|h| hex::encode(h.0)).collect(),
        artifacts: artifacts.into_iter().collect(),
        imported_at: Timestamp::now().unix(),
    };
    let receipt_path = write_receipt(dir, receipt_out, &receipt)?;
    println!(
        "imported {} (export {} by {}): {} catalogue change(s), {} artifact(s) verified and stored ({:.1} s); receipt {}",
        file.display(),
        v.contents.export.id,
        v.contents.export.jurisdiction,
        delta.changes.len(),
        staged.len(),
        started.elapsed().as_secs_f64(),
        receipt_path.display()
    );
    Ok(())
}
