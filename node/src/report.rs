//! Human and JSON renderings of decisions. The wording is the product: an operator must be
//! able to act on every line.

use std::fmt::Write as _;
use std::path::Path;

use accord_protocol::{Envelope, StatementKind};
use accord_trust::{Decision, TrustedRoot};
use anyhow::Result;

use crate::cmd::root::RootOutcome;

pub fn size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// What a signer is about to sign, shown before the key is unlocked.
pub fn what_is_signed(kind: &StatementKind, env: &Envelope) -> String {
    let mut s = String::new();
    let digest = hex::encode(env.payload_digest());
    match kind {
        StatementKind::Release {
            artifacts,
            predicate: p,
        } => {
            let _ = writeln!(
                s,
                "signing release {}@{} (root v{}, proposed by {}, created {})",
                p.capability, p.version, p.root_version, p.proposer, p.created
            );
            for a in artifacts {
                let _ = writeln!(
                    s,
                    "  {:<28} {:>10}  sha256 {}  blake3 {}",
                    a.name,
                    size(a.size),
                    hex::encode(a.sha256),
                    hex::encode(a.blake3)
                );
            }
            for pr in &p.provenance {
                let _ = writeln!(
                    s,
                    "  provenance {} sha256 {} identity {}",
                    pr.kind,
                    pr.sha256,
                    pr.identity.as_deref().unwrap_or("-")
                );
            }
        }
        StatementKind::Recall { predicate: p, .. } => {
            let _ = writeln!(
                s,
                "signing RECALL of {}@{}: {}",
                p.release.capability, p.release.version, p.reason
            );
        }
        StatementKind::Conditional { predicate: p, .. } => {
            let who: Vec<_> = p.consenting.iter().map(|c| c.as_str()).collect();
            let _ = writeln!(
                s,
                "signing CONDITIONAL go-ahead of {}@{} for {} only: {}",
                p.release.capability,
                p.release.version,
                who.join(", "),
                p.reason
            );
        }
    }
    let _ = writeln!(s, "  statement sha256 {digest}");
    s
}

pub fn decision(d: &Decision, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(d)?);
        return Ok(());
    }
    print!("{}", render_decision(d));
    Ok(())
}

pub fn render_decision(d: &Decision) -> String {
    let mut s = String::new();
    if let Some(r) = &d.release {
        let _ = writeln!(
            s,
            "release {}@{} (statement sha256 {}…, made under root v{}, proposed by {})",
            r.capability,
            r.version,
            &r.payload_sha256[..16],
            r.root_version,
            r.proposer
        );
        for a in &r.artifacts {
            let _ = writeln!(
                s,
                "  artifact {:<28} {:>10}  sha256 {}…",
                a.name,
                size(a.size),
                &a.sha256[..16]
            );
        }
    }
    let whom = d
        .jurisdiction
        .as_ref()
        .map(|j| format!(" in {j}"))
        .unwrap_or_default();
    let verdict = if d.promotable {
        "PROMOTABLE"
    } else {
        "NOT PROMOTABLE"
    };
    let _ = writeln!(
        s,
        "decision under root v{}{whom}: {verdict}",
        d.root_version
    );
    for r in &d.requirements {
        let mark = if r.met { "ok  " } else { "MISS" };
        let _ = writeln!(s, "  {mark} {}", r.explain());
    }
    if !d.signatures.is_empty() {
        let _ = writeln!(s, "  signatures:");
        for c in &d.signatures {
            let who = match (&c.principal, c.role, &c.keyid) {
                (Some(p), Some(r), Some(k)) => format!("{p} {r} ({})", k.short()),
                (_, _, Some(k)) => format!("key {}", k.short()),
                _ => "unknown key".into(),
            };
            match &c.ignored {
                None => {
                    let _ = writeln!(s, "    #{} {who}: counted", c.index);
                }
                Some(why) => {
                    let _ = writeln!(s, "    #{} ignored: {why}", c.index);
                }
            }
        }
    }
    for b in &d.blockers {
        if !matches!(b, accord_trust::Blocker::RuleNotMet { .. }) {
            let _ = writeln!(s, "  blocked: {b}");
        }
    }
    for n in &d.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

pub fn root_outcome(path: &Path, outcome: &RootOutcome, json: bool) -> Result<()> {
    let now = accord_protocol::Timestamp::now();
    match outcome {
        Ok((root, walked)) => {
            let expired = root.is_expired(now);
            if json {
                let v = serde_json::json!({
                    "accepted": true,
                    "version": root.version(),
                    "walked": walked,
                    "expires": root.body().expires.to_string(),
                    "expired": expired,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let path_s: Vec<String> = walked.iter().map(|v| format!("v{v}")).collect();
                println!(
                    "{}: root v{} accepted ({})",
                    path.display(),
                    root.version(),
                    path_s.join(" -> ")
                );
                for o in root.root_rule_outcome(root) {
                    println!("  ok   {}", o.explain());
                }
                if expired {
                    println!(
                        "  warning: root v{} expired at {}; nodes will not promote under it until a newer root is applied",
                        root.version(),
                        root.body().expires
                    );
                }
            }
        }
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            if json {
                let v = serde_json::json!({ "accepted": false, "reason": chain.join(": ") });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{}: root NOT accepted: {}",
                    path.display(),
                    chain.join(": ")
                );
            }
        }
    }
    Ok(())
}

pub fn show_root(root: &TrustedRoot, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(root.body())?);
        return Ok(());
    }
    let b = root.body();
    println!(
        "root v{} (expires {}), {} signatures",
        b.version,
        b.expires,
        root.envelope().signatures.len()
    );
    for (pid, p) in &b.principals {
        println!("  {pid} ({})", p.name);
        for (role, rk) in &p.roles {
            let keys: Vec<_> = rk.keys.iter().map(|k| k.short()).collect();
            println!(
                "    {:<9} {} of [{}]",
                role.as_str(),
                rk.threshold,
                keys.join(", ")
            );
        }
    }
    for (name, rule) in [
        ("promote", &b.rules.promote),
        ("recall", &b.rules.recall),
        ("conditional", &b.rules.conditional),
        ("root", &b.rules.root),
    ] {
        let reqs: Vec<_> = rule.all_of.iter().map(|r| r.describe(b)).collect();
        println!("  rule {name:<12} {}", reqs.join(" AND "));
    }
    Ok(())
}
