//! Property test: four replicas, random edits (concurrent edits of the same field and the
//! same text included), random delivery order, duplicated and lost messages; after the
//! network heals, all replicas hold identical documents and identical typed views.

mod common;

use accord_catalogue::{Replica, edit, schema};
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
    ]
}

fn apply_edit(r: &mut Replica, op: &Op) {
    let t = 1_800_000_000;
    // Invalid edits (self-dependency) are refused locally and change nothing; that is fine.
    let _ = match op {
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
        _ => return,
    };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[allow(clippy::needless_range_loop)]

    #[test]
    fn four_replicas_converge(ops in proptest::collection::vec(op(), 1..80)) {
        let (coop, root) = cooperative();
        let mut rs: Vec<Replica> = NODES.iter().map(|n| replica(&coop, &root, &format!("{n}.node"))).collect();
        let mut in_flight: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        for op in &ops {
            match op {
                Op::Status(n, ..) | Op::Priority(n, ..) | Op::Splice(n, ..) | Op::AddRequirement(n, ..) | Op::Depend(n, ..) => {
                    apply_edit(&mut rs[*n], op)
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
                        // Honest messages, however late or repeated, are never refused.
                        rs[b].receive_message(NODES[a], &m).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    }
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
