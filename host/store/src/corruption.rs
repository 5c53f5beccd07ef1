//! Telling a corrupt file from a failing disk, and saying which file.
//!
//! fjall checksums every journal batch and every table block; a mismatch,
//! or bytes that do not decode, means the file holds something other than
//! what was written. A node must not run on such state: the error names
//! the file and what to do.

use std::path::Path;

use crate::codec::DecodeError;
use crate::error::StoreError;

/// The error for `error` of the fjall database at `path`: corruption as
/// [`StoreError::Corrupt`], anything else as a storage failure.
pub(crate) fn database_error(path: &Path, error: &fjall::Error) -> StoreError {
    match corruption(error) {
        Some(detail) => StoreError::Corrupt { file: path.display().to_string(), detail },
        None => StoreError::Storage(error.to_string()),
    }
}

/// The error for a record of the database at `path` that does not decode.
pub(crate) fn undecodable(path: &Path, what: &str, error: &DecodeError) -> StoreError {
    StoreError::Corrupt { file: path.display().to_string(), detail: format!("{what} does not decode: {error}") }
}

/// What is corrupt, if `error` says the database is.
fn corruption(error: &fjall::Error) -> Option<String> {
    use fjall::{Error, JournalRecoveryError as RecoveryError, LsmError};
    match error {
        Error::JournalRecovery(RecoveryError::ChecksumMismatch) => Some("journal checksum mismatch".into()),
        Error::JournalRecovery(other) => Some(format!("the journal does not recover: {other:?}")),
        Error::Storage(LsmError::ChecksumMismatch { .. }) => Some("table checksum mismatch".into()),
        Error::Storage(LsmError::Io(io)) | Error::Io(io) => invalid_data(io),
        Error::Storage(other) => Some(format!("a table does not read back: {other:?}")),
        Error::InvalidVersion(_)
        | Error::Decompress(_)
        | Error::InvalidTrailer
        | Error::InvalidTag(_)
        | Error::Unrecoverable => Some(format!("{error:?}")),
        _ => None,
    }
}

/// Decoding failures fjall reports as I/O errors.
fn invalid_data(error: &std::io::Error) -> Option<String> {
    use std::io::ErrorKind;
    matches!(error.kind(), ErrorKind::InvalidData | ErrorKind::UnexpectedEof).then(|| format!("unreadable: {error}"))
}
