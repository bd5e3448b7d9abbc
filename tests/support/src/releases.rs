//! Releases at running nodes, as the process tests look at them: the API's view of a
//! release, a node's own state and reasons, and the CLI steps that make and sign one.

use std::path::Path;

use crate::cli::{J, Run, accord, ok};
use crate::cluster::{Cluster, NodeName, agent, api, wait_up};

pub fn release_view(d: &Path, i: impl NodeName, key: &str) -> Option<serde_json::Value> {
    let mut r = agent()
        .get(format!(
            "{}/v1/releases/{}",
            api(d, i.name().as_str()),
            key.replace('#', "%23")
        ))
        .call()
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.body_mut().read_json().ok()
}

/// Node `i`'s own line in the release's per-jurisdiction explanation.
pub fn own_line(d: &Path, i: impl NodeName, key: &str) -> Option<serde_json::Value> {
    let me = jurisdiction_of(d, i.name().as_str());
    release_view(d, i, key)?["jurisdictions"]
        .as_array()?
        .iter()
        .find(|j| j["jurisdiction"] == me.as_str())
        .cloned()
}

/// The jurisdiction a node runs for, from its config.
pub fn jurisdiction_of(d: &Path, i: impl NodeName) -> String {
    let cfg = std::fs::read_to_string(d.join(format!("{}.toml", i.name()))).expect("cfg");
    cfg.lines()
        .find_map(|l| l.strip_prefix("jurisdiction = "))
        .map(|j| j.trim_matches('"').to_owned())
        .expect("jurisdiction line")
}

/// The release statements a node holds for `key`, as (id, proposed_by) pairs.
pub fn statements(d: &Path, i: impl NodeName, key: &str) -> Vec<(String, String)> {
    let Ok(mut r) = agent()
        .get(format!("{}/v1/releases", api(d, i.name().as_str())))
        .call()
    else {
        return Vec::new();
    };
    let all: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["key"] == key)
        .map(|v| {
            (
                v["id"].as_str().unwrap_or_default().to_owned(),
                v["proposed_by"].to_string(),
            )
        })
        .collect()
}

/// This node's own state for `key`: live, waiting, recalled, superseded.
pub fn state(d: &Path, i: impl NodeName, key: &str) -> String {
    own_line(d, i.name().as_str(), key)
        .and_then(|j| j["state"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

pub fn reasons(d: &Path, i: impl NodeName, key: &str) -> String {
    own_line(d, i.name().as_str(), key)
        .map(|j| j["reasons"].to_string())
        .unwrap_or_default()
}

pub fn mirrored(d: &Path, i: usize, key: &str) -> bool {
    release_view(d, i, key).is_some_and(|v| {
        v["artifacts"].as_array().is_some_and(|a| {
            a.iter()
                .all(|a| a["held"][J[i]].as_u64() == a["size"].as_u64())
        })
    })
}

pub fn write(d: &Path, name: &str, bytes: usize, seed: u8) {
    let data: Vec<u8> = (0..bytes)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    std::fs::create_dir_all(d.join("release")).expect("mkdir");
    std::fs::write(d.join("release").join(name), data).expect("write");
}

pub fn propose(d: &Path, version: &str) {
    // Different content per version, so no blob is shared between releases.
    let seed = version
        .bytes()
        .fold(0u8, |a, b| a.wrapping_mul(7).wrapping_add(b));
    write(d, &format!("chart-{version}.tgz"), 300_000, seed);
    write(
        d,
        &format!("image-{version}.tar"),
        2_000_000,
        seed.wrapping_add(1),
    );
    ok(accord(
        d,
        &[
            "release",
            "propose",
            "CAP-B01",
            version,
            &format!("release/chart-{version}.tgz"),
            &format!("release/image-{version}.tar"),
            "--data-dir",
            "eu-data",
        ],
    ));
}

pub fn sign(d: &Path, key: &str, signer: &str, at: &str) -> Run {
    accord(
        d,
        &[
            "release",
            "sign",
            key,
            "--key",
            &format!("{signer}.key"),
            "--yes",
            "--data-dir",
            &format!("{at}-data"),
        ],
    )
}

pub fn add_config(d: &Path, j: &str, extra: &str) {
    let p = d.join(format!("{j}.toml"));
    let mut cfg = std::fs::read_to_string(&p).expect("cfg");
    cfg.push_str(extra);
    std::fs::write(p, cfg).expect("cfg");
}

pub fn start_all(c: &mut Cluster, d: &Path, which: &[usize]) {
    for &i in which {
        c.start(i);
    }
    for &i in which {
        wait_up(d, c.names[i].as_str());
    }
}
