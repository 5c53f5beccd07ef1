//! Errors of the cluster's trust material.

use std::path::PathBuf;

/// Why trust material could not be made, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key, certificate or signing request could not be made or parsed.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A file holds something other than what its name promises.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS configuration was refused.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// An address is not one a client can dial.
    #[error("address {0}")]
    Address(String),
    /// A join token is not of the form `K10<CA hash>::<secret>`.
    #[error("malformed join token: {0}")]
    MalformedToken(String),
}

/// Result with [`PkiError`] as the default error.
pub type Result<T, E = PkiError> = std::result::Result<T, E>;
