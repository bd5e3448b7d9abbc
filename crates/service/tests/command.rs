//! An operator's writes as inputs to the core (`Service::command`, each with its reply
//! handle), as the HTTP API hands them over: the answer, what reaches the other nodes, what
//! is audited, and that a refused command changes nothing.

mod support;

use accord_promote::inputs::Proposal;
use accord_service::{Command, Io};
use accord_store::audit::kind;
use accord_trust::testkit::release;
use support::{Net, setup};

fn pair() -> Net {
    let (_, mut net) = setup(&["uk", "eu"]);
    net.connect("uk", "eu");
    net
}

fn edit(set: &[(&str, &str)]) -> accord_catalogue::edit::EditSpec {
    accord_catalogue::edit::EditSpec {
        set: set
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    }
}

fn effort(net: &Net, n: &str) -> Option<String> {
    net.nodes[n]
        .catalogue()
        .0
        .capabilities
        .iter()
        .find(|c| c.id == "CAP-B01")
        .map(|c| c.effort.clone())
}

#[test]
fn an_edit_is_answered_with_its_change_and_reaches_the_other_node() {
    let mut net = pair();
    let spec = edit(&[("effort", "9 weeks")]);
    let change = net
        .command("uk", |reply| Command::Edit {
            capability: "CAP-B01".into(),
            spec,
            reply,
        })
        .expect("edited");
    assert_eq!(change.len(), 16, "{change}");
    assert!(change.chars().all(|c| c.is_ascii_hexdigit()), "{change}");
    assert_eq!(effort(&net, "eu").as_deref(), Some("9 weeks"));
}

#[test]
fn a_refused_edit_is_answered_with_the_reason_and_changes_nothing() {
    let mut net = pair();
    let before = net.heads("uk");
    // The second field is unknown: the first must not land either (one transaction).
    let spec = edit(&[("effort", "9 weeks"), ("no_such_field", "x")]);
    let err = net
        .command("uk", |reply| Command::Edit {
            capability: "CAP-B01".into(),
            spec,
            reply,
        })
        .expect_err("an unknown field");
    assert!(err.contains("no_such_field"), "{err}");
    assert_eq!(net.heads("uk"), before);
    assert_ne!(effort(&net, "uk").as_deref(), Some("9 weeks"));
    let missing = edit(&[("effort", "1 week")]);
    net.command("uk", |reply| Command::Edit {
        capability: "CAP-NOPE".into(),
        spec: missing,
        reply,
    })
    .expect_err("no such capability");
    assert_eq!(net.heads("uk"), before);
}

/// Two uploads of CAP-B01@1.4.0 with different statements were both accepted at their
/// start (neither was in the catalogue); the first recorded wins, the second is refused
/// when it is recorded, not silently added beside it.
#[test]
fn a_proposal_is_recorded_and_audited_and_a_second_statement_for_the_version_is_refused() {
    let mut net = pair();
    let first = release("CAP-B01", "1.4.0", 1).expect("release");
    let mut second = release("CAP-B01", "1.4.0", 1).expect("release");
    second.payload = String::from_utf8(second.payload)
        .expect("json")
        .replacen("\"1.4.0\"", "\"1.4.0\" ", 1)
        .into_bytes();
    assert_ne!(first.payload, second.payload);
    let cat = net.nodes["uk"].catalogue().0.clone();
    let a = Proposal::check(&first.to_json(), &cat).expect("new");
    let b = Proposal::check(&second.to_json(), &cat).expect("new as well, at its start");

    let label = net
        .command("uk", |reply| Command::Propose { proposal: a, reply })
        .expect("recorded");
    assert!(label.starts_with("CAP-B01@1.4.0#"), "{label}");
    let audited = |net: &Net| {
        net.count(
            "uk",
            |io| matches!(io, Io::Audit(rows) if rows.iter().any(|r| r.kind == kind::PROPOSED)),
        )
    };
    assert_eq!(audited(&net), 1);
    assert_eq!(net.nodes["eu"].catalogue().0.releases.len(), 1);

    let heads = net.heads("uk");
    let err = net
        .command("uk", |reply| Command::Propose { proposal: b, reply })
        .expect_err("a second statement for CAP-B01@1.4.0");
    assert!(err.contains("already has a statement"), "{err}");
    assert_eq!(net.heads("uk"), heads);
    assert_eq!(audited(&net), 1);
    assert_eq!(net.nodes["eu"].catalogue().0.releases.len(), 1);
}

#[test]
fn a_root_is_adopted_only_if_it_follows_the_current_one() {
    let (coop, mut net) = setup(&["uk", "eu"]);
    net.connect("uk", "eu");
    let heads = net.heads("uk");
    for bad in [
        b"not json".to_vec(),
        // Version 3 skips 2.
        coop.signed_root(3, &["uk.steering", "eu.steering", "ca.steering"])
            .expect("root")
            .to_json(),
        // One steering signature is not the majority.
        coop.signed_root(2, &["uk.steering"])
            .expect("root")
            .to_json(),
    ] {
        let err = net
            .command("uk", |reply| Command::AdoptRoot { bytes: bad, reply })
            .expect_err("refused");
        assert!(!err.is_empty());
        assert_eq!(net.nodes["uk"].replica().root().version(), 1);
        assert_eq!(net.heads("uk"), heads);
    }
    let good = coop
        .signed_root(2, &["uk.steering", "eu.steering", "ca.steering"])
        .expect("root")
        .to_json();
    let version = net
        .command("uk", |reply| Command::AdoptRoot { bytes: good, reply })
        .expect("adopted");
    assert_eq!(version, 2);
    // Recorded in the catalogue, so the other node walks to it as well.
    assert_eq!(net.nodes["eu"].replica().root().version(), 2);
    assert_eq!(
        net.count("uk", |io| matches!(io, Io::RootsAdopted(v) if v == &[2])),
        1
    );
}
