//! Shared fixtures: a four-jurisdiction cooperative, its root, a small seed, and replicas.

#![allow(dead_code)]

use accord_catalogue::{Replica, Seed, Stored, genesis};
use accord_trust::TrustedRoot;
use accord_trust::testkit::Cooperative;

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

pub fn seed() -> Seed {
    Seed::parse(SEED, "test seed").expect("seed")
}

pub fn cooperative() -> (Cooperative, TrustedRoot) {
    accord_trust::testkit::anchored().expect("cooperative")
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
    Replica::open(hash, stored, coop.signer(label).expect("key"), root.clone()).expect("open")
}

/// Exchanges messages between two replicas until both are quiet. Returns (rounds, bytes).
pub fn sync_pair(a: &mut Replica, an: &str, b: &mut Replica, bn: &str) -> (usize, usize) {
    let mut bytes = 0;
    for round in 0..50 {
        let mut quiet = true;
        if let Some(m) = a.generate_message(bn) {
            quiet = false;
            bytes += m.len();
            b.receive_message(an, &m).expect("b accepts a");
        }
        if let Some(m) = b.generate_message(an) {
            quiet = false;
            bytes += m.len();
            a.receive_message(bn, &m).expect("a accepts b");
        }
        if quiet {
            return (round, bytes);
        }
    }
    panic!("sync between {an} and {bn} did not go quiet");
}
