//! `accord audit list|verify`: the chain is checked here, in the CLI, against the node keys
//! the root lists for this jurisdiction, not taken on the node's word.

use accord_protocol::Role;
use accord_store::{AuditEntry, verify_chain};
use anyhow::{Context, Result, bail};

use crate::api::AuditRow;
use crate::client::Node;
use crate::datadir::DataDir;

fn rows(dir: &DataDir) -> Result<Vec<(u64, Vec<u8>)>> {
    match Node::running(dir) {
        Some(node) => {
            let rows: Vec<AuditRow> = node.get("/v1/audit")?;
            rows.into_iter()
                .map(|r| Ok((r.seq, hex::decode(&r.row).context("audit row is not hex")?)))
                .collect()
        }
        None => Ok(dir.db()?.audit_rows()?),
    }
}

/// The whole log, verified: order, hash chain, and signatures by this jurisdiction's node
/// keys in any root of the chain (a row signed before a node key was rotated still counts).
pub fn verified(dir: &DataDir) -> Result<Vec<AuditEntry>> {
    let chain = dir.chain()?;
    let me = dir.jurisdiction()?;
    let rows = rows(dir)?;
    let entries = verify_chain(&rows, |id| {
        chain
            .roots()
            .iter()
            .rev()
            .find_map(|root| match root.body().place_of(id) {
                Some((p, Role::Node)) if p.as_str() == me => root.key(id).cloned(),
                _ => None,
            })
    })
    .with_context(|| format!("the audit log of {} is broken", dir.path.display()))?;
    Ok(entries)
}

pub fn list(dir: &DataDir, json: bool) -> Result<()> {
    let entries = verified(dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    for e in &entries {
        let b = &e.body;
        println!(
            "{:>5}  {}  {:<9}  {:<24}  {}",
            b.seq, b.at, b.kind, b.subject, b.detail
        );
    }
    println!("{} entries; chain intact", entries.len());
    Ok(())
}

/// The audit checkpoints of `jurisdiction` that `source`'s catalogue holds, each checked
/// against the chain's node keys of that jurisdiction (any root: a rotated key's
/// checkpoints still count).
fn checkpoints(
    source: &DataDir,
    chain: &accord_trust::RootChain,
    jurisdiction: &str,
) -> Result<Vec<accord_protocol::AuditCheckpoint>> {
    let cat = match Node::running(source) {
        Some(node) => {
            node.get::<crate::api::CatalogueView>("/v1/catalogue")?
                .catalogue
        }
        None => source.catalogue()?.0,
    };
    let mut out = Vec::new();
    for c in &cat.checkpoints {
        let Ok((env, cp)) = accord_protocol::AuditCheckpoint::parse(&c.value) else {
            continue;
        };
        if cp.jurisdiction.as_str() != jurisdiction {
            continue;
        }
        let pae = env.pae();
        let signed = env.signatures.iter().any(|s| {
            chain.roots().iter().any(|root| {
                root.node_keys()
                    .iter()
                    .any(|(p, k)| p.as_str() == jurisdiction && k.verify(&pae, &s.sig))
            })
        });
        if signed {
            out.push(cp);
        }
    }
    Ok(out)
}

pub fn verify(dir: &DataDir, against: Option<&DataDir>) -> Result<()> {
    let entries = verified(dir)?;
    let me = dir.jurisdiction()?;
    let chain = dir.chain()?;
    let source = against.unwrap_or(dir);
    let held = checkpoints(source, &chain, &me)?;
    for cp in &held {
        match entries.iter().find(|e| e.body.seq == cp.seq) {
            None => bail!(
                "the audit log of {} is truncated: {} holds {me}'s signed checkpoint of row {} (at {}), but the log ends at row {}",
                dir.path.display(),
                source.path.display(),
                cp.seq,
                cp.at,
                entries.last().map(|e| e.body.seq).unwrap_or(0)
            ),
            Some(e) if e.hash != cp.head => bail!(
                "the audit log of {} was rewritten: row {} hashes to {}, {me}'s signed checkpoint says {}",
                dir.path.display(),
                cp.seq,
                &e.hash[..16],
                &cp.head[..16.min(cp.head.len())]
            ),
            Some(_) => {}
        }
    }
    match entries.last() {
        Some(last) => println!(
            "audit log intact: {} entries, each signed by {me}'s node key, chained to {}; agrees with {} signed checkpoint(s) held by {}",
            entries.len(),
            &last.hash[..16],
            held.len(),
            source.path.display()
        ),
        None => println!("audit log is empty"),
    }
    Ok(())
}
