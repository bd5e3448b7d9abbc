//! `accord audit list|verify`: the chain is checked here, in the CLI, against the node keys
//! the root lists for this jurisdiction, not taken on the node's word.

use accord_protocol::Role;
use accord_store::{AuditEntry, verify_chain};
use anyhow::{Context, Result};

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

pub fn verify(dir: &DataDir) -> Result<()> {
    let entries = verified(dir)?;
    match entries.last() {
        Some(last) => println!(
            "audit log intact: {} entries, each signed by {}'s node key, chained to {}",
            entries.len(),
            dir.jurisdiction()?,
            &last.hash[..16]
        ),
        None => println!("audit log is empty"),
    }
    Ok(())
}
