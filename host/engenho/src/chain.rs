//! revoada's attested chain in a running cluster. The leader's autopilot
//! appends an entry for every role assignment (a genesis naming the first
//! voters, then joins, promotions, demotions, quarantines, restorations,
//! removals): it signs the entry and asks the other voters of the chain
//! (the voters before the entry) to witness it over the peer channel; with
//! at least quorum − 1 witness signatures the entry is written to the
//! store at the next sequence number, only if no entry holds that number
//! yet. A voter witnesses an entry only when the raft leader of the
//! current term signed it and it continues the chain as the voter reads
//! it, after catching up with the leader. Every node files its
//! certificate in the store at start, so that `engenho mesh chain export`
//! writes a file that `engenho mesh chain verify` checks with the cluster
//! CA alone.

use std::collections::BTreeMap;

use engenho_chain::{ChainFile, ChainState, Entry, Event, FORMAT, NodeKey, Signature, signer_id, signer_node};
use engenho_mesh::{MemberProgress, Node};
use engenho_pki::Identity;
use engenho_store::{Command, Compare, CompareResult, CompareTarget, KeyRange, Operation, Outcome, PutRequest};
use engenho_store::{RangeRequest, TxnRequest};
use futures::future::BoxFuture;

/// Prefix of the store keys of chain entries, by sequence.
const ENTRIES_PREFIX: &str = "/engenho/mesh/chain/entries/";

/// Prefix of the store keys of signers' certificates, by signer id.
const CERTIFICATES_PREFIX: &str = "/engenho/mesh/chain/certificates/";

/// Most entries read at once.
const ENTRIES_MAX: i64 = 1_000_000;

/// This node's part in the chain: its signing key and certificate.
#[derive(Clone)]
pub struct Chain {
    node: Node,
    key: std::sync::Arc<NodeKey>,
    signer: String,
    certificate_pem: String,
    ca_pem: String,
}

impl Chain {
    /// The chain as `node` (holding `identity`, under the CA `ca_pem`)
    /// takes part in it.
    ///
    /// # Errors
    /// The identity has no certificate or no Ed25519 PKCS#8 key.
    pub fn new(node: Node, identity: &Identity, ca_pem: &str) -> Result<Self, String> {
        let name = node.info().name;
        let certificate = identity.chain().first().ok_or("the node has no certificate")?.to_vec();
        let rustls::pki_types::PrivateKeyDer::Pkcs8(key) = identity.private_key() else {
            return Err("the node key is not PKCS#8".into());
        };
        let signer = signer_id(&name, &certificate);
        let key = NodeKey::from_pkcs8(&signer, key.secret_pkcs8_der()).map_err(|e| e.message)?;
        let certificate_pem = pem::encode_config(
            &pem::Pem::new("CERTIFICATE", certificate),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        Ok(Self { node, key: std::sync::Arc::new(key), signer, certificate_pem, ca_pem: ca_pem.to_owned() })
    }

    /// Files this node's certificate under its signer id (once).
    ///
    /// # Errors
    /// The cluster did not take the write.
    pub async fn file_certificate(&self) -> Result<(), String> {
        let key = format!("{CERTIFICATES_PREFIX}{}", self.signer).into_bytes();
        self.put_if_absent(key, self.certificate_pem.clone().into_bytes()).await.map(|_| ())
    }

    /// The entries as this node has applied them, oldest first.
    ///
    /// # Errors
    /// The store could not be read, or holds an entry that does not decode.
    pub fn entries(&self) -> Result<Vec<Entry>, String> {
        self.range(ENTRIES_PREFIX)?
            .into_iter()
            .map(|(_, value)| serde_json::from_slice(&value).map_err(|e| format!("a stored chain entry: {e}")))
            .collect()
    }

    /// The chain as a file: its entries and its signers' certificates.
    ///
    /// # Errors
    /// The store could not be read, or a signer's certificate is missing.
    pub fn export(&self) -> Result<ChainFile, String> {
        let entries = self.entries()?;
        let filed: BTreeMap<String, String> = self
            .range(CERTIFICATES_PREFIX)?
            .into_iter()
            .map(|(key, value)| {
                (key[CERTIFICATES_PREFIX.len()..].to_owned(), String::from_utf8_lossy(&value).into_owned())
            })
            .collect();
        let mut certificates = BTreeMap::new();
        for entry in &entries {
            for signer in std::iter::once(&entry.leader).chain(&entry.witnesses) {
                let certificate =
                    filed.get(&signer.node).ok_or_else(|| format!("no certificate of {}", signer.node))?;
                certificates.insert(signer.node.clone(), certificate.clone());
            }
        }
        Ok(ChainFile { format: FORMAT.into(), certificates, entries })
    }

    /// Appends `event` as the leader of `term`, witnessed by the chain's
    /// voters among `members`.
    ///
    /// # Errors
    /// Too few voters witnessed it, or the cluster did not take the write
    /// (another entry took its place: the caller tries again).
    pub async fn append(&self, event: Event, term: u64, members: &[MemberProgress]) -> Result<(), String> {
        let entries = self.entries()?;
        let mut state = ChainState::of(&entries).map_err(|e| e.message)?;
        let before = state.clone();
        state.apply(&event)?;
        // The witnesses are the voters before the entry (a genesis names
        // its own).
        if !matches!(event, Event::Genesis { .. }) {
            state = before;
        }
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let index = self.node.raft_status().applied_index;
        let mut entry = Entry::after(entries.last(), term, index, time, event);
        entry.sign_as_leader(&self.key);
        let own = signer_node(&self.signer).to_owned();
        let needed = (state.voters.len() / 2 + 1).saturating_sub(1);
        let request = serde_json::to_vec(&entry).expect("an entry serializes");
        let asks = state.voters.iter().filter(|voter| **voter != own).filter_map(|voter| {
            let member = members.iter().find(|m| m.info.name == *voter)?;
            let (node, request) = (self.node.clone(), request.clone());
            let peer = member.info.peer_addr.clone();
            Some(async move { node.ask_witness(&peer, request).await })
        });
        let answers = futures::future::join_all(asks).await;
        let mut refusals = Vec::new();
        for answer in answers {
            let signature = answer.and_then(|bytes| {
                serde_json::from_slice::<Signature>(&bytes).map_err(|e| format!("a witness answer: {e}"))
            });
            match signature {
                Ok(signature) if entry.witnesses.len() < needed => entry.witnesses.push(signature),
                Ok(_) => {}
                Err(refused) => refusals.push(refused),
            }
        }
        if entry.witnesses.len() < needed {
            return Err(format!(
                "entry {} has {} of {needed} witness signatures: {}",
                entry.sequence,
                entry.witnesses.len(),
                refusals.join("; ")
            ));
        }
        let key = format!("{ENTRIES_PREFIX}{:016x}", entry.sequence).into_bytes();
        let value = serde_json::to_vec(&entry).expect("an entry serializes");
        match self.put_if_absent(key, value).await? {
            true => Ok(()),
            false => Err(format!("entry {} was appended by another leader", entry.sequence)),
        }
    }

    /// The keys and values under `prefix`, as applied here.
    fn range(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
        let request =
            RangeRequest { range: KeyRange::prefix(prefix.as_bytes()), limit: ENTRIES_MAX, ..RangeRequest::default() };
        let (_, answer) = self.node.store().range(&request).map_err(|e| format!("reading {prefix}: {e}"))?;
        Ok(answer.kvs.into_iter().map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.value)).collect())
    }

    /// Writes `value` at `key` unless the key exists; whether it wrote.
    async fn put_if_absent(&self, key: Vec<u8>, value: Vec<u8>) -> Result<bool, String> {
        let txn = TxnRequest {
            compare: vec![Compare {
                range: KeyRange::single(key.clone()),
                result: CompareResult::Equal,
                target: CompareTarget::Version(0),
            }],
            success: vec![Operation::Put(PutRequest { key, value, ..PutRequest::default() })],
            failure: vec![],
        };
        let applied = self.node.write(Command::Txn(txn)).await.map_err(|e| e.to_string())?;
        match applied.outcome {
            Ok(Outcome::Txn(result)) => Ok(result.succeeded),
            Ok(other) => Err(format!("unexpected answer to a transaction: {other:?}")),
            Err(error) => Err(error.to_string()),
        }
    }
}

impl engenho_mesh::WitnessHandler for Chain {
    fn witness(&self, request: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let chain = self.clone();
        Box::pin(async move {
            let entry: Entry = serde_json::from_slice(&request).map_err(|e| format!("not a chain entry: {e}"))?;
            chain.check_witnessable(&entry).await?;
            Ok(serde_json::to_vec(&entry.signature_by(&chain.key)).expect("a signature serializes"))
        })
    }
}

impl Chain {
    /// Whether this node may witness `entry`: it votes, the entry is
    /// signed by the raft leader of the current term and continues the
    /// chain as this node reads it once caught up.
    async fn check_witnessable(&self, entry: &Entry) -> Result<(), String> {
        self.node.linearize().await.map_err(|e| format!("catching up with the leader: {e}"))?;
        let status = self.node.raft_status();
        let members = self.node.members();
        let me = members.iter().find(|m| m.id == status.id);
        if me.is_none_or(|m| m.is_learner) {
            return Err(format!("{} does not vote", self.node.info().name));
        }
        let leader = members.iter().find(|m| Some(m.id) == status.leader).ok_or("no leader is known")?;
        if entry.term != status.term || signer_node(&entry.leader.node) != leader.info.name {
            return Err(format!(
                "entry {} is signed by {} in term {}, but {} leads in term {}",
                entry.sequence, entry.leader.node, entry.term, leader.info.name, status.term
            ));
        }
        let key = format!("{CERTIFICATES_PREFIX}{}", entry.leader.node);
        let certificate = self
            .range(&key)?
            .into_iter()
            .find(|(filed, _)| *filed == key)
            .map(|(_, value)| String::from_utf8_lossy(&value).into_owned())
            .ok_or_else(|| format!("no certificate of {} is filed", entry.leader.node))?;
        entry.check_signature(&entry.leader, &certificate, &self.ca_pem)?;
        let entries = self.entries()?;
        let expected =
            Entry::after(entries.last(), entry.term, entry.raft_index, entry.time.clone(), entry.event.clone());
        if (entry.sequence, &entry.previous) != (expected.sequence, &expected.previous) {
            return Err(format!(
                "entry {} after {} does not continue the chain, whose head is entry {} ({})",
                entry.sequence,
                entry.previous,
                expected.sequence.saturating_sub(1),
                expected.previous
            ));
        }
        let mut state = ChainState::of(&entries).map_err(|e| e.message)?;
        state.apply(&entry.event)?;
        Ok(())
    }
}
