//! The reactor's side of promotion: it runs the `on_promote` command the core asks for
//! (`Io::RunHook`) and reports how it ended; it writes the audit rows the core hands it.
//! When to run a hook, when to retry it and what it sees are the core's decisions.

use std::time::Duration;

use accord_protocol::ReleaseId;
use accord_store::AuditEvent;
use tracing::warn;

use super::{Internal, Node};

/// A hook that runs longer than this is stopped and counts as failed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(600);

impl Node {
    pub(super) fn audit(&self, events: &[AuditEvent]) {
        if let Err(e) = self.svc.store().append_audit(super::now().unix(), events) {
            warn!(error = %e, "could not append to the audit log");
        }
    }

    /// Starts the `on_promote` command (one attempt) with the environment the core gave,
    /// `PATH` and the data dir, nothing else of the node's.
    pub(super) fn run_hook(&mut self, id: ReleaseId, mut env: Vec<(String, String)>) {
        let Some(cmd) = self.on_promote.clone() else {
            return;
        };
        env.push((
            "ACCORD_DATA_DIR".to_owned(),
            self.data_dir.display().to_string(),
        ));
        let internal = self.internal.clone();
        tokio::spawn(async move {
            let mut command = tokio::process::Command::new("sh");
            command
                .arg("-c")
                .arg(&cmd)
                .env_clear()
                .envs(env)
                .stdin(std::process::Stdio::null());
            if let Some(path) = std::env::var_os("PATH") {
                command.env("PATH", path);
            }
            let run = command.output();
            let result = match tokio::time::timeout(HOOK_TIMEOUT, run).await {
                Ok(Ok(out)) if out.status.success() => Ok(()),
                Ok(Ok(out)) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let tail: String = stderr.trim().chars().rev().take(300).collect();
                    Err(format!(
                        "{}: {}",
                        out.status,
                        tail.chars().rev().collect::<String>()
                    ))
                }
                Ok(Err(e)) => Err(format!("could not start: {e}")),
                Err(_) => Err(format!("timed out after {} s", HOOK_TIMEOUT.as_secs())),
            };
            let _ = internal.send(Internal::HookDone { id, result }).await;
        });
    }
}
