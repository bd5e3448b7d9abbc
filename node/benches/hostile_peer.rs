//! Whole-process: one listed node key (AU's, stolen) floods UK's node with maximal hostile
//! sync messages for a fixed time while EU's node keeps editing; what does it cost UK, and
//! does honest sync carry on?
//!
//! UK runs with `strikes_before_ban` raised out of reach, so the attacker is never banned
//! and the flood is sustained: the worst case of the per-message cost (with the default of
//! 3 strikes, the same key gets 3 messages in, then a 30 s ban that doubles each time). The
//! attacker cycles through, each as large as the limits let a message be:
//!
//! - a compressed change chunk: 1 MiB on the wire, 1 GiB of zeros once inflated;
//! - a change whose actor column claims 2^62 operations in one run;
//! - 8 MiB of random bytes (the message size limit);
//! - a change signed by AU's key inserting 2,000,000 characters in one splice;
//! - a properly signed change that deletes a capability's field (forbidden);
//!
//! and reconnects whenever UK hangs up. EU edits a capability every 250 ms through its API;
//! each edit's time until UK shows it is recorded. Reported: UK's peak RSS (VmHWM) and RSS
//! at the end, UK's CPU time over the attack, the messages sent, and the honest edits'
//! latency during the attack.
//!
//! Run: `cargo bench -p accord-node --bench hostile_peer` (release build; `cargo test`
//! runs it for 3 s as a check).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use accord_testsupport::cli::*;
use accord_testsupport::cluster::*;
use accord_testsupport::forge::{self, Forger};
use accord_testsupport::peer::{HostilePeer, Outcome};

fn proc_field(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of /proc/PID/stat; `after` starts at field 3. Clock ticks are 100/s.
    (ticks(11) + ticks(12)) / 100.0
}

fn wire(chunks: Vec<Vec<u8>>, signatures: Vec<[u8; 64]>) -> Vec<u8> {
    accord_catalogue::wire::WireMessage {
        sync: automerge::sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: automerge::sync::ChunkList::from(chunks),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        }
        .encode(),
        signatures,
    }
    .encode()
}

/// A compressed change chunk (type 2) whose DEFLATE body inflates to `inflated` zeros.
fn compressed_bomb(inflated: usize) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    for _ in 0..inflated / block.len() {
        enc.write_all(&block).expect("deflate");
    }
    let body = enc.finish().expect("deflate");
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    uleb(&mut chunk, body.len() as u64);
    chunk.extend_from_slice(&body);
    chunk
}

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

/// A change chunk whose actor column is one run claiming 2^62 operations.
fn rle_bomb() -> Vec<u8> {
    let mut column = Vec::new();
    sleb(&mut column, 1 << 62);
    uleb(&mut column, 0);
    let mut body = Vec::new();
    for v in [0u64, 16] {
        uleb(&mut body, v);
    }
    body.extend_from_slice(&[7; 16]);
    uleb(&mut body, 1);
    uleb(&mut body, 1);
    sleb(&mut body, 0);
    for v in [0u64, 0, 1, (1 << 4) | 1, column.len() as u64] {
        uleb(&mut body, v);
    }
    body.extend_from_slice(&column);
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1];
    uleb(&mut chunk, body.len() as u64);
    chunk.extend_from_slice(&body);
    chunk
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let attack_for = Duration::from_secs(if full { 60 } else { 3 });
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    let uk_cfg = d.join("uk.toml");
    let mut cfg = std::fs::read_to_string(&uk_cfg).expect("config");
    cfg.push_str("[limits]\nstrikes_before_ban = 1000000\n");
    std::fs::write(&uk_cfg, cfg).expect("config");
    c.start(0);
    c.start(1);
    let uk = c.pid(0).expect("uk runs");
    assert!(eventually(30, || connected(d, 0).len() == 1), "UK-EU");

    // The attacker: AU's node key, synced once so its forged changes have real parents.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let au = accord_trust::SecretKey::read(&d.join("au/node.key"), PASS).expect("au key");
    let uk_pub = accord_trust::PublicKey::read(&d.join("uk/node.key.pub")).expect("uk pub");
    let chain = accord_trust::RootChain::anchor(&std::fs::read(d.join("root.json")).expect("root"))
        .expect("chain");
    let seed = accord_catalogue::Seed::parse(
        include_str!("../../config/catalogue.toml"),
        "catalogue.toml",
    )
    .expect("seed");
    let addr: accord_net::libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", tcp_port(d, 0))
        .parse()
        .expect("addr");
    let key = || accord_trust::SecretKey::from_seed(&au.seed_bytes()).expect("key");
    let connect = || {
        rt.block_on(HostilePeer::connect(
            key(),
            &seed,
            chain.clone(),
            &uk_pub.raw(),
            addr.clone(),
            Duration::from_secs(20),
        ))
    };
    let mut peer = connect().expect("attacker connects");
    rt.block_on(peer.sync(Duration::from_secs(30)))
        .expect("attacker syncs");
    let doc = peer.replica.doc().clone();
    let heads = doc.get_heads();
    let forger = Forger::new(key());
    let splice = forger.change(&doc, 1_800_000_001, |tx| {
        let caps = forge::top(tx, "capabilities");
        let b01 = automerge::ReadDoc::get(tx, &caps, "CAP-B01")?
            .expect("b01")
            .1;
        let t = automerge::transaction::Transactable::put_object(
            tx,
            &b01,
            "notes",
            automerge::ObjType::Text,
        )?;
        automerge::transaction::Transactable::splice_text(tx, &t, 0, 0, &"b".repeat(2_000_000))
    });
    let forbidden = forger.change(&doc, 1_800_000_002, |tx| {
        let caps = forge::top(tx, "capabilities");
        let b01 = automerge::ReadDoc::get(tx, &caps, "CAP-B01")?
            .expect("b01")
            .1;
        automerge::transaction::Transactable::delete(tx, &b01, "status")
    });
    let garbage: Vec<u8> = (0..(8u32 << 20) - 64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let kinds: Vec<(&str, Vec<u8>)> = vec![
        (
            if full {
                "compressed chunk, 1 GiB inflated"
            } else {
                "compressed chunk, 32 MiB inflated"
            },
            wire(
                vec![compressed_bomb(if full { 1 << 30 } else { 32 << 20 })],
                vec![],
            ),
        ),
        (
            "actor column claiming 2^62 ops",
            wire(vec![rle_bomb()], vec![]),
        ),
        ("8 MiB of noise", garbage),
        (
            "signed 2,000,000-character splice",
            forger.message(heads.clone(), std::slice::from_ref(&splice)),
        ),
        (
            "signed forbidden delete",
            forger.message(heads, std::slice::from_ref(&forbidden)),
        ),
    ];

    // EU's honest edits, each timed until UK shows it.
    let token = std::fs::read_to_string(d.join("eu-data/api.token"))
        .expect("token")
        .trim()
        .to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let arrived = Arc::new(AtomicU64::new(0));
    let honest = {
        let (d, stop, arrived) = (d.to_owned(), stop.clone(), arrived.clone());
        std::thread::spawn(move || {
            let mut lat = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let value = format!("{n} weeks");
                let t = Instant::now();
                let ok = agent()
                    .post(format!("{}/v1/catalogue/CAP-E02", api(&d, 1)))
                    .header("Authorization", &format!("Bearer {token}"))
                    .send_json(serde_json::json!({ "set": [["effort", value]] }))
                    .is_ok_and(|r| r.status().is_success());
                assert!(ok, "EU's edit {n} failed");
                let seen = eventually(30, || field(&d, "uk", "CAP-E02", "effort") == value);
                assert!(seen, "edit {n} never reached UK during the attack");
                arrived.fetch_add(1, Ordering::Relaxed);
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                std::thread::sleep(Duration::from_millis(250));
            }
            lat
        })
    };

    let rss_before = proc_field(uk, "VmRSS:");
    let cpu_before = cpu_secs(uk);
    let t0 = Instant::now();
    let mut sent = vec![0u64; kinds.len()];
    let mut reconnects = 0u64;
    let mut i = 0usize;
    while t0.elapsed() < attack_for {
        let k = i % kinds.len();
        i += 1;
        match rt.block_on(peer.send(kinds[k].1.clone(), Duration::from_secs(30))) {
            Ok(Outcome::Answered) => sent[k] += 1,
            Ok(Outcome::Disconnected) | Err(_) => {
                sent[k] += 1;
                reconnects += 1;
                peer = match connect() {
                    Ok(p) => p,
                    Err(e) => panic!("UK stopped accepting the attacker: {e}"),
                };
            }
        }
    }
    let attack_secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs(uk) - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let mut lat = honest.join().expect("honest editor");
    lat.sort_by(f64::total_cmp);
    let hwm = proc_field(uk, "VmHWM:");
    let rss_after = proc_field(uk, "VmRSS:");
    assert!(!lat.is_empty(), "no honest edit went through");
    c.stop_all();

    println!("| measure (UK, under a {attack_secs:.0} s flood) | value |");
    println!("|---|---|");
    for (k, (name, bytes)) in kinds.iter().enumerate() {
        println!(
            "| sent: {name} ({} bytes each) | {} |",
            bytes.len(),
            sent[k]
        );
    }
    println!("| attacker reconnects (UK hung up each time) | {reconnects} |");
    println!(
        "| UK peak RSS (VmHWM), RSS before / after | {hwm:.0} MiB, {rss_before:.0} / {rss_after:.0} MiB (target < 200 MiB) |"
    );
    println!(
        "| UK CPU time during the flood | {cpu:.1} s of {attack_secs:.0} s ({:.0}% of one core) |",
        cpu * 100.0 / attack_secs
    );
    println!(
        "| EU's edits seen at UK during the flood | {} , latency median {:.0} ms, max {:.0} ms |",
        arrived.load(Ordering::Relaxed),
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
}
