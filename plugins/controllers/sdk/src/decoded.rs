//! What a controller decoded of cached objects, kept by cache version (the
//! number the host's cache gives each entry, new whenever the object
//! changes), so that a reconcile finding an object unchanged neither copies
//! nor decodes it again: controller-runtime's decoded cache, kept inside
//! the controller.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use serde::de::DeserializeOwned;

use crate::{ApiError, Kind, Union, decode};

/// Versions one `fetch` asks for, at most (the host's limit).
pub const FETCH_VERSIONS_MAX: usize = 10_000;

/// Decoded objects of one type kept at least before the older ones are let
/// go; more while one reading needs more.
const ENTRIES_MIN: usize = 4096;

/// Decoded objects by type and cache version. Bounded: objects not read
/// since the kept set last outgrew its limit are let go.
#[derive(Default)]
pub struct Decoded {
    /// By type: a controller decodes a few types, found by a short scan.
    types: Mutex<Vec<(TypeId, Box<dyn Any + Send>)>>,
}

impl Decoded {
    /// The objects of `kind` at `versions`, in order, decoded as `T`: those
    /// kept from before, the others read by `fetch` (given at most
    /// [`FETCH_VERSIONS_MAX`] versions a call) and decoded. `None` when
    /// `fetch` no longer finds one of them: the caller lists again.
    ///
    /// # Errors
    /// `fetch`'s; a 500 when an object does not decode as `T`.
    pub fn many<T, F>(&self, kind: &Kind, versions: &[u64], fetch: F) -> Result<Option<Vec<Arc<T>>>, ApiError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
        F: Fn(&[u64]) -> Result<Vec<Option<String>>, ApiError>,
    {
        self.with::<T, _>(|kept| {
            kept.age(versions.len());
            let reading = kept.next_reading();
            kept.resolve(kind, versions, reading, &fetch)
        })
    }

    /// The objects of `kind` at the versions of `first`, in order, and
    /// apart from them those at the versions only `second` has: the union
    /// of two listings, each object read as [`Decoded::many`] reads it and
    /// each version once. `None` when `fetch` no longer finds one of them.
    ///
    /// # Errors
    /// As [`Decoded::many`].
    pub fn union<T, F>(
        &self,
        kind: &Kind,
        first: &[u64],
        second: &[u64],
        fetch: F,
    ) -> Result<Option<Union<T>>, ApiError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
        F: Fn(&[u64]) -> Result<Vec<Option<String>>, ApiError>,
    {
        self.with::<T, _>(|kept| {
            kept.age(first.len() + second.len());
            let reading = kept.next_reading();
            let Some(firsts) = kept.resolve(kind, first, reading, &fetch)? else { return Ok(None) };
            // Every version of `first` is now kept, marked with this reading.
            let only_second: Vec<u64> = second.iter().copied().filter(|v| !kept.read_in(*v, reading)).collect();
            let Some(seconds) = kept.resolve(kind, &only_second, reading, &fetch)? else { return Ok(None) };
            Ok(Some(Union { first: firsts, only_second: seconds }))
        })
    }

    /// How many decoded objects of type `T` are kept.
    pub fn kept<T: Send + Sync + 'static>(&self) -> usize {
        self.with::<T, _>(|kept| kept.current.len() + kept.previous.len())
    }

    fn with<T: Send + Sync + 'static, R>(&self, f: impl FnOnce(&mut Kept<T>) -> R) -> R {
        let mut types = self.types.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted = TypeId::of::<T>();
        let index = match types.iter().position(|(type_id, _)| *type_id == wanted) {
            Some(index) => index,
            None => {
                types.push((wanted, Box::new(Kept::<T>::default())));
                types.len() - 1
            }
        };
        let kept = types[index].1.downcast_mut::<Kept<T>>().expect("entries are keyed by their own type");
        f(kept)
    }
}

/// The decoded objects of one type: those read since the last turnover,
/// and those read in the turn before it.
struct Kept<T> {
    current: HashMap<u64, Entry<T>, ByVersion>,
    previous: HashMap<u64, Entry<T>, ByVersion>,
    largest_reading: usize,
    readings: u64,
}

/// A decoded object, and the last reading that read it.
struct Entry<T> {
    object: Arc<T>,
    reading: u64,
}

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Self { current: HashMap::default(), previous: HashMap::default(), largest_reading: 0, readings: 0 }
    }
}

impl<T> Kept<T> {
    /// Before a reading of `objects`: turns over when the current set has
    /// outgrown twice the largest reading (and [`ENTRIES_MIN`]), dropping
    /// what the previous turn kept and was not read since.
    fn age(&mut self, objects: usize) {
        self.largest_reading = self.largest_reading.max(objects);
        if self.current.len() > ENTRIES_MIN.max(2 * self.largest_reading) {
            self.previous = std::mem::take(&mut self.current);
        }
    }

    /// A number for a new reading, which marks the entries it reads.
    fn next_reading(&mut self) -> u64 {
        self.readings += 1;
        self.readings
    }

    /// The object kept at `version`, if any, now in the current set and
    /// marked as read by `reading`.
    fn take(&mut self, version: u64, reading: u64) -> Option<Arc<T>> {
        if let Some(entry) = self.current.get_mut(&version) {
            entry.reading = reading;
            return Some(entry.object.clone());
        }
        let object = self.previous.remove(&version)?.object;
        self.current.insert(version, Entry { object: object.clone(), reading });
        Some(object)
    }

    /// Whether `reading` read the object at `version`.
    fn read_in(&self, version: u64, reading: u64) -> bool {
        self.current.get(&version).is_some_and(|entry| entry.reading == reading)
    }

    /// The objects at `versions`, in order, for `reading`: those kept, the
    /// others fetched, decoded and kept. `None` when `fetch` no longer
    /// finds one of them; what it did find is kept all the same, so that
    /// the next reading fetches only what changed since.
    fn resolve<F>(
        &mut self,
        kind: &Kind,
        versions: &[u64],
        reading: u64,
        fetch: &F,
    ) -> Result<Option<Vec<Arc<T>>>, ApiError>
    where
        T: DeserializeOwned,
        F: Fn(&[u64]) -> Result<Vec<Option<String>>, ApiError>,
    {
        let mut found: Vec<Option<Arc<T>>> = versions.iter().map(|version| self.take(*version, reading)).collect();
        let missing: Vec<u64> =
            versions.iter().zip(&found).filter(|(_, object)| object.is_none()).map(|(version, _)| *version).collect();
        if missing.is_empty() {
            return Ok(found.into_iter().collect());
        }
        let mut decoded = HashMap::with_capacity_and_hasher(missing.len(), ByVersion::default());
        let mut gone = false;
        for chunk in missing.chunks(FETCH_VERSIONS_MAX) {
            let answers = fetch(chunk)?;
            if answers.len() != chunk.len() {
                return Err(ApiError::internal("the host answered a fetch with the wrong number of objects"));
            }
            for (version, json) in chunk.iter().zip(answers) {
                match json {
                    Some(json) => {
                        decoded.insert(*version, Arc::new(decode::<T>(kind, &json)?));
                    }
                    None => gone = true,
                }
            }
        }
        for (slot, version) in found.iter_mut().zip(versions) {
            if slot.is_none() {
                let object = decoded.get(version).cloned();
                if let Some(object) = &object {
                    self.current.insert(*version, Entry { object: object.clone(), reading });
                }
                *slot = object;
            }
        }
        if gone {
            return Ok(None);
        }
        Ok(found.into_iter().collect())
    }
}

/// Hashes versions (sequential numbers) by one multiplication.
pub type ByVersion = BuildHasherDefault<VersionHasher>;

/// The hasher of [`ByVersion`].
#[derive(Default)]
pub struct VersionHasher(u64);

impl Hasher for VersionHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, version: u64) {
        self.0 = version.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde::Deserialize;

    use super::*;

    const THINGS: Kind = Kind::new("", "v1", "things");

    #[derive(Debug, Deserialize, PartialEq)]
    struct Thing {
        n: u64,
    }

    /// A cache holding `n`'s JSON at version `n`, counting what is fetched.
    struct Cache {
        fetched: RefCell<Vec<u64>>,
        gone: Vec<u64>,
    }

    impl Cache {
        fn new() -> Self {
            Self { fetched: RefCell::default(), gone: Vec::new() }
        }

        fn fetch(&self, versions: &[u64]) -> Result<Vec<Option<String>>, ApiError> {
            assert!(versions.len() <= FETCH_VERSIONS_MAX);
            self.fetched.borrow_mut().extend(versions);
            Ok(versions.iter().map(|v| (!self.gone.contains(v)).then(|| format!("{{\"n\":{v}}}"))).collect())
        }
    }

    fn numbers(objects: &[Arc<Thing>]) -> Vec<u64> {
        objects.iter().map(|t| t.n).collect()
    }

    #[test]
    fn only_unseen_versions_are_fetched_and_decoded() {
        let (decoded, cache) = (Decoded::default(), Cache::new());
        let first = decoded.many::<Thing, _>(&THINGS, &[3, 1, 2], |v| cache.fetch(v)).expect("read").expect("all");
        assert_eq!(numbers(&first), [3, 1, 2]);
        let second = decoded.many::<Thing, _>(&THINGS, &[2, 4, 3], |v| cache.fetch(v)).expect("read").expect("all");
        assert_eq!(numbers(&second), [2, 4, 3]);
        assert_eq!(*cache.fetched.borrow(), [3, 1, 2, 4], "versions seen before are not fetched again");
        assert!(Arc::ptr_eq(&first[0], &second[2]), "an unchanged object is the one decoded before");
    }

    #[test]
    fn a_union_keeps_the_first_listing_apart_and_fetches_each_version_once() {
        let (decoded, cache) = (Decoded::default(), Cache::new());
        let union = |first: &[u64], second: &[u64]| {
            let union =
                decoded.union::<Thing, _>(&THINGS, first, second, |v| cache.fetch(v)).expect("read").expect("all");
            (numbers(&union.first), numbers(&union.only_second))
        };
        assert_eq!(union(&[1, 2], &[3, 2]), (vec![1, 2], vec![3]));
        // 2 was read by the reading before, not by this one's first listing.
        assert_eq!(union(&[1], &[2, 1, 3]), (vec![1], vec![2, 3]));
        assert_eq!(union(&[], &[4]), (vec![], vec![4]));
        assert_eq!(*cache.fetched.borrow(), [1, 2, 3, 4], "each version fetched once");
        let gone = Cache { gone: vec![6], ..Cache::new() };
        assert!(decoded.union::<Thing, _>(&THINGS, &[5], &[6], |v| gone.fetch(v)).expect("read").is_none());
    }

    proptest::proptest! {
        #[test]
        fn unions_answer_as_a_set_difference_would(
            readings in proptest::collection::vec(
                (proptest::collection::hash_set(0_u64..40, 0..20), proptest::collection::hash_set(0_u64..40, 0..20)),
                1..8,
            ),
        ) {
            // Goal: over readings sharing one kept set, each union is the
            // first listing in order, then the second's other versions.
            let (decoded, cache) = (Decoded::default(), Cache::new());
            for (first, second) in readings {
                let (first, second): (Vec<u64>, Vec<u64>) = (first.into_iter().collect(), second.into_iter().collect());
                let union = decoded
                    .union::<Thing, _>(&THINGS, &first, &second, |v| cache.fetch(v))
                    .expect("read")
                    .expect("all");
                let expected: Vec<u64> = second.iter().copied().filter(|v| !first.contains(v)).collect();
                proptest::prop_assert_eq!(numbers(&union.first), first);
                proptest::prop_assert_eq!(numbers(&union.only_second), expected);
            }
            let fetched = cache.fetched.borrow();
            let distinct: std::collections::HashSet<&u64> = fetched.iter().collect();
            proptest::prop_assert_eq!(distinct.len(), fetched.len(), "a version fetched twice");
        }
    }

    #[test]
    fn a_version_gone_before_its_fetch_asks_for_a_new_listing() {
        // Goal: the reading answers `None`, and keeps what it found: the
        // next listing (2 replaced by 3) fetches only the new version.
        let decoded = Decoded::default();
        let cache = Cache { gone: vec![2], ..Cache::new() };
        assert!(decoded.many::<Thing, _>(&THINGS, &[1, 2], |v| cache.fetch(v)).expect("read").is_none());
        let again = decoded.many::<Thing, _>(&THINGS, &[1, 3], |v| cache.fetch(v)).expect("read").expect("all");
        assert_eq!(numbers(&again), [1, 3]);
        assert_eq!(*cache.fetched.borrow(), [1, 2, 3], "1 is not fetched again");
        let error = decoded.many::<Thing, _>(&THINGS, &[5], |_| Ok(vec![Some("[]".into())])).expect_err("not a thing");
        assert_eq!(error.code, 500);
        assert!(error.message.contains("things"), "{}", error.message);
    }

    #[test]
    fn large_readings_are_fetched_in_chunks() {
        let decoded = Decoded::default();
        let calls = RefCell::new(0);
        let cache = Cache::new();
        let versions: Vec<u64> = (1..=25_000).collect();
        let all = decoded
            .many::<Thing, _>(&THINGS, &versions, |v| {
                *calls.borrow_mut() += 1;
                cache.fetch(v)
            })
            .expect("read")
            .expect("all");
        assert_eq!(numbers(&all), versions);
        assert_eq!(*calls.borrow(), 3);
    }

    #[test]
    fn objects_not_read_lately_are_let_go() {
        let (decoded, cache) = (Decoded::default(), Cache::new());
        let round = |r: u64| -> Vec<u64> { (0..1000).map(|i| 100_000 * r + i).collect() };
        for r in 1..=20 {
            decoded.many::<Thing, _>(&THINGS, &round(r), |v| cache.fetch(v)).expect("read").expect("all");
        }
        let kept = decoded.kept::<Thing>();
        assert!(kept <= 2 * (ENTRIES_MIN + 1000), "{kept} kept");
        let fetched = cache.fetched.borrow().len();
        decoded.many::<Thing, _>(&THINGS, &round(20), |v| cache.fetch(v)).expect("read").expect("all");
        assert_eq!(cache.fetched.borrow().len(), fetched, "the latest reading is kept");
        decoded.many::<Thing, _>(&THINGS, &round(1), |v| cache.fetch(v)).expect("read").expect("all");
        assert_eq!(cache.fetched.borrow().len(), fetched + 1000, "the first reading was let go");
    }
}
