//! What one hostile sync message costs the node that receives it: peak memory (VmHWM) and
//! time, before and after issue 12.
//!
//! - **before**: what the replica did until commit 83abb40 — load the message's changes
//!   into a fork of the document with Automerge (`receive_sync_message`), and only then
//!   look at who signed them;
//! - **after**: `Replica::receive_message` today — change chunks are counted from their
//!   headers and column encodings against `Limits` before Automerge parses anything;
//!   compressed chunks and whole documents are refused unread.
//!
//! Each case runs in a fresh child process (this executable again), so its VmHWM is its own.
//! The messages are built once by the parent and handed over in files:
//!
//! - a compressed change whose one string value inflates to S bytes (a few hundred KiB on
//!   the wire per 256 MiB inflated: DEFLATE's ratio is about 1000:1, so a message at the
//!   8 MiB limit inflates to about 8 GiB);
//! - an honest-looking change that inserts N characters in one splice (its columns are
//!   run-length encoded: a few bytes on the wire, N operations once loaded);
//! - a change whose actor column claims 2^k operations in one run (63 bytes).
//!
//! Run: `cargo bench -p accord-catalogue --bench hostile_message` (prints a Markdown table;
//! `cargo test` runs it with small sizes as a check that both paths still behave as
//! described).

use std::path::Path;
use std::time::Instant;

use accord_catalogue::{Replica, Seed, Stored, genesis};
use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT};

const SEED: &str = include_str!("../../../config/catalogue.toml");

struct Sizes {
    inflated: usize,
    splice: usize,
    rle_log2: u32,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return child(&args[i + 1], Path::new(&args[i + 2]));
    }
    // `cargo bench` passes --bench; `cargo test` does not: then a quick check.
    let full = args.iter().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            inflated: 256 << 20,
            splice: 2 << 20,
            rle_log2: 24,
        }
    } else {
        Sizes {
            inflated: 4 << 20,
            splice: 1 << 15,
            rle_log2: 16,
        }
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let cases = [
        (
            format!(
                "compressed change, {} MiB string inflated",
                sizes.inflated >> 20
            ),
            compressed_bomb(sizes.inflated),
        ),
        (
            format!("one splice of {} characters", sizes.splice),
            splice_bomb(sizes.splice),
        ),
        (
            format!("actor column claiming 2^{} operations", sizes.rle_log2),
            rle_bomb(1i64 << sizes.rle_log2),
        ),
    ];
    println!(
        "| hostile message | bytes on the wire | before (83abb40 path): peak RSS, time, outcome | after: peak RSS, time, outcome |"
    );
    println!("|---|---|---|---|");
    for (i, (name, chunk)) in cases.iter().enumerate() {
        let file = tmp.path().join(format!("case{i}"));
        std::fs::write(&file, chunk).expect("write case");
        let before = run_child("before", &file);
        let after = run_child("after", &file);
        assert!(
            after.contains("refused"),
            "{name}: the replica accepted it: {after}"
        );
        println!("| {name} | {} | {before} | {after} |", chunk.len());
    }
}

fn run_child(path: &str, file: &Path) -> String {
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--child", path, &file.display().to_string()])
        .output()
        .expect("child");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if text.is_empty() {
        format!(
            "child died ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )
    } else {
        text
    }
}

/// Runs one path on the chunk in `file` and prints "PEAK MiB, TIME ms, OUTCOME".
fn child(path: &str, file: &Path) {
    let chunk = std::fs::read(file).expect("case");
    let (coop, root) = accord_trust::testkit::anchored().expect("cooperative");
    let seed = Seed::parse(SEED, "seed").expect("seed");
    let (doc, hash) =
        genesis::build(&seed, &hex::encode(root.envelope().payload_digest())).expect("genesis");
    let msg = sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: sync::ChunkList::from(vec![chunk]),
        flags: None,
        version: sync::MessageVersion::V1,
    };
    // Set up first (a fork, or an open replica): only the message is timed.
    let mut replica = (path != "before").then(|| {
        let stored = Stored {
            snapshot: Some(doc.save()),
            ..Stored::default()
        };
        let key = coop.signer("uk.node").expect("key");
        Replica::open(
            hash,
            stored,
            key,
            accord_trust::RootChain::from_trusted(root.clone()),
        )
        .expect("open")
    });
    let mut fork = doc.fork();
    let base = peak_mib();
    let t = Instant::now();
    let outcome = match replica.as_mut() {
        None => {
            let mut state = sync::State::new();
            match fork.receive_sync_message(&mut state, msg) {
                Ok(()) => "loaded into the fork".to_owned(),
                Err(e) => format!("Automerge error after decoding: {e}"),
            }
        }
        Some(r) => {
            let bytes = accord_catalogue::wire::WireMessage {
                sync: msg.encode(),
                signatures: vec![],
            }
            .encode();
            match r.receive_message("eu", &bytes, 1_800_000_000) {
                Ok(_) => "accepted".to_owned(),
                Err(e) => format!("refused: {}", short(&e.to_string())),
            }
        }
    };
    let ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "{:.0} MiB (from {base:.0}), {ms:.0} ms, {outcome}",
        peak_mib()
    );
}

fn short(s: &str) -> String {
    let s = s
        .replace('|', "/")
        .replace("sync message from eu refused: ", "");
    match s.char_indices().nth(90) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// A change by a stranger's actor putting one string of `inflated` bytes, in Automerge's
/// compressed change chunk.
fn compressed_bomb(inflated: usize) -> Vec<u8> {
    let mut doc = Automerge::new().with_actor(ActorId::from([9u8; 16].as_slice()));
    let mut tx = doc.transaction();
    tx.put(ROOT, "x", "a".repeat(inflated)).expect("put");
    tx.commit();
    let mut change = doc.get_changes(&[]).last().cloned().expect("change");
    let bytes = change.bytes().into_owned();
    assert_eq!(bytes[8], 2, "not a compressed chunk");
    bytes
}

/// One splice of `n` characters: a few bytes per run on the wire, `n` operations loaded.
fn splice_bomb(n: usize) -> Vec<u8> {
    let mut doc = Automerge::new().with_actor(ActorId::from([8u8; 16].as_slice()));
    let mut tx = doc.transaction();
    let text = tx
        .put_object(ROOT, "t", automerge::ObjType::Text)
        .expect("text");
    tx.splice_text(&text, 0, 0, &"b".repeat(n)).expect("splice");
    tx.commit();
    let change = doc.get_changes(&[]).last().cloned().expect("change");
    change.raw_bytes().to_vec()
}

/// A change chunk whose actor column is one run claiming `ops` operations.
fn rle_bomb(ops: i64) -> Vec<u8> {
    fn uleb(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn sleb(out: &mut Vec<u8>, mut v: i64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            let done = (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0);
            out.push(if done { b } else { b | 0x80 });
            if done {
                return;
            }
        }
    }
    let mut column = Vec::new();
    sleb(&mut column, ops);
    uleb(&mut column, 0);
    let mut body = Vec::new();
    uleb(&mut body, 0);
    uleb(&mut body, 16);
    body.extend_from_slice(&[7; 16]);
    uleb(&mut body, 1);
    uleb(&mut body, 1);
    sleb(&mut body, 0);
    uleb(&mut body, 0);
    uleb(&mut body, 0);
    uleb(&mut body, 1);
    uleb(&mut body, (1 << 4) | 1);
    uleb(&mut body, column.len() as u64);
    body.extend_from_slice(&column);
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1];
    uleb(&mut chunk, body.len() as u64);
    chunk.extend_from_slice(&body);
    chunk
}
