//! Replicas converge, genesis is deterministic, and nothing unsigned or unauthorised is ever
//! applied.

mod common;

use accord_catalogue::edit;
use accord_catalogue::genesis;
use accord_catalogue::schema::{self, Status};
use accord_catalogue::signing;
use accord_catalogue::wire::WireMessage;
use accord_catalogue::{CatalogueError, Replica};
use accord_testsupport::forge::{self, Forger};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ROOT, ReadDoc};
use common::*;

const T: i64 = 1_800_000_000;

#[test]
fn genesis_is_byte_identical_and_never_conflicts() {
    let (coop, root) = cooperative();
    let (a, ha) = genesis::build(&seed(), &anchor_digest(&root)).expect("a");
    let (b, hb) = genesis::build(&seed(), &anchor_digest(&root)).expect("b");
    assert_eq!(ha, hb);
    assert_eq!(a.save(), b.save());

    // Two nodes initialised apart, each editing, then merged: every seeded field has one
    // value (no shadowed maps), and the edits of both are there.
    let mut uk = replica(&coop, &root, "uk.node");
    let mut eu = replica(&coop, &root, "eu.node");
    uk.edit(T, "uk edits", |tx| {
        edit::set(tx, "CAP-B01", "status", "tendered")
    })
    .expect("edit");
    eu.edit(T, "eu edits", |tx| {
        edit::set(tx, "CAP-E02", "priority", "Critical")
    })
    .expect("edit");
    sync_pair(&mut uk, "uk", &mut eu, "eu");
    assert_eq!(uk.heads(), eu.heads());
    let doc = uk.doc();
    for top in [
        "jurisdictions",
        "domains",
        "working_groups",
        "capabilities",
        "statements",
        "signatures",
        "notes",
        "roots",
        "acks",
    ] {
        assert_eq!(
            doc.get_all(ROOT, top).expect("get").len(),
            1,
            "{top} conflicts"
        );
    }
    let (cat, problems) = schema::read(doc);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        cat.capability("CAP-B01").expect("b01").status,
        Status::Tendered
    );
    assert_eq!(cat.capability("CAP-E02").expect("e02").priority, "Critical");

    // A different anchor root gives a different genesis: separate cooperatives never merge.
    let (_, other) = genesis::build(&seed(), &"00".repeat(32)).expect("other");
    assert_ne!(other, ha);
}

#[test]
fn the_shipped_seed_catalogue_parses_and_builds() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/catalogue.toml");
    let text = std::fs::read_to_string(path).expect("config/catalogue.toml");
    let seed = accord_catalogue::Seed::parse(&text, path).expect("valid seed");
    // 36 capabilities in 8 domains, as procurement framework §3.1 counts them.
    assert_eq!(seed.capabilities.len(), 36);
    assert_eq!(seed.domains.len(), 8);
    for (domain, n) in [
        ("A", 4),
        ("B", 4),
        ("C", 5),
        ("D", 5),
        ("E", 5),
        ("F", 4),
        ("G", 5),
        ("H", 4),
    ] {
        assert_eq!(
            seed.capabilities
                .iter()
                .filter(|c| c.domain == domain)
                .count(),
            n,
            "domain {domain}"
        );
    }
    for (id, name, aws) in [
        ("CAP-B01", "Object Storage", "S3"),
        ("CAP-E02", "IAM", "IAM"),
        ("CAP-E03", "KMS", "KMS"),
    ] {
        let c = seed.capabilities.iter().find(|c| c.id == id).expect(id);
        assert!(
            c.name.contains(name) && c.aws_equivalent.contains(aws),
            "{id}: {c:?}"
        );
    }
    let (doc, _) = genesis::build(&seed, &"ab".repeat(32)).expect("genesis");
    let (cat, problems) = schema::read(&doc);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(cat.capabilities.len(), seed.capabilities.len());
}

#[test]
fn concurrent_text_edits_merge() {
    let (coop, root) = cooperative();
    let mut uk = replica(&coop, &root, "uk.node");
    let mut ca = replica(&coop, &root, "ca.node");
    uk.edit(T, "uk", |tx| {
        edit::splice_name(tx, "CAP-E03", 3, 0, " (OpenBao)")
    })
    .expect("uk");
    ca.edit(T, "ca", |tx| {
        edit::splice_name(tx, "CAP-E03", 0, 0, "Sovereign ")
    })
    .expect("ca");
    sync_pair(&mut uk, "uk", &mut ca, "ca");
    let (cat, _) = schema::read(uk.doc());
    assert_eq!(
        cat.capability("CAP-E03").expect("e03").name,
        "Sovereign KMS (OpenBao)"
    );
    assert_eq!(schema::read(ca.doc()).0, cat);
}

#[test]
fn invalid_local_edits_change_nothing() {
    let (coop, root) = cooperative();
    let mut uk = replica(&coop, &root, "uk.node");
    let heads = uk.heads();
    type EditFn =
        Box<dyn FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), CatalogueError>>;
    let cases: Vec<(&str, EditFn)> = vec![
        (
            "unknown capability",
            Box::new(|tx| edit::set(tx, "CAP-Z99", "status", "staging")),
        ),
        (
            "bad status",
            Box::new(|tx| edit::set(tx, "CAP-B01", "status", "shipped")),
        ),
        (
            "unknown field",
            Box::new(|tx| edit::set(tx, "CAP-B01", "colour", "blue")),
        ),
        (
            "unknown domain",
            Box::new(|tx| edit::set(tx, "CAP-B01", "domain", "Q")),
        ),
        (
            "self dependency",
            Box::new(|tx| edit::add_dependency(tx, "CAP-B01", "CAP-B01")),
        ),
        (
            "unknown dependency",
            Box::new(|tx| edit::add_dependency(tx, "CAP-B01", "CAP-X01")),
        ),
        (
            "partial then fail",
            Box::new(|tx| {
                edit::set(tx, "CAP-B01", "priority", "P1")?;
                edit::set(tx, "CAP-B01", "status", "nonsense")
            }),
        ),
    ];
    for (what, f) in cases {
        assert!(uk.edit(T, what, f).is_err(), "{what} accepted");
        assert_eq!(uk.heads(), heads, "{what} left a change behind");
    }
    let (cat, _) = schema::read(uk.doc());
    assert_eq!(cat.capability("CAP-B01").expect("b01").priority, "");
}

fn edited_pair() -> (
    accord_trust::testkit::Cooperative,
    accord_trust::TrustedRoot,
    Replica,
    Replica,
) {
    let (coop, root) = cooperative();
    let mut uk = replica(&coop, &root, "uk.node");
    let eu = replica(&coop, &root, "eu.node");
    uk.edit(T, "uk edit", |tx| {
        edit::set(tx, "CAP-B01", "status", "staging")
    })
    .expect("edit");
    (coop, root, uk, eu)
}

/// Runs the exchange until `uk` sends a message carrying changes; returns it.
fn message_with_changes(uk: &mut Replica, eu: &mut Replica) -> Vec<u8> {
    for _ in 0..10 {
        let m = uk.generate_message("eu").expect("uk has something to say");
        let w = WireMessage::decode(&m, "uk").expect("wire");
        let msg = automerge::sync::Message::decode(&w.sync).expect("sync");
        if !msg.changes.is_empty() {
            return m;
        }
        eu.receive_message("uk", &m, T).expect("eu accepts");
        if let Some(r) = eu.generate_message("uk") {
            uk.receive_message("eu", &r, T).expect("uk accepts");
        }
    }
    panic!("no message with changes");
}

fn assert_refused(eu: &mut Replica, bytes: &[u8], needle: &str) {
    let before = eu.heads();
    match eu.receive_message("uk", bytes, T) {
        Err(CatalogueError::Refused { reason, .. }) => {
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}")
        }
        other => panic!("expected refusal containing {needle:?}, got {other:?}"),
    }
    assert_eq!(eu.heads(), before, "a refused message changed the document");
}

#[test]
fn unsigned_and_forged_changes_are_refused_and_honest_sync_continues() {
    let (_, _, mut uk, mut eu) = edited_pair();
    let good = message_with_changes(&mut uk, &mut eu);
    let wire = WireMessage::decode(&good, "uk").expect("wire");
    assert!(!wire.signatures.is_empty());

    // Unsigned: the signatures are stripped.
    let unsigned = WireMessage {
        sync: wire.sync.clone(),
        signatures: vec![],
    }
    .encode();
    assert_refused(&mut eu, &unsigned, "without a valid signature");

    // Forged: one bit of the signature flipped.
    let mut forged = wire.clone();
    forged.signatures[0][5] ^= 1;
    assert_refused(&mut eu, &forged.encode(), "without a valid signature");

    // Garbage, truncation and oversize.
    assert_refused(&mut eu, b"definitely not a sync message", "malformed");
    assert_refused(&mut eu, &good[..good.len() - 1], "malformed");
    let big = vec![0u8; accord_catalogue::replica::MAX_MESSAGE_BYTES + 1];
    assert_refused(&mut eu, &big, "limit");
    let mut bad_sync = wire.clone();
    bad_sync.sync = vec![0x42; 40];
    assert_refused(&mut eu, &bad_sync.encode(), "not an Automerge sync message");

    // The honest message still applies afterwards.
    eu.receive_message("uk", &good, T)
        .expect("honest message accepted");
    sync_pair(&mut uk, "uk", &mut eu, "eu");
    assert_eq!(uk.heads(), eu.heads());
    assert_eq!(
        schema::read(eu.doc())
            .0
            .capability("CAP-B01")
            .expect("b01")
            .status,
        Status::Staging
    );
}

#[test]
fn changes_by_keys_that_are_not_node_keys_are_refused() {
    let (coop, root) = cooperative();
    let mut eu = replica(&coop, &root, "eu.node");
    // UK's lead key is in the root, but not as a node key; an outsider is not in it at all.
    // Neither can even make an edit locally: the replica refuses to write for them.
    for (label, needle) in [
        ("uk.lead", "no node key of any root"),
        ("outsider", "no node key of any root"),
    ] {
        let key = coop.signer(label).expect("key");
        let mut rogue = replica(&coop, &root, label);
        assert!(matches!(
            rogue.edit(T, "rogue", |tx| edit::set(
                tx, "CAP-B01", "status", "retired"
            )),
            Err(CatalogueError::Retired { .. })
        ));
        let forger = Forger::new(key);
        let c = forger.change(eu.doc(), T, |tx| {
            let caps = forge::top(tx, "capabilities");
            let b01 = tx.get(&caps, "CAP-B01")?.expect("b01").1;
            tx.put(&b01, "status", "retired")
        });
        let m = forger.message(vec![c.hash()], &[c]);
        assert_refused(&mut eu, &m, needle);
    }
    assert_eq!(
        schema::read(eu.doc())
            .0
            .capability("CAP-B01")
            .expect("b01")
            .status,
        Status::Proposed
    );
}

/// A change to CAP-B01's `field`, on `r`'s document, written as `actor` (raw Automerge:
/// nothing checks the actor).
fn change_as(
    r: &Replica,
    actor: automerge::ActorId,
    field: &str,
    value: &str,
) -> automerge::Change {
    let mut doc = r.doc().fork();
    doc.set_actor(actor);
    let hash = doc
        .transact_with::<_, _, automerge::AutomergeError, _>(
            |_| CommitOptions::default().with_time(T),
            |tx| {
                let caps = tx.get(ROOT, "capabilities")?.expect("caps").1;
                let b01 = tx.get(&caps, "CAP-B01")?.expect("b01").1;
                tx.put(&b01, field, value)?;
                Ok(())
            },
        )
        .expect("commit")
        .hash
        .expect("hash");
    doc.get_change_by_hash(&hash).expect("change")
}

#[test]
fn a_change_claiming_another_nodes_actor_is_refused() {
    let (coop, root) = cooperative();
    let mut eu = replica(&coop, &root, "eu.node");
    let uk_key = coop.signer("uk.node").expect("uk");
    let au_key = coop.signer("au.node").expect("au");
    // A change written as AU's actor, signed with UK's key.
    let change = change_as(
        &eu,
        signing::change_actor(au_key.public(), [1; 8]),
        "status",
        "retired",
    );
    let hash = change.hash();
    let m = Forger::new(uk_key).message(vec![hash], &[change]);
    assert_refused(&mut eu, &m, "without a valid signature");
}

/// A peer that sends a whole document (whose compressed columns Automerge would inflate
/// before anything could be checked) is refused before it is loaded.
#[test]
fn whole_documents_from_peers_are_refused_unread() {
    let (coop, root) = cooperative();
    let mut eu = replica(&coop, &root, "eu.node");
    let msg = automerge::sync::Message {
        heads: eu.heads(),
        need: vec![],
        have: vec![],
        changes: automerge::sync::ChunkList::from(vec![eu.doc().save()]),
        flags: None,
        version: automerge::sync::MessageVersion::V2,
    };
    let m = WireMessage {
        sync: msg.encode(),
        signatures: vec![],
    }
    .encode();
    assert_refused(&mut eu, &m, "whole documents");
}

#[test]
fn relayed_changes_keep_their_authors_signature() {
    let (coop, root) = cooperative();
    let mut uk = replica(&coop, &root, "uk.node");
    let mut eu = replica(&coop, &root, "eu.node");
    let mut ca = replica(&coop, &root, "ca.node");
    for (i, s) in ["tendered", "in-development", "staging"].iter().enumerate() {
        uk.edit(T + i as i64, "uk", |tx| {
            edit::set(tx, "CAP-B01", "status", s)
        })
        .expect("edit");
    }
    eu.edit(T, "eu", |tx| edit::set(tx, "CAP-E02", "effort", "2 teams"))
        .expect("edit");
    sync_pair(&mut uk, "uk", &mut eu, "eu");
    // CA never talks to UK: it gets UK's changes from EU, verified against UK's key.
    sync_pair(&mut eu, "eu", &mut ca, "ca");
    assert_eq!(ca.heads(), uk.heads());
    let (cat, _) = schema::read(ca.doc());
    assert_eq!(
        cat.capability("CAP-B01").expect("b01").status,
        Status::Staging
    );
    assert_eq!(cat.capability("CAP-E02").expect("e02").effort, "2 teams");
}

/// Text positions count UTF-16 code units, as JavaScript Automerge does, so an editor in a
/// browser and this CLI mean the same place.
#[test]
fn text_positions_are_utf16_like_javascript() {
    let (coop, root) = cooperative();
    let mut uk = replica(&coop, &root, "uk.node");
    uk.edit(T, "a", |tx| edit::splice_name(tx, "CAP-E03", 0, 0, "🔐 "))
        .expect("edit");
    // "🔐" is two UTF-16 units (four UTF-8 bytes): position 3 is right after the space.
    uk.edit(T, "b", |tx| {
        edit::splice_name(tx, "CAP-E03", 3, 0, "Sovereign ")
    })
    .expect("edit");
    assert_eq!(
        schema::read(uk.doc())
            .0
            .capability("CAP-E03")
            .expect("e03")
            .name,
        "🔐 Sovereign KMS"
    );
}

/// Every edit is attributable: the history of a capability names each change's author (its
/// node key's jurisdiction, from the root chain) and the fields it wrote.
#[test]
fn capability_history_names_who_changed_what() {
    let (coop, root) = cooperative();
    let mut uk = replica(&coop, &root, "uk.node");
    let mut eu = replica(&coop, &root, "eu.node");
    uk.edit(T, "uk sets status", |tx| {
        edit::set(tx, "CAP-B01", "status", "staging")
    })
    .expect("edit");
    eu.edit(T + 1, "eu adds a requirement", |tx| {
        edit::add_item(tx, "CAP-B01", "functional_requirements", "Object lock")
    })
    .expect("edit");
    eu.edit(T + 2, "eu edits another capability", |tx| {
        edit::set(tx, "CAP-E02", "effort", "2 teams")
    })
    .expect("edit");
    sync_pair(&mut uk, "uk", &mut eu, "eu");
    let chain = accord_trust::RootChain::from_trusted(root);
    let h = accord_catalogue::history::capability(uk.doc(), &chain, "CAP-B01");
    assert_eq!(h.len(), 3, "{h:#?}");
    assert!(h[0].author.starts_with("genesis"));
    let by = |m: &str| h.iter().find(|e| e.message == m).expect(m);
    assert!(by("uk sets status").author.starts_with("uk (node key"));
    assert_eq!(by("uk sets status").fields, ["status"]);
    assert!(
        by("eu adds a requirement")
            .author
            .starts_with("eu (node key")
    );
    assert_eq!(
        by("eu adds a requirement").fields,
        ["functional_requirements"]
    );
}

/// A change chunk whose run-length encoding claims 2^62 operations in a few bytes:
/// refused from its column headers, before Automerge expands anything.
#[test]
fn a_change_that_claims_2_pow_62_operations_is_refused_unexpanded() {
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
    let (coop, root) = cooperative();
    let mut eu = replica(&coop, &root, "eu.node");
    let mut column = Vec::new();
    // A run of 2^62: expanding it would never finish, so this test finishing at all shows
    // it was never expanded.
    sleb(&mut column, 1 << 62);
    uleb(&mut column, 0); // …of actor 0
    let mut body = Vec::new();
    uleb(&mut body, 0); // no dependencies
    uleb(&mut body, 16);
    body.extend_from_slice(&[7; 16]); // actor
    uleb(&mut body, 1); // seq
    uleb(&mut body, 1); // start op
    sleb(&mut body, 0); // time
    uleb(&mut body, 0); // no message
    uleb(&mut body, 0); // no other actors
    uleb(&mut body, 1); // one column
    uleb(&mut body, (1 << 4) | 1); // an actor column
    uleb(&mut body, column.len() as u64);
    body.extend_from_slice(&column);
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1];
    uleb(&mut chunk, body.len() as u64);
    chunk.extend_from_slice(&body);
    assert!(chunk.len() < 64, "the bomb is {} bytes", chunk.len());
    let msg = automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: automerge::sync::ChunkList::from(vec![chunk]),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    let m = WireMessage {
        sync: msg.encode(),
        signatures: vec![],
    }
    .encode();
    assert_refused(&mut eu, &m, "operations");
}

/// A local edit larger than a peer accepts in one change is refused here, so a node never
/// writes what would stall its own sync.
#[test]
fn an_edit_too_large_for_one_change_is_refused_locally() {
    let (coop, root) = cooperative();
    let mut uk = replica(&coop, &root, "uk.node");
    uk.set_limits(accord_catalogue::Limits {
        max_ops_per_change: 100,
        ..Default::default()
    });
    let heads = uk.heads();
    let r = uk.edit(T, "big", |tx| {
        edit::add_item(tx, "CAP-B01", "functional_requirements", &"x".repeat(500))
    });
    assert!(
        matches!(&r, Err(CatalogueError::InvalidValue { detail, .. }) if detail.contains("operations")),
        "{r:?}"
    );
    assert_eq!(uk.heads(), heads);
}

/// A stolen key signs two different changes on the same history and sends one to EU and
/// the other to CA (it "equivocates"). Each change has its own actor (ADR 0008), so both
/// are ordinary concurrent edits by that key: EU and CA, then UK, converge on a document
/// holding both, whichever arrived first where.
#[test]
fn two_changes_by_one_key_on_the_same_history_merge_everywhere() {
    let (coop, root) = cooperative();
    let mut eu = replica(&coop, &root, "eu.node");
    let mut ca = replica(&coop, &root, "ca.node");
    let mut uk = replica(&coop, &root, "uk.node");
    let base = eu.doc().clone();
    let thief = Forger::new(coop.signer("au.node").expect("au"));
    let set = |field: &'static str, value: &'static str| {
        move |tx: &mut automerge::transaction::Transaction<'_>| {
            let caps = forge::top(tx, "capabilities");
            let b01 = tx.get(&caps, "CAP-B01")?.expect("b01").1;
            tx.put(&b01, field, value)
        }
    };
    let a = thief.change(&base, T, set("effort", "2 weeks"));
    let b = thief.change(&base, T, set("effort", "9 weeks"));
    assert_ne!(a.hash(), b.hash());
    assert_eq!(a.deps(), b.deps(), "both made on the same history");
    eu.receive_message(
        "au",
        &thief.message(vec![a.hash()], std::slice::from_ref(&a)),
        T,
    )
    .expect("EU takes the first");
    ca.receive_message(
        "au",
        &thief.message(vec![b.hash()], std::slice::from_ref(&b)),
        T,
    )
    .expect("CA takes the second");
    // And once more, the other way round, at UK: the order does not matter.
    uk.receive_message(
        "au",
        &thief.message(vec![b.hash()], std::slice::from_ref(&b)),
        T,
    )
    .expect("UK takes the second");
    uk.receive_message(
        "au",
        &thief.message(vec![a.hash()], std::slice::from_ref(&a)),
        T,
    )
    .expect("UK takes the first");
    sync_pair(&mut eu, "eu", &mut ca, "ca");
    assert_eq!(eu.heads(), ca.heads());
    assert_eq!(eu.heads().len(), 2, "both branches are heads");
    let mut heads = uk.heads();
    heads.sort();
    let mut merged = eu.heads();
    merged.sort();
    assert_eq!(heads, merged);
    let effort = |r: &Replica| {
        schema::read(r.doc())
            .0
            .capability("CAP-B01")
            .expect("b01")
            .effort
            .clone()
    };
    assert_eq!(effort(&eu), effort(&ca));
    assert_eq!(effort(&eu), effort(&uk));
    // A later honest edit on top of both travels to everyone.
    eu.edit(T + 1, "after", |tx| {
        edit::set(tx, "CAP-E02", "priority", "Critical")
    })
    .expect("edit");
    sync_pair(&mut eu, "eu", &mut ca, "ca");
    sync_pair(&mut eu, "eu", &mut uk, "uk");
    assert_eq!(eu.heads(), ca.heads());
    assert_eq!(eu.heads(), uk.heads());
}

/// An actor of the old kind (the key's 16 bytes, shared by all of its changes) is no
/// node's: a key's changes could then clash again.
#[test]
fn a_change_with_a_whole_key_actor_is_refused() {
    let (coop, root) = cooperative();
    let mut eu = replica(&coop, &root, "eu.node");
    let uk_key = coop.signer("uk.node").expect("uk");
    let change = change_as(&eu, signing::actor_of(uk_key.public()), "effort", "1 week");
    let hash = change.hash();
    let m = Forger::new(uk_key).message(vec![hash], &[change]);
    assert_refused(&mut eu, &m, "no node key");
}
