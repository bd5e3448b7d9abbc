//! The CLI's side of the node API: find the node running on a data directory and talk to it.
//! Commands that change state go through a running node (it holds the database lock and is
//! the one place that signs, persists and announces); with no node they work on the files.

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;

use crate::datadir::DataDir;

/// A running node's API with its write token.
#[derive(Debug, Clone)]
pub struct Node {
    pub url: String,
    token: String,
}

/// For bodies of any size: no limit on the whole call, only on silence (a node that stops
/// sending or reading for a minute has stalled).
fn streaming_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(std::time::Duration::from_secs(5)))
        .timeout_per_read(Some(std::time::Duration::from_secs(60)))
        .timeout_per_write(Some(std::time::Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into()
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

impl Node {
    /// The node running on `dir`, if one answers on the address it recorded and proves it
    /// holds this data directory's node key (it signs a fresh challenge). Anything else
    /// listening there — after a crash, another program may have the port — gets neither
    /// the token nor any request.
    pub fn running(dir: &DataDir) -> Option<Node> {
        let addr = std::fs::read_to_string(dir.path.join("api.addr")).ok()?;
        let addr = addr.trim().to_owned();
        let url = format!("http://{addr}");
        let public = accord_trust::PublicKey::read(&dir.path.join("node.key.pub")).ok()?;
        let mut challenge = [0u8; 32];
        getrandom::fill(&mut challenge).ok()?;
        let mut resp = agent()
            .get(format!(
                "{url}/v1/identity?challenge={}",
                hex::encode(challenge)
            ))
            .call()
            .ok()?;
        let proof: serde_json::Value = resp.body_mut().read_json().ok()?;
        let sig = proof["signature"]
            .as_str()
            .and_then(|s| hex::decode(s).ok())
            .unwrap_or_default();
        if !public.verify(&crate::api::identity_message(&challenge, &addr), &sig) {
            eprintln!(
                "warning: {addr} (from {}/api.addr) is not this data directory's node; not talking to it",
                dir.path.display()
            );
            return None;
        }
        let token = std::fs::read_to_string(dir.path.join("api.token"))
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        Some(Node { url, token })
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let mut resp = agent()
            .get(format!("{}{path}", self.url))
            .call()
            .with_context(|| format!("cannot reach the node at {}", self.url))?;
        let status = resp.status();
        if !status.is_success() {
            let body: serde_json::Value = resp.body_mut().read_json().unwrap_or_default();
            bail!("{}", error_text(&body, "the node refused the request"));
        }
        resp.body_mut()
            .read_json()
            .with_context(|| format!("unexpected answer from {}{path}", self.url))
    }

    /// POSTs raw bytes with the token; returns the JSON answer or the node's error line.
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Result<serde_json::Value> {
        let mut resp = agent()
            .post(format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", content_type)
            .send(body)
            .with_context(|| format!("cannot reach the node at {}", self.url))?;
        let status = resp.status();
        let answer: serde_json::Value = resp.body_mut().read_json().unwrap_or_default();
        if status.is_success() {
            Ok(answer)
        } else {
            bail!("{}", error_text(&answer, "the node refused the request"))
        }
    }

    /// Streams `body` (`len` bytes) to the node; its JSON answer.
    pub fn post_stream(
        &self,
        path: &str,
        content_type: &str,
        body: &mut dyn std::io::Read,
        len: u64,
    ) -> Result<serde_json::Value> {
        let mut resp = streaming_agent()
            .post(format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", content_type)
            .header("Content-Length", &len.to_string())
            .send(ureq::SendBody::from_reader(body))
            .with_context(|| format!("cannot reach the node at {}", self.url))?;
        let status = resp.status();
        let answer: serde_json::Value = resp.body_mut().read_json().unwrap_or_default();
        if status.is_success() {
            Ok(answer)
        } else {
            bail!("{}", error_text(&answer, "the node refused the request"))
        }
    }

    /// A streamed answer (an artifact's bytes), with the token.
    pub fn get_stream(&self, path: &str) -> Result<impl std::io::Read + use<>> {
        let mut resp = streaming_agent()
            .get(format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .with_context(|| format!("cannot reach the node at {}", self.url))?;
        if !resp.status().is_success() {
            let body: serde_json::Value = resp.body_mut().read_json().unwrap_or_default();
            bail!("{}", error_text(&body, "the node refused the request"));
        }
        Ok(resp.into_body().into_reader())
    }

    pub fn post_json<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<serde_json::Value> {
        self.post(path, "application/json", &serde_json::to_vec(body)?)
    }
}

fn error_text(body: &serde_json::Value, fallback: &str) -> String {
    body["error"].as_str().unwrap_or(fallback).to_owned()
}
