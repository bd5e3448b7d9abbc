//! The audit log: a chain that verifies, and every way of editing it is caught.

use accord_protocol::Timestamp;
use accord_store::audit::kind;
use accord_store::{AuditEvent, NodeDb, verify_chain};
use accord_trust::{PublicKey, SecretKey};

fn db_with(n: usize) -> (tempfile::TempDir, NodeDb, SecretKey) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = NodeDb::open(&dir.path().join("node.redb")).expect("open");
    let key = SecretKey::generate().expect("key");
    for i in 0..n {
        db.append_audit(
            &key,
            Timestamp::now(),
            &[AuditEvent::new(
                kind::SIGNATURE,
                format!("CAP-B01@1.{i}.0"),
                "lead of uk",
            )],
        )
        .expect("append");
    }
    (dir, db, key)
}

fn trust(key: &SecretKey) -> impl Fn(&accord_protocol::KeyId) -> Option<PublicKey> + '_ {
    move |id| (id == key.id()).then(|| key.public().clone())
}

#[test]
fn an_appended_log_verifies_in_order() {
    let (_d, db, key) = db_with(5);
    db.commit_promotion(
        b"{}",
        &key,
        Timestamp::now(),
        &[
            AuditEvent::new(kind::PROMOTED, "CAP-B01@1.4.0", "all rules met"),
            AuditEvent::new(kind::HOOK, "CAP-B01@1.4.0", "owed"),
        ],
    )
    .expect("commit");
    let rows = db.audit_rows().expect("rows");
    let entries = verify_chain(&rows, trust(&key)).expect("intact");
    assert_eq!(entries.len(), 7);
    assert_eq!(entries[5].body.kind, "promoted");
    assert_eq!(entries[6].body.prev, entries[5].hash);
    assert_eq!(
        db.promotion_state().expect("state").as_deref(),
        Some(&b"{}"[..])
    );
}

#[test]
fn every_edit_is_caught_at_the_entry_it_touches() {
    let (_d, db, key) = db_with(4);
    let rows = db.audit_rows().expect("rows");

    // A flipped byte in a body: its signature fails.
    let mut edited = rows.clone();
    let last = edited[2].1.len() - 3;
    edited[2].1[last] ^= 1;
    let e = verify_chain(&edited, trust(&key)).expect_err("edited body");
    assert_eq!(e.seq, 3);

    // An edit in the middle of the log is caught there too.
    let mut resealed = rows.clone();
    resealed[1].1[70] ^= 1;
    assert!(verify_chain(&resealed, trust(&key)).is_err());

    // A removed entry.
    let mut removed = rows.clone();
    removed.remove(1);
    let e = verify_chain(&removed, trust(&key)).expect_err("removed");
    assert_eq!(e.seq, 3);
    assert!(e.why.contains("missing"), "{e}");

    // Reordered entries.
    let mut swapped = rows.clone();
    swapped.swap(1, 2);
    assert!(verify_chain(&swapped, trust(&key)).is_err());

    // Signed by a key the verifier does not trust.
    let stranger = SecretKey::generate().expect("key");
    let e = verify_chain(&rows, trust(&stranger)).expect_err("untrusted");
    assert!(e.why.contains("not trusted"), "{e}");

    // Truncated or garbage rows are errors, not panics.
    let mut short = rows.clone();
    short[0].1.truncate(10);
    assert!(verify_chain(&short, trust(&key)).is_err());
    let mut garbage = rows;
    garbage[0].1 = vec![0xff; 200];
    assert!(verify_chain(&garbage, trust(&key)).is_err());
}

#[test]
fn the_log_survives_reopening_and_keeps_chaining() {
    let (dir, db, key) = db_with(3);
    drop(db);
    let db = NodeDb::open(&dir.path().join("node.redb")).expect("reopen");
    db.append_audit(
        &key,
        Timestamp::now(),
        &[AuditEvent::new(kind::ROOT, "v2", "installed")],
    )
    .expect("append");
    let entries = verify_chain(&db.audit_rows().expect("rows"), trust(&key)).expect("intact");
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[3].body.seq, 4);
}
