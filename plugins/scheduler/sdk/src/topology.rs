//! Topology domains by number: for each node label key, the values the
//! nodes give it, each numbered once, and each node's number, so that a
//! plugin reads a node's domain by its index (one number from a dense
//! array) instead of searching the node's labels and comparing strings.

use std::collections::HashMap;

/// One node label key's domains, kept by the table as nodes come, change
/// and go.
#[derive(Debug, Clone, Default)]
pub(crate) struct Domains {
    /// Each node's domain number plus one, by node index (0: the node lacks
    /// the key, or there is no node).
    by_node: Vec<u32>,
    /// Each domain number's value and how many nodes are in it (`None`: the
    /// number is free).
    values: Vec<Option<(String, u32)>>,
    /// Domain numbers by value.
    numbers: HashMap<String, u32>,
    /// Numbers free for the next new value.
    free: Vec<u32>,
}

impl Domains {
    /// Counts the node at `index` into the domain of `value`.
    pub(crate) fn add(&mut self, index: u32, value: &str) {
        let number = match self.numbers.get(value) {
            Some(&number) => number,
            None => {
                let number = self.free.pop().unwrap_or_else(|| {
                    self.values.push(None);
                    u32::try_from(self.values.len() - 1).unwrap_or(u32::MAX)
                });
                self.numbers.insert(value.to_owned(), number);
                if let Some(slot) = self.values.get_mut(number as usize) {
                    *slot = Some((value.to_owned(), 0));
                }
                number
            }
        };
        if let Some(Some((_, nodes))) = self.values.get_mut(number as usize) {
            *nodes += 1;
        }
        let at = index as usize;
        if at >= self.by_node.len() {
            self.by_node.resize(at + 1, 0);
        }
        self.by_node[at] = number + 1;
    }

    /// Counts the node at `index` out of the domain of `value` (it was
    /// counted in with it).
    pub(crate) fn remove(&mut self, index: u32, value: &str) {
        if let Some(number) = self.by_node.get_mut(index as usize) {
            *number = 0;
        }
        let Some(&number) = self.numbers.get(value) else { return };
        let Some(slot) = self.values.get_mut(number as usize) else { return };
        if let Some((_, nodes)) = slot {
            *nodes = nodes.saturating_sub(1);
            if *nodes == 0 {
                *slot = None;
                self.numbers.remove(value);
                self.free.push(number);
            }
        }
    }

    /// Whether no node has the key.
    pub(crate) fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }
}

/// A node label key's topology domains as the table's nodes give them (see
/// [`crate::Table::topology`]): domains are numbers below
/// [`Topology::span`], so a plugin may keep what it counts per domain in a
/// dense array. A number stays with its value while some node has it.
#[derive(Debug, Clone, Copy)]
pub struct Topology<'t> {
    domains: Option<&'t Domains>,
}

impl<'t> Topology<'t> {
    /// The topology of `domains` (`None`: no node has the key).
    pub(crate) fn new(domains: Option<&'t Domains>) -> Self {
        Self { domains }
    }

    /// The domain of the node at `index`: `None` when it lacks the key (or
    /// the index holds no node).
    pub fn domain(&self, index: u32) -> Option<u32> {
        let number = *self.domains?.by_node.get(index as usize)?;
        number.checked_sub(1)
    }

    /// Every domain number is below this.
    pub fn span(&self) -> usize {
        self.domains.map_or(0, |domains| domains.values.len())
    }

    /// The domain of the nodes whose key has `value`, if any node has it.
    pub fn domain_of(&self, value: &str) -> Option<u32> {
        self.domains?.numbers.get(value).copied()
    }

    /// The value of `domain` (`None`: no node is in it).
    pub fn value(&self, domain: u32) -> Option<&'t str> {
        let (value, _) = self.domains?.values.get(domain as usize)?.as_ref()?;
        Some(value)
    }

    /// Every domain some node is in, with its value.
    pub fn domains(&self) -> impl Iterator<Item = (u32, &'t str)> + use<'t> {
        let values = self.domains.map_or(&[][..], |domains| &domains.values[..]);
        values.iter().zip(0u32..).filter_map(|(value, number)| Some((number, value.as_ref()?.0.as_str())))
    }

    /// How many domains some node is in.
    pub fn len(&self) -> usize {
        self.domains.map_or(0, |domains| domains.numbers.len())
    }

    /// Whether no node has the key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_numbered_once_and_numbers_are_reused_when_freed() {
        // Goal: nodes of one value share a number; a node's number reads
        // back by index; a value no node has any more frees its number for
        // the next new value; absent indexes read as no domain.
        let mut domains = Domains::default();
        domains.add(0, "zone-a");
        domains.add(3, "zone-b");
        domains.add(5, "zone-a");
        let topology = Topology::new(Some(&domains));
        assert_eq!(topology.domain(0), topology.domain(5));
        assert_ne!(topology.domain(0), topology.domain(3));
        assert_eq!(topology.domain(1), None);
        assert_eq!(topology.domain(99), None);
        assert_eq!(topology.len(), 2);
        assert_eq!(topology.domain_of("zone-b"), topology.domain(3));
        let b = topology.domain(3).expect("a domain");

        domains.remove(3, "zone-b");
        let topology = Topology::new(Some(&domains));
        assert_eq!(topology.domain(3), None);
        assert_eq!(topology.domain_of("zone-b"), None);
        assert_eq!(topology.len(), 1);
        domains.add(7, "zone-c");
        let topology = Topology::new(Some(&domains));
        assert_eq!(topology.domain(7), Some(b));
        assert_eq!(topology.span(), 2);
        let mut listed: Vec<(u32, &str)> = topology.domains().collect();
        listed.sort_unstable();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|&(number, value)| topology.domain_of(value) == Some(number)));

        domains.remove(0, "zone-a");
        domains.remove(5, "zone-a");
        domains.remove(7, "zone-c");
        assert!(domains.is_empty());
        assert!(Topology::new(None).is_empty());
        assert_eq!(Topology::new(None).domain(0), None);
    }
}
