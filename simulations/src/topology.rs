//! Who runs a node where, and who is connected to whom.
//!
//! The four jurisdiction nodes are connected to each other. Mirror nodes join one by one
//! (sites in turn) and connect to a few nodes already there, most at their own site, with a
//! cap on any node's connections: a bounded fan-out like the mesh gossipsub keeps (its
//! `mesh_n` is 6, `mesh_n_high` 12), so no node talks to hundreds of peers. Every node joins
//! next to one already connected, so the graph is connected by construction.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::links::Site;

/// Connections a joining mirror opens: at its own site, and anywhere.
const SAME_SITE: usize = 2;
const ANY_SITE: usize = 1;
/// No node accepts more connections than this.
pub const MAX_DEGREE: usize = 12;

#[derive(Debug, Clone)]
pub struct Spec {
    pub site: Site,
    /// The node key's label in the cooperative: "uk.node.0" is UK's own node, "uk.node.1"
    /// and on its mirrors.
    pub label: String,
    pub mirror: bool,
}

#[derive(Debug, Clone)]
pub struct Topology {
    pub nodes: Vec<Spec>,
    /// Undirected connections, each once (a < b).
    pub edges: Vec<(u32, u32)>,
}

impl Topology {
    /// The four jurisdiction nodes and `mirrors` mirrors per jurisdiction.
    pub fn build(mirrors: usize, rng: &mut ChaCha8Rng) -> Topology {
        let mut nodes: Vec<Spec> = Site::ALL
            .iter()
            .map(|s| Spec {
                site: *s,
                label: format!("{}.node.0", s.code()),
                mirror: false,
            })
            .collect();
        let mut degree = vec![3usize; 4];
        let mut edges = Vec::new();
        for a in 0..4u32 {
            for b in a + 1..4 {
                edges.push((a, b));
            }
        }
        for i in 1..=mirrors {
            for site in Site::ALL {
                let me = nodes.len() as u32;
                let open = |n: &u32, degree: &[usize]| degree[*n as usize] < MAX_DEGREE;
                let mut same: Vec<u32> = (0..me)
                    .filter(|n| nodes[*n as usize].site == site && open(n, &degree))
                    .collect();
                same.shuffle(rng);
                let mut picks: Vec<u32> = same.into_iter().take(SAME_SITE).collect();
                let mut any: Vec<u32> = (0..me)
                    .filter(|n| !picks.contains(n) && open(n, &degree))
                    .collect();
                any.shuffle(rng);
                picks.extend(any.into_iter().take(ANY_SITE));
                if picks.is_empty() {
                    // Cannot happen with these caps (the newest nodes have room), but a
                    // node must never join unconnected.
                    picks.push(rng.gen_range(0..me));
                }
                degree.push(0);
                for p in picks {
                    degree[p as usize] += 1;
                    degree[me as usize] += 1;
                    edges.push((p.min(me), p.max(me)));
                }
                nodes.push(Spec {
                    site,
                    label: format!("{}.node.{i}", site.code()),
                    mirror: true,
                });
            }
        }
        Topology { nodes, edges }
    }

    /// Each node's neighbours.
    pub fn neighbours(&self) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (a, b) in &self.edges {
            out[*a as usize].push(*b);
            out[*b as usize].push(*a);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn connected(t: &Topology) -> bool {
        let n = t.neighbours();
        let mut seen = vec![false; t.nodes.len()];
        let mut stack = vec![0u32];
        while let Some(x) = stack.pop() {
            if std::mem::replace(&mut seen[x as usize], true) {
                continue;
            }
            stack.extend(n[x as usize].iter().copied());
        }
        seen.iter().all(|s| *s)
    }

    #[test]
    fn a_thousand_nodes_are_connected_with_bounded_fan_out() {
        let t = Topology::build(249, &mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!(t.nodes.len(), 1000);
        assert!(connected(&t));
        let n = t.neighbours();
        assert!(n.iter().all(|p| p.len() <= MAX_DEGREE));
        let mean = n.iter().map(Vec::len).sum::<usize>() as f64 / n.len() as f64;
        assert!((4.0..8.0).contains(&mean), "mean degree {mean}");
    }

    #[test]
    fn the_same_seed_builds_the_same_graph() {
        let a = Topology::build(20, &mut ChaCha8Rng::seed_from_u64(1));
        let b = Topology::build(20, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a.edges, b.edges);
    }
}
