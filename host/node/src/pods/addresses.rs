//! Pod IPs. Each pod this node runs gets an address of its own in
//! 127.0.0.0/8, which Linux routes to the loopback interface with nothing
//! to configure: a node whose own address is in 127.0.0.0/8 (nodes on one
//! machine) hands out the rest of its /24; any other node hands out
//! 127.244.0.0/16; `--pod-range` names another range. Pods of other nodes
//! are not reached at these addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

/// The range a node that is not on a loopback address hands out.
pub const DEFAULT_POD_RANGE: (Ipv4Addr, u8) = (Ipv4Addr::new(127, 244, 0, 0), 16);

/// The pod addresses of one node, and which pod holds each.
#[derive(Debug)]
pub struct PodAddresses {
    base: u32,
    size: u32,
    node: Option<Ipv4Addr>,
    held: Mutex<HashMap<String, Ipv4Addr>>,
}

impl PodAddresses {
    /// The addresses of a node reached at `node_ip`: `range` when given,
    /// else the node's /24 when it is on a loopback address, else
    /// [`DEFAULT_POD_RANGE`].
    pub fn for_node(node_ip: Option<IpAddr>, range: Option<(Ipv4Addr, u8)>) -> Self {
        let node = loopback(node_ip);
        let (base, prefix) = Self::range_for(node_ip, range);
        Self { base: u32::from(base), size: 1 << (32 - prefix), node, held: Mutex::default() }
    }

    /// The range a node reached at `node_ip` hands out (see
    /// [`PodAddresses::for_node`]), its base address masked: what the
    /// Node's `spec.podCIDR` says.
    pub fn range_for(node_ip: Option<IpAddr>, range: Option<(Ipv4Addr, u8)>) -> (Ipv4Addr, u8) {
        let (base, prefix) = match (range, loopback(node_ip)) {
            (Some(range), _) => range,
            (None, Some(ip)) => (Ipv4Addr::from(u32::from(ip) & 0xffff_ff00), 24),
            (None, None) => DEFAULT_POD_RANGE,
        };
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        (Ipv4Addr::from(u32::from(base) & mask), prefix)
    }

    /// Parses a pod range, `127.a.b.c/len`: within 127.0.0.0/8, from /8 to
    /// /30.
    ///
    /// # Errors
    /// Anything else, saying what a range must be.
    pub fn parse_range(text: &str) -> Result<(Ipv4Addr, u8), String> {
        let wrong = || {
            format!("pod range {text:?}: give an IPv4 range within 127.0.0.0/8, from /8 to /30, e.g. 127.244.0.0/16")
        };
        let (ip, prefix) = text.split_once('/').ok_or_else(wrong)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| wrong())?;
        let prefix: u8 = prefix.parse().map_err(|_| wrong())?;
        if !ip.is_loopback() || !(8..=30).contains(&prefix) {
            return Err(wrong());
        }
        Ok((ip, prefix))
    }

    /// The address of pod `uid`: the one it holds, else `preferred` (what
    /// its status says, after a restart) when free and in range, else the
    /// lowest free one. `None` when every address is held.
    pub fn assign(&self, uid: &str, preferred: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        let mut held = self.held.lock().expect("pod addresses lock");
        if let Some(ip) = held.get(uid) {
            return Some(*ip);
        }
        let free = |ip: Ipv4Addr, held: &HashMap<String, Ipv4Addr>| {
            let offset = u32::from(ip).wrapping_sub(self.base);
            offset > 0 && offset < self.size - 1 && Some(ip) != self.node && !held.values().any(|h| *h == ip)
        };
        let ip = preferred.filter(|ip| free(*ip, &held)).or_else(|| {
            (1..self.size - 1).map(|offset| Ipv4Addr::from(self.base + offset)).find(|ip| free(*ip, &held))
        })?;
        held.insert(uid.to_owned(), ip);
        Some(ip)
    }

    /// The address pod `uid` holds, if any.
    pub fn held_by(&self, uid: &str) -> Option<Ipv4Addr> {
        self.held.lock().expect("pod addresses lock").get(uid).copied()
    }

    /// Frees the address of pod `uid`.
    pub fn release(&self, uid: &str) {
        self.held.lock().expect("pod addresses lock").remove(uid);
    }
}

/// `ip` when it is an IPv4 loopback address.
fn loopback(ip: Option<IpAddr>) -> Option<Ipv4Addr> {
    match ip {
        Some(IpAddr::V4(ip)) if ip.is_loopback() => Some(ip),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_within_the_nodes_range() {
        // Goal: a loopback node hands out its /24 but itself; a pod keeps
        // its address; a preferred free address is taken up; released
        // addresses are given again; a full range gives none.
        let addresses = PodAddresses::for_node(Some("127.31.4.1".parse().expect("ip")), None);
        assert_eq!(addresses.assign("a", None), Some(Ipv4Addr::new(127, 31, 4, 2)));
        assert_eq!(addresses.assign("a", None), Some(Ipv4Addr::new(127, 31, 4, 2)));
        assert_eq!(addresses.held_by("a"), Some(Ipv4Addr::new(127, 31, 4, 2)));
        assert_eq!(addresses.assign("b", Some(Ipv4Addr::new(127, 31, 4, 77))), Some(Ipv4Addr::new(127, 31, 4, 77)));
        assert_eq!(addresses.assign("c", Some(Ipv4Addr::new(127, 31, 4, 77))), Some(Ipv4Addr::new(127, 31, 4, 3)));
        assert_eq!(addresses.assign("d", Some(Ipv4Addr::new(10, 0, 0, 1))), Some(Ipv4Addr::new(127, 31, 4, 4)));
        addresses.release("a");
        assert_eq!(addresses.assign("e", None), Some(Ipv4Addr::new(127, 31, 4, 2)));
        for n in 0..250 {
            addresses.assign(&format!("fill-{n}"), None);
        }
        assert_eq!(addresses.assign("full", None), None, "253 addresses, all held");
        let elsewhere = PodAddresses::for_node(Some("10.1.2.3".parse().expect("ip")), None);
        assert_eq!(elsewhere.assign("a", None), Some(Ipv4Addr::new(127, 244, 0, 1)));
        let range = PodAddresses::parse_range("127.9.0.0/16").expect("a range");
        let given = PodAddresses::for_node(Some("127.31.4.1".parse().expect("ip")), Some(range));
        assert_eq!(given.assign("a", None), Some(Ipv4Addr::new(127, 9, 0, 1)));
        for bad in ["10.0.0.0/8", "127.0.0.0/31", "127.0.0.0", "x/16"] {
            assert!(PodAddresses::parse_range(bad).is_err(), "{bad}");
        }
    }
}
