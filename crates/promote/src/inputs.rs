//! The engine's inputs and its neighbours' decisions, read from the catalogue: which
//! releases are candidates and whether their artifacts are here, which a recall retired,
//! which this node mirrors (and why not the others), and which promotion notes it owes.
//! The node's core and the offline CLI call these same functions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use accord_catalogue::Approval;
use accord_catalogue::records::entry_key;
use accord_catalogue::schema::{Authored, Catalogue, Release};
use accord_protocol::dsse::PAYLOAD_TYPE_IN_TOTO;
use accord_protocol::{Envelope, EnvelopeSignature, PrincipalId, ReleaseId, Timestamp};
use accord_trust::{PolicyInput, RootChain, SecretKey, TrustedRoot, evaluate};

use crate::{Candidate, Mirror, Note, NoteState, State};

/// `on_promote` hooks back off 2, 4, 8 … seconds after failures, at most five minutes
/// apart; a failed hook never un-promotes.
pub fn hook_backoff(failures: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(failures.min(8)).min(300))
}

/// The engine's inputs: every release statement with its signatures and statements, and
/// whether this node's own store holds all of its artifacts (`mirror`, by release; a
/// release the mirror has not reported on yet is not here).
/// The jurisdictions among `others` whose view here is older than `max` at `now` (Unix
/// seconds), or was never brought up to date, as reasons for production promotions to
/// wait (issue 16, freshness). `heard` is, per jurisdiction, when (Unix seconds) this node
/// last finished a sync with one of its nodes or imported a bundle from it.
pub fn stale_views<'a>(
    heard: &BTreeMap<String, i64>,
    others: impl IntoIterator<Item = &'a str>,
    now: i64,
    max: Duration,
) -> Vec<crate::Reason> {
    let max_secs = max.as_secs();
    others
        .into_iter()
        .filter_map(|j| {
            let age_secs = heard
                .get(j)
                .map(|at| u64::try_from(now.saturating_sub(*at)).unwrap_or(0));
            let stale = age_secs.is_none_or(|a| a > max_secs);
            stale.then(|| crate::Reason::Stale {
                jurisdiction: j.to_owned(),
                age_secs,
                max_secs,
            })
        })
        .collect()
}

/// One line for an artifact a node does not hold whole: the engine's reason and the
/// status lines say it the same way.
pub fn missing_line(name: &str, have: u64, size: u64) -> String {
    format!(
        "artifact {name} {}% mirrored ({have} of {size} bytes)",
        accord_mirror::percent(have, size)
    )
}

/// What a node's own store holds of every release, verified, as the engine needs it:
/// complete, or one line per artifact still missing, with why the release is not mirrored
/// here first (if it is not). `have` is verified bytes held by BLAKE3; never a peer's word
/// (ADR 0005 §5). `provenance` gives, for a release held whole, the line saying why its
/// upstream provenance does not count here yet (`None`: verified, or not checked on this
/// node). The core and the offline CLI both call this.
pub fn held_here(
    cat: &Catalogue,
    have: impl Fn(&[u8; 32]) -> u64,
    held_back: impl Fn(&ReleaseId) -> Option<String>,
    provenance: impl Fn(&Release) -> Option<String>,
) -> BTreeMap<ReleaseId, Mirror> {
    cat.releases
        .iter()
        .map(|r| {
            let mut missing: Vec<String> = r
                .artifacts
                .iter()
                .filter_map(|a| {
                    let held = have(&a.blake3).min(a.size);
                    (held < a.size).then(|| missing_line(&a.name, held, a.size))
                })
                .collect();
            if !missing.is_empty()
                && let Some(why) = held_back(&r.id)
            {
                missing.insert(0, format!("not mirrored here: {why}"));
            }
            if missing.is_empty()
                && let Some(line) = provenance(r)
            {
                missing.push(line);
            }
            let mirror = if missing.is_empty() {
                Mirror::Complete
            } else {
                Mirror::Incomplete { missing }
            };
            (r.id, mirror)
        })
        .collect()
}

pub fn candidates(cat: &Catalogue, mirror: &BTreeMap<ReleaseId, Mirror>) -> Vec<Candidate> {
    cat.releases
        .iter()
        .map(|r| Candidate {
            id: r.id,
            capability: r.capability.clone(),
            version: r.version.clone(),
            artifacts: r.artifacts.clone(),
            envelope: r.signed_envelope(),
            statements: statements(r),
            mirror: mirror.get(&r.id).cloned().unwrap_or(Mirror::Incomplete {
                missing: vec!["artifacts not checked here yet".into()],
            }),
        })
        .collect()
}

/// Release statements withdrawn by a recall that meets the recall rule under `root`:
/// retired, so nodes stop mirroring them and `accord gc` may collect their blobs.
pub fn retired(cat: &Catalogue, root: &TrustedRoot, now: Timestamp) -> BTreeSet<ReleaseId> {
    cat.releases
        .iter()
        .filter(|r| r.about.iter().any(|a| a.kind == "recall"))
        .filter(|r| {
            let statements = statements(r);
            let d = evaluate(&PolicyInput {
                root,
                local_rules: &[],
                jurisdiction: None,
                release: &r.signed_envelope(),
                recalls: &statements,
                conditionals: &[],
                production_version: None,
                now,
            });
            d.blockers
                .iter()
                .any(|b| matches!(b, accord_trust::Blocker::Recalled { .. }))
        })
        .map(|r| r.id)
        .collect()
}

/// The recall and conditional statements about a release, with their signatures.
pub fn statements(r: &Release) -> Vec<Envelope> {
    r.about.iter().map(|a| a.signed_envelope()).collect()
}

/// The newest valid promotion note per jurisdiction for a release.
pub fn latest_notes(release: &Release, chain: &RootChain) -> BTreeMap<PrincipalId, Note> {
    crate::note::latest(
        &release.id,
        release.notes.iter().map(|n| n.value.as_slice()),
        chain,
    )
}

/// Notes this node owes the catalogue: its standing for each release it promoted, where
/// the catalogue's newest note from this jurisdiction does not say so yet (this also
/// repairs a crash between the state's commit and the note's). Signed with `signer`.
pub fn notes_owed(
    state: &State,
    cat: &Catalogue,
    chain: &RootChain,
    me: &PrincipalId,
    signer: &SecretKey,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (id, standing) in &state.releases {
        let want = if standing.recalled.is_some() {
            NoteState::Recalled
        } else {
            NoteState::Live
        };
        let Some(release) = cat.release(id) else {
            continue;
        };
        let current = latest_notes(release, chain).remove(me);
        if current.is_some_and(|n| n.state == want) {
            continue;
        }
        let note = Note {
            release: *id,
            jurisdiction: me.clone(),
            state: want,
            at: standing
                .recalled
                .as_ref()
                .map(|r| r.at)
                .unwrap_or(standing.promoted_at),
            root_version: chain.current().version(),
        };
        out.push(crate::note::sign(&note, signer));
    }
    out
}

/// Who proposed a release, as the audit log and the status page name them.
pub fn proposers(r: &Release, chain: &RootChain) -> Vec<String> {
    r.authors
        .iter()
        .map(|a| match accord_catalogue::signing::author_of(chain, a) {
            Some(s) => format!(
                "{} (node key {})",
                s.principal(),
                s.key().id().short().chars().take(8).collect::<String>()
            ),
            None => format!("unknown actor {}", a.chars().take(8).collect::<String>()),
        })
        .collect()
}

/// Every approval in the catalogue as a one-signature envelope over its statement, keyed
/// by its record's catalogue key, with the subject the audit log names.
pub fn approvals(cat: &Catalogue) -> Vec<(String, (String, Envelope))> {
    let mut out = Vec::new();
    let mut add = |subject: String, payload: &[u8], list: &[Authored<Approval>]| {
        for a in list {
            let mut env = Envelope::new(PAYLOAD_TYPE_IN_TOTO, payload.to_vec());
            env.signatures.push(EnvelopeSignature {
                keyid: a.value.keyid.to_string(),
                sig: a.value.sig.to_vec(),
            });
            out.push((entry_key(&a.value.to_bytes()), (subject.clone(), env)));
        }
    };
    for r in &cat.releases {
        add(r.label(), &r.payload, &r.approvals);
        for s in &r.about {
            add(
                format!("{} {} {}", r.label(), s.kind, s.id.short()),
                &s.payload,
                &s.approvals,
            );
        }
    }
    out
}

/// Which releases this node mirrors, and why not the others (issue 12): a node mirrors what
/// it serves, what the cooperative approved and what its own jurisdiction proposed; other
/// proposals (staging) only up to a quota per proposing jurisdiction; never what a valid
/// recall withdrew or what production here has moved past.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorPlan {
    pub wanted: BTreeSet<ReleaseId>,
    /// Release -> why it is not mirrored here.
    pub held_back: BTreeMap<ReleaseId, String>,
    /// Proposing jurisdiction -> bytes of its unapproved releases mirrored here.
    pub staged: BTreeMap<String, u64>,
}

pub fn mirror_plan(
    cat: &Catalogue,
    chain: &RootChain,
    state: &State,
    me: &str,
    quota: u64,
    now: Timestamp,
) -> MirrorPlan {
    let root = chain.current();
    let retired = retired(cat, root, now);
    let mut plan = MirrorPlan::default();
    let mut staging: Vec<(&Release, String, u64)> = Vec::new();
    for r in &cat.releases {
        let size = r
            .artifacts
            .iter()
            .fold(0u64, |t, a| t.saturating_add(a.size));
        if state.is_live(&r.id) {
            plan.wanted.insert(r.id);
            continue;
        }
        if retired.contains(&r.id) {
            plan.held_back.insert(r.id, "recalled".into());
            continue;
        }
        if let Some(hw) = state.high_water.get(&r.capability)
            && *hw >= r.version
        {
            plan.held_back.insert(
                r.id,
                format!("superseded: production here is at {} {hw}", r.capability),
            );
            continue;
        }
        let proposers: Vec<String> = r
            .authors
            .iter()
            .filter_map(|a| accord_catalogue::signing::author_of(chain, a))
            .map(|s| s.principal().to_string())
            .collect();
        if proposers.iter().any(|p| p == me) {
            plan.wanted.insert(r.id);
            continue;
        }
        let statements = statements(r);
        let approved = evaluate(&PolicyInput {
            root,
            local_rules: &[],
            jurisdiction: None,
            release: &r.signed_envelope(),
            recalls: &statements,
            conditionals: &statements,
            production_version: None,
            now,
        })
        .promotable;
        if approved {
            plan.wanted.insert(r.id);
        } else {
            let proposer = proposers
                .into_iter()
                .next()
                .unwrap_or_else(|| "unknown".into());
            staging.push((r, proposer, size));
        }
    }
    // Newest versions first within a capability, then by id: the same order everywhere.
    staging.sort_by(|(a, _, _), (b, _, _)| {
        (&a.capability, &b.version, &a.id).cmp(&(&b.capability, &a.version, &b.id))
    });
    for (r, proposer, size) in staging {
        let used = plan.staged.entry(proposer.clone()).or_insert(0);
        match used.checked_add(size).filter(|t| *t <= quota) {
            Some(t) => {
                *used = t;
                plan.wanted.insert(r.id);
            }
            None => {
                plan.held_back.insert(
                    r.id,
                    format!(
                        "not approved yet, and {proposer}'s staging quota here ({} of {} MiB used) is full; mirrored once the leads sign",
                        *used >> 20,
                        quota >> 20
                    ),
                );
            }
        }
    }
    plan
}

/// A proposal checked before its files are imported: the statement parses as a release,
/// and the catalogue holds no other statement for the same `CAP@VER` (a second one would be
/// equivocation, ADR 0005). The daemon checks it before and again after the files stream
/// in; the offline CLI checks it too — the same function.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub id: ReleaseId,
    pub label: String,
    pub payload: Vec<u8>,
    pub artifacts: Vec<accord_protocol::statement::Artifact>,
}

impl Proposal {
    /// From the unsigned release envelope a proposer sends.
    pub fn check(envelope: &[u8], cat: &Catalogue) -> Result<Proposal, String> {
        let env = Envelope::from_json(envelope).map_err(|e| e.to_string())?;
        if env.payload_type != PAYLOAD_TYPE_IN_TOTO {
            return Err("not an in-toto statement".into());
        }
        Self::check_payload(&env.payload, cat)
    }

    /// From a statement payload.
    pub fn check_payload(payload: &[u8], cat: &Catalogue) -> Result<Proposal, String> {
        let env = Envelope::new(PAYLOAD_TYPE_IN_TOTO, payload.to_vec());
        let accord_protocol::StatementKind::Release {
            artifacts,
            predicate,
        } = accord_protocol::Statement::from_envelope(&env).map_err(|e| e.to_string())?
        else {
            return Err("not a release statement".into());
        };
        let id = ReleaseId::of_payload(&env.payload);
        let key = accord_protocol::release::display_key(&predicate.capability, &predicate.version);
        if let Some(other) = cat
            .releases
            .iter()
            .find(|r| r.capability == predicate.capability && r.version == predicate.version)
        {
            if other.id == id {
                return Err(format!(
                    "{key} is already in the catalogue (statement {})",
                    id.short()
                ));
            }
            return Err(format!(
                "{key} already has a statement in the catalogue ({}); propose a new version instead of a second statement for the same one",
                other.label()
            ));
        }
        Ok(Proposal {
            label: format!("{key}#{}", id.short()),
            id,
            payload: env.payload,
            artifacts,
        })
    }
}
