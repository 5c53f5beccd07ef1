//! Byte encodings of records and of keys in the fjall keyspaces.

use bincode::Options;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::Result;
use crate::hintless::Hintless;

/// Why bytes did not decode: malformed, truncated, longer than the value
/// they encode, claiming more bytes than they hold, or nested too deeply.
#[derive(Debug, thiserror::Error)]
#[error("malformed record: {0}")]
pub struct DecodeError(#[from] bincode::Error);

/// Serializes a record for storage.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("in-memory serialization of a store record cannot fail")
}

/// Decodes a value written by `bincode::serialize` (the encoding of every
/// stored record, raft entry and peer message), trusting nothing in it.
///
/// No length in the input can make the decoder read past its end (the
/// byte limit is the input's length) or reserve room for elements that are
/// not there (lengths are hidden from the collections, see [`Hintless`]),
/// the value must use every byte, and recursive values nest at most
/// [`crate::DECODE_NESTING_MAX`] levels, so hostile or corrupt input is an
/// error rather than a crash or a large allocation.
///
/// # Errors
/// [`DecodeError`] when the bytes are not exactly one valid value.
pub fn decode_bounded<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let limit = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    let options = bincode::DefaultOptions::new().with_fixint_encoding().reject_trailing_bytes().with_limit(limit);
    Ok(options.deserialize_seed(Hintless(std::marker::PhantomData::<T>), bytes)?)
}

/// Deserializes a stored record.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(decode_bounded(bytes)?)
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
    use crate::{Command, Operation, TxnRequest};

    proptest! {
        #[test]
        fn version_keys_round_trip_and_sort_in_write_order(a in (1i64..i64::MAX, any::<u32>()),
                                                           b in (1i64..i64::MAX, any::<u32>())) {
            prop_assert_eq!(version_position(&version_key(a.0, a.1)), Some(a));
            prop_assert_eq!(a.cmp(&b), version_key(a.0, a.1).cmp(&version_key(b.0, b.1)));
        }
    }

    /// Bytes of a batch header as `bincode::serialize` writes it: the
    /// variant index of `Command::Batch`, then the number of commands.
    fn batch_header(count: u64) -> Vec<u8> {
        let mut header = 6u32.to_le_bytes().to_vec();
        header.extend_from_slice(&count.to_le_bytes());
        header
    }

    #[test]
    fn batch_headers_encode_as_written() {
        let empty = Command::Batch(Vec::new());
        assert_eq!(bincode::serialize(&empty).expect("encodes"), batch_header(0));
        assert_eq!(decode_bounded::<Command>(&batch_header(0)).expect("decodes"), empty);
    }

    #[test]
    fn a_megabyte_of_nested_batch_headers_is_an_error_not_a_crash() {
        let nested: Vec<u8> = std::iter::repeat_with(|| batch_header(1)).take(1024 * 1024 / 12).flatten().collect();
        let error = decode_bounded::<Command>(&nested).expect_err("too deep");
        assert!(error.to_string().contains("levels deep"), "{error}");
        let entry = decode_bounded::<openraft::Entry<crate::TypeConfig>>(&nested);
        assert!(entry.is_err(), "a raft entry of the same bytes is refused too");
    }

    #[test]
    fn transactions_nested_to_the_limit_decode_and_one_more_does_not() {
        let nest = |levels: usize| {
            let mut txn = TxnRequest::default();
            for _ in 0..levels {
                txn = TxnRequest { success: vec![Operation::Txn(txn)], ..TxnRequest::default() };
            }
            Command::Batch(vec![Command::Txn(txn)])
        };
        let deepest = nest(crate::TXN_NESTING_MAX);
        assert_eq!(decode_bounded::<Command>(&encode(&deepest)).expect("decodes"), deepest);
        assert!(decode_bounded::<Command>(&encode(&nest(crate::TXN_NESTING_MAX + 1))).is_err());
    }

    #[test]
    fn lengths_claiming_more_than_the_input_holds_are_errors() {
        let mut claims = batch_header(1 << 60);
        claims.extend_from_slice(&[0; 10]);
        assert!(decode_bounded::<Command>(&claims).is_err());
        let mut put = 0u32.to_le_bytes().to_vec();
        put.extend_from_slice(&(1u64 << 60).to_le_bytes());
        put.extend_from_slice(&[b'k'; 10]);
        assert!(decode_bounded::<Command>(&put).is_err(), "a key longer than the input");
    }

    #[test]
    fn trailing_bytes_are_errors() {
        let mut bytes = encode(&Command::Compact { revision: 3 });
        assert_eq!(decode_bounded::<Command>(&bytes).expect("decodes"), Command::Compact { revision: 3 });
        bytes.push(0);
        assert!(decode_bounded::<Command>(&bytes).is_err());
    }

    #[test]
    fn keys_of_another_length_are_no_versions() {
        assert_eq!(version_position(&[0; 11]), None);
        assert_eq!(version_position(&[0; 13]), None);
    }
}
