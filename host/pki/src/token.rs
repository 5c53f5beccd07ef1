//! Join tokens: the secret a joining node presents, and the hash of the
//! cluster CA it must find before presenting it (as kubeadm's
//! `--discovery-token-ca-cert-hash` and k3s's `K10<hash>::` tokens do).

use std::fmt;

use crate::ca::CaHash;
use crate::error::{PkiError, Result};

/// What starts every join token.
const PREFIX: &str = "K10";

/// Between the CA hash and the secret.
const SEPARATOR: &str = "::";

/// Longest secret accepted.
const SECRET_BYTES_MAX: usize = 256;

/// A join token: `K10<SHA-256 of the CA certificate, hex>::<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    ca_hash: CaHash,
    secret: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken").field("ca_hash", &self.ca_hash).finish_non_exhaustive()
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}{SEPARATOR}{}", self.ca_hash, self.secret)
    }
}

impl JoinToken {
    /// A token for the CA of `ca_hash` and `secret`.
    ///
    /// # Errors
    /// The secret is empty, too long, or not printable ASCII without spaces.
    pub fn new(ca_hash: CaHash, secret: &str) -> Result<Self> {
        check_secret(secret)?;
        Ok(Self { ca_hash, secret: secret.to_owned() })
    }

    /// Parses a token as [`fmt::Display`] writes it; surrounding whitespace
    /// is ignored.
    ///
    /// # Errors
    /// The text is not a join token.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let malformed = || {
            PkiError::MalformedToken(format!(
                "expected {PREFIX}<SHA-256 of the cluster CA certificate>{SEPARATOR}<secret>, as in DIR/join-token of a \
                 member"
            ))
        };
        let rest = text.strip_prefix(PREFIX).ok_or_else(malformed)?;
        let (hash, secret) = rest.split_once(SEPARATOR).ok_or_else(malformed)?;
        Self::new(hash.parse()?, secret)
    }

    /// The CA hash the token pins.
    pub fn ca_hash(&self) -> CaHash {
        self.ca_hash
    }

    /// The secret.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

/// Checks a join secret.
fn check_secret(secret: &str) -> Result<()> {
    if secret.is_empty() || secret.len() > SECRET_BYTES_MAX {
        return Err(PkiError::MalformedToken(format!("a join secret has 1 to {SECRET_BYTES_MAX} characters")));
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(PkiError::MalformedToken("a join secret is printable ASCII without spaces".into()));
    }
    Ok(())
}

/// A new random secret: 24 random bytes in hex.
pub fn random_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let hash = CaHash::of(b"certificate");
        let token = JoinToken::new(hash, &random_secret()).expect("token");
        let text = token.to_string();
        assert!(text.starts_with("K10") && text.len() == 3 + 64 + 2 + 48, "{text}");
        assert_eq!(JoinToken::parse(&format!(" {text}\n")).expect("parses"), token);
        assert!(!format!("{token:?}").contains(token.secret()), "Debug never shows the secret");
        for bad in [
            "secret",
            "K10abc::secret",
            &format!("K10{hash}::"),
            &format!("K10{hash}:secret"),
            &format!("K10{hash}::a b"),
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
    }
}
