//! What an operator asks of the node, as inputs to the core: the writes of the HTTP API
//! (and of the CLI, which goes through it). Each command carries its reply handle, as in
//! Radicle heartwood's `Service::command`; the core answers it before `command` returns,
//! because no command waits for I/O (a proposal's artifacts are streamed into the blob
//! store and verified by the reactor before the proposal becomes a command). Reads (the
//! catalogue, a release's status, the audit log) are not commands: the reactor serialises
//! what the core exposes.

use std::fmt;

use accord_catalogue::History;
use accord_catalogue::edit::EditSpec;
use accord_promote::admit::Imported;
use accord_promote::inputs::Proposal;
use accord_store::AuditEvent;
use accord_store::audit::kind;
use tracing::{info, warn};

use super::Service;
use crate::io::Io;
use crate::store::Store;
use crate::time::Now;

/// Where the answer to a command goes: a oneshot sender in the node, a channel or a cell
/// in tests. Called exactly once.
pub struct Reply<T>(Box<dyn FnOnce(Result<T, String>) + Send>);

impl<T> Reply<T> {
    pub fn new(f: impl FnOnce(Result<T, String>) + Send + 'static) -> Self {
        Reply(Box::new(f))
    }

    fn send(self, answer: Result<T, String>) {
        (self.0)(answer)
    }
}

impl<T> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply")
    }
}

/// A write an operator asks for.
#[derive(Debug)]
pub enum Command {
    /// Change one capability's entry; answered with the new change's short hash, or
    /// "(no change)".
    Edit {
        capability: String,
        spec: EditSpec,
        reply: Reply<String>,
    },
    /// Record a release whose artifacts are already in this node's blob store, pinned and
    /// checked against the statement; answered with its `CAP@VER`.
    Propose {
        proposal: Proposal,
        reply: Reply<String>,
    },
    /// Signatures on a release, recall or conditional statement (DSSE JSON), to check one
    /// by one (`accord_promote::admit`) and record.
    Sign {
        envelope: Vec<u8>,
        reply: Reply<Imported>,
    },
    /// A successor root (JSON) to verify against the current one and install; answered
    /// with its version.
    AdoptRoot { bytes: Vec<u8>, reply: Reply<u64> },
    /// An offline bundle's catalogue: its signed changes as one sync message, applied all
    /// or nothing exactly as a peer's message would be (signatures, authors in the chain,
    /// write authority, roots it records); the exporting jurisdiction's view is then as
    /// fresh as the export. Answered with the catalogue's heads (hex) and the number of
    /// changes applied, for the import's receipt.
    ImportCatalogue {
        message: Vec<u8>,
        exporter: String,
        exported_at: i64,
        /// The export's signed statement (`accord_bundle::ExportInfo::signed_bytes`), the
        /// exporting node's key id and its signature (hex): checked before anything is
        /// applied (`crate::export::verify`).
        signed: Vec<u8>,
        key: String,
        signature: String,
        reply: Reply<(Vec<String>, usize)>,
    },
}

impl<S: Store, P: Clone + Ord + std::hash::Hash + fmt::Display + fmt::Debug> Service<S, P> {
    /// Carries out an operator's command and answers its reply handle.
    pub fn command(&mut self, cmd: Command, now: Now) {
        match cmd {
            Command::Edit {
                capability,
                spec,
                reply,
            } => reply.send(self.edit_capability(&capability, &spec, now)),
            Command::Propose { proposal, reply } => reply.send(self.propose(&proposal, now)),
            Command::Sign { envelope, reply } => reply.send(self.import_signatures(&envelope, now)),
            Command::ImportCatalogue {
                message,
                exporter,
                exported_at,
                signed,
                key,
                signature,
                reply,
            } => reply.send(
                crate::export::verify(
                    self.replica.chain(),
                    &exporter,
                    exported_at,
                    now.unix(),
                    &signed,
                    &key,
                    &signature,
                )
                .and_then(|()| self.import_catalogue(&message, &exporter, exported_at, now)),
            ),
            Command::AdoptRoot { bytes, reply } => {
                let answer = self.adopt_root(&bytes, now).map_err(|e| e.to_string());
                if let Err(e) = &answer {
                    warn!(error = %e, "refused a root");
                }
                reply.send(answer)
            }
        }
    }

    fn import_catalogue(
        &mut self,
        message: &[u8],
        exporter: &str,
        exported_at: i64,
        now: Now,
    ) -> Result<(Vec<String>, usize), String> {
        let delta = self
            .replica
            .receive_message("bundle", message, now.unix())
            .map_err(|e| {
                format!(
                    "the bundle's catalogue changes were refused (an incremental bundle is checked against the site that wrote its receipt: import it there): {e}"
                )
            })?;
        let changes = delta.changes.len();
        info!(
            changes,
            exporter, "catalogue updated from an offline bundle"
        );
        self.committed_locally(&delta, now);
        self.view_updated(exporter, exported_at, now);
        let heads = self
            .replica
            .heads()
            .iter()
            .map(|h| hex::encode(h.0))
            .collect();
        Ok((heads, changes))
    }

    fn edit_capability(&mut self, id: &str, spec: &EditSpec, now: Now) -> Result<String, String> {
        let delta = self
            .edit(now, &spec.summary(id), |tx| spec.apply(tx, id))
            .map_err(|e| e.to_string())?;
        Ok(match delta.changes.first() {
            Some(c) => {
                info!(capability = %id, "local edit committed");
                hex::encode(&c.hash[..8])
            }
            None => "(no change)".to_owned(),
        })
    }

    /// Checked again here, not only when the reactor accepted the upload: another proposal
    /// of the same `CAP@VER` may have landed while the artifacts streamed in.
    fn propose(&mut self, p: &Proposal, now: Now) -> Result<String, String> {
        Proposal::check_payload(&p.payload, &self.catalogue().0)?;
        self.edit(now, &format!("propose {}", p.label), |tx| {
            accord_catalogue::edit::add_history(tx, History::Statements, &p.payload).map(|_| ())
        })
        .map_err(|e| e.to_string())?;
        info!(release = %p.label, "release proposed");
        self.outbox.push_back(Io::Audit(vec![AuditEvent::new(
            kind::PROPOSED,
            &p.label,
            format!(
                "proposed here (statement {}); artifacts streamed in, verified and pinned",
                p.id
            ),
        )]));
        Ok(p.label.clone())
    }
}
