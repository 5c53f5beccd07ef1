//! The cluster's service network: the IPv4 range cluster IPs come from and
//! the range node ports come from. One setting for the whole cluster, kept
//! in the store by the node that bootstraps it.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

/// The default service range, as k3s uses.
pub const DEFAULT_SERVICE_CIDR: &str = "10.43.0.0/16";

/// The default node port range, as Kubernetes uses.
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";

/// The shortest prefix a service range may have (Kubernetes' bound: at most
/// 2^20 addresses).
const PREFIX_MIN: u8 = 12;

/// The longest prefix a service range may have: room for the `kubernetes`
/// Service and a few more.
const PREFIX_MAX: u8 = 28;

/// Where the cluster's setting is kept.
pub const SERVICE_NETWORK_KEY: &str = "/engenho/services/network";

/// A malformed or unsupported service network setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// Not `address/prefix`.
    #[error("service CIDR {text:?} is not an IPv4 CIDR such as {DEFAULT_SERVICE_CIDR}")]
    CidrMalformed {
        /// The setting as given.
        text: String,
    },
    /// An IPv6 range; cluster IPs are IPv4 only.
    #[error("service CIDR {text:?} is IPv6; engenho allocates IPv4 cluster IPs only")]
    CidrIpv6 {
        /// The setting as given.
        text: String,
    },
    /// Too large or too small.
    #[error("service CIDR {text:?} has prefix /{prefix}; it must be between /{PREFIX_MIN} and /{PREFIX_MAX}")]
    CidrPrefixOutOfBounds {
        /// The setting as given.
        text: String,
        /// Its prefix length.
        prefix: u8,
    },
    /// Host bits set (`10.43.0.5/16`).
    #[error("service CIDR {text:?} has host bits set; did you mean {network}?")]
    CidrHostBitsSet {
        /// The setting as given.
        text: String,
        /// The network address with the prefix.
        network: String,
    },
    /// Not `first-last` with `first <= last`, both ports.
    #[error("node port range {text:?} is not a port range such as {DEFAULT_NODE_PORT_RANGE}")]
    PortRangeMalformed {
        /// The setting as given.
        text: String,
    },
    /// A node started with a setting other than the cluster's.
    #[error(
        "the cluster's {what} is {cluster}; this node was started with {requested} (leave the flag out to use the cluster's)"
    )]
    DiffersFromCluster {
        /// Which setting.
        what: &'static str,
        /// The cluster's value.
        cluster: String,
        /// This node's value.
        requested: String,
    },
    /// The cluster's setting could not be read or written.
    #[error("the cluster's service network could not be settled: {reason}")]
    NotSettled {
        /// Why.
        reason: String,
    },
}

/// The service network a node was started with: each part `None` when its
/// flag was left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    /// `--service-cidr`.
    pub cidr: Option<String>,
    /// `--service-node-port-range`.
    pub node_ports: Option<String>,
}

impl Requested {
    /// The network a new cluster gets: what was asked, defaults for the
    /// rest.
    ///
    /// # Errors
    /// A malformed setting.
    pub fn network(&self) -> Result<ServiceNetwork, NetworkError> {
        ServiceNetwork::parse(
            self.cidr.as_deref().unwrap_or(DEFAULT_SERVICE_CIDR),
            self.node_ports.as_deref().unwrap_or(DEFAULT_NODE_PORT_RANGE),
        )
    }

    /// Checks what was asked against `cluster`, the cluster's setting.
    ///
    /// # Errors
    /// [`NetworkError::DiffersFromCluster`] for a part asked otherwise.
    pub fn check(&self, cluster: &ServiceNetwork) -> Result<(), NetworkError> {
        let asked = self.network()?;
        if self.cidr.is_some() && asked.cidr() != cluster.cidr() {
            return Err(NetworkError::DiffersFromCluster {
                what: "service CIDR",
                cluster: cluster.cidr(),
                requested: asked.cidr(),
            });
        }
        if self.node_ports.is_some() && asked.port_range() != cluster.port_range() {
            return Err(NetworkError::DiffersFromCluster {
                what: "node port range",
                cluster: cluster.port_range(),
                requested: asked.port_range(),
            });
        }
        Ok(())
    }
}

/// The service network of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredNetwork", into = "StoredNetwork")]
pub struct ServiceNetwork {
    /// The first address of the range (the network address).
    base: u32,
    /// The prefix length.
    prefix: u8,
    /// The first node port.
    port_first: u16,
    /// The last node port.
    port_last: u16,
}

/// How [`ServiceNetwork`] is stored: as the flags spell it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredNetwork {
    service_cidr: String,
    node_port_range: String,
}

impl TryFrom<StoredNetwork> for ServiceNetwork {
    type Error = NetworkError;
    fn try_from(stored: StoredNetwork) -> Result<Self, NetworkError> {
        Self::parse(&stored.service_cidr, &stored.node_port_range)
    }
}

impl From<ServiceNetwork> for StoredNetwork {
    fn from(network: ServiceNetwork) -> Self {
        Self { service_cidr: network.cidr(), node_port_range: network.port_range() }
    }
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        Self::parse(DEFAULT_SERVICE_CIDR, DEFAULT_NODE_PORT_RANGE).expect("the defaults parse")
    }
}

impl ServiceNetwork {
    /// The network of `cidr` (`10.43.0.0/16`) and node ports `ports`
    /// (`30000-32767`).
    ///
    /// # Errors
    /// Either is malformed, or the range is IPv6, too large or too small.
    pub fn parse(cidr: &str, ports: &str) -> Result<Self, NetworkError> {
        let malformed = || NetworkError::CidrMalformed { text: cidr.to_owned() };
        let (address, prefix) = cidr.trim().split_once('/').ok_or_else(malformed)?;
        if address.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(NetworkError::CidrIpv6 { text: cidr.to_owned() });
        }
        let address: Ipv4Addr = address.parse().map_err(|_| malformed())?;
        let prefix: u8 = prefix.parse().map_err(|_| malformed())?;
        if !(PREFIX_MIN..=PREFIX_MAX).contains(&prefix) {
            return Err(NetworkError::CidrPrefixOutOfBounds { text: cidr.to_owned(), prefix });
        }
        let mask = u32::MAX << (32 - u32::from(prefix));
        let base = u32::from(address);
        if base & !mask != 0 {
            let network = format!("{}/{prefix}", Ipv4Addr::from(base & mask));
            return Err(NetworkError::CidrHostBitsSet { text: cidr.to_owned(), network });
        }
        let port_malformed = || NetworkError::PortRangeMalformed { text: ports.to_owned() };
        let (first, last) = ports.trim().split_once('-').ok_or_else(port_malformed)?;
        let port_first: u16 = first.trim().parse().map_err(|_| port_malformed())?;
        let port_last: u16 = last.trim().parse().map_err(|_| port_malformed())?;
        if port_first == 0 || port_first > port_last {
            return Err(port_malformed());
        }
        Ok(Self { base, prefix, port_first, port_last })
    }

    /// The range as `10.43.0.0/16`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }

    /// The node ports as `30000-32767`.
    pub fn port_range(&self) -> String {
        format!("{}-{}", self.port_first, self.port_last)
    }

    /// Addresses in the range, network and broadcast addresses included.
    pub fn size(&self) -> u32 {
        1 << (32 - u32::from(self.prefix))
    }

    /// The address at `offset` from the network address.
    pub fn address(&self, offset: u32) -> Ipv4Addr {
        assert!(offset < self.size(), "offset {offset} is outside {}", self.cidr());
        Ipv4Addr::from(self.base + offset)
    }

    /// The offset of `address` in the range, if it is in it.
    pub fn offset(&self, address: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(address).wrapping_sub(self.base);
        (offset < self.size()).then_some(offset)
    }

    /// Offsets services may have: all but the network and broadcast
    /// addresses.
    pub fn usable_offsets(&self) -> RangeInclusive<u32> {
        1..=self.size() - 2
    }

    /// The address of the `kubernetes` Service: the first usable one.
    pub fn kubernetes_address(&self) -> Ipv4Addr {
        self.address(*self.usable_offsets().start())
    }

    /// The node ports.
    pub fn node_ports(&self) -> RangeInclusive<u16> {
        self.port_first..=self.port_last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_k3s_range_and_kubernetes_ports() {
        let network = ServiceNetwork::default();
        assert_eq!(network.cidr(), "10.43.0.0/16");
        assert_eq!(network.size(), 65536);
        assert_eq!(network.kubernetes_address(), Ipv4Addr::new(10, 43, 0, 1));
        assert_eq!(network.usable_offsets(), 1..=65534);
        assert_eq!(network.node_ports(), 30000..=32767);
        assert_eq!(network.offset(Ipv4Addr::new(10, 43, 2, 3)), Some(515));
        assert_eq!(network.offset(Ipv4Addr::new(10, 0, 0, 5)), None);
        assert_eq!(network.offset(Ipv4Addr::new(10, 44, 0, 0)), None);
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let ports = DEFAULT_NODE_PORT_RANGE;
        assert!(matches!(ServiceNetwork::parse("fd00::/108", ports), Err(NetworkError::CidrIpv6 { .. })));
        assert!(matches!(ServiceNetwork::parse("10.0.0.0/8", ports), Err(NetworkError::CidrPrefixOutOfBounds { .. })));
        assert!(matches!(ServiceNetwork::parse("10.43.0.0", ports), Err(NetworkError::CidrMalformed { .. })));
        assert_eq!(
            ServiceNetwork::parse("10.43.0.5/16", ports),
            Err(NetworkError::CidrHostBitsSet { text: "10.43.0.5/16".into(), network: "10.43.0.0/16".into() })
        );
        for bad in ["32767-30000", "0-10", "30000", "a-b"] {
            assert!(
                matches!(
                    ServiceNetwork::parse(DEFAULT_SERVICE_CIDR, bad),
                    Err(NetworkError::PortRangeMalformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_node_asking_another_network_than_the_clusters_is_refused() {
        let cluster = ServiceNetwork::parse("10.96.0.0/12", "31000-31999").expect("valid");
        assert_eq!(Requested::default().check(&cluster), Ok(()), "no flags: the cluster's");
        let same = Requested { cidr: Some("10.96.0.0/12".into()), node_ports: None };
        assert_eq!(same.check(&cluster), Ok(()));
        let other = Requested { cidr: Some("10.43.0.0/16".into()), node_ports: None };
        assert!(matches!(other.check(&cluster), Err(NetworkError::DiffersFromCluster { what: "service CIDR", .. })));
        let ports = Requested { cidr: None, node_ports: Some("30000-32767".into()) };
        assert!(matches!(ports.check(&cluster), Err(NetworkError::DiffersFromCluster { what: "node port range", .. })));
    }

    #[test]
    fn the_stored_form_round_trips() {
        let network = ServiceNetwork::parse("10.96.0.0/12", "31000-31999").expect("valid");
        let stored = serde_json::to_string(&network).expect("encodes");
        assert_eq!(stored, r#"{"serviceCidr":"10.96.0.0/12","nodePortRange":"31000-31999"}"#);
        assert_eq!(serde_json::from_str::<ServiceNetwork>(&stored).expect("decodes"), network);
    }
}
