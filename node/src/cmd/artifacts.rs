//! `accord release propose|status`, `accord fetch` and `accord gc`: releases with their
//! artifacts. Each goes through the running node when there is one (it holds the stores'
//! locks) and works on the data dir directly when there is none.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use accord_blobs::BlobStore;
use accord_protocol::statement::ProvenanceRef;
use accord_protocol::{Selector, Statement, StatementKind, Timestamp};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::Digest;

use crate::artifacts::{self, ReleaseView, percent};
use crate::cli::{FetchArgs, PassphraseArgs};
use crate::client::Node;
use crate::datadir::DataDir;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub(crate) fn bytes_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// One bar over several files processed in order: per-file progress becomes overall bytes.
fn across_files<'a>(
    bar: &'a ProgressBar,
    artifacts: &'a [accord_protocol::statement::Artifact],
) -> impl FnMut(&str, u64) + 'a {
    let mut done_before = 0u64;
    let mut current = String::new();
    move |name, n| {
        if name != current {
            if let Some(a) = artifacts.iter().find(|a| a.name == current) {
                done_before += a.size;
            }
            current = name.to_owned();
        }
        bar.set_position(done_before + n);
    }
}

pub struct Proposal {
    pub capability: String,
    pub version: String,
    pub files: Vec<PathBuf>,
    pub provenance: Vec<ProvenanceRef>,
}

/// `accord release propose`.
pub fn propose(p: Proposal, dir: &DataDir, pass: &PassphraseArgs) -> Result<()> {
    let root = dir.root()?;
    let jurisdiction = dir.jurisdiction()?;
    let started = Instant::now();
    let files: Vec<PathBuf> = p
        .files
        .iter()
        .map(std::path::absolute)
        .collect::<std::io::Result<_>>()
        .context("cannot resolve the files' paths")?;
    let mut env = super::release::statement(
        &p.capability,
        &p.version,
        &files,
        root.version(),
        &jurisdiction,
        Timestamp::now(),
    )?;
    if !p.provenance.is_empty() {
        env = with_provenance(&env, p.provenance)?;
    }
    let kind = Statement::from_envelope(&env)?;
    let StatementKind::Release {
        artifacts: arts,
        predicate,
    } = kind
    else {
        bail!("internal: the statement built is not a release");
    };
    let id = accord_protocol::ReleaseId::of_payload(&env.payload);
    let key = format!(
        "{}#{}",
        accord_protocol::release::display_key(&predicate.capability, &predicate.version),
        id.short()
    );
    let total: u64 = arts.iter().fold(0u64, |t, a| t.saturating_add(a.size));
    if let Some(node) = Node::running(dir) {
        // The files are streamed to the node in the statement's order: the node reads no
        // path of ours, and imports exactly the bytes it checks.
        let header = serde_json::to_vec(&serde_json::json!({
            "envelope": serde_json::from_slice::<serde_json::Value>(&env.to_json())?,
        }))?;
        let mut parts: Vec<Box<dyn Read>> = vec![Box::new(std::io::Cursor::new(
            [(header.len() as u32).to_be_bytes().to_vec(), header.clone()].concat(),
        ))];
        for a in &arts {
            let file = files
                .iter()
                .find(|f| f.file_name().and_then(|n| n.to_str()) == Some(a.name.as_str()))
                .with_context(|| format!("no file named {} was given", a.name))?;
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            parts.push(Box::new(f.take(a.size)));
        }
        let len = 4 + header.len() as u64 + total;
        let bar = bytes_bar(len, "sending to the node");
        let mut reader = Progress {
            inner: Chain { parts, at: 0 },
            bar: bar.clone(),
        };
        let r = node.post_stream("/v1/releases", crate::api::PROPOSAL_TYPE, &mut reader, len);
        bar.finish_and_clear();
        r?;
    } else {
        let pass = crate::passphrase::existing(pass, "the node key")?;
        let (mut replica, db) = dir.replica(&pass)?;
        let (cat, _) = accord_catalogue::schema::read(replica.doc());
        let proposal =
            artifacts::Proposal::check(&env.to_json(), &cat).map_err(anyhow::Error::msg)?;
        let rt = runtime()?;
        rt.block_on(async {
            let store = BlobStore::open(&dir.path.join("blobs")).await?;
            let bar = bytes_bar(total, "importing");
            let r = artifacts::import(
                &store,
                &proposal.id,
                &arts,
                &files,
                across_files(&bar, &arts),
            )
            .await;
            bar.finish_and_clear();
            store.shutdown().await?;
            r
        })?;
        let delta = replica.edit(Timestamp::now().unix(), &format!("propose {key}"), |tx| {
            accord_catalogue::edit::add_history(
                tx,
                accord_catalogue::History::Statements,
                &proposal.payload,
            )
            .map(|_| ())
        })?;
        db.apply(&delta)?;
    }
    println!(
        "proposed {key}: {} artifact(s), {} bytes, root v{}, proposer {jurisdiction} ({:.1} s)",
        arts.len(),
        total,
        root.version(),
        started.elapsed().as_secs_f64()
    );
    for a in &arts {
        println!(
            "  {}  {} bytes  sha256 {}  blake3 {}",
            a.name,
            a.size,
            hex::encode(a.sha256),
            hex::encode(a.blake3)
        );
    }
    for pr in &predicate.provenance {
        println!(
            "  provenance of {}: {} {} {} signed by {} ({})",
            pr.artifact,
            pr.kind,
            pr.bundle,
            pr.sha256,
            pr.identity.as_deref().unwrap_or("?"),
            pr.issuer.as_deref().unwrap_or("?")
        );
    }
    println!("statement {id}");
    println!(
        "each lead signs it with 'accord release sign {key}' (or offline via export-statement)"
    );
    Ok(())
}

/// Rebuilds the statement with provenance references in its predicate (before anyone signs).
fn with_provenance(
    env: &accord_protocol::Envelope,
    provenance: Vec<ProvenanceRef>,
) -> Result<accord_protocol::Envelope> {
    match Statement::from_envelope(env)? {
        StatementKind::Release {
            artifacts,
            mut predicate,
        } => {
            predicate.provenance = provenance;
            Ok(Statement::release(&artifacts, &predicate).to_envelope())
        }
        _ => bail!("internal: not a release"),
    }
}

/// The releases as this node sees them.
fn views(dir: &DataDir) -> Result<Vec<ReleaseView>> {
    if let Some(node) = Node::running(dir) {
        return node.get("/v1/releases");
    }
    let (cat, problems) = dir.catalogue()?;
    for p in problems {
        eprintln!("warning: {}: {}", p.path, p.detail);
    }
    let me = dir.jurisdiction()?;
    let chain = dir.chain()?;
    let rt = runtime()?;
    rt.block_on(async {
        let store = BlobStore::open(&dir.path.join("blobs")).await?;
        let mut out = Vec::new();
        for r in &cat.releases {
            let mut held = std::collections::HashMap::new();
            for a in &r.artifacts {
                held.insert(a.blake3, store.local(&a.blake3).await?.bytes);
            }
            out.push(ReleaseView::build(r, &cat, &chain, |h| {
                [(me.clone(), held.get(h).copied().unwrap_or(0))].into()
            }));
        }
        store.shutdown().await?;
        explain_offline(dir, &cat, &chain, &me, &mut out)?;
        Ok(out)
    })
}

/// With no node running, the same explanation the node would give: the engine's plan over
/// the persisted state, this store's mirror progress and the catalogue's notes.
fn explain_offline(
    dir: &DataDir,
    cat: &accord_catalogue::Catalogue,
    chain: &accord_trust::RootChain,
    me: &str,
    views: &mut [ReleaseView],
) -> Result<()> {
    let state = dir.promotion_state()?;
    let me = accord_protocol::PrincipalId::new(me)?;
    let local_rules = dir.local_rules();
    let now = accord_protocol::Timestamp::now();
    let held = crate::promotion::held_here(cat, views, me.as_str());
    let candidates = accord_promote::candidates(cat, &held);
    let plan = accord_promote::plan(
        &state,
        &accord_promote::Context {
            root: chain.current(),
            local_rules: &local_rules,
            jurisdiction: &me,
            now,
        },
        &candidates,
    );
    for v in views.iter_mut() {
        let Some(r) = cat.release(&v.id) else {
            continue;
        };
        let mine = plan.explanations.iter().find(|x| x.id == v.id);
        let lines = crate::promotion::explain(r, v, chain, &me, mine, now);
        v.explained(lines);
    }
    Ok(())
}

/// `accord release status [KEY]`.
pub fn status(release: Option<&str>, dir: &DataDir, json: bool) -> Result<()> {
    let mut all = views(dir)?;
    if let Some(k) = release {
        let sel: Selector = k.parse()?;
        all.retain(|v| v.matches(&sel));
        if all.is_empty() {
            bail!("no release {k} in the catalogue");
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let me = dir.jurisdiction().unwrap_or_default();
    for v in &all {
        print_status(v, &me);
    }
    Ok(())
}

/// The human form of a release's status: artifacts, then one block per jurisdiction.
fn print_status(v: &ReleaseView, me: &str) {
    println!(
        "{} (statement {}): {} signature(s); live on: {}",
        v.key,
        v.id.short(),
        v.signatures,
        if v.promoted_on.is_empty() {
            "none".to_owned()
        } else {
            v.promoted_on.join(", ")
        }
    );
    println!("  proposed by: {}", v.proposed_by.join(", "));
    if !v.conflicts.is_empty() {
        println!(
            "  CONFLICT: other statements claim {}: {} — each counts only its own signatures",
            v.key,
            v.conflicts.join(", ")
        );
    }
    println!("  artifacts:");
    let w = v.artifacts.iter().map(|a| a.name.len()).max().unwrap_or(0);
    for a in &v.artifacts {
        let held: Vec<String> = a
            .held
            .iter()
            .map(|(j, b)| format!("{j} {}%", percent(*b, a.size)))
            .collect();
        println!(
            "    {:<w$}  {:>12} bytes  {}",
            a.name,
            a.size,
            held.join("  ")
        );
    }
    use accord_promote::provenance::Verdict;
    match &v.provenance {
        Some(Verdict::Verified { artifacts }) if !artifacts.is_empty() => {
            println!("  provenance (verified by this node):");
            for s in artifacts {
                println!(
                    "    {:<w$}  signed by {} ({}) at {}",
                    s.artifact,
                    s.identity,
                    s.issuer,
                    Timestamp::from_unix(s.signed_at)
                );
            }
        }
        Some(Verdict::Refused { reason }) => {
            println!("  provenance REFUSED by this node: {reason}");
        }
        _ => {}
    }
    for j in &v.jurisdictions {
        let here = if j.jurisdiction == me {
            " (this node)"
        } else {
            ""
        };
        let since = j
            .since
            .as_deref()
            .map(|s| format!(" since {s}"))
            .unwrap_or_default();
        println!(
            "  {}{here}: {}{since}, {}% mirrored",
            j.jurisdiction, j.state, j.mirrored_percent
        );
        for r in &j.signatures {
            let missing = if r.met || r.missing.is_empty() {
                String::new()
            } else {
                format!("; missing {}", r.missing.join(", "))
            };
            println!(
                "    {} {} [{}]: signed {}{missing}",
                if r.met { "✓" } else { "✗" },
                r.requirement,
                r.source,
                if r.signed.is_empty() {
                    "by nobody".to_owned()
                } else {
                    r.signed.join(", ")
                }
            );
        }
        for reason in &j.reasons {
            println!("    not live because: {reason}");
        }
    }
}

/// `accord fetch RELEASE --out DIR`.
pub fn fetch(args: FetchArgs) -> Result<()> {
    let dir = DataDir::new(&args.data_dir.data_dir);
    let sel: Selector = args.release.parse()?;
    let out = std::path::absolute(&args.out).context("cannot resolve --out")?;
    let production = args.channel == "production";
    let started = Instant::now();
    let label = if let Some(node) = Node::running(&dir) {
        // What the node serves: for production, the artifacts it pinned at promotion.
        let views: Vec<ReleaseView> = node.get("/v1/releases")?;
        let me = dir.jurisdiction()?;
        let (selector, expected) = written_target(&views, &sel, production, &me)?;
        let total: u64 = expected.iter().fold(0u64, |t, a| t.saturating_add(a.size));
        let bar = bytes_bar(total, "receiving and verifying");
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        let mut done = 0u64;
        for a in &expected {
            let reader = node.get_stream(&format!(
                "/v1/releases/{selector}/artifacts/{}?channel={}",
                a.name, args.channel
            ))?;
            receive_verified(reader, a, &out.join(&a.name), |n| {
                bar.set_position(done + n)
            })?;
            done += a.size;
        }
        bar.finish_and_clear();
        selector
    } else {
        let (cat, _) = dir.catalogue()?;
        let me = dir.jurisdiction()?;
        let blobs = artifacts::channel_blobs(
            &cat,
            &dir.chain()?,
            &dir.promotion_state()?,
            &args.release,
            production,
            &me,
        )?;
        let total: u64 = blobs
            .artifacts
            .iter()
            .fold(0u64, |t, a| t.saturating_add(a.size));
        let rt = runtime()?;
        rt.block_on(async {
            let store = BlobStore::open(&dir.path.join("blobs")).await?;
            let bar = bytes_bar(total, "verifying and writing");
            let r =
                artifacts::export(&store, &blobs, &out, across_files(&bar, &blobs.artifacts)).await;
            bar.finish_and_clear();
            store.shutdown().await?;
            r
        })?;
        blobs.label
    };
    println!(
        "wrote {label} ({} channel) to {} in {:.2} s, every file verified against the signed digests",
        args.channel,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// An artifact as the CLI checks what a node wrote.
struct Expected {
    name: String,
    size: u64,
    sha256: String,
    blake3: String,
}

/// Which statement a running node will write for `sel`, and its artifacts: for
/// production, the one live on this node (its line says "live"), else the one statement
/// the selector names.
fn written_target(
    views: &[ReleaseView],
    sel: &Selector,
    production: bool,
    me: &str,
) -> Result<(String, Vec<Expected>)> {
    let mut found: Vec<&ReleaseView> = views.iter().filter(|v| v.matches(sel)).collect();
    if production {
        found.retain(|v| v.promoted_on.iter().any(|j| j == me));
    }
    let v = match found.as_slice() {
        [one] => *one,
        [] if production => bail!(
            "{sel} is not promoted on {me} (the production channel serves promoted releases only)"
        ),
        [] => bail!("no release {sel} in the catalogue"),
        many => {
            let labels: Vec<String> = many.iter().map(|v| v.label()).collect();
            bail!(
                "{sel} names {} conflicting statements: {}; name one as CAP@VER#IDPREFIX",
                many.len(),
                labels.join(", ")
            )
        }
    };
    Ok((
        v.id.to_string(),
        v.artifacts
            .iter()
            .map(|a| Expected {
                name: a.name.clone(),
                size: a.size,
                sha256: a.sha256.clone(),
                blake3: a.blake3.clone(),
            })
            .collect(),
    ))
}

/// Writes what the node streams into `dest`: into a private temporary file (created anew,
/// never through a planted name), hashed on the way; renamed into place only when the size,
/// SHA-256 and BLAKE3 are exactly the statement's.
fn receive_verified(
    mut reader: impl Read,
    a: &Expected,
    dest: &Path,
    mut progress: impl FnMut(u64),
) -> Result<()> {
    use std::io::Write;
    let (_private, tmp) = accord_blobs::store::private_temp(dest)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut sha = sha2::Sha256::new();
    let mut b3 = blake3::Hasher::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("receiving {}", a.name))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > a.size {
            bail!("{}: the node sent more than {} bytes", a.name, a.size);
        }
        sha.update(&buf[..n]);
        b3.update(&buf[..n]);
        file.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        progress(size);
    }
    let (sha, b3) = (
        hex::encode(sha.finalize()),
        b3.finalize().to_hex().to_string(),
    );
    if size != a.size || sha != a.sha256 || b3 != a.blake3 {
        bail!(
            "{} does not match the signed digests (size {size}, sha256 {sha}); not written",
            a.name
        );
    }
    file.sync_all()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(file);
    crate::testpoint::pause("fetch-rename");
    std::fs::rename(&tmp, dest).with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(())
}

/// Several readers, one after the other.
struct Chain {
    parts: Vec<Box<dyn Read>>,
    at: usize,
}

impl Read for Chain {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(r) = self.parts.get_mut(self.at) {
            let n = r.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.at += 1;
        }
        Ok(0)
    }
}

/// A reader that moves a progress bar.
pub(crate) struct Progress<R> {
    pub(crate) inner: R,
    pub(crate) bar: ProgressBar,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// `accord gc`: unpin the artifacts of releases that are no longer in the catalogue, then
/// collect everything unpinned (partial downloads of retired releases included).
pub fn gc(dir: &DataDir) -> Result<()> {
    if Node::running(dir).is_some() {
        bail!(
            "a node is running on {}; stop it first (gc needs the blob store to itself)",
            dir.path.display()
        );
    }
    let (cat, _) = dir.catalogue()?;
    let releases = artifacts::releases(&cat);
    // What the node would mirror (the same plan as the running node, with the default
    // staging quota), and what production serves, whatever the catalogue says now.
    let state = dir.promotion_state()?;
    let plan = accord_promote::mirror_plan(
        &cat,
        &dir.chain()?,
        &state,
        &dir.jurisdiction()?,
        crate::config::MirrorConfig::default()
            .staging_quota_mib
            .saturating_mul(1 << 20),
        accord_protocol::Timestamp::now(),
    );
    let retired = plan.held_back.len();
    let mut keep: std::collections::HashSet<String> = releases
        .iter()
        .filter(|b| plan.wanted.contains(&b.id))
        .flat_map(|b| {
            b.artifacts
                .iter()
                .map(|a| accord_mirror::wants::pin_tag(&b.id, &a.name))
        })
        .collect();
    for (id, s) in state.releases.iter().filter(|(_, s)| s.recalled.is_none()) {
        keep.extend(
            s.artifacts
                .iter()
                .map(|a| accord_mirror::wants::pin_tag(id, &a.name)),
        );
    }
    let rt = runtime()?;
    rt.block_on(async {
        let store = BlobStore::open(&dir.path.join("blobs")).await?;
        let before = store.list().await?.len();
        let mut unpinned = 0;
        for (tag, _) in store.pins().await? {
            if !keep.contains(&tag) {
                store.unpin(&tag).await?;
                unpinned += 1;
            }
        }
        store.gc_now().await?;
        let after = store.list().await?.len();
        store.shutdown().await?;
        println!(
            "gc: {unpinned} pin(s) removed ({retired} release(s) recalled, superseded or held back), {} blob(s) deleted, {after} kept",
            before.saturating_sub(after)
        );
        Ok(())
    })
}
