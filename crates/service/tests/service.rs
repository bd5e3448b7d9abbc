//! The node core driven the way a simulator drives it: real replicas and signatures, an
//! in-memory store, a network that is a queue, and a clock the test moves. What only the
//! process tests reached before: sync scheduling, announce-then-sync, pacing woken by
//! `next_wakeup`, bans and their end, anti-entropy catching up a lost message.

mod support;

use std::time::Duration;

use accord_service::{Io, Topic};
use accord_testsupport::forge::{self, Forger};
use support::{set_effort, setup};

#[test]
fn an_edit_reaches_every_connected_node_with_no_timer() {
    let (_, mut net) = setup(&["uk", "eu", "ca"]);
    net.connect("uk", "eu");
    net.connect("eu", "ca");
    set_effort(&mut net, "uk", 1);
    net.pump();
    // UK synced with EU at once, and EU passed the change on to CA at once: no
    // anti-entropy round was needed.
    assert_eq!(net.heads("eu"), net.heads("uk"));
    assert_eq!(net.heads("ca"), net.heads("uk"));
    // The edit was persisted everywhere.
    for n in ["uk", "eu", "ca"] {
        assert!(!net.nodes[n].store().contents().changes.is_empty(), "{n}");
    }
}

#[test]
fn a_burst_of_edits_is_two_announcements_and_the_second_is_woken_by_next_wakeup() {
    let (_, mut net) = setup(&["uk", "eu"]);
    net.connect("uk", "eu");
    let heads = |io: &Io<String>| {
        matches!(
            io,
            Io::Publish {
                topic: Topic::Heads,
                ..
            }
        )
    };
    for i in 0..50 {
        set_effort(&mut net, "uk", i);
    }
    net.pump();
    assert_eq!(net.count("uk", heads), 1, "one announcement at once");
    // The deferred one is due in half a second: that, not the 5 s anti-entropy round, is
    // when the core asks to be woken.
    let waited = net.wake("uk");
    assert_eq!(waited, Duration::from_millis(500));
    assert_eq!(net.count("uk", heads), 2);
    // It carries the heads as they are now.
    let last = net
        .log
        .iter()
        .rev()
        .find_map(|(f, io)| match io {
            Io::Publish {
                topic: Topic::Heads,
                data,
            } if f == "uk" => Some(data.clone()),
            _ => None,
        })
        .expect("announcement");
    let now_heads: Vec<u8> = net.heads("uk").iter().flat_map(|h| h.0).collect();
    assert_eq!(last, now_heads);
    // Nothing more is pending: the next wakeup is the anti-entropy round.
    assert_eq!(net.wake("uk"), Duration::from_millis(4500));
    assert_eq!(net.count("uk", heads), 2);
}

#[test]
fn anti_entropy_catches_up_what_a_lost_message_missed() {
    let (_, mut net) = setup(&["uk", "eu"]);
    net.connect("uk", "eu");
    net.drop_sync = true;
    set_effort(&mut net, "uk", 7);
    net.pump();
    assert_ne!(net.heads("eu"), net.heads("uk"), "the sync was lost");
    net.drop_sync = false;
    // UK's deferred nothing; its next wakeup is the anti-entropy round, which syncs.
    let waited = net.wake("uk");
    assert_eq!(waited, Duration::from_secs(5));
    assert_eq!(net.heads("eu"), net.heads("uk"));
}

#[test]
fn a_peer_that_keeps_breaking_the_rules_is_banned_until_woken() {
    let (coop, mut net) = setup(&["uk"]);
    let now = net.now;
    let uk = net.node("uk");
    uk.peer_connected("au".to_owned(), now);
    while uk.poll_io().is_some() {}
    let doc = uk.replica().doc().clone();
    let forger = Forger::new(coop.signer("au.node").expect("au"));
    let c = forger.change(&doc, 1_800_000_000, |tx| {
        let caps = forge::top(tx, "capabilities");
        let b01 = automerge::ReadDoc::get(tx, &caps, "CAP-B01")?
            .expect("b01")
            .1;
        automerge::transaction::Transactable::delete(tx, &b01, "status")
    });
    let m = forger.message(vec![c.hash()], &[c]);
    let mut out = Vec::new();
    for t in 0..3 {
        uk.sync_request("au".to_owned(), t, &m, now);
        while let Some(io) = uk.poll_io() {
            out.push(io);
        }
    }
    assert!(
        !out.iter().any(|io| matches!(io, Io::Respond { .. })),
        "a refused message is never answered"
    );
    assert_eq!(
        out.iter()
            .filter(|io| matches!(io, Io::Disconnect(p) if p == "au"))
            .count(),
        3
    );
    assert!(
        out.iter()
            .any(|io| matches!(io, Io::Ban { peer, secs: 30 } if peer == "au"))
    );
    assert_eq!(uk.metrics().bans, 1);
    // Banned: a new connection is closed at once.
    uk.peer_disconnected(&"au".to_owned());
    uk.peer_connected("au".to_owned(), now);
    assert!(matches!(uk.poll_io(), Some(Io::Disconnect(p)) if p == "au"));
    // The core asks to be woken when the ban ends, and lets the peer in then.
    let end = uk.next_wakeup();
    assert_eq!(end, now.mono + Duration::from_secs(5), "anti-entropy first");
    let later = now.after(Duration::from_secs(30));
    assert!(uk.next_wakeup() <= later.mono);
    uk.handle_timeout(now.after(Duration::from_secs(5)));
    let mut ios = Vec::new();
    while let Some(io) = uk.poll_io() {
        ios.push(io);
    }
    assert!(
        ios.iter()
            .any(|io| matches!(io, Io::Audit(rows) if rows.len() == 1)),
        "the refusals are one aggregated audit row: {ios:?}"
    );
    assert!(!ios.iter().any(|io| matches!(io, Io::Unban(p) if p == "au")));
    uk.handle_timeout(later);
    let mut ios = Vec::new();
    while let Some(io) = uk.poll_io() {
        ios.push(io);
    }
    assert!(
        ios.iter().any(|io| matches!(io, Io::Unban(p) if p == "au")),
        "{ios:?}"
    );
}

#[test]
fn heads_already_held_start_no_sync() {
    let (_, mut net) = setup(&["uk", "eu"]);
    net.connect("uk", "eu");
    set_effort(&mut net, "uk", 3);
    net.pump();
    let before = net.count("eu", |io| matches!(io, Io::SendSync { .. }));
    // UK's announcement arrives again (gossip relayed twice): EU holds those heads.
    let data: Vec<u8> = net.heads("uk").iter().flat_map(|h| h.0).collect();
    let now = net.now;
    assert!(
        net.node("eu")
            .gossip(Some("uk".into()), "uk".into(), Topic::Heads, &data, now)
    );
    net.pump();
    assert_eq!(
        net.count("eu", |io| matches!(io, Io::SendSync { .. })),
        before
    );
}

#[test]
fn a_node_initialised_again_with_its_key_catches_up_before_it_writes() {
    let (_, mut net) = setup(&["uk", "eu"]);
    net.connect("uk", "eu");
    let now = net.now;
    net.node("uk").settle_owed(now);
    assert_eq!(
        net.nodes["uk"].metrics().changes_applied,
        1,
        "caught up at connect: UK acknowledged its root at once"
    );
    set_effort(&mut net, "uk", 1);
    net.pump();
    assert_eq!(net.heads("eu"), net.heads("uk"));
    // UK's data dir is lost; `accord init` again with the same node key.
    net.links.clear();
    net.node("eu").peer_disconnected(&"uk".to_owned());
    let fresh = (net.boot)("uk", now);
    net.nodes.insert("uk".to_owned(), fresh);
    // Its start-up acknowledgement waits until it holds its key's past (with one actor per
    // key it would also have clashed with UK's earlier life; since ADR 0008 each change
    // has its own actor, and the wait keeps the acknowledgement made on that past).
    net.node("uk").settle_owed(now);
    assert!(!net.nodes["uk"].is_caught_up());
    assert!(
        net.node("uk").poll_io().is_none(),
        "nothing written, nothing said"
    );
    net.connect("uk", "eu");
    assert!(net.nodes["uk"].is_caught_up());
    assert_eq!(net.heads("eu"), net.heads("uk"), "UK got its own past back");
    for n in ["uk", "eu"] {
        let m = net.nodes[n].metrics();
        assert_eq!(m.rejected_messages, 0, "{n}: {m:?}");
        assert_eq!(m.bans, 0, "{n}");
    }
    // And it writes again, after its past.
    set_effort(&mut net, "uk", 2);
    net.pump();
    assert_eq!(net.heads("eu"), net.heads("uk"));
    assert_eq!(net.nodes["eu"].metrics().rejected_messages, 0);
}

/// The root's expiry is announced from 30 days before it (the default): once in the audit
/// log per root, in the log, and in the metrics the status page reads.
#[test]
fn a_root_about_to_expire_is_warned_about_ahead_of_time() {
    let (_, mut net) = setup(&["uk"]);
    let expires = net.nodes["uk"].replica().root().body().expires.unix();
    let warned = |net: &support::Net| {
        net.count("uk", |io| {
            matches!(io, Io::Audit(rows) if rows.iter().any(|r| r.kind == accord_store::audit::kind::ROOT && r.detail.contains("expires")))
        })
    };
    let days = |d: i64| std::time::Duration::from_secs(u64::try_from(d * 86_400).expect("days"));
    // 40 days before: nothing yet.
    let to = days(expires / 86_400 - net.now.unix() / 86_400 - 40);
    net.now = net.now.after(to);
    let now = net.now;
    net.node("uk").handle_timeout(now);
    net.pump();
    assert_eq!(warned(&net), 0);
    assert_eq!(net.nodes["uk"].metrics().root_expires_unix, expires);
    assert_eq!(
        net.nodes["uk"].metrics().root_expiry_warning_secs,
        30 * 86_400
    );
    // 25 days before: warned, once, however often the node wakes.
    net.now = net.now.after(days(15));
    for _ in 0..3 {
        net.now = net.now.after(std::time::Duration::from_secs(3600));
        let now = net.now;
        net.node("uk").handle_timeout(now);
        net.pump();
    }
    assert_eq!(warned(&net), 1);
}
