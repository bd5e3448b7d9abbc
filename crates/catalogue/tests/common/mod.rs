//! Shared fixtures: a four-jurisdiction cooperative, its root, a small seed, and replicas.

#![allow(dead_code)]

use accord_catalogue::{Replica, Seed, Stored, genesis};
use accord_trust::testkit::Cooperative;
use accord_trust::{RootChain, TrustedRoot};

pub const SEED: &str = r#"
schema = "accord/catalogue-seed/v1"
[[jurisdiction]]
id = "uk"
name = "United Kingdom"
[[jurisdiction]]
id = "eu"
name = "European Union"
[[jurisdiction]]
id = "ca"
name = "Canada"
[[jurisdiction]]
id = "au"
name = "Australia"
[[domain]]
id = "B"
name = "Storage"
[[domain]]
id = "E"
name = "Security & Identity"
[[working_group]]
id = "WG3"
name = "Storage & Data"
lead_jurisdiction = "uk"
domains = ["B"]
[[working_group]]
id = "WG5"
name = "Security & Identity"
domains = ["E"]
[[capability]]
id = "CAP-B01"
name = "Object Storage Service (S3-Compatible)"
domain = "B"
aws_equivalent = "Amazon S3"
open_source_base = "MinIO / Ceph RGW"
dependencies = ["CAP-E02", "CAP-E03"]
working_group = "WG3"
lead_jurisdiction = "uk"
functional_requirements = ["S3 API compatibility", "Versioning"]
deliverables = ["Helm chart"]
status = "proposed"
[[capability]]
id = "CAP-E02"
name = "IAM/RBAC"
domain = "E"
aws_equivalent = "IAM"
open_source_base = "Keycloak"
working_group = "WG5"
lead_jurisdiction = "uk"
[[capability]]
id = "CAP-E03"
name = "KMS"
domain = "E"
aws_equivalent = "KMS"
open_source_base = "OpenBao"
working_group = "WG5"
lead_jurisdiction = "uk"
"#;

/// The time replicas are told it is.
pub const T0: i64 = 1_800_000_000;

pub fn seed() -> Seed {
    Seed::parse(SEED, "test seed").expect("seed")
}

pub fn cooperative() -> (Cooperative, TrustedRoot) {
    accord_trust::testkit::anchored().expect("cooperative")
}

/// A cooperative whose root lists two node keys per jurisdiction (`uk.node.0`,
/// `uk.node.1`, ...): a main node and a second one.
pub fn cooperative_with_two_nodes() -> (Cooperative, TrustedRoot) {
    let mut shape = accord_trust::testkit::Shape::default();
    shape
        .keys_per_role
        .insert(accord_protocol::Role::Node, (2, 1));
    let coop = Cooperative::new(shape);
    let steering = coop.steering();
    let s: Vec<&str> = steering.iter().map(String::as_str).collect();
    let env = coop.signed_root(1, &s).expect("root");
    let root = TrustedRoot::anchor(&env.to_json()).expect("anchor");
    (coop, root)
}

pub fn anchor_digest(root: &TrustedRoot) -> String {
    hex::encode(root.envelope().payload_digest())
}

/// A replica writing with `label`'s key (e.g. "uk.node").
pub fn replica(coop: &Cooperative, root: &TrustedRoot, label: &str) -> Replica {
    let (doc, hash) = genesis::build(&seed(), &anchor_digest(root)).expect("genesis");
    let stored = Stored {
        snapshot: Some(doc.save()),
        ..Stored::default()
    };
    Replica::open(
        hash,
        stored,
        coop.signer(label).expect("key"),
        RootChain::from_trusted(root.clone()),
    )
    .expect("open")
}

/// Exchanges messages between two replicas until both are quiet. Returns (rounds, bytes).
/// A message that cannot be verified yet (a dependency a Bloom filter hid) is refused and
/// asked for again; anything else refused fails the test.
pub fn sync_pair(a: &mut Replica, an: &str, b: &mut Replica, bn: &str) -> (usize, usize) {
    let mut bytes = 0;
    let trace = std::env::var_os("ACCORD_TEST_TRACE").is_some();
    let deliver = |to: &mut Replica, from: &str, m: &[u8], what: &str| {
        if trace {
            let w = accord_catalogue::wire::WireMessage::decode(m, "x").expect("wire");
            let msg = automerge::sync::Message::decode(&w.sync).expect("sync");
            eprintln!(
                "{from}: heads {} need {} have {} changes {} flags {:?}",
                msg.heads.len(),
                msg.need.len(),
                msg.have.len(),
                msg.changes.len(),
                msg.flags
            );
        }
        match to.receive_message(from, m, T0) {
            Ok(_) => {}
            Err(
                e @ accord_catalogue::CatalogueError::Refused {
                    kind: accord_catalogue::Refusal::Unverifiable,
                    ..
                },
            ) => {
                if trace {
                    eprintln!("{what}: {e}");
                }
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    };
    for round in 0..50 {
        let mut quiet = true;
        if let Some(m) = a.generate_message(bn) {
            quiet = false;
            bytes += m.len();
            deliver(b, an, &m, "b accepts a");
        }
        if let Some(m) = b.generate_message(an) {
            quiet = false;
            bytes += m.len();
            deliver(a, bn, &m, "a accepts b");
        }
        if quiet {
            return (round, bytes);
        }
    }
    panic!("sync between {an} and {bn} did not go quiet");
}

/// A release statement's payload for `capability@version` with artifacts made from `salt`.
pub fn release_payload(capability: &str, version: &str, salt: &str) -> Vec<u8> {
    use accord_protocol::statement::{Artifact, ReleasePredicate};
    use sha2::Digest;
    let data = format!("{capability} {version} {salt}");
    let artifact = Artifact {
        name: "chart.tgz".into(),
        sha256: sha2::Sha256::digest(data.as_bytes()).into(),
        blake3: *blake3::hash(data.as_bytes()).as_bytes(),
        size: data.len() as u64,
    };
    let predicate = ReleasePredicate {
        capability: capability.into(),
        version: semver::Version::parse(version).expect("version"),
        root_version: 1,
        proposer: salt.into(),
        created: accord_trust::testkit::NOW,
        provenance: vec![],
    };
    accord_protocol::Statement::release(&[artifact], &predicate).to_payload()
}

/// A recall statement's payload about the release `payload`.
pub fn recall_payload(release: &[u8], capability: &str, version: &str) -> Vec<u8> {
    use accord_protocol::statement::{PREDICATE_RECALL, RecallPredicate, ReleaseRef};
    let env = accord_protocol::Envelope::new(
        accord_protocol::dsse::PAYLOAD_TYPE_IN_TOTO,
        release.to_vec(),
    );
    let r = ReleaseRef {
        capability: capability.into(),
        version: semver::Version::parse(version).expect("version"),
    };
    let p = RecallPredicate {
        release: r.clone(),
        reason: "CVE-2026-0001".into(),
        created: accord_trust::testkit::NOW,
    };
    accord_protocol::Statement::about_release(
        &env,
        &r,
        PREDICATE_RECALL,
        serde_json::to_value(p).expect("json"),
    )
    .to_payload()
}

/// An approval record: `signer` (e.g. "uk.lead") signs the statement `payload`.
pub fn approval(coop: &Cooperative, signer: &str, payload: &[u8]) -> Vec<u8> {
    let key = coop.signer(signer).expect("signer");
    let sig = key.sign(&accord_protocol::dsse::pae(
        accord_protocol::dsse::PAYLOAD_TYPE_IN_TOTO,
        payload,
    ));
    accord_catalogue::Approval {
        statement: accord_protocol::ReleaseId::of_payload(payload),
        keyid: key.id().clone(),
        sig,
    }
    .to_bytes()
}

/// A promotion note for `release` by `jurisdiction`, signed by `signer`.
pub fn note(coop: &Cooperative, signer: &str, jurisdiction: &str, release: &[u8]) -> Vec<u8> {
    let n = accord_protocol::Note {
        release: accord_protocol::ReleaseId::of_payload(release),
        jurisdiction: accord_protocol::PrincipalId::new(jurisdiction).expect("j"),
        state: accord_protocol::NoteState::Live,
        at: accord_trust::testkit::NOW,
        root_version: 1,
    };
    let mut env = n.to_envelope();
    accord_trust::sign_envelope(&mut env, &coop.signer(signer).expect("signer"));
    env.to_json()
}

/// Adds entries to history maps in one local edit.
pub fn add(r: &mut Replica, entries: &[(accord_catalogue::History, &[u8])]) {
    r.edit(T0, "history", |tx| {
        for (map, v) in entries {
            accord_catalogue::edit::add_history(tx, *map, v)?;
        }
        Ok(())
    })
    .expect("history edit");
}
