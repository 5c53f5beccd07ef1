//! Byte encodings of records and of keys in the fjall keyspaces.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::Result;

/// Serializes a record for storage.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("in-memory serialization of a store record cannot fail")
}

/// Deserializes a stored record.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(bincode::deserialize(bytes)?)
}

/// The storage key of the version written by event `sub` of revision
/// `revision`: keys sort in the order the versions were written.
pub(crate) fn version_key(revision: i64, sub: u32) -> [u8; 12] {
    assert!(revision > 0, "versions are stored at positive revisions");
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&revision.to_be_bytes());
    out[8..].copy_from_slice(&sub.to_be_bytes());
    out
}

/// The revision and event index of a stored version's key.
pub(crate) fn version_position(key: &[u8]) -> Option<(i64, u32)> {
    let key: &[u8; 12] = key.try_into().ok()?;
    let (revision, sub) = key.split_at(8);
    Some((i64::from_be_bytes(revision.try_into().ok()?), u32::from_be_bytes(sub.try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn version_keys_round_trip_and_sort_in_write_order(a in (1i64..i64::MAX, any::<u32>()),
                                                           b in (1i64..i64::MAX, any::<u32>())) {
            prop_assert_eq!(version_position(&version_key(a.0, a.1)), Some(a));
            prop_assert_eq!(a.cmp(&b), version_key(a.0, a.1).cmp(&version_key(b.0, b.1)));
        }
    }

    #[test]
    fn keys_of_another_length_are_no_versions() {
        assert_eq!(version_position(&[0; 11]), None);
        assert_eq!(version_position(&[0; 13]), None);
    }
}
