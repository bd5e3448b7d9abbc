//! The node database round-trips the catalogue: deltas applied, reopened, compacted, and the
//! reloaded replica still relays signed changes that a fresh peer accepts.

use accord_catalogue::{Replica, Seed, Stored, edit, genesis};
use accord_store::NodeDb;
use accord_trust::TrustedRoot;
use accord_trust::testkit::Cooperative;

const SEED: &str = include_str!("../../../config/catalogue.toml");

fn setup() -> (Cooperative, TrustedRoot, Seed) {
    let (coop, root) = accord_trust::testkit::anchored().expect("cooperative");
    (coop, root, Seed::parse(SEED, "seed").expect("seed"))
}

fn anchor(root: &TrustedRoot) -> String {
    hex::encode(root.envelope().payload_digest())
}

#[test]
fn deltas_survive_reopen_and_compaction() {
    let (coop, root, seed) = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    let (doc, hash) = genesis::build(&seed, &anchor(&root)).expect("genesis");
    let db = NodeDb::open(&path).expect("open");
    db.initialise(
        &doc.save(),
        &[(1, root.envelope().to_json())],
        &[("genesis", &hash.0)],
    )
    .expect("init");
    assert_eq!(db.root_chain().expect("chain").len(), 1);

    let open = |db: &NodeDb| {
        Replica::open(
            hash,
            db.load_catalogue().expect("load"),
            coop.signer("uk.node").expect("key"),
            accord_trust::RootChain::from_trusted(root.clone()),
        )
        .expect("replica")
    };
    let mut uk = open(&db);
    for i in 0..20 {
        let d = uk
            .edit(1_800_000_000 + i, "edit", |tx| {
                edit::set(tx, "CAP-B01", "effort", &format!("{i} weeks"))
            })
            .expect("edit");
        db.apply(&d).expect("apply");
    }
    let heads = uk.heads();
    assert_eq!(db.pending_changes().expect("count"), 20);
    drop(db);

    // Reopen: same document.
    let db = NodeDb::open(&path).expect("reopen");
    assert_eq!(open(&db).heads(), heads);

    // Compact: one snapshot, no loose changes, same document, signatures kept.
    db.compact(&uk.save()).expect("compact");
    assert_eq!(db.pending_changes().expect("count"), 0);
    let mut reloaded = open(&db);
    assert_eq!(reloaded.heads(), heads);

    // The reloaded replica can still prove its changes to a peer that never saw them.
    let (gdoc, _) = genesis::build(&seed, &anchor(&root)).expect("genesis");
    let stored = Stored {
        snapshot: Some(gdoc.save()),
        ..Stored::default()
    };
    let mut eu = Replica::open(
        hash,
        stored,
        coop.signer("eu.node").expect("key"),
        accord_trust::RootChain::from_trusted(root.clone()),
    )
    .expect("eu");
    for _ in 0..10 {
        let mut quiet = true;
        if let Some(m) = reloaded.generate_message("eu") {
            quiet = false;
            eu.receive_message("uk", &m, 1_800_000_000)
                .expect("eu accepts");
        }
        if let Some(m) = eu.generate_message("uk") {
            quiet = false;
            reloaded
                .receive_message("eu", &m, 1_800_000_000)
                .expect("uk accepts");
        }
        if quiet {
            break;
        }
    }
    assert_eq!(eu.heads(), heads);

    // Peer sync state persists for cheap reconnects.
    let d = reloaded.disconnect("eu");
    db.apply(&d).expect("apply");
    assert!(
        db.load_catalogue()
            .expect("load")
            .peer_states
            .contains_key("eu")
    );
}

#[test]
fn an_uninitialised_database_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = NodeDb::open(&dir.path().join("node.redb")).expect("open");
    let err = db.load_catalogue().expect_err("not initialised");
    assert!(err.to_string().contains("accord init"), "{err}");
}
