//! The attested chain of a cluster's transitions: every membership
//! change, role assignment and plugin activation, each entry naming the
//! BLAKE3 hash of the one before it, the raft term and index it was
//! committed at, and signed (Ed25519, with the key of a node certificate
//! of the cluster CA) by the leader that appended it and by at least
//! quorum − 1 other voters as witnesses, so that no leader alone can
//! rewrite history. [`verify`] checks a chain offline with the CA
//! certificate alone and names the first entry that fails.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// What a chain file declares itself as.
pub const FORMAT: &str = "engenho.io/chain/v1";

/// The `previous` of the first entry.
pub const GENESIS_PREVIOUS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The algorithm identifier of Ed25519 keys (RFC 8410).
const ED25519_OID: &str = "1.3.101.112";

/// A chain as exported: the certificates of the nodes that signed it and
/// its entries, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainFile {
    /// [`FORMAT`].
    pub format: String,
    /// Each signing node's certificate (PEM), by node name.
    pub certificates: BTreeMap<String, String>,
    /// The entries, oldest first.
    pub entries: Vec<Entry>,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Event {
    /// The cluster began with these voters.
    Genesis {
        /// The first voters.
        voters: Vec<String>,
    },
    /// A node became a member (a worker until a role says otherwise).
    Joined {
        /// The node.
        node: String,
    },
    /// A node was removed from the cluster.
    Removed {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// A node was given a role.
    Role {
        /// The node.
        node: String,
        /// Its role from now on.
        role: Role,
        /// Why.
        reason: Reason,
    },
    /// A worker (a node with no replica) was raised to standby: it is to
    /// become a replica and join as a learner, which a [`Event::Joined`]
    /// records.
    Raised {
        /// The worker.
        node: String,
        /// Why.
        reason: String,
    },
    /// A plugin version became the active one.
    PluginActivated {
        /// The plugin.
        name: String,
        /// Its component's digest, `blake3:<hex>`.
        digest: String,
    },
}

/// A node's role in the raft group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// A voter: the control plane.
    Voter,
    /// A learner: a full replica on warm standby.
    Learner,
    /// A worker: no replica.
    Worker,
}

/// Why a role was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// Raised to keep the voter count at its target.
    Promote,
    /// Lowered: a surplus or dead voter.
    Demote,
    /// Kept from promotion: it flaps.
    Quarantine,
    /// Out of quarantine: stable again.
    Restore,
    /// A surplus standby, to become a worker (its removal follows).
    Lower,
}

/// One transition, as appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its position, from 0.
    pub sequence: u64,
    /// The hash of the entry before it ([`GENESIS_PREVIOUS`] for the first).
    pub previous: String,
    /// The raft term it was committed in.
    pub term: u64,
    /// The raft log index it was committed at.
    pub raft_index: u64,
    /// When, RFC 3339.
    pub time: String,
    /// What changed.
    pub event: Event,
    /// The leader's signature.
    pub leader: Signature,
    /// Other voters' signatures of the same entry.
    pub witnesses: Vec<Signature>,
}

/// A node's signature of an entry's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signer: its node name, or `<name>@<fingerprint>` naming which
    /// of the node's certificates (a node wiped and joined again has a new
    /// key) by [`fingerprint`].
    pub node: String,
    /// The Ed25519 signature, base64.
    pub signature: String,
}

/// What the signers of an entry sign: everything but the signatures, in
/// a fixed order.
#[derive(Serialize)]
struct Body<'a> {
    format: &'a str,
    sequence: u64,
    previous: &'a str,
    term: u64,
    raft_index: u64,
    time: &'a str,
    event: &'a Event,
}

impl Entry {
    /// An unsigned entry following `previous` (none for the first).
    pub fn after(previous: Option<&Entry>, term: u64, raft_index: u64, time: String, event: Event) -> Self {
        let (sequence, previous) = match previous {
            Some(entry) => (entry.sequence + 1, entry.hash()),
            None => (0, GENESIS_PREVIOUS.to_owned()),
        };
        let unsigned = Signature { node: String::new(), signature: String::new() };
        Self { sequence, previous, term, raft_index, time, event, leader: unsigned, witnesses: Vec::new() }
    }

    /// The bytes its signers sign.
    pub fn body(&self) -> Vec<u8> {
        let body = Body {
            format: FORMAT,
            sequence: self.sequence,
            previous: &self.previous,
            term: self.term,
            raft_index: self.raft_index,
            time: &self.time,
            event: &self.event,
        };
        serde_json::to_vec(&body).expect("an entry's body serializes")
    }

    /// Its hash, hex: what the next entry names as `previous`.
    pub fn hash(&self) -> String {
        blake3::hash(&self.body()).to_hex().to_string()
    }

    /// Signs it as the leader, with `key`.
    pub fn sign_as_leader(&mut self, key: &NodeKey) {
        self.leader = key.sign(self);
    }

    /// Adds `key`'s signature as a witness.
    pub fn witness(&mut self, key: &NodeKey) {
        let signature = key.sign(self);
        self.witnesses.push(signature);
    }

    /// `key`'s signature of it, as a witness gives it.
    pub fn signature_by(&self, key: &NodeKey) -> Signature {
        key.sign(self)
    }

    /// Checks that `signature` is of this entry, by the holder of
    /// `certificate_pem` (issued by the CA `ca_pem` for the signer it
    /// names).
    ///
    /// # Errors
    /// The certificate is not the signer's under the CA, or the signature
    /// does not verify.
    pub fn check_signature(&self, signature: &Signature, certificate_pem: &str, ca_pem: &str) -> Result<(), String> {
        let file = ChainFile {
            format: FORMAT.into(),
            certificates: BTreeMap::from([(signature.node.clone(), certificate_pem.to_owned())]),
            entries: Vec::new(),
        };
        let keys = signing_keys(&file, ca_pem).map_err(|e| e.message)?;
        let key = keys.get(&signature.node).ok_or("no key")?;
        let bytes = BASE64.decode(&signature.signature).map_err(|_| "a signature that is not base64".to_owned())?;
        UnparsedPublicKey::new(&ED25519, key)
            .verify(&self.body(), &bytes)
            .map_err(|_| format!("the signature of {} does not verify", signature.node))
    }
}

/// The fingerprint of a certificate (DER) in a signer id: the first 16
/// hex digits of its BLAKE3 hash.
pub fn fingerprint(certificate_der: &[u8]) -> String {
    blake3::hash(certificate_der).to_hex()[..16].to_owned()
}

/// The signer id of node `name` under the certificate `certificate_der`.
pub fn signer_id(name: &str, certificate_der: &[u8]) -> String {
    format!("{name}@{}", fingerprint(certificate_der))
}

/// The node name of a signer id.
pub fn signer_node(signer: &str) -> &str {
    signer.split_once('@').map_or(signer, |(name, _)| name)
}

/// A node's signing key: the Ed25519 key of its certificate.
pub struct NodeKey {
    node: String,
    key: Ed25519KeyPair,
}

impl NodeKey {
    /// The key of signer `node` (a node name or a signer id), from its
    /// PKCS#8 DER.
    ///
    /// # Errors
    /// Not an Ed25519 key.
    pub fn from_pkcs8(node: &str, pkcs8: &[u8]) -> Result<Self, ChainError> {
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| ChainError::new(None, format!("the key of {node} is not an Ed25519 key: {e}")))?;
        Ok(Self { node: node.to_owned(), key })
    }

    fn sign(&self, entry: &Entry) -> Signature {
        Signature { node: self.node.clone(), signature: BASE64.encode(self.key.sign(&entry.body()).as_ref()) }
    }
}

/// Why a chain does not verify: the first entry (or certificate) that
/// fails, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", entry.map(|e| format!("entry {e}: ")).unwrap_or_default())]
pub struct ChainError {
    /// The sequence of the first bad entry, when an entry is at fault.
    pub entry: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl ChainError {
    fn new(entry: Option<u64>, message: impl Into<String>) -> Self {
        Self { entry, message: message.into() }
    }
}

/// What a verified chain says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: usize,
    /// The voters after the last entry.
    pub voters: BTreeSet<String>,
    /// The hash of the last entry.
    pub head: Option<String>,
}

/// A certificate's PEM text as a chain file holds it (one form of it:
/// LF line endings, 64 columns); `None` when `text` is not PEM.
pub fn canonical_pem(text: &str) -> Option<String> {
    let parsed = pem::parse(text).ok()?;
    Some(pem::encode_config(&parsed, pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF)))
}

impl ChainFile {
    /// The file's text: indented JSON and a final newline, the one form
    /// [`verify_text`] accepts.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a chain file serializes");
        text.push('\n');
        text
    }
}

/// Checks a chain file's text against the cluster CA certificate
/// `ca_pem`: the text must be the file's own form ([`ChainFile::to_text`]),
/// so that no byte of it can change unnoticed, and the file must
/// [`verify`].
///
/// # Errors
/// Text that is not a chain file or not in its form (naming the first
/// byte that differs), or the first certificate or entry that fails.
pub fn verify_text(text: &str, ca_pem: &str) -> Result<Verified, ChainError> {
    let file: ChainFile =
        serde_json::from_str(text).map_err(|e| ChainError::new(None, format!("not a chain file: {e}")))?;
    let canonical = file.to_text();
    if canonical != text {
        let at =
            canonical.bytes().zip(text.bytes()).position(|(a, b)| a != b).unwrap_or(canonical.len().min(text.len()));
        let entry = file
            .entries
            .iter()
            .rev()
            .map(|entry| entry.sequence)
            .find(|sequence| text.find(&format!("\"sequence\": {sequence},")).is_some_and(|start| start < at));
        return Err(ChainError::new(entry, format!("the text is not the file's own form from byte {at} on")));
    }
    verify(&file, ca_pem)
}

/// Checks `file` against the cluster CA certificate `ca_pem`: every
/// signer's certificate issued by the CA for that node with an Ed25519
/// key; entries numbered from 0 without gaps, each naming the hash of the
/// one before it; each signed by its leader, a voter at that point, and
/// witnessed by at least quorum − 1 other voters; terms never going back.
///
/// # Errors
/// The first certificate or entry that fails, and why.
pub fn verify(file: &ChainFile, ca_pem: &str) -> Result<Verified, ChainError> {
    if file.format != FORMAT {
        return Err(ChainError::new(None, format!("format {:?} is not {FORMAT:?}", file.format)));
    }
    let keys = signing_keys(file, ca_pem)?;
    let mut voters: BTreeSet<String> = BTreeSet::new();
    let mut members: BTreeSet<String> = BTreeSet::new();
    let mut previous: Option<&Entry> = None;
    for entry in &file.entries {
        let fail = |message: String| ChainError::new(Some(entry.sequence), message);
        let expected = previous.map_or(0, |p| p.sequence + 1);
        if entry.sequence != expected {
            return Err(ChainError::new(
                Some(expected),
                format!("missing: the entry after it is numbered {}", entry.sequence),
            ));
        }
        let (hash_before, term_before) = previous.map_or((GENESIS_PREVIOUS.to_owned(), 0), |p| (p.hash(), p.term));
        if entry.previous != hash_before {
            return Err(fail(format!("names {} as the previous hash, not {hash_before}", entry.previous)));
        }
        if entry.term < term_before {
            return Err(fail(format!("term {} goes back from {term_before}", entry.term)));
        }
        if let Event::Genesis { voters: first } = &entry.event {
            if previous.is_some() {
                return Err(fail("a genesis after the first entry".into()));
            }
            voters = first.iter().cloned().collect();
            members = voters.clone();
        } else if previous.is_none() {
            return Err(fail("the first entry is not a genesis".into()));
        }
        check_signatures(entry, &voters, &keys).map_err(fail)?;
        apply(&entry.event, &mut voters, &mut members).map_err(fail)?;
        previous = Some(entry);
    }
    Ok(Verified { entries: file.entries.len(), voters, head: previous.map(Entry::hash) })
}

/// The Ed25519 public key of every node with a certificate in `file`,
/// each certificate checked against the CA.
fn signing_keys(file: &ChainFile, ca_pem: &str) -> Result<BTreeMap<String, Vec<u8>>, ChainError> {
    let ca_der = pem::parse(ca_pem).map_err(|e| ChainError::new(None, format!("the CA certificate: {e}")))?;
    let issued_by_ca =
        ca_verifier(ca_der.contents()).map_err(|e| ChainError::new(None, format!("the CA certificate: {e}")))?;
    let mut keys = BTreeMap::new();
    for (signer, certificate_pem) in &file.certificates {
        let fail = |reason: String| ChainError::new(None, format!("the certificate of {signer}: {reason}"));
        let der = pem::parse(certificate_pem).map_err(|e| fail(e.to_string()))?;
        let node = signer_node(signer);
        if let Some((_, filed)) = signer.split_once('@')
            && filed != fingerprint(der.contents())
        {
            return Err(fail(format!("its fingerprint is {}, not {filed}", fingerprint(der.contents()))));
        }
        if canonical_pem(certificate_pem).as_deref() != Some(certificate_pem.as_str()) {
            return Err(fail("not in canonical PEM form".into()));
        }
        // webpki reads the certificate as strict DER and checks that the
        // CA issued it (x509-parser, which reads the names and the key,
        // forgives some encodings that are not DER).
        let end_entity = rustls::pki_types::CertificateDer::from(der.contents().to_vec());
        issued_by_ca
            .verify_client_cert(&end_entity, &[], rustls::pki_types::UnixTime::now())
            .map_err(|e| fail(format!("not issued by the cluster CA as a node certificate: {e}")))?;
        let (_, certificate) = x509_parser::parse_x509_certificate(der.contents()).map_err(|e| fail(e.to_string()))?;
        let named = engenho_pki::node_name_of(&rustls::pki_types::CertificateDer::from(der.contents().to_vec()));
        if named.as_deref() != Some(node) {
            return Err(fail(format!("it is the certificate of {named:?}, not of node {node}")));
        }
        let key = certificate.public_key();
        if key.algorithm.algorithm.to_id_string() != ED25519_OID {
            return Err(fail("its key is not an Ed25519 key".into()));
        }
        keys.insert(signer.clone(), key.subject_public_key.data.to_vec());
    }
    Ok(keys)
}

/// A verifier of client certificates the CA `ca_der` issued.
fn ca_verifier(ca_der: &[u8]) -> Result<std::sync::Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(ca_der.to_vec())).map_err(|e| e.to_string())?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::server::WebPkiClientVerifier::builder_with_provider(std::sync::Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())
}

/// Checks the leader's and witnesses' signatures of `entry` against the
/// voters before it.
fn check_signatures(entry: &Entry, voters: &BTreeSet<String>, keys: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    let body = entry.body();
    let check = |signature: &Signature, as_what: &str| -> Result<(), String> {
        if !voters.contains(signer_node(&signature.node)) {
            return Err(format!("signed as {as_what} by {}, which is not a voter", signature.node));
        }
        let key = keys.get(&signature.node).ok_or_else(|| {
            format!("signed as {as_what} by {}, whose certificate is not in the file", signature.node)
        })?;
        let bytes = BASE64
            .decode(&signature.signature)
            .map_err(|_| format!("the {as_what} signature of {} is not base64", signature.node))?;
        UnparsedPublicKey::new(&ED25519, key)
            .verify(&body, &bytes)
            .map_err(|_| format!("the {as_what} signature of {} does not verify", signature.node))
    };
    check(&entry.leader, "leader")?;
    let mut seen = BTreeSet::from([signer_node(&entry.leader.node)]);
    for witness in &entry.witnesses {
        if !seen.insert(signer_node(&witness.node)) {
            return Err(format!("{} signs it twice", witness.node));
        }
        check(witness, "witness")?;
    }
    let needed = (voters.len() / 2 + 1).saturating_sub(1);
    if entry.witnesses.len() < needed {
        return Err(format!(
            "{} witness signatures of {} voters, {needed} needed",
            entry.witnesses.len(),
            voters.len()
        ));
    }
    Ok(())
}

/// The voters and members a chain's entries leave, as verifying them
/// would (signatures not checked): what the next entry's signers are
/// checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainState {
    /// The voters.
    pub voters: BTreeSet<String>,
    /// The members.
    pub members: BTreeSet<String>,
}

impl ChainState {
    /// The state after `entries`, oldest first.
    ///
    /// # Errors
    /// An entry that makes no sense where it stands.
    pub fn of(entries: &[Entry]) -> Result<Self, ChainError> {
        let mut state = Self::default();
        for entry in entries {
            state.apply(&entry.event).map_err(|message| ChainError::new(Some(entry.sequence), message))?;
        }
        Ok(state)
    }

    /// The state after `event`.
    ///
    /// # Errors
    /// An event that makes no sense here (a second join, a role for a
    /// non-member, no voter left).
    pub fn apply(&mut self, event: &Event) -> Result<(), String> {
        if let Event::Genesis { voters } = event {
            self.voters = voters.iter().cloned().collect();
            self.members = self.voters.clone();
        }
        apply(event, &mut self.voters, &mut self.members)
    }
}

/// The voters and members after `event`.
fn apply(event: &Event, voters: &mut BTreeSet<String>, members: &mut BTreeSet<String>) -> Result<(), String> {
    match event {
        Event::Genesis { .. } | Event::PluginActivated { .. } => {}
        Event::Raised { node, .. } => {
            if members.contains(node) {
                return Err(format!("{node} is raised from worker, but is a member already"));
            }
        }
        Event::Joined { node } => {
            if !members.insert(node.clone()) {
                return Err(format!("{node} joins, but is a member already"));
            }
        }
        Event::Removed { node, .. } => {
            if !members.remove(node) {
                return Err(format!("{node} is removed, but is not a member"));
            }
            voters.remove(node);
        }
        Event::Role { node, role, .. } => {
            if !members.contains(node) {
                return Err(format!("{node} is given a role, but is not a member"));
            }
            if *role == Role::Voter {
                voters.insert(node.clone());
            } else {
                voters.remove(node);
            }
        }
    }
    if voters.is_empty() {
        return Err("no voter is left".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A CA and Ed25519 node identities under it.
    struct Cluster {
        _dir: tempfile::TempDir,
        ca: engenho_pki::ClusterCa,
    }

    impl Cluster {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("temporary directory");
            let ca = engenho_pki::ClusterCa::create(dir.path()).expect("a CA");
            Self { _dir: dir, ca }
        }

        /// Node `name`'s key and certificate (PEM), issued as a joining
        /// node's request is.
        fn node(&self, name: &str) -> (NodeKey, String) {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("an Ed25519 key");
            let request = rcgen::CertificateParams::default().serialize_request(&key).expect("a request");
            let profile = engenho_pki::Profile::Node { name: name.into(), ip: "127.0.0.1".parse().expect("ip") };
            let certificate = self.ca.sign_request(&request.pem().expect("pem"), &profile).expect("issued");
            let certificate = canonical_pem(&certificate).expect("pem");
            (NodeKey::from_pkcs8(name, &key.serialize_der()).expect("key"), certificate)
        }
    }

    /// A cluster grown from n1 to three voters, then a plugin activated.
    fn grown(cluster: &Cluster) -> (ChainFile, Vec<NodeKey>) {
        let mut certificates = BTreeMap::new();
        let mut keys = Vec::new();
        for name in ["n1", "n2", "n3"] {
            let (key, certificate) = cluster.node(name);
            certificates.insert(name.to_owned(), certificate);
            keys.push(key);
        }
        let role = |node: &str| Event::Role { node: node.into(), role: Role::Voter, reason: Reason::Promote };
        // (event, witnesses by index into keys)
        let steps: Vec<(Event, &[usize])> = vec![
            (Event::Genesis { voters: vec!["n1".into()] }, &[]),
            (Event::Joined { node: "n2".into() }, &[]),
            (role("n2"), &[]),
            (Event::Joined { node: "n3".into() }, &[1]),
            (role("n3"), &[1]),
            (Event::PluginActivated { name: "scheduler".into(), digest: format!("blake3:{}", "ab".repeat(32)) }, &[2]),
        ];
        let mut entries: Vec<Entry> = Vec::new();
        for (index, (event, witnesses)) in steps.into_iter().enumerate() {
            let raft_index = 10 + index as u64;
            let mut entry = Entry::after(entries.last(), 2, raft_index, format!("2026-12-06T12:00:{index:02}Z"), event);
            entry.sign_as_leader(&keys[0]);
            for witness in witnesses {
                entry.witness(&keys[*witness]);
            }
            entries.push(entry);
        }
        (ChainFile { format: FORMAT.into(), certificates, entries }, keys)
    }

    /// Re-signs entry `at` and every one after it as its signers did, so
    /// that only what `at` changed can be at fault.
    fn resign(file: &mut ChainFile, at: usize, keys: &[NodeKey]) {
        let key = |name: &str| keys.iter().find(|k| k.node == name).expect("a key");
        for index in at..file.entries.len() {
            let previous = if index == 0 { GENESIS_PREVIOUS.to_owned() } else { file.entries[index - 1].hash() };
            let entry = &mut file.entries[index];
            entry.previous = previous;
            let leader = entry.leader.node.clone();
            entry.sign_as_leader(key(&leader));
            let witnesses: Vec<String> = entry.witnesses.drain(..).map(|w| w.node).collect();
            for witness in witnesses {
                entry.witness(key(&witness));
            }
        }
    }

    #[test]
    fn a_grown_cluster_s_chain_verifies_with_the_ca_alone() {
        // Goal: a chain written as the leader and witnesses sign it
        // verifies from its text and the CA certificate, and says who
        // votes at its end.
        let cluster = Cluster::new();
        let (file, _) = grown(&cluster);
        let verified = verify_text(&file.to_text(), cluster.ca.certificate_pem()).expect("verifies");
        assert_eq!(verified.entries, 6);
        assert_eq!(verified.voters, BTreeSet::from(["n1".into(), "n2".into(), "n3".into()]));
        assert_eq!(verified.head, file.entries.last().map(Entry::hash));

        // A byte changed by hand is named with the entry it falls in.
        let text = file.to_text();
        let changed = text.replacen("12:00:03Z", "12:00:04Z", 1);
        let error = verify_text(&changed, cluster.ca.certificate_pem()).expect_err("a changed time");
        assert_eq!(error.entry, Some(3), "{error}");
        let changed = text.replacen("BEGIN CERTIFICATE", "BEGIN CERTIFICATF", 1);
        assert_eq!(verify_text(&changed, cluster.ca.certificate_pem()).expect_err("a changed certificate").entry, None);
    }

    #[test]
    fn tampering_is_named_at_the_first_bad_entry() {
        // Goal: a changed event, a removed entry, a non-voter's or a
        // stranger's signature, a forged witness, too few witnesses and a
        // certificate of another CA are each refused, naming the entry or
        // certificate at fault.
        let cluster = Cluster::new();
        let ca = cluster.ca.certificate_pem().to_owned();
        let (file, keys) = grown(&cluster);

        let mut changed = file.clone();
        changed.entries[3].event = Event::Joined { node: "n9".into() };
        let error = verify(&changed, &ca).expect_err("a changed event");
        assert_eq!(error.entry, Some(3), "{error}");
        assert!(error.message.contains("signature of n1 does not verify"), "{error}");

        let mut removed = file.clone();
        removed.entries.remove(2);
        let error = verify(&removed, &ca).expect_err("a removed entry");
        assert_eq!(error.entry, Some(2), "{error}");
        assert!(error.message.contains("missing"), "{error}");

        let mut relinked = removed.clone();
        for (sequence, entry) in relinked.entries.iter_mut().enumerate() {
            entry.sequence = sequence as u64;
        }
        resign(&mut relinked, 2, &keys);
        let error = verify(&relinked, &ca).expect_err("a history without n2's promotion");
        assert_eq!(error.entry, Some(2), "{error}");
        assert!(error.message.contains("by n2, which is not a voter"), "{error}");

        let mut few = file.clone();
        few.entries[4].witnesses.clear();
        resign(&mut few, 5, &keys);
        let error = verify(&few, &ca).expect_err("no witness");
        assert_eq!(error.entry, Some(4), "{error}");
        assert!(error.message.contains("0 witness signatures of 2 voters, 1 needed"), "{error}");

        let mut forged = file.clone();
        forged.entries[4].witnesses[0] =
            Signature { node: "n2".into(), signature: keys[0].sign(&forged.entries[4]).signature };
        let error = verify(&forged, &ca).expect_err("the leader signing as its witness");
        assert_eq!(error.entry, Some(4), "{error}");
        assert!(error.message.contains("witness signature of n2 does not verify"), "{error}");

        let (stranger, stranger_certificate) = cluster.node("n7");
        let mut intruded = file.clone();
        intruded.certificates.insert("n7".into(), stranger_certificate);
        intruded.entries[5].leader = stranger.sign(&intruded.entries[5]);
        let error = verify(&intruded, &ca).expect_err("a member of the CA that is no voter");
        assert_eq!(error.entry, Some(5), "{error}");
        assert!(error.message.contains("by n7, which is not a voter"), "{error}");

        let elsewhere = Cluster::new();
        let (_, foreign) = elsewhere.node("n1");
        let mut foreign_file = file.clone();
        foreign_file.certificates.insert("n1".into(), foreign);
        let error = verify(&foreign_file, &ca).expect_err("another CA's certificate");
        assert_eq!(error.entry, None);
        assert!(error.message.contains("certificate of n1: not issued by the cluster CA"), "{error}");

        let mut misnamed = file.clone();
        let n2 = misnamed.certificates["n2"].clone();
        misnamed.certificates.insert("n1".into(), n2);
        let error = verify(&misnamed, &ca).expect_err("n2's certificate under n1's name");
        assert!(error.message.contains("not of node n1"), "{error}");
    }

    #[test]
    fn a_node_joined_again_with_a_new_key_signs_under_a_new_signer_id() {
        // Goal: signers named `<node>@<fingerprint>` let one node name sign
        // with two certificates (wiped, joined again), each checked
        // against its own fingerprint; a certificate filed under another's
        // fingerprint is refused, and a witness checks one signature alone.
        let cluster = Cluster::new();
        let ca = cluster.ca.certificate_pem().to_owned();
        let signer = |name: &str| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
            let request = rcgen::CertificateParams::default().serialize_request(&key).expect("request");
            let profile = engenho_pki::Profile::Node { name: name.into(), ip: "127.0.0.1".parse().expect("ip") };
            let issued = cluster.ca.sign_request(&request.pem().expect("pem"), &profile).expect("issued");
            let issued = canonical_pem(&issued).expect("pem");
            let issued_der = pem::parse(&issued).expect("pem").contents().to_vec();
            let id = signer_id(name, &issued_der);
            (NodeKey::from_pkcs8(&id, &key.serialize_der()).expect("key"), id, issued)
        };
        let (first, first_id, first_certificate) = signer("n1");
        let (again, again_id, again_certificate) = signer("n1");
        assert_ne!(first_id, again_id);
        assert_eq!(signer_node(&again_id), "n1");
        let genesis = |key: &NodeKey| {
            let mut entry =
                Entry::after(None, 1, 1, "2026-12-07T00:00:00Z".into(), Event::Genesis { voters: vec!["n1".into()] });
            entry.sign_as_leader(key);
            entry
        };
        let mut entries = vec![genesis(&first)];
        let mut next =
            Entry::after(entries.last(), 2, 2, "2026-12-07T00:00:01Z".into(), Event::Joined { node: "n2".into() });
        next.sign_as_leader(&again);
        entries.push(next);
        let certificates = BTreeMap::from([
            (first_id.clone(), first_certificate.clone()),
            (again_id.clone(), again_certificate.clone()),
        ]);
        let file = ChainFile { format: FORMAT.into(), certificates, entries };
        verify(&file, &ca).expect("both keys of n1 verify");

        let mut swapped = file.clone();
        swapped.certificates.insert(first_id.clone(), again_certificate.clone());
        let error = verify(&swapped, &ca).expect_err("a certificate under another fingerprint");
        assert!(error.message.contains("its fingerprint is"), "{error}");

        let entry = &file.entries[0];
        entry.check_signature(&entry.leader, &first_certificate, &ca).expect("the leader's signature");
        let refused = entry.check_signature(&entry.leader, &again_certificate, &ca).expect_err("another key");
        assert!(refused.contains("fingerprint"), "{refused}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn no_byte_of_the_text_changes_unnoticed(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            // Goal: whichever byte of an exported chain changes, to
            // whatever value, verification fails.
            let cluster = shared_cluster();
            let text = shared_text();
            let mut bytes = text.as_bytes().to_vec();
            let index = at.index(bytes.len());
            prop_assume!(bytes[index] != byte);
            bytes[index] = byte;
            let Ok(changed) = String::from_utf8(bytes) else { return Ok(()) };
            prop_assert!(verify_text(&changed, cluster.ca.certificate_pem()).is_err());
        }
    }

    fn shared_cluster() -> &'static Cluster {
        static CLUSTER: std::sync::OnceLock<Cluster> = std::sync::OnceLock::new();
        CLUSTER.get_or_init(Cluster::new)
    }

    fn shared_text() -> &'static str {
        static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| grown(shared_cluster()).0.to_text())
    }
}
