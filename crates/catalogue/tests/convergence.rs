//! Property test: four honest replicas and one hostile listed node; random edits
//! (concurrent edits of the same field and the same text included), random delivery order,
//! duplicated and lost messages, and hostile messages (forbidden writes, forged signatures,
//! replays). No honest replica ever applies a hostile change; after the network heals, all
//! honest replicas hold identical documents, and every edit that succeeded is in all of
//! them (so the test cannot pass by refusing everything).

mod common;

use accord_catalogue::{CatalogueError, History, Refusal, Replica, edit, schema};
use accord_testsupport::forge::{self, Forger};
use automerge::ChangeHash;
use common::*;
use proptest::prelude::*;

const NODES: [&str; 4] = ["uk", "eu", "ca", "au"];
const CAPS: [&str; 3] = ["CAP-B01", "CAP-E02", "CAP-E03"];
const STATUSES: [&str; 4] = ["tendered", "in-development", "staging", "production"];

#[derive(Debug, Clone)]
enum Op {
    Status(usize, usize, usize),
    Priority(usize, usize, u8),
    Splice(usize, usize, usize, String),
    AddRequirement(usize, usize, String),
    Depend(usize, usize, usize),
    Send(usize, usize),
    Deliver(usize),
    Duplicate(usize),
    Drop(usize),
    /// The hostile node sends a forbidden write (which one, to whom).
    Forbidden(usize, usize),
    /// The hostile node sends an honest-looking edit under a broken signature.
    Forged(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..4usize;
    let c = 0..3usize;
    prop_oneof![
        (n.clone(), c.clone(), 0..4usize).prop_map(|(n, c, s)| Op::Status(n, c, s)),
        (n.clone(), c.clone(), any::<u8>()).prop_map(|(n, c, p)| Op::Priority(n, c, p)),
        (n.clone(), c.clone(), 0..12usize, "[a-zé ]{0,4}")
            .prop_map(|(n, c, p, t)| Op::Splice(n, c, p, t)),
        (n.clone(), c.clone(), "[a-z]{1,6}").prop_map(|(n, c, t)| Op::AddRequirement(n, c, t)),
        (n.clone(), c.clone(), c.clone()).prop_map(|(n, a, b)| Op::Depend(n, a, b)),
        (n.clone(), n.clone()).prop_map(|(a, b)| Op::Send(a, b)),
        (0..64usize).prop_map(Op::Deliver),
        (0..64usize).prop_map(Op::Duplicate),
        (0..64usize).prop_map(Op::Drop),
        (0..16usize, n.clone()).prop_map(|(k, t)| Op::Forbidden(k, t)),
        n.clone().prop_map(Op::Forged),
    ]
}

/// Applies an edit; returns the change it made, if it was valid (invalid edits such as a
/// self-dependency are refused locally and change nothing).
fn apply_edit(r: &mut Replica, op: &Op) -> Option<ChangeHash> {
    let t = T0;
    let delta = match op {
        Op::Status(_, c, s) => r.edit(t, "status", |tx| {
            edit::set(tx, CAPS[*c], "status", STATUSES[*s])
        }),
        Op::Priority(_, c, p) => r.edit(t, "priority", |tx| {
            edit::set(tx, CAPS[*c], "priority", &format!("P{p}"))
        }),
        Op::Splice(_, c, pos, text) => r.edit(t, "splice", |tx| {
            edit::splice_name(tx, CAPS[*c], *pos, 1, text)
        }),
        Op::AddRequirement(_, c, text) => r.edit(t, "req", |tx| {
            edit::add_item(tx, CAPS[*c], "functional_requirements", text)
        }),
        Op::Depend(_, a, b) => r.edit(t, "dep", |tx| edit::add_dependency(tx, CAPS[*a], CAPS[*b])),
        _ => return None,
    };
    delta.ok()?.changes.first().map(|c| ChangeHash(c.hash))
}

/// A hostile message must be refused as a violation and change nothing.
fn assert_refused(r: &mut Replica, m: &[u8]) -> Result<(), TestCaseError> {
    let before = r.heads();
    match r.receive_message("hostile", m, T0) {
        Err(CatalogueError::Refused {
            kind: Refusal::Violation,
            ..
        }) => {}
        other => return Err(TestCaseError::fail(format!("hostile message: {other:?}"))),
    }
    prop_assert_eq!(r.heads(), before);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[allow(clippy::needless_range_loop)]

    #[test]
    fn four_replicas_converge(ops in proptest::collection::vec(op(), 1..80)) {
        let (coop, root) = cooperative_with_two_nodes();
        let mut rs: Vec<Replica> = NODES.iter().map(|n| replica(&coop, &root, &format!("{n}.node.0"))).collect();
        // A release with an approval, a recall and a note everywhere, for the hostile node
        // to attack.
        let release = release_payload("CAP-B01", "1.4.0", "uk");
        let recall = recall_payload(&release, "CAP-B01", "1.4.0");
        add(&mut rs[0], &[
            (History::Statements, &release),
            (History::Signatures, &approval(&coop, "uk.lead", &release)),
            (History::Statements, &recall),
            (History::Notes, &note(&coop, "uk.node.0", "uk", &release)),
        ]);
        for i in 1..4 {
            let (left, right) = rs.split_at_mut(i);
            sync_pair(&mut left[0], NODES[0], &mut right[0], NODES[i]);
        }
        // The hostile node holds a listed key: the second node key of a jurisdiction whose
        // root lists two (a stolen backup node's, say).
        let hostile = Forger::new(coop.signer("au.node.1").expect("au"));
        let forbidden = forge::forbidden_writes();
        let mut made: Vec<ChangeHash> = Vec::new();
        let mut in_flight: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        for op in &ops {
            match op {
                Op::Status(n, ..) | Op::Priority(n, ..) | Op::Splice(n, ..) | Op::AddRequirement(n, ..) | Op::Depend(n, ..) => {
                    made.extend(apply_edit(&mut rs[*n], op));
                }
                Op::Send(a, b) if a != b => {
                    if let Some(m) = rs[*a].generate_message(NODES[*b]) {
                        in_flight.push((*a, *b, m));
                    }
                }
                Op::Send(..) => {}
                Op::Deliver(k) | Op::Duplicate(k) | Op::Drop(k) if !in_flight.is_empty() => {
                    let i = k % in_flight.len();
                    let (a, b, m) = if matches!(op, Op::Duplicate(_)) { in_flight[i].clone() } else { in_flight.remove(i) };
                    if !matches!(op, Op::Drop(_)) {
                        // Honest messages, however late or repeated, are never refused as
                        // violations; one that arrives before what it depends on may be
                        // refused as unverifiable (it is sent again after healing).
                        match rs[b].receive_message(NODES[a], &m, T0) {
                            Ok(_) | Err(CatalogueError::Refused { kind: Refusal::Unverifiable, .. }) => {}
                            Err(e) => return Err(TestCaseError::fail(format!("honest message refused: {e}"))),
                        }
                    }
                }
                Op::Forbidden(k, t) => {
                    let (_, _, f) = &forbidden[k % forbidden.len()];
                    let doc = rs[*t].doc().clone();
                    let c = hostile.change(&doc, T0, |tx| f(&doc, tx));
                    let m = hostile.message(vec![c.hash()], &[c]);
                    assert_refused(&mut rs[*t], &m)?;
                }
                Op::Forged(t) => {
                    let doc = rs[*t].doc().clone();
                    let c = hostile.change(&doc, T0, |tx| {
                        let caps = forge::top(tx, "capabilities");
                        let b01 = automerge::ReadDoc::get(tx, &caps, "CAP-B01")?.expect("b01").1;
                        automerge::transaction::Transactable::put(tx, &b01, "priority", "forged")
                    });
                    let mut m = accord_catalogue::wire::WireMessage::decode(
                        &hostile.message(vec![c.hash()], &[c]),
                        "hostile",
                    )
                    .expect("wire");
                    m.signatures[0][7] ^= 0x20;
                    assert_refused(&mut rs[*t], &m.encode())?;
                }
                _ => {}
            }
        }
        // Lost messages are retried: reconnect every link (fresh sessions resume from the
        // persisted state) and sync pairwise until quiet.
        for (a, r) in rs.iter_mut().enumerate() {
            for (b, peer) in NODES.iter().enumerate() {
                if a != b {
                    let d = r.disconnect(peer);
                    prop_assert!(d.changes.is_empty());
                    r.connect(peer);
                }
            }
        }
        for _ in 0..3 {
            for a in 0..4 {
                for b in (a + 1)..4 {
                    let (left, right) = rs.split_at_mut(b);
                    sync_pair(&mut left[a], NODES[a], &mut right[0], NODES[b]);
                }
            }
        }
        let heads = rs[0].heads();
        let view = schema::read(rs[0].doc());
        for r in &rs {
            for h in &made {
                prop_assert!(
                    automerge::ReadDoc::get_change_by_hash(r.doc(), h).is_some(),
                    "an edit that succeeded is missing after healing"
                );
            }
            prop_assert!(view.0.capabilities.iter().all(|c| c.priority != "forged"));
        }
        prop_assert!(view.1.is_empty(), "{:?}", view.1);
        for r in &rs[1..] {
            prop_assert_eq!(r.heads(), heads.clone());
            prop_assert_eq!(schema::read(r.doc()), view.clone());
            // Whole-document content, not just the typed view (saved bytes differ only in
            // which actor each replica lists first).
            let json = |r: &Replica| serde_json::to_string(&automerge::AutoSerde::from(r.doc())).unwrap_or_default();
            prop_assert_eq!(json(r), json(&rs[0]));
        }
    }
}
