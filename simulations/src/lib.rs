//! Accord's node core at scale: `accord_service::Service`, unchanged, with its in-memory
//! store, on a simulated network of 4 to 1,004 nodes (ADR 0006, `docs/simulations.md`).
//!
//! - `links`: the four sites and what a message costs between them;
//! - `topology`: who runs a node where, and the bounded mesh they form;
//! - `world`: the event queue that delivers each node's I/O as its peers' input;
//! - `hostile`: what a listed node turned attacker sends;
//! - `release`: a release proposed, signed, mirrored by the real queue and promoted;
//! - `scenario`: what happens when, and what is measured;
//! - `report`: the table, the CSV and the plots.

pub mod hostile;
pub mod links;
pub mod release;
pub mod report;
pub mod scenario;
pub mod topology;
pub mod world;
