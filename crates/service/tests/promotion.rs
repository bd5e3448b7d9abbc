//! The promotion engine inside the core, driven with a clock the test moves: a release
//! goes live on each node only once the rule is met under its root and its own store holds
//! every artifact; each decision is committed before it counts; notes reach every node;
//! the `on_promote` hook is asked for, and a failed one is retried when `next_wakeup` says,
//! not at the next anti-entropy round. Before, only four-process tests reached this.

mod support;

use std::time::Duration;

use accord_promote::inputs::Proposal;
use accord_promote::{Reason, Status};
use accord_protocol::{Envelope, ReleaseId};
use accord_service::{Command, Io};
use accord_store::audit::kind;
use accord_trust::sign_envelope;
use accord_trust::testkit::{Cooperative, artifacts, release};
use support::{Net, setup_promoting};

const JURISDICTIONS: [&str; 4] = ["uk", "eu", "ca", "au"];
const SIGNERS: [&str; 5] = ["uk.lead", "eu.lead", "ca.lead", "au.lead", "uk.security"];

/// Four promoting nodes in a ring, all caught up.
fn cooperative() -> (Cooperative, Net) {
    let (coop, mut net) = setup_promoting(&JURISDICTIONS);
    net.connect("uk", "eu");
    net.connect("eu", "ca");
    net.connect("ca", "au");
    net.connect("au", "uk");
    (coop, net)
}

/// UK proposes CAP-B01@1.4.0 (its statement into the catalogue), as the API does once the
/// artifacts are in; returns it unsigned.
fn propose(net: &mut Net) -> (Envelope, ReleaseId) {
    let env = release("CAP-B01", "1.4.0", 1).expect("release");
    let proposal =
        Proposal::check(&env.to_json(), &net.nodes["uk"].catalogue().0).expect("a new release");
    let label = net
        .command("uk", |reply| Command::Propose { proposal, reply })
        .expect("proposed");
    assert!(label.starts_with("CAP-B01@1.4.0#"), "{label}");
    let id = ReleaseId::of_payload(&env.payload);
    (env, id)
}

/// Each signer signs at its own jurisdiction's node (sovereign sites), `signers` of them.
fn sign(coop: &Cooperative, net: &mut Net, env: &Envelope, signers: &[&str]) {
    for s in signers {
        let mut one = env.clone();
        sign_envelope(&mut one, &coop.signer(s).expect("signer"));
        let site = s.split('.').next().expect("jurisdiction");
        let envelope = one.to_json();
        let imported = net
            .command(site, |reply| Command::Sign { envelope, reply })
            .expect("admitted");
        assert_eq!(imported.added.len(), 1, "{s}: {imported:?}");
    }
}

/// `n`'s store holds every artifact of the test release, verified.
fn mirrored(net: &mut Net, n: &str) {
    for a in artifacts() {
        net.hold(n, &a, a.size);
    }
}

fn live(net: &Net, n: &str, id: &ReleaseId) -> bool {
    net.nodes[n]
        .promotion_state()
        .is_some_and(|s| s.is_live(id))
}

fn hooks_asked(net: &Net, n: &str, id: &ReleaseId) -> usize {
    net.count(
        n,
        |io| matches!(io, Io::RunHook { release, .. } if release == id),
    )
}

#[test]
fn a_release_goes_live_on_each_node_only_with_every_signature_and_its_own_artifacts() {
    let (coop, mut net) = cooperative();
    let (env, id) = propose(&mut net);
    // Every node's mirror pins it (staging, then approved) and asks its store what it
    // holds before fetching anything.
    let tag = accord_mirror::wants::pin_tag(&id, "image.oci.tar");
    for n in JURISDICTIONS {
        assert!(
            net.log.iter().any(|(f, io)| f == n
                && matches!(io, Io::Pin { pin, .. } if pin.iter().any(|(t, _)| t == &tag))),
            "{n} was not told to mirror the release"
        );
        assert!(
            net.log
                .iter()
                .any(|(f, io)| f == n && matches!(io, Io::Probe(h) if h.len() == 3)),
            "{n} did not ask its store"
        );
    }
    // Artifacts everywhere, but one signature short: nowhere live, and the reason says who.
    for n in JURISDICTIONS {
        mirrored(&mut net, n);
    }
    sign(&coop, &mut net, &env, &SIGNERS[..4]);
    for n in JURISDICTIONS {
        assert!(!live(&net, n, &id), "{n} promoted without security");
        let e = &net.nodes[n].explanations().expect("engine")[&id];
        assert_eq!(e.state, Status::Waiting);
        assert!(
            e.reasons.iter().any(|r| matches!(r, Reason::Blocked(_))),
            "{n}: {:?}",
            e.reasons
        );
    }
    // The last signature, imported at UK only, reaches every node by sync.
    sign(&coop, &mut net, &env, &SIGNERS[4..]);
    for n in JURISDICTIONS {
        assert!(live(&net, n, &id), "{n} did not promote");
        let committed = net.nodes[n].store().contents();
        assert!(
            committed
                .audit
                .iter()
                .any(|(_, e)| e.kind == kind::PROMOTED && e.detail.contains(&id.to_string())),
            "{n}: no committed audit row for the promotion"
        );
        assert_eq!(hooks_asked(&net, n, &id), 1, "{n}");
    }
    // Every node holds every jurisdiction's signed note that it is live there.
    for n in JURISDICTIONS {
        let cat = net.nodes[n].catalogue();
        let r = cat.0.release(&id).expect("release");
        let notes = accord_promote::inputs::latest_notes(r, net.nodes[n].replica().chain());
        assert_eq!(notes.len(), 4, "{n} holds notes from {:?}", notes.keys());
    }
}

#[test]
fn a_node_whose_store_lacks_an_artifact_does_not_promote_on_its_peers_word() {
    let (coop, mut net) = cooperative();
    let (env, id) = propose(&mut net);
    for n in ["uk", "eu", "ca"] {
        mirrored(&mut net, n);
    }
    // AU's store has all but 40% of the image; its peers announce the whole.
    for a in artifacts() {
        let have = if a.name == "image.oci.tar" {
            a.size * 2 / 5
        } else {
            a.size
        };
        net.hold("au", &a, have);
    }
    sign(&coop, &mut net, &env, &SIGNERS);
    assert!(live(&net, "uk", &id));
    assert!(!live(&net, "au", &id));
    let image = artifacts()
        .into_iter()
        .find(|a| a.name == "image.oci.tar")
        .expect("image");
    let e = &net.nodes["au"].explanations().expect("engine")[&id];
    assert_eq!(
        e.reasons,
        vec![Reason::NotHere(format!(
            "artifact image.oci.tar 40% mirrored ({} of {} bytes)",
            image.size * 2 / 5,
            image.size
        ))]
    );
    // It asks a peer that announced the image for it (once their paced announcements are
    // out), rather than taking their word.
    for n in ["uk", "eu", "ca"] {
        net.wake(n);
    }
    assert!(!live(&net, "au", &id));
    assert!(
        net.log
            .iter()
            .any(|(f, io)| f == "au"
                && matches!(io, Io::Fetch { hash, .. } if *hash == image.blake3))
    );
    mirrored(&mut net, "au");
    assert!(live(&net, "au", &id));
}

/// Wakes `n` whenever it asks until it asks for the hook again; returns the time that took.
fn wait_for_hook(net: &mut Net, n: &str, id: &ReleaseId) -> Duration {
    let start = net.now.mono;
    let before = hooks_asked(net, n, id);
    for _ in 0..100 {
        net.wake(n);
        if hooks_asked(net, n, id) > before {
            return net.now.mono - start;
        }
    }
    panic!("{n} never asked for the hook again");
}

#[test]
fn a_failed_hook_is_retried_when_the_core_wakes_not_at_anti_entropy() {
    let (coop, mut net) = cooperative();
    let (env, id) = propose(&mut net);
    mirrored(&mut net, "uk");
    sign(&coop, &mut net, &env, &SIGNERS);
    assert_eq!(hooks_asked(&net, "uk", &id), 1);
    let now = net.now;
    net.node("uk")
        .hook_finished(id, Err("exit status: 1".into()), now);
    net.pump();
    // First retry after 2 s (the anti-entropy round is every 5 s).
    assert_eq!(wait_for_hook(&mut net, "uk", &id), Duration::from_secs(2));
    assert_eq!(hooks_asked(&net, "uk", &id), 2);
    let now = net.now;
    net.node("uk")
        .hook_finished(id, Err("exit status: 1".into()), now);
    assert_eq!(wait_for_hook(&mut net, "uk", &id), Duration::from_secs(4));
    assert_eq!(hooks_asked(&net, "uk", &id), 3);
    // It stayed live throughout, and once the hook succeeds it is not asked for again.
    assert!(live(&net, "uk", &id));
    let now = net.now;
    net.node("uk").hook_finished(id, Ok(()), now);
    let state = net.nodes["uk"].promotion_state().expect("state").clone();
    assert!(state.hooks_owed.is_empty());
    for _ in 0..3 {
        net.wake("uk");
    }
    assert_eq!(hooks_asked(&net, "uk", &id), 3);
    let rows = net.nodes["uk"].store().contents().audit;
    assert_eq!(rows.iter().filter(|(_, e)| e.kind == kind::HOOK).count(), 3);
    // The hook sees the pinned record.
    let env_vars = net
        .log
        .iter()
        .find_map(|(f, io)| match io {
            Io::RunHook { release, env } if f == "uk" && release == &id => Some(env.clone()),
            _ => None,
        })
        .expect("hook");
    assert!(env_vars.contains(&("ACCORD_RELEASE_ID".to_owned(), id.hex())));
    assert!(env_vars.contains(&("ACCORD_RELEASE".to_owned(), "CAP-B01@1.4.0".to_owned())));
}

#[test]
fn a_decision_the_store_refuses_is_not_live_and_is_committed_later() {
    let (coop, mut net) = cooperative();
    let (env, id) = propose(&mut net);
    mirrored(&mut net, "uk");
    net.nodes["uk"].store().refuse_promotions(true);
    sign(&coop, &mut net, &env, &SIGNERS);
    assert!(!live(&net, "uk", &id));
    assert_eq!(hooks_asked(&net, "uk", &id), 0);
    let e = &net.nodes["uk"].explanations().expect("engine")[&id];
    assert_eq!(e.state, Status::Waiting);
    assert_eq!(e.reasons, vec![Reason::NotCommitted]);
    // The disk has room again: the next run commits it, then it counts.
    net.nodes["uk"].store().refuse_promotions(false);
    net.wake("uk");
    assert!(live(&net, "uk", &id));
    assert_eq!(hooks_asked(&net, "uk", &id), 1);
}

#[test]
fn a_node_key_or_a_signature_over_other_bytes_is_not_admitted() {
    let (coop, mut net) = cooperative();
    let (env, _) = propose(&mut net);
    let now = net.now;
    let mut by_node = env.clone();
    sign_envelope(&mut by_node, &coop.signer("uk.node").expect("key"));
    let err = net
        .node("uk")
        .import_signatures(&by_node.to_json(), now)
        .expect_err("a node key approved");
    assert!(err.contains("node key does not approve"), "{err}");
    // A lead's signature moved onto another statement's payload.
    let mut other = release("CAP-B01", "1.4.1", 1).expect("release");
    let mut signed = env.clone();
    sign_envelope(&mut signed, &coop.signer("uk.lead").expect("key"));
    other.signatures = signed.signatures;
    let err = net
        .node("uk")
        .import_signatures(&other.to_json(), now)
        .expect_err("signature over other bytes");
    assert!(err.contains("not in this node's catalogue"), "{err}");
    net.pump();
    let cat = net.nodes["eu"].catalogue();
    assert!(cat.0.releases.iter().all(|r| r.approvals.is_empty()));
}

/// The mirror inside the core: a node fetches what a peer announced, a failed fetch is
/// asked again when `next_wakeup` says (the queue's 2 s backoff, not the 5 s anti-entropy
/// round), and the engine hears of the complete blob with no report from outside.
#[test]
fn a_failed_fetch_is_retried_when_the_core_wakes_and_the_engine_hears_of_the_result() {
    let (coop, mut net) = cooperative();
    let (env, id) = propose(&mut net);
    net.serve_fetches = true;
    let image = artifacts()
        .into_iter()
        .find(|a| a.name == "image.oci.tar")
        .expect("image");
    mirrored(&mut net, "uk");
    // UK's copy of the image is gone (bit rot, an operator), but UK's core still announces
    // it: fetches of it from UK fail.
    let kept = net
        .blobs
        .get_mut("uk")
        .and_then(|s| s.remove(&image.blake3))
        .expect("held");
    let failed = |net: &Net| {
        net.log.iter().any(|(f, io)| {
            f == "eu" && matches!(io, Io::Fetch { hash, .. } if *hash == image.blake3)
        })
    };
    for _ in 0..10 {
        if failed(&net) {
            break;
        }
        net.wake("uk");
    }
    assert!(failed(&net), "EU never asked UK for the image");
    let eu_has = |net: &Net| {
        net.blobs
            .get("eu")
            .and_then(|s| s.get(&image.blake3))
            .is_some_and(|(_, complete)| *complete)
    };
    assert!(!eu_has(&net));
    net.blobs
        .get_mut("uk")
        .expect("uk")
        .insert(image.blake3, kept);
    let start = net.now.mono;
    for _ in 0..20 {
        if eu_has(&net) {
            break;
        }
        net.wake("eu");
    }
    assert!(eu_has(&net), "EU never fetched the image again");
    assert_eq!(net.now.mono - start, Duration::from_secs(2));
    // Signed: EU promotes on its own store's word, which the core learnt from the fetch.
    sign(&coop, &mut net, &env, &SIGNERS);
    assert!(live(&net, "eu", &id));
}

/// A node that (re)connects learns who holds what from the peer directly, not from an
/// announcement repeated to everyone: it fetches at once.
#[test]
fn a_peer_that_connects_is_told_what_this_node_holds_at_once() {
    let (_, mut net) = setup_promoting(&["uk", "eu"]);
    net.connect("uk", "eu");
    let (_, id) = propose(&mut net);
    mirrored(&mut net, "uk");
    net.disconnect("uk", "eu");
    net.serve_fetches = true;
    let before = net.now.mono;
    net.connect("uk", "eu");
    net.pump();
    assert_eq!(net.now.mono, before, "no time passed");
    for a in artifacts() {
        assert!(
            net.blobs["eu"].get(&a.blake3).is_some_and(|(_, c)| *c),
            "EU lacks {}",
            a.name
        );
    }
    let e = &net.nodes["eu"].explanations().expect("engine")[&id];
    assert!(
        !e.reasons.iter().any(|r| matches!(r, Reason::NotHere(_))),
        "{:?}",
        e.reasons
    );
}

/// With a maximum staleness, a node whose view of another jurisdiction is older than it
/// (no sync with any of its nodes) promotes nothing to production, says why, and promotes
/// as soon as a sync with that jurisdiction has run to its end.
#[test]
fn a_stale_view_of_a_jurisdiction_holds_production_promotions_back_until_a_sync() {
    let hour = Duration::from_secs(3600);
    let (coop, mut net) = support::setup_promoting_fresh(&JURISDICTIONS, hour);
    for (i, a) in JURISDICTIONS.iter().enumerate() {
        for b in &JURISDICTIONS[i + 1..] {
            net.connect(a, b);
        }
    }
    let fresh = net.nodes["uk"].freshness().clone();
    assert_eq!(
        fresh.len(),
        3,
        "UK synced with every other jurisdiction: {fresh:?}"
    );
    assert!(
        net.nodes["uk"].store().contents().freshness.is_some(),
        "the first view of a jurisdiction is saved at once"
    );
    let (env, id) = propose(&mut net);
    for n in JURISDICTIONS {
        mirrored(&mut net, n);
    }
    // UK loses its link to AU; two hours pass (every node's rounds run meanwhile).
    net.disconnect("uk", "au");
    net.now = net.now.after(2 * hour);
    for n in JURISDICTIONS {
        let now = net.now;
        net.node(n).handle_timeout(now);
    }
    net.pump();
    sign(&coop, &mut net, &env, &SIGNERS);
    assert!(live(&net, "eu", &id), "EU's views are fresh");
    assert!(!live(&net, "uk", &id), "UK's view of AU is two hours old");
    let e = &net.nodes["uk"].explanations().expect("engine")[&id];
    assert_eq!(e.state, Status::Waiting);
    assert!(
        e.reasons.iter().any(|r| matches!(
            r,
            Reason::Stale { jurisdiction, age_secs: Some(a), max_secs: 3600 } if jurisdiction == "au" && *a >= 7200
        )),
        "{:?}",
        e.reasons
    );
    assert!(
        e.reasons
            .iter()
            .any(|r| r.to_string().contains("view of au"))
    );
    // AU is back: the conversation ends, the view is fresh, UK promotes.
    net.connect("uk", "au");
    assert!(
        live(&net, "uk", &id),
        "{:?}",
        net.nodes["uk"].explanations().map(|e| &e[&id])
    );
}
