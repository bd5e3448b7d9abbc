//! Signature admission: which signatures of an envelope a node takes into its catalogue.
//! Each signature is checked alone under the current root; the valid new ones become
//! approval records naming the statement's id, the others are reported with the reason.
//! The same function serves the running node and anything that imports signatures.

use accord_catalogue::Approval;
use accord_catalogue::schema::{Authored, Catalogue};
use accord_protocol::{Envelope, KeyId, ReleaseId, Role, Statement};
use accord_trust::{Tally, TrustedRoot};

/// The catalogue statement an envelope's signatures belong to.
#[derive(Debug, Clone)]
pub struct Located {
    /// The statement signed (its payload's SHA-256).
    pub id: ReleaseId,
    /// How the audit log names it: `CAP@VER#ID`, or `CAP@VER#ID recall ID`.
    pub subject: String,
    /// "release", "recall" or "conditional".
    pub what: String,
    /// Signatures already recorded for it.
    pub existing: Vec<Vec<u8>>,
    /// A recall or conditional the catalogue does not hold yet.
    pub new_statement: bool,
}

/// What admission decided about an envelope's signatures.
#[derive(Debug, Clone)]
pub struct Admission {
    pub located: Located,
    /// "lead of uk (key 1a2b3c4d)" for each signature admitted.
    pub added: Vec<String>,
    /// Each signature not admitted, and why.
    pub rejected: Vec<String>,
    /// The approval records to add to the catalogue (one per admitted signature).
    pub records: Vec<Vec<u8>>,
}

/// The first characters of a key id for messages; the id came from outside, so it is cut on
/// character boundaries, never bytes.
fn short(keyid: &str) -> String {
    keyid.chars().take(8).collect()
}

/// What importing an envelope's signatures did (the API's answer).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Imported {
    /// The release the signatures are for (`CAP@VER#ID`), and which statement ("release",
    /// "recall …").
    pub release: String,
    pub statement: String,
    /// "lead of uk (key 1a2b3c4d)" for each signature added.
    pub added: Vec<String>,
    /// Each signature not added, and why.
    pub rejected: Vec<String>,
}

/// Checks each signature of `env` alone under `root` against what `cat` holds.
pub fn admit(cat: &Catalogue, root: &TrustedRoot, env: &Envelope) -> Result<Admission, String> {
    if env.payload_type != accord_protocol::dsse::PAYLOAD_TYPE_IN_TOTO {
        return Err(format!(
            "payloadType {:?} is not an in-toto statement",
            env.payload_type.chars().take(60).collect::<String>()
        ));
    }
    let located = locate(cat, env)?;
    let mut added = Vec::new();
    let mut rejected = Vec::new();
    let mut records = Vec::new();
    for s in &env.signatures {
        if located
            .existing
            .iter()
            .any(|e| e.as_slice() == s.sig.as_slice())
        {
            rejected.push(format!("key {}: already recorded", short(&s.keyid)));
            continue;
        }
        let mut one = env.clone();
        one.signatures = vec![s.clone()];
        let check = Tally::of(&one, root).checks.into_iter().next();
        match check {
            Some(c) if c.ignored.is_none() && c.role != Some(Role::Node) => {
                let (Some(keyid), Some(p), Some(role)) = (c.keyid, c.principal, c.role) else {
                    continue;
                };
                let Ok(sig) = <[u8; 64]>::try_from(s.sig.as_slice()) else {
                    rejected.push(format!("key {}: not a 64-byte signature", keyid.short()));
                    continue;
                };
                let keyid = KeyId::parse(keyid.as_str()).map_err(|e| e.to_string())?;
                added.push(format!("{role} of {p} (key {})", keyid.short()));
                records.push(
                    Approval {
                        statement: located.id,
                        keyid,
                        sig,
                    }
                    .to_bytes(),
                );
            }
            Some(c) if c.role == Some(Role::Node) => rejected.push(format!(
                "key {}: a node key does not approve statements",
                short(&s.keyid)
            )),
            Some(c) => rejected.push(format!(
                "key {}: {}",
                short(&s.keyid),
                c.ignored.unwrap_or_default()
            )),
            None => {}
        }
    }
    Ok(Admission {
        located,
        added,
        rejected,
        records,
    })
}

/// Which catalogue statement an envelope is: a release the catalogue holds, or a recall or
/// conditional that names one by its id (new ones are recorded with their signatures).
pub fn locate(cat: &Catalogue, env: &Envelope) -> Result<Located, String> {
    let id = ReleaseId::of_payload(&env.payload);
    let existing_of = |approvals: &[Authored<Approval>]| {
        approvals
            .iter()
            .map(|a| a.value.sig.to_vec())
            .collect::<Vec<_>>()
    };
    if let Some(r) = cat.release(&id) {
        return Ok(Located {
            id,
            subject: r.label(),
            what: "release".into(),
            existing: existing_of(&r.approvals),
            new_statement: false,
        });
    }
    let kind =
        Statement::from_envelope(env).map_err(|e| format!("not an Accord statement: {e}"))?;
    let Some(target) = kind.names_release() else {
        return Err(format!(
            "release statement {} is not in this node's catalogue (propose it first, or wait for it to sync)",
            id.short()
        ));
    };
    let release = cat.release(&target).ok_or_else(|| {
        format!(
            "the {} names release statement {}, which is not in this node's catalogue",
            kind.name(),
            target.short()
        )
    })?;
    let about = release.about.iter().find(|a| a.id == id);
    Ok(Located {
        id,
        subject: format!("{} {} {}", release.label(), kind.name(), id.short()),
        what: kind.name().into(),
        existing: about.map(|a| existing_of(&a.approvals)).unwrap_or_default(),
        new_statement: about.is_none(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_ids_from_a_request_are_cut_on_characters() {
        assert_eq!(super::short("ééééééééé"), "éééééééé");
        assert_eq!(super::short("ab"), "ab");
    }
}
