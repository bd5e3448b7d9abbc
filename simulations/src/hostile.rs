//! A listed node turned hostile. Its node keeps running (it stays connected and answers
//! syncs), and once a second it also does what `Replica::edit` would never let it: it
//! equivocates (signs two different changes on the same history and sends one to half its
//! neighbours, the other to the rest), sends each neighbour a properly signed change that
//! breaks the authority rules and a change signed by a key no root lists, and announces
//! heads that do not exist. After each round it reconnects to every neighbour that hung
//! up, as a real attacker would redial.
//!
//! Nothing here decides what the honest nodes do: they run the unchanged core.

use std::time::Duration;

use accord_testsupport::forge::{self, Forger};
use automerge::ReadDoc;
use automerge::transaction::Transactable;
use rand::Rng;

use crate::world::{Action, NodeId, World};
use accord_service::Topic;

pub const EVERY: Duration = Duration::from_secs(1);

/// One round of the attack by node `n`, and the next one scheduled.
pub fn attack(w: &mut World, n: NodeId) {
    if !w.is_up(n) || w.t > w.attack_until {
        return;
    }
    for m in w.neighbours_of(n) {
        w.link(n, m);
    }
    let label = w.topology.nodes[n as usize].label.clone();
    let (Ok(own), Some(node)) = (w.coop.signer(&label), w.node(n)) else {
        return;
    };
    let own = Forger::new(own);
    let base = node.replica().doc().clone();
    let time = w.now().unix();
    let cap = w.capabilities[w.rng.gen_range(0..w.capabilities.len())].clone();
    // Equivocation: two allowed edits of one field, both on the same history, each sent to
    // half of the neighbours first, so they meet only at honest nodes.
    let set_effort = |value: &'static str| {
        let cap = cap.clone();
        move |tx: &mut automerge::transaction::Transaction<'_>| {
            let caps = forge::top(tx, "capabilities");
            match tx.get(&caps, cap.as_str())? {
                Some((_, obj)) => tx.put(&obj, "effort", value),
                None => Ok(()),
            }
        }
    };
    let a = own.change(&base, time, set_effort("3 weeks"));
    let b = own.change(&base, time, set_effort("30 weeks"));
    w.equivocations.push((a.hash(), b.hash()));
    let halves = [
        own.message(vec![a.hash()], std::slice::from_ref(&a)),
        own.message(vec![b.hash()], std::slice::from_ref(&b)),
    ];
    for (i, m) in w.neighbours_of(n).into_iter().enumerate() {
        w.request(n, m, halves[i % 2].clone());
    }
    // A properly signed change by a listed key that deletes a field: forbidden.
    let forbidden = own.change(&base, time, |tx| {
        let caps = forge::top(tx, "capabilities");
        match tx.get(&caps, cap.as_str())? {
            Some((_, obj)) => tx.delete(&obj, "status"),
            None => Ok(()),
        }
    });
    // A change by a key no root lists.
    let outsider = Forger::new(accord_trust::testkit::key("outsider", 0));
    let unlisted = outsider.change(&base, time, |tx| {
        let caps = forge::top(tx, "capabilities");
        match tx.get(&caps, cap.as_str())? {
            Some((_, obj)) => tx.put(&obj, "effort", "forever"),
            None => Ok(()),
        }
    });
    w.forged.push(forbidden.hash());
    w.forged.push(unlisted.hash());
    let m1 = own.message(vec![forbidden.hash()], &[forbidden]);
    let m2 = outsider.message(vec![unlisted.hash()], &[unlisted]);
    let mut messages = vec![m1, m2];
    // The signature the release lacks, forged: an approval record in the missing lead's
    // name over the release statement, with a signature that lead never made, properly
    // written into the catalogue by this node's listed key.
    if let Some(r) = w.release.clone()
        && let Ok(lead) = w.coop.signer(crate::release::MISSING)
    {
        let record = accord_catalogue::Approval {
            statement: r.id,
            keyid: lead.id().clone(),
            sig: [7u8; 64],
        }
        .to_bytes();
        let approval = own.change(&base, time, |tx| {
            let map = forge::history(tx, accord_catalogue::History::Signatures);
            tx.put(
                &map,
                accord_catalogue::records::entry_key(&record).as_str(),
                automerge::ScalarValue::Bytes(record.clone()),
            )
        });
        w.forged.push(approval.hash());
        messages.push(own.message(vec![approval.hash()], &[approval]));
        // And a lie about blobs: "I hold every artifact of it" (it holds none).
        let lie = accord_mirror::Announce::new(
            Vec::new(),
            r.artifacts.iter().map(|a| (a.blake3, (a.size, a.size))),
        );
        w.publish(n, Topic::Blobs, lie.to_bytes());
    }
    for m in w.neighbours_of(n) {
        for msg in &messages {
            w.request(n, m, msg.clone());
        }
    }
    // Heads nobody has.
    let lie: Vec<u8> = (0..32).map(|_| w.rng.r#gen::<u8>()).collect();
    w.publish(n, Topic::Heads, lie);
    let next = w.t + EVERY;
    w.schedule(next, Action::Attack(n));
}
