//! Picking free cluster IPs and node ports.
//!
//! Every allocated address and port is one store key
//! ([`cluster_ip_key`], [`node_port_key`]) whose value names the Service
//! that holds it. A Service write creates the keys of what it newly holds
//! in the same transaction as the Service, each guarded on being absent,
//! and deletes the keys of what it gives up; a delete of the Service
//! deletes its keys with it. So two Services can never hold the same
//! address or port, whichever nodes they were created through, a write
//! that fails claims nothing, and a deleted Service leaves nothing behind.
//! Picking only proposes: a pick that loses a race fails its transaction
//! and is made again.

use rand::Rng;

/// Prefix of the keys of allocated cluster IPs.
pub const CLUSTER_IP_PREFIX: &str = "/engenho/services/clusterips/";

/// Prefix of the keys of allocated node ports.
pub const NODE_PORT_PREFIX: &str = "/engenho/services/nodeports/";

/// Random tries in the dynamic band before a scan of the whole range.
const RANDOM_PROBES: u32 = 32;

/// The key of allocated address `address`: its 32 bits in hexadecimal, so
/// that keys sort as addresses do.
pub fn cluster_ip_key(address: std::net::Ipv4Addr) -> String {
    format!("{CLUSTER_IP_PREFIX}{:08x}", u32::from(address))
}

/// The key of allocated node port `port`.
pub fn node_port_key(port: u16) -> String {
    format!("{NODE_PORT_PREFIX}{port:05}")
}

/// The start of the dynamic band of a range of `size` values, as
/// Kubernetes splits it: the values below are left to requests for a
/// particular value, which then rarely collide with a random pick.
/// `divisor` and `cap` are Kubernetes' (16 and 256 for addresses, 32 and
/// 128 for ports).
pub fn dynamic_band_start(size: u32, divisor: u32, cap: u32) -> u32 {
    assert!(divisor > 0, "a band divisor is positive");
    (size / divisor).clamp(16.min(size), cap).min(size)
}

/// A free value of `range`, preferring `dynamic` (a sub-range of it):
/// random probes there first, then a scan of all of `range` from a random
/// start. `None` when every value is taken.
pub fn pick(
    range: std::ops::RangeInclusive<u32>,
    dynamic: std::ops::RangeInclusive<u32>,
    rng: &mut impl Rng,
    mut taken: impl FnMut(u32) -> bool,
) -> Option<u32> {
    assert!(range.start() <= range.end(), "an allocation range is not empty");
    assert!(
        dynamic.is_empty() || (range.contains(dynamic.start()) && range.contains(dynamic.end())),
        "the dynamic band lies inside the range"
    );
    if !dynamic.is_empty() {
        for _ in 0..RANDOM_PROBES {
            let value = rng.random_range(dynamic.clone());
            if !taken(value) {
                return Some(value);
            }
        }
    }
    let (first, last) = (*range.start(), *range.end());
    let span = u64::from(last - first) + 1;
    let start = rng.random_range(0..span);
    (0..span).map(|step| first + u32::try_from((start + step) % span).expect("inside the range")).find(|&v| !taken(v))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn keys_sort_as_values() {
        let low = cluster_ip_key("10.43.0.9".parse().expect("ip"));
        let high = cluster_ip_key("10.43.1.0".parse().expect("ip"));
        assert!(low < high, "{low} < {high}");
        assert_eq!(low, "/engenho/services/clusterips/0a2b0009");
        assert!(node_port_key(30080) < node_port_key(31000));
    }

    #[test]
    fn bands_follow_kubernetes() {
        assert_eq!(dynamic_band_start(65536, 16, 256), 256);
        assert_eq!(dynamic_band_start(16, 16, 256), 16);
        assert_eq!(dynamic_band_start(2768, 32, 128), 86);
        assert_eq!(dynamic_band_start(100, 32, 128), 16);
    }

    #[test]
    fn a_full_range_has_no_pick() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(pick(1..=10, 5..=10, &mut rng, |_| true), None);
        assert_eq!(pick(1..=10, 5..=10, &mut rng, |v| v != 3), Some(3), "the scan finds the one free value");
    }

    /// One step of an allocation history.
    #[derive(Debug, Clone)]
    enum Step {
        Allocate,
        Release(usize),
    }

    proptest! {
        /// Goal: allocate/release sequences never hand out a value twice,
        /// never leak one, and find a free value whenever there is one.
        /// Method: a small range and a set standing in for the store keys;
        /// every pick is claimed as a create-if-absent would.
        #[test]
        fn picks_are_unique_and_releases_return_values(
            seed in any::<u64>(),
            steps in prop::collection::vec(prop_oneof![3 => Just(Step::Allocate), 1 => any::<usize>().prop_map(Step::Release)], 1..200),
        ) {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let range = 1..=40u32;
            let mut held: BTreeSet<u32> = BTreeSet::new();
            let mut order: Vec<u32> = Vec::new();
            for step in steps {
                match step {
                    Step::Allocate => match pick(range.clone(), 17..=40, &mut rng, |v| held.contains(&v)) {
                        Some(value) => {
                            prop_assert!(range.contains(&value));
                            prop_assert!(held.insert(value), "{} handed out twice", value);
                            order.push(value);
                        }
                        None => prop_assert_eq!(held.len(), 40, "no pick while values were free"),
                    },
                    Step::Release(index) if !order.is_empty() => {
                        let value = order.swap_remove(index % order.len());
                        prop_assert!(held.remove(&value));
                    }
                    Step::Release(_) => {}
                }
                prop_assert_eq!(held.len(), order.len());
            }
            for value in order.drain(..) {
                prop_assert!(held.remove(&value));
            }
            prop_assert!(held.is_empty(), "nothing leaks");
        }
    }
}
