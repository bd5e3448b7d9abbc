//! Write authority (ADR 0005), written as the attacks it stops: a listed node key that
//! deletes, overwrites or forges history, speaks for another jurisdiction, moves a
//! signature onto another statement, or keeps writing after its key was rotated out.
//! Every such change is refused whole, the honest replica is left as it was, and honest
//! sync goes on.

mod common;

use accord_catalogue::edit;
use accord_catalogue::schema::{self, Status};
use accord_catalogue::{CatalogueError, History, Refusal, Replica, Stored, genesis};
use accord_protocol::ReleaseId;
use accord_testsupport::forge::{self, Forger};
use accord_trust::RootChain;
use automerge::transaction::Transactable;
use automerge::{ReadDoc, ScalarValue};
use common::*;

const T: i64 = T0;

/// UK and EU hold a release, a lead's approval, a recall with an approval, and UK's note.
struct World {
    coop: accord_trust::testkit::Cooperative,
    uk: Replica,
    eu: Replica,
    release: Vec<u8>,
}

fn world() -> World {
    let (coop, root) = cooperative();
    let mut uk = replica(&coop, &root, "uk.node");
    let mut eu = replica(&coop, &root, "eu.node");
    let release = release_payload("CAP-B01", "1.4.0", "uk");
    let recall = recall_payload(&release, "CAP-B01", "1.4.0");
    add(
        &mut uk,
        &[
            (History::Statements, &release),
            (History::Signatures, &approval(&coop, "uk.lead", &release)),
            (History::Statements, &recall),
            (History::Signatures, &approval(&coop, "uk.lead", &recall)),
            (History::Notes, &note(&coop, "uk.node", "uk", &release)),
        ],
    );
    sync_pair(&mut uk, "uk", &mut eu, "eu");
    World {
        coop,
        uk,
        eu,
        release,
    }
}

fn refused(r: &mut Replica, bytes: &[u8], kind: Refusal, needle: &str) {
    let before = r.heads();
    let (cat_before, _) = schema::read(r.doc());
    match r.receive_message("ca", bytes, T) {
        Err(CatalogueError::Refused {
            reason, kind: k, ..
        }) => {
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
            assert_eq!(k, kind, "{reason}");
        }
        other => panic!("expected a refusal containing {needle:?}, got {other:?}"),
    }
    assert_eq!(r.heads(), before, "a refused message changed the document");
    assert_eq!(schema::read(r.doc()).0, cat_before);
}

#[test]
fn forbidden_writes_by_a_listed_node_are_refused() {
    let mut w = world();
    let ca = Forger::new(w.coop.signer("ca.node").expect("ca"));
    let cases = forge::forbidden_writes();
    assert!(cases.len() >= 10);
    for (what, needle, f) in &cases {
        let doc = w.eu.doc().clone();
        let c = ca.change(&doc, T, |tx| f(&doc, tx));
        let m = ca.message(vec![c.hash()], &[c]);
        refused(&mut w.eu, &m, Refusal::Violation, needle);
        eprintln!("refused: {what}");
    }
    // The history is whole, and honest sync goes on.
    let (cat, problems) = schema::read(w.eu.doc());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(cat.releases.len(), 1);
    assert_eq!(cat.releases[0].about.len(), 1, "the recall is still there");
    assert_eq!(cat.releases[0].approvals.len(), 1);
    assert_eq!(cat.releases[0].notes.len(), 1);
    w.uk.edit(T, "honest", |tx| {
        edit::set(tx, "CAP-B01", "status", "staging")
    })
    .expect("edit");
    sync_pair(&mut w.uk, "uk", &mut w.eu, "eu");
    assert_eq!(
        schema::read(w.eu.doc())
            .0
            .capability("CAP-B01")
            .expect("b01")
            .status,
        Status::Staging
    );
}

/// Entries that are well filed (key = SHA-256 of the value, nothing overwritten) but whose
/// content breaks a rule of its map.
#[test]
fn history_entries_must_be_what_their_author_may_say() {
    let mut w = world();
    let coop = &w.coop;
    let other = release_payload("CAP-B01", "1.5.0", "uk");
    // A statement the catalogue does not hold, so signatures over it have nothing to name.
    let mut moved =
        accord_catalogue::Approval::parse(&approval(coop, "eu.lead", &other)).expect("approval");
    moved.statement = ReleaseId::of_payload(&w.release);
    let foreign_root = {
        let mut c = coop.clone();
        c.rotate("eu.lead").expect("rotate");
        let steering = c.steering();
        let s: Vec<&str> = steering.iter().map(String::as_str).collect();
        c.signed_root(1, &s).expect("root").to_json()
    };
    let cases: Vec<(&str, History, Vec<u8>, &str)> = vec![
        (
            "a signature moved onto another statement",
            History::Signatures,
            moved.to_bytes(),
            "does not verify over statement",
        ),
        (
            "an approval by a node key",
            History::Signatures,
            approval(coop, "au.node", &w.release),
            "node keys do not approve",
        ),
        (
            "an approval by an outsider",
            History::Signatures,
            approval(coop, "outsider", &w.release),
            "no root of the chain lists",
        ),
        (
            "an approval of a statement nobody holds",
            History::Signatures,
            approval(coop, "uk.lead", &other),
            "which the catalogue does not hold",
        ),
        (
            "a recall naming the right CAP@VER with another digest",
            History::Statements,
            recall_payload(
                &release_payload("CAP-B01", "1.4.0", "elsewhere"),
                "CAP-B01",
                "1.4.0",
            ),
            "which the catalogue does not hold",
        ),
        (
            "a note speaking for another jurisdiction",
            History::Notes,
            note(coop, "ca.node", "uk", &w.release),
            "speaks for uk",
        ),
        (
            "a note signed by another node's key",
            History::Notes,
            note(coop, "uk.node", "ca", &w.release),
            "not signed by the node key that writes it",
        ),
        (
            "a statement that is not a statement",
            History::Statements,
            b"<script>alert(1)</script>".to_vec(),
            "in-toto statement",
        ),
        (
            "a root that is not this cooperative's v1",
            History::Roots,
            foreign_root,
            "not the root v1 of this chain",
        ),
        (
            "a root adoption recorded for another jurisdiction",
            History::Acks,
            accord_catalogue::Ack {
                root: 1,
                root_sha256: hex::encode(w.eu.root().envelope().payload_digest()),
                jurisdiction: accord_protocol::PrincipalId::new("uk").expect("uk"),
                at: accord_trust::testkit::NOW,
            }
            .to_bytes(),
            "root adoption for uk",
        ),
    ];
    let ca = Forger::new(coop.signer("ca.node").expect("ca"));
    for (what, map, value, needle) in cases {
        let doc = w.eu.doc().clone();
        let c = ca.change(&doc, T, |tx| {
            let m = forge::history(tx, map);
            tx.put(
                &m,
                forge::key_of(&value).as_str(),
                ScalarValue::Bytes(value.clone()),
            )
        });
        let m = ca.message(vec![c.hash()], &[c]);
        eprintln!("case: {what}");
        refused(&mut w.eu, &m, Refusal::Violation, needle);
    }
}

#[test]
fn a_forbidden_change_deep_in_an_otherwise_valid_history_is_refused() {
    let mut w = world();
    let ca = Forger::new(w.coop.signer("ca.node").expect("ca"));
    let base = w.eu.doc().clone();
    let bad = ca.change(&base, T, |tx| {
        let k = forge::entry_where(&base, History::Notes, |_| true).expect("note");
        let m = forge::history(tx, History::Notes);
        tx.delete(&m, k.as_str())
    });
    let mut with_bad = base.clone();
    with_bad.apply_changes([bad.clone()]).expect("apply");
    let mut chain = vec![bad];
    for i in 0..5 {
        let c = ca.change(&with_bad, T + i, |tx| {
            let caps = forge::top(tx, "capabilities");
            let b01 = tx.get(&caps, "CAP-E02")?.expect("e02").1;
            tx.put(&b01, "priority", format!("P{i}"))
        });
        with_bad.apply_changes([c.clone()]).expect("apply");
        chain.push(c);
    }
    let m = ca.message(with_bad.get_heads(), &chain);
    refused(&mut w.eu, &m, Refusal::Violation, "append-only");
}

#[test]
fn a_change_whose_dependencies_are_missing_is_refused_and_nothing_waits() {
    let mut w = world();
    let ca = Forger::new(w.coop.signer("ca.node").expect("ca"));
    let base = w.eu.doc().clone();
    let first = ca.change(&base, T, |tx| {
        let caps = forge::top(tx, "capabilities");
        let b01 = tx.get(&caps, "CAP-E02")?.expect("e02").1;
        tx.put(&b01, "priority", "P1")
    });
    let mut next_base = base.clone();
    next_base.apply_changes([first.clone()]).expect("apply");
    let second = ca.change(&next_base, T, |tx| {
        let caps = forge::top(tx, "capabilities");
        let b01 = tx.get(&caps, "CAP-E02")?.expect("e02").1;
        tx.put(&b01, "priority", "P2")
    });
    let alone = ca.message(vec![second.hash()], std::slice::from_ref(&second));
    refused(&mut w.eu, &alone, Refusal::Unverifiable, "depends on");
    assert!(
        automerge::ReadDoc::get_missing_deps(w.eu.doc(), &[]).is_empty(),
        "nothing is queued"
    );
    // Both together are an honest edit by a listed node.
    let both = ca.message(vec![second.hash()], &[first, second]);
    w.eu.receive_message("ca", &both, T).expect("accepted");
    assert_eq!(
        schema::read(w.eu.doc())
            .0
            .capability("CAP-E02")
            .expect("e02")
            .priority,
        "P2"
    );
}

#[test]
fn equivocating_statements_are_both_kept_and_collect_only_their_own_signatures() {
    let (coop, root) = cooperative();
    let mut uk = replica(&coop, &root, "uk.node");
    let mut eu = replica(&coop, &root, "eu.node");
    let a = release_payload("CAP-B01", "1.4.0", "uk");
    let b = release_payload("CAP-B01", "1.4.0", "eu, partitioned");
    add(
        &mut uk,
        &[
            (History::Statements, &a),
            (History::Signatures, &approval(&coop, "uk.lead", &a)),
            (History::Signatures, &approval(&coop, "eu.lead", &a)),
        ],
    );
    add(&mut eu, &[(History::Statements, &b)]);
    sync_pair(&mut uk, "uk", &mut eu, "eu");
    let (cat, problems) = schema::read(eu.doc());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        cat.releases.len(),
        2,
        "neither statement overwrote the other"
    );
    let ra = cat.release(&ReleaseId::of_payload(&a)).expect("a");
    let rb = cat.release(&ReleaseId::of_payload(&b)).expect("b");
    assert_eq!(ra.approvals.len(), 2);
    assert!(rb.approvals.is_empty());
    assert_eq!(ra.key(), rb.key());
    let conflicts = cat.equivocations();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].0, "CAP-B01@1.4.0");
    // Who proposed each, from the authenticated change authors.
    let chain = RootChain::from_trusted(root);
    let who = |r: &accord_catalogue::Release| {
        r.authors
            .iter()
            .filter_map(|a| accord_catalogue::signing::author_of(&chain, a))
            .map(|s| s.principal().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(who(ra), ["uk"]);
    assert_eq!(who(rb), ["eu"]);
}

#[test]
fn local_edits_that_peers_would_refuse_are_refused_here() {
    let mut w = world();
    let heads = w.eu.heads();
    let release = w.release.clone();
    let r = w.eu.edit(T, "delete", |tx| {
        let m = match tx.get(automerge::ROOT, "statements")? {
            Some((_, id)) => id,
            None => unreachable!(),
        };
        tx.delete(&m, forge::key_of(&release).as_str())?;
        Ok(())
    });
    match r {
        Err(CatalogueError::InvalidValue { detail, .. }) => {
            assert!(detail.contains("append-only"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.eu.heads(), heads);
}

/// Root v2 replaces UK's node key. The old key's changes from before stay valid everywhere
/// (a node initialised under v2 syncs them); what it writes afterwards is refused by every
/// node that adopted v2, except what a node accepted before it adopted v2, which that node
/// vouches for when it acknowledges the root.
#[test]
fn a_rotated_node_key_keeps_its_past_and_loses_its_future() {
    let (mut coop, root) = cooperative();
    let v1 = root.envelope().to_json();
    let mut old_uk = replica(&coop, &root, "uk.node");
    let mut eu = replica(&coop, &root, "eu.node");
    let mut ca = replica(&coop, &root, "ca.node");
    for (i, s) in ["tendered", "staging"].iter().enumerate() {
        old_uk
            .edit(T + i as i64, "before", |tx| {
                edit::set(tx, "CAP-B01", "status", s)
            })
            .expect("edit");
    }
    sync_pair(&mut old_uk, "uk", &mut eu, "eu");
    sync_pair(&mut eu, "eu", &mut ca, "ca");

    coop.rotate("uk.node").expect("rotate");
    let steering = coop.steering();
    let s: Vec<&str> = steering.iter().map(String::as_str).collect();
    let v2 = coop.signed_root(2, &s).expect("v2").to_json();

    // EU adopts v2 (an operator's `accord root apply`): recorded and acknowledged.
    let delta = eu.adopt_root(&v2, T).expect("adopt");
    assert_eq!(delta.roots.len(), 1);
    assert_eq!(eu.root().version(), 2);

    // The old key, still at v1 (stolen, say), writes twice more: once to CA, which has not
    // adopted v2 yet, and once straight to EU.
    old_uk
        .edit(T + 10, "after", |tx| {
            edit::set(tx, "CAP-E02", "effort", "thief")
        })
        .expect("edit");
    let to_ca = ca_message(&mut old_uk, &mut ca);
    ca.receive_message("uk", &to_ca, T)
        .expect("CA still trusts v1");
    old_uk
        .edit(T + 11, "after", |tx| {
            edit::set(tx, "CAP-E03", "effort", "thief")
        })
        .expect("edit");
    let unvouched = message_to(&mut old_uk, "eu", &mut eu);
    let before = eu.heads();
    match eu.receive_message("uk", &unvouched, T) {
        Err(CatalogueError::Refused { reason, kind, .. }) => {
            assert_eq!(kind, Refusal::Unverifiable);
            assert!(
                reason.contains("vouched for by no current node key"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(eu.heads(), before);

    // CA learns v2 from EU, adopts it, and vouches for what it already held.
    sync_pair(&mut eu, "eu", &mut ca, "ca");
    assert_eq!(ca.root().version(), 2);
    assert_eq!(eu.heads(), ca.heads());
    let (cat, _) = schema::read(eu.doc());
    assert_eq!(cat.capability("CAP-E02").expect("e02").effort, "thief");
    assert_eq!(
        cat.capability("CAP-E03").expect("e03").effort,
        "",
        "refused everywhere"
    );
    assert_eq!(
        cat.acks.len(),
        2,
        "eu and ca acknowledged v2: {:?}",
        cat.acks
    );

    // A UK node initialised under v2, with the new key, syncs the whole history.
    let chain = RootChain::walk(&v1, [v2.as_slice()]).expect("chain");
    let (doc, hash) = genesis::build(&seed(), &anchor_digest(chain.first())).expect("genesis");
    let stored = Stored {
        snapshot: Some(doc.save()),
        ..Stored::default()
    };
    let mut new_uk = Replica::open(
        hash,
        stored,
        coop.signer("uk.node").expect("new key"),
        chain,
    )
    .expect("open");
    let owed = new_uk.owed(T).expect("owed");
    assert_eq!(owed.changes.len(), 1, "roots and its ack recorded");
    sync_pair(&mut eu, "eu", &mut new_uk, "uk2");
    assert_eq!(
        schema::read(new_uk.doc())
            .0
            .capability("CAP-B01")
            .expect("b01")
            .status,
        Status::Staging,
        "the old key's changes from before the rotation"
    );
    sync_pair(&mut new_uk, "uk2", &mut ca, "ca");
    assert_eq!(new_uk.heads(), ca.heads());
    // And the old key can no longer write here at all.
    assert!(new_uk.me().is_some());
}

/// Runs the exchange from `from` to `to` until `from` sends a message with changes.
fn message_to(from: &mut Replica, to_name: &str, to: &mut Replica) -> Vec<u8> {
    for _ in 0..10 {
        let m = from.generate_message(to_name).expect("something to say");
        let w = accord_catalogue::wire::WireMessage::decode(&m, "x").expect("wire");
        let msg = automerge::sync::Message::decode(&w.sync).expect("sync");
        if !msg.changes.is_empty() {
            return m;
        }
        to.receive_message("uk", &m, T).expect("accepts");
        if let Some(r) = to.generate_message("uk") {
            from.receive_message(to_name, &r, T).expect("accepts");
        }
    }
    panic!("no message with changes");
}

fn ca_message(from: &mut Replica, ca: &mut Replica) -> Vec<u8> {
    message_to(from, "ca", ca)
}
