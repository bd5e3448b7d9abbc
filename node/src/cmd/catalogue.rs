//! `accord init` and `accord catalogue list|show|edit|export` on a local data directory.

use accord_catalogue::Catalogue;
use accord_catalogue::edit::EditSpec;
use accord_catalogue::schema::Capability;
use accord_protocol::Timestamp;
use anyhow::{Context, Result, bail};

use crate::cli::{CatalogueCommand, InitArgs};
use crate::client::Node;
use crate::datadir::{DataDir, EMBEDDED_SEED};
use crate::files::write_atomic;
use crate::passphrase;

/// Compact the stored changes into one snapshot once there are this many.
pub const COMPACT_AFTER: u64 = 256;

pub fn init(args: InitArgs) -> Result<()> {
    let dir = DataDir::new(&args.data_dir.data_dir);
    let (text, name) = match &args.seed {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (
            EMBEDDED_SEED.to_owned(),
            "the built-in seed catalogue".to_owned(),
        ),
    };
    println!("{}", dir.init(&args.root, &args.node_key, &text, &name)?);
    Ok(())
}

pub fn run(cmd: CatalogueCommand) -> Result<()> {
    match cmd {
        CatalogueCommand::List {
            data_dir,
            domain,
            json,
        } => {
            let (cat, problems) = DataDir::new(&data_dir.data_dir).catalogue()?;
            warn_problems(&problems);
            let caps: Vec<&Capability> = cat
                .capabilities
                .iter()
                .filter(|c| {
                    domain
                        .as_deref()
                        .is_none_or(|d| c.domain.eq_ignore_ascii_case(d))
                })
                .collect();
            if let Some(d) = &domain
                && !cat.domains.iter().any(|x| x.id.eq_ignore_ascii_case(d))
            {
                let known: Vec<_> = cat.domains.iter().map(|d| d.id.as_str()).collect();
                bail!("unknown domain {d:?}; domains are {}", known.join(", "));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&caps)?);
                return Ok(());
            }
            println!(
                "{:<8} {:<15} {:<3} {:<5} {:<4} NAME",
                "ID", "STATUS", "DOM", "WG", "LEAD"
            );
            for c in caps {
                println!(
                    "{:<8} {:<15} {:<3} {:<5} {:<4} {}",
                    c.id,
                    c.status.as_str(),
                    c.domain,
                    c.working_group,
                    c.lead_jurisdiction,
                    c.name
                );
            }
            Ok(())
        }
        CatalogueCommand::Show { id, data_dir, json } => {
            let (cat, problems) = read_catalogue(&DataDir::new(&data_dir.data_dir))?;
            warn_problems(&problems);
            let c = find(&cat, &id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(c)?);
            } else {
                print!("{}", render(c));
            }
            Ok(())
        }
        CatalogueCommand::History { id, data_dir, json } => {
            let dir = DataDir::new(&data_dir.data_dir);
            accord_catalogue::schema::check_capability_id(&id)?;
            let edits: Vec<accord_catalogue::history::Edit> = match Node::running(&dir) {
                Some(node) => node.get(&format!("/v1/catalogue/{id}/history"))?,
                None => {
                    let (doc, _) = dir.document()?;
                    if find(&accord_catalogue::schema::read(&doc).0, &id).is_err() {
                        bail!("unknown capability {id}");
                    }
                    accord_catalogue::history::capability(&doc, &dir.chain()?, &id)
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&edits)?);
            } else {
                for e in &edits {
                    let at = Timestamp::from_unix(e.time);
                    println!(
                        "{at}  {}  {:<40}  {}  [{}]",
                        e.change,
                        e.author,
                        e.message,
                        e.fields.join(", ")
                    );
                }
            }
            Ok(())
        }
        CatalogueCommand::Edit {
            id,
            data_dir,
            set,
            add_dependency,
            remove_dependency,
            add_requirement,
            add_non_functional,
            add_deliverable,
            passphrase: pass_args,
        } => {
            let dir = DataDir::new(&data_dir.data_dir);
            let mut sets = Vec::new();
            for s in &set {
                let (k, v) = s
                    .split_once('=')
                    .with_context(|| format!("--set takes FIELD=VALUE, got {s:?}"))?;
                sets.push((k.trim().to_owned(), v.to_owned()));
            }
            if sets.is_empty()
                && add_dependency.is_empty()
                && remove_dependency.is_empty()
                && add_requirement.is_empty()
                && add_non_functional.is_empty()
                && add_deliverable.is_empty()
            {
                bail!("nothing to edit: give --set FIELD=VALUE or --add-…/--remove-… options");
            }
            let spec = EditSpec {
                set: sets,
                add_dependency,
                remove_dependency,
                add_requirement,
                add_non_functional,
                add_deliverable,
            };
            if let Some(node) = Node::running(&dir) {
                let answer = node.post_json(&format!("/v1/catalogue/{id}"), &spec)?;
                println!(
                    "{id}: committed change {} through the running node at {}",
                    answer["change"].as_str().unwrap_or("(none)"),
                    node.url
                );
                return Ok(());
            }
            let pass = passphrase::existing(&pass_args, "the node key")?;
            let (mut replica, db) = dir.replica(&pass)?;
            let delta = replica.edit(Timestamp::now().unix(), &spec.summary(&id), |tx| {
                spec.apply(tx, &id)
            })?;
            crate::testpoint::pause("edit-before-commit");
            db.apply(&delta)?;
            crate::testpoint::pause("edit-committed");
            if db.pending_changes()? >= COMPACT_AFTER {
                crate::testpoint::pause("compaction");
                db.compact(&replica.save())?;
                crate::testpoint::pause("compacted");
            }
            match delta.changes.first() {
                Some(c) => println!(
                    "{id}: committed change {} signed by node key {}",
                    hex::encode(&c.hash[..8]),
                    replica_key_short(&dir)?
                ),
                None => println!("{id}: no change (values already set)"),
            }
            Ok(())
        }
        CatalogueCommand::Export { data_dir, out } => {
            let (doc, _) = DataDir::new(&data_dir.data_dir).document()?;
            let bytes = doc.save();
            write_atomic(&out, &bytes, false)?;
            println!(
                "wrote {} ({} bytes, {} changes, Automerge binary format)",
                out.display(),
                bytes.len(),
                doc.get_changes(&[]).len()
            );
            Ok(())
        }
    }
}

fn replica_key_short(dir: &DataDir) -> Result<String> {
    let p = accord_trust::PublicKey::read(&dir.path.join("node.key.pub"))?;
    Ok(p.id().short().to_owned())
}

fn find<'a>(cat: &'a Catalogue, id: &str) -> Result<&'a Capability> {
    cat.capability(id).with_context(|| {
        format!(
            "unknown capability {id}; 'accord catalogue list' shows the {} ids",
            cat.capabilities.len()
        )
    })
}

fn warn_problems(problems: &[accord_catalogue::Problem]) {
    for p in problems {
        eprintln!("warning: catalogue entry {} skipped: {}", p.path, p.detail);
    }
}

fn render(c: &Capability) -> String {
    let mut s = format!("{} — {}\n", c.id, c.name);
    let rows = [
        ("status", c.status.as_str().to_owned()),
        ("domain", c.domain.clone()),
        ("aws equivalent", c.aws_equivalent.clone()),
        ("open-source base", c.open_source_base.clone()),
        ("priority", c.priority.clone()),
        ("effort", c.effort.clone()),
        ("working group", c.working_group.clone()),
        ("lead jurisdiction", c.lead_jurisdiction.clone()),
        ("dependencies", c.dependencies.join(", ")),
    ];
    for (k, v) in rows {
        s.push_str(&format!(
            "  {k:<18} {}\n",
            if v.is_empty() { "-" } else { &v }
        ));
    }
    for (title, items) in [
        ("functional requirements", &c.functional_requirements),
        (
            "non-functional requirements",
            &c.non_functional_requirements,
        ),
        ("deliverables", &c.deliverables),
    ] {
        if !items.is_empty() {
            s.push_str(&format!("  {title}:\n"));
            for (i, it) in items.iter().enumerate() {
                s.push_str(&format!("    {i}. {it}\n"));
            }
        }
    }
    s
}

/// Reads through the running node when there is one (its database is locked while it
/// runs), else from the data directory.
fn read_catalogue(dir: &DataDir) -> Result<(Catalogue, Vec<accord_catalogue::Problem>)> {
    match Node::running(dir) {
        Some(node) => {
            let view: crate::api::CatalogueView = node.get("/v1/catalogue")?;
            Ok((view.catalogue, view.problems))
        }
        None => dir.catalogue(),
    }
}

/// `accord node status`: health, peers and counters of the node running on `dir`.
pub fn status(dir: &DataDir, json: bool) -> Result<()> {
    let Some(node) = Node::running(dir) else {
        bail!(
            "no node is running on {} (start it with 'accord node run --config FILE')",
            dir.path.display()
        );
    };
    let url = &node.url;
    let health: serde_json::Value = node.get("/health")?;
    let peers: serde_json::Value = node.get("/v1/peers")?;
    let metrics = crate::client::agent()
        .get(format!("{url}/metrics"))
        .call()?
        .body_mut()
        .read_to_string()?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "health": health, "peers": peers }))?
        );
        return Ok(());
    }
    println!(
        "node {} ({}) at {url}: root v{}, {} heads",
        health["jurisdiction"].as_str().unwrap_or("?"),
        health["peer_id"].as_str().unwrap_or("?"),
        health["root_version"],
        health["heads"].as_array().map(|h| h.len()).unwrap_or(0)
    );
    for p in peers.as_array().into_iter().flatten() {
        println!(
            "  peer {:<3} {:<12} {}",
            p["jurisdiction"].as_str().unwrap_or("?"),
            if p["connected"] == true {
                "connected"
            } else {
                "not connected"
            },
            p["peer_id"].as_str().unwrap_or("?")
        );
    }
    if let Some(line) = expiry_warning(&metrics) {
        println!("  WARNING: {line}");
    }
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        println!("  {line}");
    }
    Ok(())
}

/// "root expires in …" when `/metrics` says the root expires within the node's warning
/// window (the node logs and audits the same).
fn expiry_warning(metrics: &str) -> Option<String> {
    let value = |name: &str| -> Option<i64> {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let left = value("accord_root_expires_in_seconds{")?;
    let version = value("accord_root_version{")?;
    let window = value("accord_root_expiry_warning_seconds{")?;
    if left > window {
        return None;
    }
    Some(if left > 0 {
        format!(
            "root v{version} expires in {}; the steering committee must sign its successor before then",
            accord_promote::reason::span(u64::try_from(left).unwrap_or(0))
        )
    } else {
        format!("root v{version} has expired; nothing is promoted until its successor is applied")
    })
}
