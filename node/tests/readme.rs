//! The README's walkthrough, run as written: every `console` block, in order, in one
//! directory, against the real binary and (from the "nodes" step) four real node processes.
//! The README cannot drift from what `accord` prints. See `accord_testsupport::transcript`.

use accord_testsupport::cli::{J, PASS, accord, binary, cooperative, ok};
use accord_testsupport::cluster::{Cluster, config, eventually};
use accord_testsupport::releases::{release_view, state};
use accord_testsupport::transcript;

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let markdown = include_str!("../../README.md");
    let blocks = transcript::parse(markdown);
    assert!(blocks.len() >= 5, "the README lost its transcripts");
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut cluster: Option<Cluster> = None;
    for block in &blocks {
        match block.setup.as_deref() {
            None => {}
            // Every key of the cooperative but the one the README makes.
            Some("keys") => {
                cooperative(d);
                for f in ["uk/lead.key", "uk/lead.key.pub"] {
                    std::fs::remove_file(d.join(f)).expect("remove");
                }
            }
            // The other three data dirs, initialised as the README initialised uk's, and
            // the four nodes running.
            Some("nodes") => {
                for j in J {
                    if !d.join(format!("{j}-data")).exists() {
                        ok(accord(
                            d,
                            &[
                                "init",
                                "--data-dir",
                                &format!("{j}-data"),
                                "--root",
                                "root.json",
                                "--node-key",
                                &format!("{j}/node.key"),
                            ],
                        ));
                    }
                    std::fs::write(d.join(format!("{j}.toml")), config(j, j, "")).expect("config");
                }
                let mut c = Cluster {
                    dir: d.to_owned(),
                    names: J.iter().map(|j| (*j).to_owned()).collect(),
                    children: (0..4).map(|_| None).collect(),
                };
                for i in 0..4 {
                    c.start(i);
                }
                assert!(
                    eventually(60, || (0..4).all(|i| {
                        accord_testsupport::cluster::connected(d, i).len() == 3
                    })),
                    "the four nodes did not connect:\n{}",
                    c.diagnose()
                );
                cluster = Some(c);
            }
            // Every node reports the release live, and every node has heard from every
            // other that it holds every artifact (blob announcements are gossip, paced).
            Some(other) if other.starts_with("live ") => {
                let key = &other["live ".len()..];
                let everywhere = |i: usize| {
                    release_view(d, i, key).is_some_and(|v| {
                        v["artifacts"].as_array().is_some_and(|arts| {
                            arts.iter()
                                .all(|a| J.iter().all(|j| a["held"][*j] == a["size"]))
                        })
                    })
                };
                assert!(
                    eventually(60, || (0..4)
                        .all(|i| state(d, i, key) == "live" && everywhere(i))),
                    "{key} did not go live on every node"
                );
            }
            // Every node holds the release statement.
            Some(other) if other.starts_with("known ") => {
                let key = &other["known ".len()..];
                assert!(
                    eventually(60, || (0..4).all(|i| release_view(d, i, key).is_some())),
                    "{key} did not reach every node"
                );
            }
            // AU's node (the one the air-gapped lead uses) holds N signatures of the release.
            Some(other) if other.starts_with("signatures ") => {
                let (n, key) = other["signatures ".len()..]
                    .split_once(' ')
                    .expect("signatures N KEY");
                let n: usize = n.parse().expect("a count");
                assert!(
                    eventually(60, || {
                        release_view(d, 3, key).is_some_and(|v| {
                            v["envelope"]["signatures"].as_array().map(Vec::len) == Some(n)
                        })
                    }),
                    "AU never held {n} signatures of {key}"
                );
            }
            Some(other) => panic!("README.md line {}: unknown setup {other:?}", block.line),
        }
        if let Err(e) = transcript::run(block, d, &binary(), &[("ACCORD_PASSPHRASE", PASS)]) {
            panic!("README.md {e}");
        }
    }
    drop(cluster);
}
