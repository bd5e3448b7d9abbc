//! Attack vectors as data: every `tests/vectors/*.toml` is one case — a cooperative, a
//! chain of roots, a release with its signatures and tampering, recall and conditional
//! statements — and the decision it must produce. Files named `*_fail.toml` must be refused
//! (root rejected or release not promotable), `*_pass.toml` must be accepted.

use std::path::Path;

use accord_protocol::statement::{
    ConditionalPredicate, PREDICATE_CONDITIONAL, PREDICATE_RECALL, RecallPredicate, ReleaseRef,
};
use accord_protocol::{Envelope, PrincipalId, Requirement, Role, Statement};
use accord_trust::testkit::{Cooperative, NOW, Shape};
use accord_trust::{PolicyInput, TrustedRoot, evaluate, sign_envelope};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    #[serde(default)]
    cooperative: CoopSpec,
    #[serde(default)]
    rotation: Vec<RotationSpec>,
    #[serde(default)]
    release: ReleaseSpec,
    #[serde(default)]
    recall: Vec<StatementSpec>,
    #[serde(default)]
    conditional: Vec<StatementSpec>,
    expect: Expect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CoopSpec {
    /// role -> [keys, threshold] inside each principal
    #[serde(default)]
    roles: std::collections::BTreeMap<Role, (u32, u32)>,
    /// days from NOW until the root expires (default 365)
    expires_days: Option<i64>,
    /// [a, b]: key slot b uses a's key (e.g. one key listed under two principals)
    #[serde(default)]
    share: Vec<(String, String)>,
    /// replace the promote rule
    promote: Option<Vec<Requirement>>,
    /// signers of the first root (default: all steering keys)
    anchor_signers: Option<Vec<String>>,
    #[serde(default)]
    local_rules: Vec<Requirement>,
    jurisdiction: Option<PrincipalId>,
    production_version: Option<semver::Version>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationSpec {
    version: Option<u64>,
    #[serde(default)]
    rotate: Vec<String>,
    signers: Vec<String>,
    expires_days: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseSpec {
    capability: String,
    version: String,
    root_version: u64,
    signers: Vec<String>,
    #[serde(default)]
    tamper: Vec<String>,
}

impl Default for ReleaseSpec {
    fn default() -> Self {
        ReleaseSpec {
            capability: "CAP-B01".into(),
            version: "1.4.0".into(),
            root_version: 1,
            signers: vec![],
            tamper: vec![],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatementSpec {
    signers: Vec<String>,
    #[serde(default)]
    consenting: Vec<PrincipalId>,
    /// name another release (so the statement is about something else)
    version: Option<String>,
    /// name the right CAP@VER but another statement of it (another payload digest)
    #[serde(default)]
    other_statement: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// "promotable", "blocked" or "root_rejected"
    outcome: String,
    /// substrings the explanation must contain
    #[serde(default)]
    reasons: Vec<String>,
}

fn run(case: &Case) -> Result<(String, String), String> {
    let c = &case.cooperative;
    let mut shape = Shape::default();
    for (role, kn) in &c.roles {
        shape.keys_per_role.insert(*role, *kn);
    }
    if let Some(d) = c.expires_days {
        shape.expires = NOW.plus_days(d);
    }
    let mut coop = Cooperative::new(shape);
    for (from, to) in &c.share {
        coop.shared.insert(format!("{to}.0"), format!("{from}.0"));
    }
    if let Some(p) = &c.promote {
        let mut rules = accord_protocol::Rules::cooperative_default(4);
        rules.promote.all_of = p.clone();
        coop.shape.rules = Some(rules);
    }
    let e = |e: accord_trust::TrustError| e.to_string();

    let anchor_signers = c.anchor_signers.clone().unwrap_or_else(|| coop.steering());
    let refs: Vec<&str> = anchor_signers.iter().map(String::as_str).collect();
    let anchor = match coop.signed_root(1, &refs) {
        Ok(env) => TrustedRoot::anchor(&env.to_json()),
        Err(err) => Err(err),
    };
    let mut root = match anchor {
        Ok(r) => r,
        Err(err) => return Ok(("root_rejected".into(), e(err))),
    };
    for r in &case.rotation {
        for label in &r.rotate {
            coop.rotate(label).map_err(e)?;
        }
        if let Some(d) = r.expires_days {
            coop.shape.expires = NOW.plus_days(d);
        }
        let version = r.version.unwrap_or(root.version() + 1);
        let refs: Vec<&str> = r.signers.iter().map(String::as_str).collect();
        let env = coop.signed_root(version, &refs).map_err(e)?;
        match root.update(&env.to_json()) {
            Ok(next) => root = next,
            Err(err) => return Ok(("root_rejected".into(), e(err))),
        }
    }

    let rs = &case.release;
    let mut release =
        accord_trust::testkit::release(&rs.capability, &rs.version, rs.root_version).map_err(e)?;
    // "moved": every signature was made over another statement of the same CAP@VER (other
    // artifacts) and moved onto this one — the mix-and-match attack.
    let moved = rs.tamper.iter().any(|t| t == "moved");
    let mut signed_over = if moved {
        other_statement(&release)
    } else {
        release.clone()
    };
    for s in &rs.signers {
        let key = coop.signer(s).map_err(e)?;
        sign_envelope(&mut signed_over, &key);
    }
    release.signatures = signed_over.signatures;
    for t in rs.tamper.iter().filter(|t| *t != "moved") {
        tamper(&mut release, t, &coop)?;
    }

    let statements = |specs: &[StatementSpec], recall: bool| -> Result<Vec<Envelope>, String> {
        specs
            .iter()
            .map(|s| {
                let mut target = match &s.version {
                    Some(v) => accord_trust::testkit::release(&rs.capability, v, rs.root_version)
                        .map_err(e)?,
                    None => {
                        accord_trust::testkit::release(&rs.capability, &rs.version, rs.root_version)
                            .map_err(e)?
                    }
                };
                if s.other_statement {
                    target = other_statement(&target);
                }
                let r = ReleaseRef {
                    capability: rs.capability.clone(),
                    version: semver::Version::parse(s.version.as_deref().unwrap_or(&rs.version))
                        .map_err(|x| x.to_string())?,
                };
                let (ptype, predicate) = if recall {
                    (
                        PREDICATE_RECALL,
                        serde_json::to_value(RecallPredicate {
                            release: r.clone(),
                            reason: "CVE in chart".into(),
                            created: NOW,
                        }),
                    )
                } else {
                    (
                        PREDICATE_CONDITIONAL,
                        serde_json::to_value(ConditionalPredicate {
                            release: r.clone(),
                            consenting: s.consenting.clone(),
                            reason: "AU dispute unresolved".into(),
                            created: NOW,
                        }),
                    )
                };
                let mut env = Statement::about_release(
                    &target,
                    &r,
                    ptype,
                    predicate.map_err(|x| x.to_string())?,
                )
                .to_envelope();
                for signer in &s.signers {
                    sign_envelope(&mut env, &coop.signer(signer).map_err(e)?);
                }
                Ok(env)
            })
            .collect()
    };
    let recalls = statements(&case.recall, true)?;
    let conditionals = statements(&case.conditional, false)?;

    // Round-trip through JSON, as a file or message would.
    let release = Envelope::from_json(&release.to_json()).map_err(|x| x.to_string())?;
    let decision = evaluate(&PolicyInput {
        root: &root,
        local_rules: &c.local_rules,
        jurisdiction: c.jurisdiction.as_ref(),
        release: &release,
        recalls: &recalls,
        conditionals: &conditionals,
        production_version: c.production_version.as_ref(),
        now: NOW,
    });
    let mut explanation: Vec<String> = decision.blockers.iter().map(|b| b.to_string()).collect();
    explanation.extend(decision.signatures.iter().filter_map(|s| s.ignored.clone()));
    explanation.extend(decision.notes.clone());
    explanation.extend(decision.requirements.iter().map(|r| r.explain()));
    let outcome = if decision.promotable {
        "promotable"
    } else {
        "blocked"
    };
    Ok((outcome.into(), explanation.join("\n")))
}

/// Another statement with the same CAP@VER: the same release proposed with other words
/// (and so another payload digest).
fn other_statement(env: &Envelope) -> Envelope {
    let text = String::from_utf8_lossy(&env.payload).replace("eu supplier ci", "someone else");
    Envelope::new(&env.payload_type, text.into_bytes())
}

fn tamper(env: &mut Envelope, t: &str, coop: &Cooperative) -> Result<(), String> {
    let (what, arg) = t.split_once(':').unwrap_or((t, ""));
    let find = |env: &Envelope, who: &str| -> Result<usize, String> {
        let id = coop
            .signer(who)
            .map_err(|e| e.to_string())?
            .id()
            .to_string();
        env.signatures
            .iter()
            .position(|s| s.keyid == id)
            .ok_or(format!("{who} did not sign"))
    };
    match what {
        // Replace a signer's signature with one by an outsider under the signer's keyid.
        "forge" => {
            let i = find(env, arg)?;
            env.signatures[i].sig = accord_trust::testkit::key("forger", 0)
                .sign(&env.pae())
                .to_vec();
        }
        // Change what was signed so that it still parses: the version is bumped, the
        // signatures stay. Only the signatures can catch this.
        "payload" => {
            let text = String::from_utf8_lossy(&env.payload).into_owned();
            let bumped = text.replacen("\"version\":\"1.4.0\"", "\"version\":\"1.4.1\"", 1);
            if bumped == text {
                return Err("payload tamper found no version to bump".into());
            }
            env.payload = bumped.into_bytes();
        }
        // A signature by one key presented under another key's id: "SIGNER>CLAIMED".
        "relabel" => {
            let (signer, claimed) = arg.split_once('>').ok_or("relabel:SIGNER>CLAIMED")?;
            let i = find(env, signer)?;
            env.signatures[i].keyid = coop
                .signer(claimed)
                .map_err(|e| e.to_string())?
                .id()
                .to_string();
        }
        "payload_type" => env.payload_type = "application/json".into(),
        "duplicate" => {
            let i = find(env, arg)?;
            let s = env.signatures[i].clone();
            env.signatures.push(s);
        }
        "truncate_sig" => {
            let i = find(env, arg)?;
            env.signatures[i].sig.truncate(32);
        }
        "drop_keyids" => env.signatures.iter_mut().for_each(|s| s.keyid.clear()),
        "reverse" => env.signatures.reverse(),
        "garbage_keyid" => env
            .signatures
            .iter_mut()
            .for_each(|s| s.keyid = "../../etc".into()),
        other => return Err(format!("unknown tamper {other}")),
    }
    Ok(())
}

#[test]
fn attack_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("vectors dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "only {} vectors", files.len());
    let (mut pass, mut fail) = (0, 0);
    let mut failures = Vec::new();
    for f in &files {
        let name = f
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let text = std::fs::read_to_string(f).expect("read");
        let case: Case = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let must_fail = name.ends_with("_fail");
        assert!(
            must_fail || name.ends_with("_pass"),
            "{name}: name must end in _pass or _fail"
        );
        assert_eq!(
            must_fail,
            case.expect.outcome != "promotable",
            "{name}: name and expected outcome disagree"
        );
        match run(&case) {
            Err(e) => failures.push(format!("{name}: case could not run: {e}")),
            Ok((outcome, why)) => {
                if outcome != case.expect.outcome {
                    failures.push(format!(
                        "{name} ({}): expected {}, got {outcome}:\n{why}",
                        case.description, case.expect.outcome
                    ));
                }
                for r in &case.expect.reasons {
                    if !why.contains(r.as_str()) {
                        failures.push(format!("{name}: explanation lacks {r:?}:\n{why}"));
                    }
                }
            }
        }
        if must_fail { fail += 1 } else { pass += 1 }
    }
    assert!(
        pass >= 8 && fail >= 20,
        "{pass} passing and {fail} failing cases"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
