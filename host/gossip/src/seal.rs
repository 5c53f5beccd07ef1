//! Sealed gossip datagrams: every message a node sends carries its node
//! certificate (issued by the cluster CA) and an Ed25519 signature, made
//! with that certificate's key, over the message, the time it was sent, a
//! random nonce and the address it was sent to. A receiver accepts a
//! message only when the certificate is a node certificate of its
//! cluster's CA, the signature verifies, it was sent to this receiver
//! within the last [`FRESHNESS`], and its nonce has not been seen: a node
//! that is not a member cannot inject or alter gossip, and a recorded
//! message cannot be played again, here or to another node.
//!
//! A sealed message larger than one UDP datagram travels in fragments,
//! reassembled (within bounds) before it is opened.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};

/// What every datagram starts with.
const MAGIC: [u8; 4] = *b"EGS1";

/// A datagram holding one whole sealed message.
const WHOLE: u8 = 1;

/// A datagram holding a fragment of one.
const FRAGMENT: u8 = 2;

/// Bytes of one UDP datagram's payload, at most.
pub const DATAGRAM_BYTES_MAX: usize = 65_507;

/// Fragments of one message, at most.
const FRAGMENTS_MAX: usize = 4;

/// A certificate judged: the node it names and its key, or why not.
type Judged = Result<(String, [u8; 32]), Refusal>;

/// The nonces seen from one sender: to look up, and in the order they
/// came (with the time each message was sent), to forget.
#[derive(Default)]
struct Nonces {
    seen: HashSet<u64>,
    order: VecDeque<(u64, u64)>,
}

/// Messages being reassembled at once, at most.
const PARTIALS_MAX: usize = 64;

/// Longest a message's fragments may take to arrive.
const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(2);

/// How old (or how far ahead of this node's clock) a message may be.
pub const FRESHNESS: Duration = Duration::from_secs(30);

/// Nonces remembered per sender, at most.
const NONCES_MAX: usize = 16_384;

/// Verified certificates remembered, at most.
const CERTIFICATES_MAX: usize = 4_096;

/// The domain every message signature is made in.
const SIGNATURE_DOMAIN: &[u8] = b"engenho-gossip-message-v1\0";

/// Bytes of a datagram header: magic and kind.
const HEADER_BYTES: usize = MAGIC.len() + 1;

/// Bytes of a fragment's own header: message id, index, count.
const FRAGMENT_HEADER_BYTES: usize = 8 + 1 + 1;

/// Why a datagram was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a gossip datagram of this version, or cut short.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// The certificate is not a node certificate of the cluster CA.
    #[error("not a member: {0}")]
    NotMember(String),
    /// The signature does not verify.
    #[error("forged: the signature of {0} does not verify")]
    Forged(String),
    /// Sent too long ago, to another address, or seen before.
    #[error("replayed: {0}")]
    Replayed(String),
    /// A fragment: the message is not whole yet.
    #[error("a fragment of a message not whole yet")]
    Incomplete,
}

/// This node's gossip identity: its name, node certificate and key.
pub struct Sealer {
    node: String,
    certificate: Vec<u8>,
    key: Ed25519KeyPair,
}

impl Sealer {
    /// The identity of node `node`: its certificate (DER) and key (PKCS#8).
    ///
    /// # Errors
    /// The key is not an Ed25519 key.
    pub fn new(node: &str, certificate: Vec<u8>, pkcs8: &[u8]) -> Result<Self, String> {
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| format!("gossip needs the node's Ed25519 key (this node's key: {e})"))?;
        Ok(Self { node: node.to_owned(), certificate, key })
    }

    /// The identity of node `node` from its node certificate and key as
    /// the cluster issued them.
    ///
    /// # Errors
    /// No certificate, or a key that is not an Ed25519 key in PKCS#8.
    pub fn from_identity(node: &str, identity: &engenho_pki::Identity) -> Result<Self, String> {
        let certificate = identity.chain().first().ok_or("the node has no certificate")?.to_vec();
        let rustls::pki_types::PrivateKeyDer::Pkcs8(key) = identity.private_key() else {
            return Err("the node key is not PKCS#8".into());
        };
        Self::new(node, certificate, key.secret_pkcs8_der())
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub(crate) fn key_pair(&self) -> &Ed25519KeyPair {
        &self.key
    }

    /// Signs `bytes` with this node's key.
    pub fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        self.key.sign(bytes).as_ref().to_vec()
    }

    /// `payload` sealed for `to`, as the datagrams to send.
    pub fn seal(&self, payload: &[u8], to: SocketAddr) -> Vec<Vec<u8>> {
        self.seal_at(payload, to, now_millis())
    }

    /// `payload` sealed for `to` as if sent at `sent_at` (ms since the
    /// epoch).
    fn seal_at(&self, payload: &[u8], to: SocketAddr, sent_at: u64) -> Vec<Vec<u8>> {
        let nonce: u64 = rand::random();
        let signature = self.key.sign(&signed_bytes(sent_at, nonce, to, payload));
        let certificate_len = u16::try_from(self.certificate.len()).unwrap_or(u16::MAX);
        let mut sealed = Vec::with_capacity(2 + self.certificate.len() + 16 + 64 + payload.len());
        sealed.extend_from_slice(&certificate_len.to_be_bytes());
        sealed.extend_from_slice(&self.certificate[..usize::from(certificate_len)]);
        sealed.extend_from_slice(&sent_at.to_be_bytes());
        sealed.extend_from_slice(&nonce.to_be_bytes());
        sealed.extend_from_slice(signature.as_ref());
        sealed.extend_from_slice(payload);
        if HEADER_BYTES + sealed.len() <= DATAGRAM_BYTES_MAX {
            return vec![[&MAGIC[..], &[WHOLE], &sealed].concat()];
        }
        let room = DATAGRAM_BYTES_MAX - HEADER_BYTES - FRAGMENT_HEADER_BYTES;
        let pieces: Vec<&[u8]> = sealed.chunks(room).collect();
        let count = u8::try_from(pieces.len()).unwrap_or(u8::MAX);
        let id: u64 = rand::random();
        pieces
            .iter()
            .enumerate()
            .map(|(index, piece)| {
                let index = u8::try_from(index).unwrap_or(u8::MAX);
                [&MAGIC[..], &[FRAGMENT], &id.to_be_bytes(), &[index, count], piece].concat()
            })
            .collect()
    }
}

/// The bytes a message signature covers.
fn signed_bytes(sent_at: u64, nonce: u64, to: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let to = to.to_string();
    let mut bytes = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 16 + to.len() + 1 + payload.len());
    bytes.extend_from_slice(SIGNATURE_DOMAIN);
    bytes.extend_from_slice(&sent_at.to_be_bytes());
    bytes.extend_from_slice(&nonce.to_be_bytes());
    bytes.extend_from_slice(to.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(payload);
    bytes
}

fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A message that verified: who sent it, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The sending node, as its certificate names it.
    pub node: String,
    /// The sender's Ed25519 public key.
    pub key: [u8; 32],
    /// The message.
    pub payload: Vec<u8>,
}

/// A message's fragments as they arrive.
struct Partial {
    from: SocketAddr,
    started: std::time::Instant,
    pieces: Vec<Option<Vec<u8>>>,
}

/// Opens the datagrams this node receives.
pub struct Opener {
    ca: Vec<u8>,
    local: SocketAddr,
    certificates: HashMap<[u8; 32], Judged>,
    nonces: HashMap<String, Nonces>,
    partials: HashMap<u64, Partial>,
}

impl Opener {
    /// Opens datagrams sent to `local`, for the cluster of the CA
    /// certificate `ca` (DER).
    pub fn new(ca: Vec<u8>, local: SocketAddr) -> Self {
        Self { ca, local, certificates: HashMap::new(), nonces: HashMap::new(), partials: HashMap::new() }
    }

    /// Opens one datagram from `from`.
    ///
    /// # Errors
    /// Why it was refused; [`Refusal::Incomplete`] for a fragment of a
    /// message whose other fragments have not all arrived.
    pub fn open(&mut self, datagram: &[u8], from: SocketAddr) -> Result<Opened, Refusal> {
        let body = datagram.strip_prefix(&MAGIC[..]).ok_or(Refusal::Malformed("not an engenho gossip datagram"))?;
        let (&kind, rest) = body.split_first().ok_or(Refusal::Malformed("no kind"))?;
        match kind {
            WHOLE => self.open_sealed(rest),
            FRAGMENT => {
                let sealed = self.reassemble(rest, from)?;
                self.open_sealed(&sealed)
            }
            _ => Err(Refusal::Malformed("an unknown kind")),
        }
    }

    fn reassemble(&mut self, fragment: &[u8], from: SocketAddr) -> Result<Vec<u8>, Refusal> {
        if fragment.len() < FRAGMENT_HEADER_BYTES {
            return Err(Refusal::Malformed("a fragment cut short"));
        }
        let id = u64::from_be_bytes(fragment[..8].try_into().map_err(|_| Refusal::Malformed("fragment id"))?);
        let (index, count) = (usize::from(fragment[8]), usize::from(fragment[9]));
        if !(2..=FRAGMENTS_MAX).contains(&count) || index >= count {
            return Err(Refusal::Malformed("a fragment numbered out of bounds"));
        }
        self.partials.retain(|_, partial| partial.started.elapsed() < REASSEMBLY_TIMEOUT);
        if !self.partials.contains_key(&id) && self.partials.len() >= PARTIALS_MAX {
            return Err(Refusal::Malformed("too many messages being reassembled"));
        }
        let partial = self.partials.entry(id).or_insert_with(|| Partial {
            from,
            started: std::time::Instant::now(),
            pieces: vec![None; count],
        });
        if partial.from != from || partial.pieces.len() != count {
            return Err(Refusal::Malformed("fragments of one message from different places"));
        }
        partial.pieces[index] = Some(fragment[FRAGMENT_HEADER_BYTES..].to_vec());
        if partial.pieces.iter().any(Option::is_none) {
            return Err(Refusal::Incomplete);
        }
        let partial = self.partials.remove(&id).ok_or(Refusal::Incomplete)?;
        Ok(partial.pieces.into_iter().flatten().flatten().collect())
    }

    fn open_sealed(&mut self, sealed: &[u8]) -> Result<Opened, Refusal> {
        let short = || Refusal::Malformed("a sealed message cut short");
        let (length, rest) = sealed.split_at_checked(2).ok_or_else(short)?;
        let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
        let (certificate, rest) = rest.split_at_checked(length).ok_or_else(short)?;
        let (sent_at, rest) = rest.split_at_checked(8).ok_or_else(short)?;
        let (nonce, rest) = rest.split_at_checked(8).ok_or_else(short)?;
        let (signature, payload) = rest.split_at_checked(64).ok_or_else(short)?;
        let sent_at = u64::from_be_bytes(sent_at.try_into().map_err(|_| short())?);
        let nonce = u64::from_be_bytes(nonce.try_into().map_err(|_| short())?);
        let (node, key) = self.member(certificate)?;
        UnparsedPublicKey::new(&ED25519, key)
            .verify(&signed_bytes(sent_at, nonce, self.local, payload), signature)
            .map_err(|_| Refusal::Forged(node.clone()))?;
        let now = now_millis();
        let freshness = u64::try_from(FRESHNESS.as_millis()).unwrap_or(u64::MAX);
        if now.abs_diff(sent_at) > freshness {
            return Err(Refusal::Replayed(format!("{node} sent it {} ms from now", now.abs_diff(sent_at))));
        }
        self.remember_nonce(&node, sent_at, nonce, now.saturating_sub(freshness))?;
        Ok(Opened { node, key, payload: payload.to_vec() })
    }

    /// The node name and key of `certificate`, when it is a node
    /// certificate of the CA with an Ed25519 key.
    fn member(&mut self, certificate: &[u8]) -> Judged {
        let hash = *blake3::hash(certificate).as_bytes();
        if let Some(known) = self.certificates.get(&hash) {
            return known.clone();
        }
        let judged = judge_certificate(&self.ca, certificate);
        if self.certificates.len() >= CERTIFICATES_MAX {
            self.certificates.clear();
        }
        self.certificates.insert(hash, judged.clone());
        judged
    }

    fn remember_nonce(&mut self, node: &str, sent_at: u64, nonce: u64, oldest: u64) -> Result<(), Refusal> {
        let nonces = self.nonces.entry(node.to_owned()).or_default();
        while nonces.order.front().is_some_and(|(at, _)| *at < oldest) || nonces.order.len() >= NONCES_MAX {
            if let Some((_, old)) = nonces.order.pop_front() {
                nonces.seen.remove(&old);
            }
        }
        if !nonces.seen.insert(nonce) {
            return Err(Refusal::Replayed(format!("a message of {node} seen before")));
        }
        nonces.order.push_back((sent_at, nonce));
        Ok(())
    }
}

/// The node name and Ed25519 key of `certificate` (DER), when the CA of
/// `ca` (DER) issued it as a node certificate.
fn judge_certificate(ca: &[u8], certificate: &[u8]) -> Judged {
    let not_member = |reason: &str| Refusal::NotMember(reason.to_owned());
    let (_, ca) = x509_parser::parse_x509_certificate(ca).map_err(|_| not_member("this node's CA is unreadable"))?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(certificate).map_err(|_| not_member("not an X.509 certificate"))?;
    parsed.verify_signature(Some(ca.public_key())).map_err(|_| not_member("not issued by the cluster CA"))?;
    if !parsed.validity().is_valid() {
        return Err(not_member("the certificate is not valid now"));
    }
    let node = engenho_pki::node_name_of(&rustls::pki_types::CertificateDer::from(certificate.to_vec()))
        .ok_or_else(|| not_member("not a node certificate"))?;
    let key: [u8; 32] = parsed
        .public_key()
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| Refusal::NotMember(format!("{node}'s key is not an Ed25519 key")))?;
    if parsed.public_key().algorithm.algorithm.to_id_string() != "1.3.101.112" {
        return Err(Refusal::NotMember(format!("{node}'s key is not an Ed25519 key")));
    }
    Ok((node, key))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A sealer for node `name` under `ca`.
    pub(crate) fn member(ca: &engenho_pki::ClusterCa, name: &str) -> Sealer {
        let identity = ca
            .issue(&engenho_pki::Profile::Node { name: name.into(), ip: "127.0.0.1".parse().expect("ip") })
            .expect("identity");
        Sealer::from_identity(name, &identity).expect("sealer")
    }

    fn cluster() -> (tempfile::TempDir, engenho_pki::ClusterCa) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = engenho_pki::ClusterCa::create(dir.path()).expect("CA");
        (dir, ca)
    }

    #[test]
    fn members_messages_open_once_and_only_where_they_were_sent() {
        // Goal: a member's message opens with its name and payload; the
        // same datagram again, or at another address, or changed, or
        // stale, is refused as such.
        let (_dir, ca) = cluster();
        let a = member(&ca, "a");
        let here: SocketAddr = "127.0.0.1:2380".parse().expect("addr");
        let mut opener = Opener::new(ca.certificate_der().to_vec(), here);
        let datagrams = a.seal(b"hello", here);
        assert_eq!(datagrams.len(), 1);
        let opened = opener.open(&datagrams[0], here).expect("opens");
        assert_eq!((opened.node.as_str(), opened.payload.as_slice()), ("a", &b"hello"[..]));
        assert!(matches!(opener.open(&datagrams[0], here), Err(Refusal::Replayed(_))));

        let elsewhere = a.seal(b"hello", "127.0.0.2:2380".parse().expect("addr"));
        assert_eq!(opener.open(&elsewhere[0], here), Err(Refusal::Forged("a".into())));

        let mut changed = a.seal(b"hello", here).remove(0);
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert_eq!(opener.open(&changed, here), Err(Refusal::Forged("a".into())));

        let stale = a.seal_at(b"hello", here, now_millis() - 60_000).remove(0);
        assert!(matches!(opener.open(&stale, here), Err(Refusal::Replayed(_))));
    }

    #[test]
    fn strangers_and_garbage_are_refused_and_large_messages_travel_in_fragments() {
        // Goal: a node certificate of another CA, bytes that are no gossip
        // datagram or are cut short are refused; a message larger than a
        // datagram arrives whole from its fragments.
        let (_dir, ca) = cluster();
        let (_other_dir, other) = cluster();
        let here: SocketAddr = "127.0.0.1:2380".parse().expect("addr");
        let mut opener = Opener::new(ca.certificate_der().to_vec(), here);
        let stranger = member(&other, "a");
        let refused = opener.open(&stranger.seal(b"hello", here)[0], here);
        assert_eq!(refused, Err(Refusal::NotMember("not issued by the cluster CA".into())));
        assert!(matches!(opener.open(b"junk", here), Err(Refusal::Malformed(_))));
        let whole = member(&ca, "b").seal(b"hello", here).remove(0);
        for cut in [5, 7, 100, whole.len() - 70] {
            assert!(matches!(opener.open(&whole[..cut], here), Err(Refusal::Malformed(_))), "cut at {cut}");
        }

        let large = vec![7u8; 100_000];
        let fragments = member(&ca, "c").seal(&large, here);
        assert_eq!(fragments.len(), 2);
        assert!(fragments.iter().all(|f| f.len() <= DATAGRAM_BYTES_MAX));
        assert_eq!(opener.open(&fragments[1], here), Err(Refusal::Incomplete));
        assert_eq!(opener.open(&fragments[0], here).expect("whole").payload, large);
    }
}
