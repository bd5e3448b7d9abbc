//! The iroh endpoint that carries blobs: the node key as its identity, bound to one configured
//! address, and nothing else. No relays, no DNS or pkarr lookup, no port mapping, no probes of
//! servers on the internet (checked with strace when the crate was chosen: no socket but the
//! bound one).
//! Peer addresses come only from the `MemoryLookup` the node fills from gossip.

use std::net::SocketAddr;

use iroh::address_lookup::MemoryLookup;
use iroh::endpoint::{PortmapperConfig, presets};
use iroh::{Endpoint, EndpointAddr, NetReportConfig, RelayMode, SecretKey};

use crate::MirrorError;

/// Binds the offline endpoint for the node whose Ed25519 seed is `seed`.
pub async fn bind(
    seed: [u8; 32],
    addr: SocketAddr,
    lookup: &MemoryLookup,
) -> Result<Endpoint, MirrorError> {
    Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&seed))
        .relay_mode(RelayMode::Disabled)
        .clear_address_lookup()
        .address_lookup(lookup.clone())
        .portmapper_config(PortmapperConfig::Disabled)
        .net_report_config(NetReportConfig::minimal())
        .clear_ip_transports()
        .bind_addr(addr)
        .map_err(|e| MirrorError::Endpoint(format!("{addr}: {e}")))?
        .bind()
        .await
        .map_err(|e| MirrorError::Endpoint(format!("cannot bind {addr}: {e}")))
}

/// The endpoint id of a node key (the same 32 bytes as its Ed25519 public key).
pub fn endpoint_id(public: &[u8; 32]) -> Result<iroh::EndpointId, MirrorError> {
    iroh::PublicKey::from_bytes(public).map_err(|e| MirrorError::Endpoint(e.to_string()))
}

/// Records (replacing) where a peer's endpoint listens.
pub fn set_address(lookup: &MemoryLookup, id: iroh::EndpointId, addrs: &[SocketAddr]) {
    let mut a = EndpointAddr::new(id);
    for s in addrs {
        a = a.with_ip_addr(*s);
    }
    lookup.set_endpoint_info(a);
}
