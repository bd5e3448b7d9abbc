//! The promotion engine decides like a sovereign node: all signatures and all artifacts or
//! nothing; newest version only; recalls take releases out; local rules only add.

use accord_promote::{Action, Candidate, Context, Mirror, Note, NoteState, State, Status, plan};
use accord_protocol::statement::{
    ConditionalPredicate, PREDICATE_CONDITIONAL, PREDICATE_RECALL, RecallPredicate, ReleaseRef,
};
use accord_protocol::{Envelope, PrincipalId, Requirement, Role, Statement};
use accord_trust::testkit::{Cooperative, NOW, anchored, release};
use accord_trust::{TrustedRoot, sign_envelope};

const ALL: [&str; 5] = ["uk.lead", "eu.lead", "ca.lead", "au.lead", "uk.security"];

fn signed(coop: &Cooperative, version: &str, signers: &[&str]) -> Envelope {
    let mut env = release("CAP-B01", version, 1).expect("release");
    for s in signers {
        sign_envelope(&mut env, &coop.signer(s).expect("signer"));
    }
    env
}

fn candidate(version: &str, env: Envelope) -> Candidate {
    Candidate {
        key: format!("CAP-B01@{version}"),
        envelope: env,
        statements: vec![],
        mirror: Mirror::Complete,
    }
}

fn uk() -> PrincipalId {
    PrincipalId::new("uk").expect("id")
}

fn ctx<'a>(root: &'a TrustedRoot, j: &'a PrincipalId, local: &'a [Requirement]) -> Context<'a> {
    Context {
        root,
        local_rules: local,
        jurisdiction: j,
        now: NOW,
    }
}

fn about(
    release: &Envelope,
    version: &str,
    recall: bool,
    signers: &[&str],
    coop: &Cooperative,
) -> Envelope {
    let r = ReleaseRef {
        capability: "CAP-B01".into(),
        version: semver::Version::parse(version).expect("v"),
    };
    let (t, v) = if recall {
        (
            PREDICATE_RECALL,
            serde_json::to_value(RecallPredicate {
                release: r.clone(),
                reason: "CVE-2026-0001".into(),
                created: NOW,
            }),
        )
    } else {
        (
            PREDICATE_CONDITIONAL,
            serde_json::to_value(ConditionalPredicate {
                release: r.clone(),
                consenting: vec![uk(), PrincipalId::new("eu").expect("id")],
                reason: "dispute with ca and au".into(),
                created: NOW,
            }),
        )
    };
    let mut env = Statement::about_release(release, &r, t, v.expect("json")).to_envelope();
    for s in signers {
        sign_envelope(&mut env, &coop.signer(s).expect("signer"));
    }
    env
}

#[test]
fn three_of_four_leads_promote_nothing_and_say_who_is_missing() {
    let (coop, root) = anchored().expect("coop");
    let j = uk();
    let c = candidate(
        "1.4.0",
        signed(
            &coop,
            "1.4.0",
            &["uk.lead", "eu.lead", "au.lead", "uk.security"],
        ),
    );
    let p = plan(&State::default(), &ctx(&root, &j, &[]), &[c]);
    assert!(p.actions.is_empty());
    let e = &p.explanations[0];
    assert_eq!(e.state, Status::Waiting);
    assert!(
        e.reasons.iter().any(|r| r.contains("ca")),
        "{:?}",
        e.reasons
    );
}

#[test]
fn all_signatures_but_artifacts_missing_waits_for_the_mirror() {
    let (coop, root) = anchored().expect("coop");
    let j = uk();
    let mut c = candidate("1.4.0", signed(&coop, "1.4.0", &ALL));
    c.mirror = Mirror::Incomplete {
        missing: vec!["image.tar 40% mirrored".into()],
    };
    let p = plan(&State::default(), &ctx(&root, &j, &[]), &[c]);
    assert!(p.actions.is_empty());
    assert_eq!(p.explanations[0].reasons, vec!["image.tar 40% mirrored"]);
}

#[test]
fn a_complete_release_is_promoted_once_and_stays_live() {
    let (coop, root) = anchored().expect("coop");
    let j = uk();
    let c = candidate("1.4.0", signed(&coop, "1.4.0", &ALL));
    let mut state = State::default();
    let p = plan(&state, &ctx(&root, &j, &[]), std::slice::from_ref(&c));
    assert_eq!(p.actions.len(), 1);
    assert!(matches!(&p.actions[0], Action::Promote { key, .. } if key == "CAP-B01@1.4.0"));
    state.apply(&p.actions[0], NOW);
    assert!(state.is_live("CAP-B01@1.4.0"));
    assert_eq!(state.hooks_owed.get("CAP-B01@1.4.0"), Some(&0));

    // Persisted and read back, the state plans nothing more.
    let state = State::from_json(&state.to_json()).expect("state");
    let p = plan(&state, &ctx(&root, &j, &[]), &[c]);
    assert!(p.actions.is_empty());
    assert_eq!(p.explanations[0].state, Status::Live);
}

#[test]
fn an_older_version_is_never_promoted_over_a_newer_one() {
    let (coop, root) = anchored().expect("coop");
    let j = uk();
    let old = candidate("1.4.0", signed(&coop, "1.4.0", &ALL));
    let new = candidate("1.5.0", signed(&coop, "1.5.0", &ALL));

    // Both ready at once: only the newer is promoted.
    let p = plan(
        &State::default(),
        &ctx(&root, &j, &[]),
        &[old.clone(), new.clone()],
    );
    assert_eq!(p.actions.len(), 1);
    assert_eq!(p.actions[0].key(), "CAP-B01@1.5.0");

    // The newer first, then the older arrives fully signed: superseded, never promoted.
    let mut state = State::default();
    state.apply(&p.actions[0], NOW);
    let p = plan(&state, &ctx(&root, &j, &[]), &[old, new]);
    assert!(p.actions.is_empty());
    let e = p
        .explanations
        .iter()
        .find(|e| e.key == "CAP-B01@1.4.0")
        .expect("old");
    assert_eq!(e.state, Status::Superseded);
    assert!(
        e.reasons[0].contains("rollback protection"),
        "{:?}",
        e.reasons
    );
}

#[test]
fn a_recall_takes_a_live_release_out_and_the_high_water_mark_stays() {
    let (coop, root) = anchored().expect("coop");
    let j = uk();
    let env = signed(&coop, "1.5.0", &ALL);
    let mut c = candidate("1.5.0", env.clone());
    let mut state = State::default();
    let p = plan(&state, &ctx(&root, &j, &[]), std::slice::from_ref(&c));
    state.apply(&p.actions[0], NOW);

    // A recall signed below its threshold is ignored.
    c.statements = vec![about(&env, "1.5.0", true, &["uk.lead", "eu.lead"], &coop)];
    let p = plan(&state, &ctx(&root, &j, &[]), std::slice::from_ref(&c));
    assert!(p.actions.is_empty());

    c.statements = vec![about(&env, "1.5.0", true, &ALL, &coop)];
    let p = plan(&state, &ctx(&root, &j, &[]), std::slice::from_ref(&c));
    assert_eq!(
        p.actions,
        vec![Action::Recall {
            key: "CAP-B01@1.5.0".into(),
            reason: "CVE-2026-0001".into()
        }]
    );
    state.apply(&p.actions[0], NOW);
    assert!(!state.is_live("CAP-B01@1.5.0"));
    assert!(state.hooks_owed.is_empty());
    assert_eq!(state.high_water["CAP-B01"].to_string(), "1.5.0");

    // Recalled stays recalled; an older release does not come back in its place.
    let old = candidate("1.4.0", signed(&coop, "1.4.0", &ALL));
    let p = plan(&state, &ctx(&root, &j, &[]), &[c, old]);
    assert!(p.actions.is_empty());
    assert_eq!(p.explanations[1].state, Status::Recalled);
}

#[test]
fn a_local_rule_holds_this_node_back() {
    let (coop, root) = anchored().expect("coop");
    let au = PrincipalId::new("au").expect("id");
    let local = [Requirement {
        role: Role::Security,
        threshold: 1,
        principals: Some(vec![au.clone()]),
    }];
    let c = candidate("1.4.0", signed(&coop, "1.4.0", &ALL));
    let p = plan(
        &State::default(),
        &ctx(&root, &au, &local),
        std::slice::from_ref(&c),
    );
    assert!(p.actions.is_empty());
    assert!(
        p.explanations[0].reasons.iter().any(|r| r.contains("au")),
        "{:?}",
        p.explanations[0].reasons
    );
    // Without the local rule the same node would promote.
    assert_eq!(
        plan(&State::default(), &ctx(&root, &au, &[]), &[c])
            .actions
            .len(),
        1
    );
}

#[test]
fn a_signature_by_a_key_removed_in_a_newer_root_no_longer_counts() {
    let (mut coop, root1) = anchored().expect("coop");
    let j = uk();
    let env = signed(
        &coop,
        "1.4.0",
        &["uk.lead", "eu.lead", "ca.lead~0", "au.lead", "uk.security"],
    );
    coop.rotate("ca.lead.0").expect("rotate");
    let steering = coop.steering();
    let refs: Vec<&str> = steering.iter().map(String::as_str).collect();
    let v2 = coop.signed_root(2, &refs).expect("v2");
    let root2 = root1.update(&v2.to_json()).expect("update");

    let c = candidate("1.4.0", env.clone());
    assert_eq!(
        plan(
            &State::default(),
            &ctx(&root1, &j, &[]),
            std::slice::from_ref(&c)
        )
        .actions
        .len(),
        1
    );
    let p = plan(&State::default(), &ctx(&root2, &j, &[]), &[c]);
    assert!(p.actions.is_empty());
    assert!(
        p.explanations[0].reasons.iter().any(|r| r.contains("ca")),
        "{:?}",
        p.explanations[0].reasons
    );

    // CA's new lead key signs: promotable again under v2.
    let mut env = env;
    sign_envelope(&mut env, &coop.signer("ca.lead").expect("new key"));
    assert_eq!(
        plan(
            &State::default(),
            &ctx(&root2, &j, &[]),
            &[candidate("1.4.0", env)]
        )
        .actions
        .len(),
        1
    );
}

#[test]
fn a_conditional_lets_the_release_go_to_the_consenting_jurisdictions_only() {
    let (coop, root) = anchored().expect("coop");
    let env = signed(&coop, "1.4.0", &["uk.lead", "eu.lead", "uk.security"]);
    let steering = coop.steering();
    let refs: Vec<&str> = steering.iter().map(String::as_str).collect();
    let mut c = candidate("1.4.0", env.clone());
    c.statements = vec![about(&env, "1.4.0", false, &refs, &coop)];
    let uk = uk();
    let ca = PrincipalId::new("ca").expect("id");
    assert_eq!(
        plan(
            &State::default(),
            &ctx(&root, &uk, &[]),
            std::slice::from_ref(&c)
        )
        .actions
        .len(),
        1
    );
    let p = plan(&State::default(), &ctx(&root, &ca, &[]), &[c]);
    assert!(p.actions.is_empty());
    assert!(
        p.explanations[0].reasons[0].contains("only to uk, eu"),
        "{:?}",
        p.explanations[0].reasons
    );
}

#[test]
fn promotion_notes_speak_only_for_their_own_jurisdiction() {
    let (coop, root) = anchored().expect("coop");
    let note = Note {
        release: "CAP-B01@1.4.0".into(),
        payload_sha256: "00".repeat(32),
        jurisdiction: uk(),
        state: NoteState::Live,
        at: NOW,
        root_version: 1,
    };
    let bytes = note.sign(&coop.signer("uk.node").expect("key"));
    assert_eq!(
        Note::verify(&bytes, "CAP-B01@1.4.0", "uk", &root),
        Ok(note.clone())
    );
    // Filed under another jurisdiction, about another release, or signed by EU's node.
    assert!(Note::verify(&bytes, "CAP-B01@1.4.0", "eu", &root).is_err());
    assert!(Note::verify(&bytes, "CAP-B01@1.5.0", "uk", &root).is_err());
    let forged = note.sign(&coop.signer("eu.node").expect("key"));
    assert!(Note::verify(&forged, "CAP-B01@1.4.0", "uk", &root).is_err());
    assert!(Note::verify(b"garbage", "CAP-B01@1.4.0", "uk", &root).is_err());
}
