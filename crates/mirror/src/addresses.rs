//! Which announced blob-endpoint addresses a node dials. A peer's gossip says where its
//! endpoint listens; a hostile peer could name any address (an internal service, a
//! broadcast address), so an address is dialled only when the policy allows it.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

/// From the node config (`mirror.dial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DialPolicy {
    /// Only the IP address the peer's node connection comes from (its announced ports).
    #[default]
    SameIp,
    /// Loopback and private ranges (RFC 1918, RFC 6598, unique-local IPv6).
    Private,
    /// Any unicast address (still never unspecified, multicast, broadcast or link-local).
    Any,
}

/// Whether `announced` may be dialled for a peer whose node connection comes from
/// `peer_ip`.
pub fn dialable(announced: &SocketAddr, policy: DialPolicy, peer_ip: Option<IpAddr>) -> bool {
    let ip = announced.ip().to_canonical();
    if announced.port() == 0 || never(&ip) {
        return false;
    }
    match policy {
        DialPolicy::SameIp => peer_ip.is_some_and(|p| p.to_canonical() == ip),
        DialPolicy::Private => ip.is_loopback() || private(&ip),
        DialPolicy::Any => true,
    }
}

fn never(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || v4.is_link_local()
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

fn private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn policies() {
        let peer = Some("203.0.113.7".parse().expect("ip"));
        assert!(dialable(&a("203.0.113.7:7300"), DialPolicy::SameIp, peer));
        assert!(!dialable(&a("10.0.0.5:22"), DialPolicy::SameIp, peer));
        assert!(!dialable(&a("127.0.0.1:7300"), DialPolicy::SameIp, peer));
        assert!(!dialable(&a("203.0.113.7:7300"), DialPolicy::SameIp, None));
        assert!(dialable(&a("10.0.0.5:7300"), DialPolicy::Private, None));
        assert!(dialable(&a("[::1]:7300"), DialPolicy::Private, None));
        assert!(!dialable(&a("203.0.113.7:7300"), DialPolicy::Private, None));
        assert!(dialable(&a("203.0.113.7:7300"), DialPolicy::Any, None));
        for bad in [
            "0.0.0.0:7300",
            "255.255.255.255:7300",
            "224.0.0.1:7300",
            "169.254.1.1:7300",
            "[fe80::1]:7300",
            "203.0.113.7:0",
        ] {
            assert!(!dialable(&a(bad), DialPolicy::Any, peer), "{bad}");
        }
        // An IPv4 peer announcing its address as IPv4-mapped IPv6 is the same address.
        assert!(dialable(
            &a("[::ffff:203.0.113.7]:7300"),
            DialPolicy::SameIp,
            peer
        ));
    }
}
