//! Pod IPs. Each pod this node runs gets an address of its own in
//! 127.0.0.0/8, which Linux routes to the loopback interface with nothing
//! to configure: a node whose own address is in 127.0.0.0/8 (nodes on one
//! machine) hands out the rest of its /24; any other node hands out
//! 127.244.0.0/16. Pods of other nodes are not reached at these addresses.

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
    /// The addresses of a node reached at `node_ip`.
    pub fn for_node(node_ip: Option<IpAddr>) -> Self {
        let node = match node_ip {
            Some(IpAddr::V4(ip)) if ip.is_loopback() => Some(ip),
            _ => None,
        };
        let (base, prefix) = match node {
            Some(ip) => (Ipv4Addr::from(u32::from(ip) & 0xffff_ff00), 24),
            None => DEFAULT_POD_RANGE,
        };
        Self { base: u32::from(base), size: 1 << (32 - prefix), node, held: Mutex::default() }
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

    /// Frees the address of pod `uid`.
    pub fn release(&self, uid: &str) {
        self.held.lock().expect("pod addresses lock").remove(uid);
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
        let addresses = PodAddresses::for_node(Some("127.31.4.1".parse().expect("ip")));
        assert_eq!(addresses.assign("a", None), Some(Ipv4Addr::new(127, 31, 4, 2)));
        assert_eq!(addresses.assign("a", None), Some(Ipv4Addr::new(127, 31, 4, 2)));
        assert_eq!(addresses.assign("b", Some(Ipv4Addr::new(127, 31, 4, 77))), Some(Ipv4Addr::new(127, 31, 4, 77)));
        assert_eq!(addresses.assign("c", Some(Ipv4Addr::new(127, 31, 4, 77))), Some(Ipv4Addr::new(127, 31, 4, 3)));
        assert_eq!(addresses.assign("d", Some(Ipv4Addr::new(10, 0, 0, 1))), Some(Ipv4Addr::new(127, 31, 4, 4)));
        addresses.release("a");
        assert_eq!(addresses.assign("e", None), Some(Ipv4Addr::new(127, 31, 4, 2)));
        for n in 0..250 {
            addresses.assign(&format!("fill-{n}"), None);
        }
        assert_eq!(addresses.assign("full", None), None, "253 addresses, all held");
        let elsewhere = PodAddresses::for_node(Some("10.1.2.3".parse().expect("ip")));
        assert_eq!(elsewhere.assign("a", None), Some(Ipv4Addr::new(127, 244, 0, 1)));
    }
}
