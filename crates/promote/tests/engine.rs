//! The promotion engine decides like a sovereign node: all signatures and all artifacts or
//! nothing; newest version only; recalls take releases out; local rules only add.

use accord_promote::{
    Action, Candidate, Context, Mirror, Note, NoteState, Reason, State, Status, plan,
};
use accord_protocol::statement::{
    ConditionalPredicate, PREDICATE_CONDITIONAL, PREDICATE_RECALL, RecallPredicate, ReleaseRef,
};
use accord_protocol::{Envelope, PrincipalId, ReleaseId, Requirement, Role, Statement};
use accord_trust::testkit::{Cooperative, NOW, anchored, release};
use accord_trust::{Blocker, RootChain, TrustedRoot, sign_envelope};

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
        id: ReleaseId::of_payload(&env.payload),
        capability: "CAP-B01".into(),
        version: semver::Version::parse(version).expect("version"),
        artifacts: accord_trust::testkit::artifacts(),
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
        e.reasons
            .iter()
            .any(|r| matches!(r, Reason::Blocked(Blocker::RuleNotMet { .. }))
                && r.to_string().contains("ca")),
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
    assert_eq!(
        p.explanations[0].reasons,
        vec![Reason::NotHere("image.tar 40% mirrored".into())]
    );
}

#[test]
fn a_complete_release_is_promoted_once_and_stays_live() {
    let (coop, root) = anchored().expect("coop");
    let j = uk();
    let c = candidate("1.4.0", signed(&coop, "1.4.0", &ALL));
    let mut state = State::default();
    let p = plan(&state, &ctx(&root, &j, &[]), std::slice::from_ref(&c));
    assert_eq!(p.actions.len(), 1);
    assert!(matches!(&p.actions[0], Action::Promote { id, .. } if *id == c.id));
    state.apply(&p.actions[0], NOW);
    assert!(state.is_live(&c.id));
    assert_eq!(state.hooks_owed.get(&c.id), Some(&0));
    // What production serves is pinned in the state: the statement's artifacts, as signed.
    assert_eq!(state.releases[&c.id].artifacts(), c.artifacts);

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
    assert_eq!(p.actions[0].id(), &new.id);

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
        matches!(e.reasons[0], Reason::Blocked(Blocker::NotNewer { .. }))
            && e.reasons[0].to_string().contains("rollback protection"),
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
            id: c.id,
            reason: "CVE-2026-0001".into()
        }]
    );
    state.apply(&p.actions[0], NOW);
    assert!(!state.is_live(&c.id));
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
        p.explanations[0]
            .reasons
            .iter()
            .any(|r| r.to_string().contains("au")),
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
        p.explanations[0]
            .reasons
            .iter()
            .any(|r| r.to_string().contains("ca")),
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
        matches!(
            p.explanations[0].reasons[0],
            Reason::Blocked(Blocker::ExcludedByConditional { .. })
        ) && p.explanations[0].reasons[0]
            .to_string()
            .contains("only to uk, eu"),
        "{:?}",
        p.explanations[0].reasons
    );
}

#[test]
fn promotion_notes_speak_only_for_their_own_jurisdiction() {
    let (coop, root) = anchored().expect("coop");
    let chain = RootChain::from_trusted(root);
    let release = ReleaseId::of_payload(b"a release statement");
    let note = Note {
        release,
        jurisdiction: uk(),
        state: NoteState::Live,
        at: NOW,
        root_version: 1,
    };
    let bytes = accord_promote::note::sign(&note, &coop.signer("uk.node").expect("key"));
    assert_eq!(
        accord_promote::note::verify(&bytes, &chain),
        Ok(note.clone())
    );
    // Signed by EU's node, it does not speak for UK.
    let forged = accord_promote::note::sign(&note, &coop.signer("eu.node").expect("key"));
    assert!(accord_promote::note::verify(&forged, &chain).is_err());
    assert!(accord_promote::note::verify(b"garbage", &chain).is_err());
    // The newest note per jurisdiction wins: a recall after the promotion.
    let recalled = Note {
        state: NoteState::Recalled,
        at: NOW.plus_days(1),
        ..note.clone()
    };
    let later = accord_promote::note::sign(&recalled, &coop.signer("uk.node").expect("key"));
    let latest = accord_promote::note::latest(
        &release,
        [bytes.as_slice(), forged.as_slice(), later.as_slice()],
        &chain,
    );
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[&uk()].state, NoteState::Recalled);
}

/// Two statements claim CAP-B01@1.4.0 (one proposed during a partition). Each counts only
/// its own signatures; only one that meets the rule is promoted; when both do at once,
/// neither is; once one is live, the other never is.
#[test]
fn equivocating_statements_never_both_reach_production() {
    let (coop, root) = anchored().expect("coop");
    let j = uk();
    let approved = candidate("1.4.0", signed(&coop, "1.4.0", &ALL));
    let mut rival_env = signed(&coop, "1.4.0", &[]);
    // Same CAP@VER, other bytes: a different statement.
    rival_env.payload = String::from_utf8(rival_env.payload.clone())
        .expect("utf8")
        .replace("eu supplier ci", "eu, partitioned")
        .into_bytes();
    let mut rival = candidate("1.4.0", rival_env.clone());
    assert_ne!(rival.id, approved.id);
    // The approved statement's signatures do not count for the rival.
    rival.envelope.signatures = approved.envelope.signatures.clone();

    let p = plan(
        &State::default(),
        &ctx(&root, &j, &[]),
        &[approved.clone(), rival.clone()],
    );
    assert_eq!(
        p.actions,
        vec![Action::Promote {
            id: approved.id,
            capability: "CAP-B01".into(),
            version: semver::Version::new(1, 4, 0),
            artifacts: approved.artifacts.clone(),
        }]
    );
    let mut state = State::default();
    state.apply(&p.actions[0], NOW);

    // Later the leads sign the rival too: it is never promoted beside the live one.
    let mut signed_rival = rival_env.clone();
    for s in ALL {
        sign_envelope(&mut signed_rival, &coop.signer(s).expect("signer"));
    }
    let rival = candidate("1.4.0", signed_rival);
    let p = plan(
        &state,
        &ctx(&root, &j, &[]),
        &[approved.clone(), rival.clone()],
    );
    assert!(p.actions.is_empty());
    let e = p
        .explanations
        .iter()
        .find(|e| e.id == rival.id)
        .expect("rival");
    assert_eq!(e.state, Status::Conflict);
    assert!(
        matches!(&e.reasons[0], Reason::OtherPromoted { other, .. } if *other == approved.id),
        "{:?}",
        e.reasons
    );
    assert!(e.reasons[0].to_string().contains("never will be"));

    // On a node that had promoted neither, both fully approved at once: neither goes.
    let p = plan(&State::default(), &ctx(&root, &j, &[]), &[approved, rival]);
    assert!(p.actions.is_empty());
    assert!(
        p.explanations.iter().all(|e| e.state == Status::Conflict
            && matches!(&e.reasons[0], Reason::Contested { rivals, .. } if rivals.len() == 2)
            && e.reasons[0].to_string().contains("recalled")),
        "{:?}",
        p.explanations
    );
}
