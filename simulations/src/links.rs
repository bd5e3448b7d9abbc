//! Where the nodes are and what a message costs between two of them.
//!
//! Round-trip times between the four sites come from a published table: WonderProxy's
//! city-to-city pings ("Miles per Millisecond", Paul Reinheimer, 9 February 2011,
//! <https://wonderproxy.com/blog/miles-per-milisecond/>). The table has no London,
//! Frankfurt or Toronto, so each site is its nearest listed city: UK = Paris, EU = Milan,
//! Canada = New York, Australia = Sydney. Where the table gives both directions, their mean
//! is used. Bandwidths are assumptions, stated in `docs/simulations.md`.

use std::time::Duration;

/// A jurisdiction's site: every node of a jurisdiction (its own and its mirrors) sits there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    Uk,
    Eu,
    Ca,
    Au,
}

impl Site {
    pub const ALL: [Site; 4] = [Site::Uk, Site::Eu, Site::Ca, Site::Au];

    /// The jurisdiction's code in the root ("uk", ...).
    pub fn code(self) -> &'static str {
        match self {
            Site::Uk => "uk",
            Site::Eu => "eu",
            Site::Ca => "ca",
            Site::Au => "au",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Round trips in milliseconds (WonderProxy 2011, stand-in cities as above).
/// UK–EU: Paris–Milan (21.61 + 21.29) / 2; UK–CA: Paris–New York (78.33 + 77.31) / 2;
/// UK–AU: Paris–Sydney 348.84; EU–CA: Milan–New York (112.17 + 111.60) / 2;
/// EU–AU: Milan–Sydney 344.70; CA–AU: New York–Sydney 319.33.
const RTT_MS: [[f64; 4]; 4] = [
    [0.0, 21.45, 77.82, 348.84],
    [21.45, 0.0, 111.89, 344.70],
    [77.82, 111.89, 0.0, 319.33],
    [348.84, 344.70, 319.33, 0.0],
];

/// What a message costs on a link: half a round trip, plus its size at the link's rate
/// (messages on one directed link queue behind each other: `World` keeps when each link is
/// free again).
#[derive(Debug, Clone)]
pub struct LinkModel {
    pub name: &'static str,
    rtt: [[Duration; 4]; 4],
    /// Bits per second between two sites.
    pub inter_bps: u64,
    /// Bits per second between two nodes of one site.
    pub intra_bps: u64,
}

impl LinkModel {
    /// The four sites as they are: published round trips, 100 Mbit/s between sites, 1 Gbit/s
    /// within a site, 1 ms round trip within a site.
    pub fn intercontinental() -> LinkModel {
        let mut rtt = [[Duration::from_millis(1); 4]; 4];
        for (a, row) in RTT_MS.iter().enumerate() {
            for (b, ms) in row.iter().enumerate() {
                if a != b {
                    rtt[a][b] = Duration::from_secs_f64(ms / 1000.0);
                }
            }
        }
        LinkModel {
            name: "intercontinental",
            rtt,
            inter_bps: 100_000_000,
            intra_bps: 1_000_000_000,
        }
    }

    /// Every node in one data centre (1 ms round trips, 1 Gbit/s): the baseline that shows
    /// what the distances cost.
    pub fn one_site() -> LinkModel {
        LinkModel {
            name: "one-site",
            rtt: [[Duration::from_millis(1); 4]; 4],
            inter_bps: 1_000_000_000,
            intra_bps: 1_000_000_000,
        }
    }

    /// Propagation delay one way.
    pub fn one_way(&self, a: Site, b: Site) -> Duration {
        self.rtt[a.index()][b.index()] / 2
    }

    /// How long `bytes` occupy the link from `a` to `b`.
    pub fn transmit(&self, a: Site, b: Site, bytes: usize) -> Duration {
        let bps = if a == b {
            self.intra_bps
        } else {
            self.inter_bps
        };
        let bits = (bytes as u64).saturating_mul(8);
        Duration::from_nanos(bits.saturating_mul(1_000_000_000) / bps.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn australia_is_far_from_everyone() {
        let m = LinkModel::intercontinental();
        assert!(m.one_way(Site::Uk, Site::Au) > Duration::from_millis(150));
        assert!(m.one_way(Site::Uk, Site::Eu) < Duration::from_millis(15));
        assert_eq!(
            m.one_way(Site::Ca, Site::Au),
            m.one_way(Site::Au, Site::Ca),
            "symmetric"
        );
    }

    #[test]
    fn a_megabyte_takes_80_ms_between_sites() {
        let m = LinkModel::intercontinental();
        assert_eq!(
            m.transmit(Site::Uk, Site::Ca, 1_000_000),
            Duration::from_millis(80)
        );
        assert_eq!(
            m.transmit(Site::Uk, Site::Uk, 1_000_000),
            Duration::from_millis(8)
        );
    }
}
