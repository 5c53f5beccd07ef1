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

/// Encodes a user key so that the encoding sorts like the key and no
/// encoding is a prefix of another: every `0x00` becomes `0x00 0xff`, and
/// `0x00 0x00` terminates the key. A revision appended after it then sorts
/// versions of one key together, in revision order.
pub(crate) fn escape_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 10);
    for &byte in key {
        out.push(byte);
        if byte == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// The escaped prefix of `key`, without the terminator: the lower bound of
/// every escaped key that is `>= key`.
pub(crate) fn escape_bound(key: &[u8]) -> Vec<u8> {
    let mut out = escape_key(key);
    out.truncate(out.len() - 2);
    out
}

/// Splits an escaped key followed by an 8-byte revision into the user key
/// and the revision.
pub(crate) fn split_versioned(encoded: &[u8]) -> Option<(Vec<u8>, i64)> {
    let (head, revision) = encoded.split_at_checked(encoded.len().checked_sub(8)?)?;
    let revision = i64::from_be_bytes(revision.try_into().ok()?);
    let mut key = Vec::with_capacity(head.len());
    let mut bytes = head.iter();
    loop {
        match bytes.next()? {
            0 => match bytes.next()? {
                0xff => key.push(0),
                0 => break,
                _ => return None,
            },
            &other => key.push(other),
        }
    }
    if bytes.next().is_some() {
        return None;
    }
    Some((key, revision))
}

/// The storage key of one version of `key`.
pub(crate) fn versioned_key(key: &[u8], revision: i64) -> Vec<u8> {
    assert!(revision > 0, "versions are stored at positive revisions");
    let mut out = escape_key(key);
    out.extend_from_slice(&revision.to_be_bytes());
    out
}

/// The storage key of the event `sub` of revision `revision`.
pub(crate) fn event_key(revision: i64, sub: u32) -> [u8; 12] {
    assert!(revision > 0, "events are stored at positive revisions");
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&revision.to_be_bytes());
    out[8..].copy_from_slice(&sub.to_be_bytes());
    out
}

/// The revision of a stored event key.
pub(crate) fn event_revision(key: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(key.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn escaping_preserves_order(a in proptest::collection::vec(any::<u8>(), 0..8),
                                    b in proptest::collection::vec(any::<u8>(), 0..8)) {
            prop_assert_eq!(a.cmp(&b), escape_key(&a).cmp(&escape_key(&b)));
        }

        #[test]
        fn versioned_keys_round_trip(key in proptest::collection::vec(any::<u8>(), 1..16),
                                     revision in 1i64..i64::MAX) {
            let encoded = versioned_key(&key, revision);
            prop_assert_eq!(split_versioned(&encoded), Some((key.clone(), revision)));
            prop_assert!(encoded.as_slice() >= escape_bound(&key).as_slice());
        }

        #[test]
        fn versions_of_smaller_keys_sort_first(a in proptest::collection::vec(any::<u8>(), 1..8),
                                               b in proptest::collection::vec(any::<u8>(), 1..8),
                                               ra in 1i64..1000, rb in 1i64..1000) {
            prop_assume!(a < b);
            prop_assert!(versioned_key(&a, ra) < versioned_key(&b, rb));
            prop_assert!(versioned_key(&a, ra) < escape_bound(&b));
        }
    }
}
