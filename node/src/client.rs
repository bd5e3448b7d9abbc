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

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

impl Node {
    /// The node running on `dir`, if one answers on the address it recorded.
    pub fn running(dir: &DataDir) -> Option<Node> {
        let addr = std::fs::read_to_string(dir.path.join("api.addr")).ok()?;
        let url = format!("http://{}", addr.trim());
        agent().get(format!("{url}/health")).call().ok()?;
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
