//! revoada's autopilot loop. Every node runs it; it acts only while its
//! node leads raft. Each round it takes raft's view of the group (with a
//! fresh quorum confirmation) and gossip's liveness of every node, asks
//! [`engenho_autopilot::plan`] for the next role change, makes it, and
//! records it: a role record in the store (`/engenho/mesh/roles/`), an
//! entry of the attested chain ([`crate::chain`]), an Event on the Node
//! (as `system:serviceaccount:kube-system:engenho-autopilot`) and a log
//! line. With nothing to change among the members, it asks
//! [`engenho_autopilot::plan_raise`] whether a worker must become a
//! replica: a raise is a record under `/engenho/mesh/raises/` (what lets
//! the worker obtain a replica's credentials), the annotation
//! `engenho.io/raise: standby` on its Node (what the worker watches for),
//! an Event and a chain entry; it is cleared once the worker has joined,
//! or after [`engenho_autopilot::Policy::raise_timeout`]. Like raft's own lease and compaction loops, it works below the
//! Kubernetes API: its records are raft-level state under `/engenho/`,
//! written through raft; only its Events go through the API.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engenho_api::kube::{Event, EventRecorder, Regarding};
use engenho_autopilot::{
    Action, LivenessTracker, MemberView, Policy, ROLE_RECORDS_PREFIX, RaiseRecord, Role, RoleRecord, View, WorkerView,
    role_record_key,
};
use engenho_mesh::{LeaderView, MembershipChange, Node};
use engenho_store::{Command, KeyRange, PutRequest, RangeRequest};
use tokio::sync::watch;

/// The loop's name and service account.
pub const NAME: &str = "engenho-autopilot";

/// A round every this long.
const ROUND_INTERVAL: Duration = Duration::from_millis(250);

/// Pause after a change raft refused, before planning again.
const REFUSED_PAUSE: Duration = Duration::from_secs(1);

/// Most role records read (one per member ever seen).
const ROLE_RECORDS_MAX: i64 = 4096;

/// Gossip's liveness of every node, as this node has followed it.
pub type SharedTracker = Arc<Mutex<LivenessTracker>>;

/// The nodes gossip says are workers, by name.
pub type SharedWorkers = Arc<Mutex<std::collections::BTreeSet<String>>>;

/// Why a lowered member was removed.
pub const LOWERED: &str = "lowered to a worker";

/// The annotation on a worker's Node that asks it to become a replica.
pub const RAISE_ANNOTATION: &str = "engenho.io/raise";

/// Most raise records read.
const RAISE_RECORDS_MAX: i64 = 1024;

/// The autopilot of one node.
pub struct Autopilot {
    node: Node,
    tracker: SharedTracker,
    workers: SharedWorkers,
    policy: Policy,
    events: EventRecorder,
    rounds: Arc<AtomicU64>,
    chain: Option<crate::chain::Chain>,
    client: engenho_api::kube::ApiClient,
    /// Chain events recorded but not yet appended, oldest first.
    unchained: Mutex<VecDeque<engenho_chain::Event>>,
    /// When the chain was last brought to raft's membership and the
    /// Plugins' activations.
    caught_up_at: Mutex<Option<Instant>>,
}

/// How often the chain is brought to raft's membership and the Plugins'
/// activations when no event waits.
const CATCH_UP_INTERVAL: Duration = Duration::from_secs(1);

/// Chain events waiting to be appended, at most; older ones are dropped
/// (and the chain then catches up from raft's membership).
const UNCHAINED_MAX: usize = 1024;

impl Autopilot {
    /// The autopilot of `node`, deciding with `policy` from raft's view and
    /// gossip's (`tracker`, `workers`), writing its Events with `events`
    /// and reading Plugins and marking Nodes with `client` (both as this
    /// loop), appending to `chain` where the node can sign, counting its
    /// rounds in `rounds`.
    pub fn new(
        node: Node,
        (tracker, workers): (SharedTracker, SharedWorkers),
        policy: Policy,
        events: EventRecorder,
        rounds: Arc<AtomicU64>,
        chain: Option<crate::chain::Chain>,
        client: engenho_api::kube::ApiClient,
    ) -> Self {
        let (unchained, caught_up_at) = (Mutex::default(), Mutex::default());
        Self { node, tracker, workers, policy, events, rounds, chain, client, unchained, caught_up_at }
    }

    /// Runs rounds until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(ROUND_INTERVAL) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            if let Err(error) = self.round().await {
                tracing::warn!(%error, "autopilot");
                tokio::select! {
                    () = tokio::time::sleep(REFUSED_PAUSE) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
            }
        }
    }

    /// One round: records what is unrecorded, then plans and makes at
    /// most one change.
    async fn round(&self) -> Result<(), String> {
        let Some(raft) = self.node.leader_view().await else { return Ok(()) };
        if raft.quorum_ack_age.is_none() {
            // A leader no quorum confirms (cut off, or deposed meanwhile)
            // neither records nor decides anything.
            return Ok(());
        }
        self.append_to_chain(&raft).await?;
        let records = self.records()?;
        self.record_unrecorded(&raft, &records).await?;
        self.append_to_chain(&raft).await?;
        if self.remove_lowered(&raft, &records).await? {
            return Ok(());
        }
        let raises = self.settle_raises(&raft).await?;
        let view = self.view(&raft, &records, &raises);
        let decision = engenho_autopilot::plan(&view, &self.policy);
        self.rounds.fetch_add(1, Ordering::Relaxed);
        let Some(decision) = decision else {
            return match engenho_autopilot::plan_raise(&view, &self.policy) {
                Some(raise) => self.raise(raise, &raft).await,
                None => Ok(()),
            };
        };
        let member = raft.members.iter().find(|m| m.id == decision.node).expect("a decision names a member");
        let (name, was_voter) = (member.info.name.clone(), member.voter);
        tracing::info!(node = %name, action = decision.action.as_str(), reason = %decision.reason, "autopilot");
        let change = match decision.action {
            Action::Promote => Some(MembershipChange::Promote),
            Action::Demote => Some(MembershipChange::Demote),
            Action::Remove => Some(MembershipChange::Remove),
            Action::Quarantine | Action::Restore | Action::Join | Action::Lower => None,
        };
        if let Some(change) = change {
            self.node.change_role(decision.node, change).await.map_err(|e| format!("{name}: {e}"))?;
        }
        let previous = records.get(&decision.node);
        let role = match decision.action {
            Action::Promote => Role::Voter,
            Action::Demote => Role::Learner,
            Action::Remove => Role::Removed,
            _ if was_voter => Role::Voter,
            _ => Role::Learner,
        };
        let record = RoleRecord {
            id: decision.node,
            name,
            role,
            action: decision.action,
            reason: decision.reason,
            quarantined: match decision.action {
                Action::Quarantine => true,
                Action::Restore => false,
                _ => previous.is_some_and(|r| r.quarantined),
            },
            at_ms: unix_ms(),
            shifted_at_ms: if change.is_some() { Some(unix_ms()) } else { previous.and_then(|r| r.shifted_at_ms) },
            term: raft.term,
        };
        self.record(&record).await?;
        let raft = self.node.leader_view().await.unwrap_or(raft);
        self.append_to_chain(&raft).await
    }

    /// Appends the chain events waiting, oldest first: a genesis first on a
    /// new chain; when none wait, the events that bring the chain's members
    /// and voters to raft's (a new leader's predecessor may have stopped
    /// before appending its own).
    async fn append_to_chain(&self, raft: &LeaderView) -> Result<(), String> {
        let Some(chain) = &self.chain else { return Ok(()) };
        let entries = chain.entries()?;
        let voters = || raft.members.iter().filter(|m| m.voter).map(|m| m.info.name.clone()).collect();
        let mut waiting: VecDeque<engenho_chain::Event> =
            std::mem::take(&mut *self.unchained.lock().expect("unchained events lock"));
        if entries.is_empty() {
            waiting.retain(|event| !matches!(event, engenho_chain::Event::Joined { .. }));
            waiting.push_front(engenho_chain::Event::Genesis { voters: voters() });
        } else if waiting.is_empty() && self.catch_up_due() {
            let state = engenho_chain::ChainState::of(&entries).map_err(|e| e.message)?;
            waiting.extend(catch_up(&state, raft));
            waiting.extend(self.plugin_activations(&entries).await?);
        }
        let mut state = engenho_chain::ChainState::of(&entries).map_err(|e| e.message)?;
        while let Some(event) = waiting.front().cloned() {
            let mut after = state.clone();
            if after.apply(&event).is_err() || (after == state && !recorded_even_unchanged(&event)) {
                // Already in the chain (appended by the catch-up, or by
                // another leader): nothing to add.
                waiting.pop_front();
                continue;
            }
            if let Err(error) = chain.append(event, raft.term, &raft.members).await {
                let mut unchained = self.unchained.lock().expect("unchained events lock");
                waiting.extend(unchained.drain(..));
                *unchained = waiting;
                return Err(format!("appending to the chain: {error}"));
            }
            waiting.pop_front();
            state = after;
        }
        Ok(())
    }

    /// The planner's view: raft's, with gossip's liveness, the role
    /// records and the raises under way.
    fn view(&self, raft: &LeaderView, records: &BTreeMap<u64, RoleRecord>, raises: &[RaiseRecord]) -> View {
        let now = Instant::now();
        let wall = unix_ms();
        let tracker = self.tracker.lock().expect("liveness tracker lock");
        let workers = self
            .workers
            .lock()
            .expect("worker list lock")
            .iter()
            .filter(|name| !raft.members.iter().any(|m| m.info.name == **name))
            .map(|name| WorkerView {
                name: name.clone(),
                gossip: tracker.liveness(name, now),
                flapping: tracker.flapping(name, now),
                raised: raises
                    .iter()
                    .find(|r| r.name == *name)
                    .map(|r| Duration::from_millis(wall.saturating_sub(r.at_ms))),
            })
            .collect();
        let members = raft
            .members
            .iter()
            .map(|m| {
                let record = records.get(&m.id);
                MemberView {
                    id: m.id,
                    voter: m.voter,
                    leader: m.leader,
                    raft_silent: m.raft_silent,
                    lag: m.lag,
                    gossip: tracker.liveness(&m.info.name, now),
                    flapping: tracker.flapping(&m.info.name, now),
                    quarantined: record.is_some_and(|r| r.quarantined),
                    since_shift: record
                        .and_then(|r| r.shifted_at_ms)
                        .map(|at| Duration::from_millis(wall.saturating_sub(at))),
                    lowering: record.is_some_and(|r| r.action == Action::Lower),
                }
            })
            .collect();
        View { quorum_ack_age: raft.quorum_ack_age, members, workers }
    }

    /// Removes a member being lowered once it gossips as a worker (it gave
    /// up its replica), or once it has failed; whether it removed one.
    async fn remove_lowered(&self, raft: &LeaderView, records: &BTreeMap<u64, RoleRecord>) -> Result<bool, String> {
        let workers = self.workers.lock().expect("worker list lock").clone();
        let now = Instant::now();
        for member in &raft.members {
            let Some(record) = records.get(&member.id).filter(|r| r.action == Action::Lower) else { continue };
            let gossip = self.tracker.lock().expect("liveness tracker lock").liveness(&member.info.name, now);
            let dead = matches!(gossip, engenho_autopilot::Liveness::Dead { for_ } if for_ >= self.policy.dead_grace);
            let gone = workers.contains(&member.info.name) || (dead && member.raft_silent >= self.policy.dead_grace);
            if member.voter || member.leader || !gone {
                continue;
            }
            self.node
                .change_role(member.id, MembershipChange::Remove)
                .await
                .map_err(|e| format!("{}: {e}", member.info.name))?;
            tracing::info!(node = %member.info.name, action = "remove", reason = LOWERED, "autopilot");
            let removed = RoleRecord {
                role: Role::Removed,
                action: Action::Remove,
                reason: LOWERED.into(),
                at_ms: unix_ms(),
                shifted_at_ms: Some(unix_ms()),
                term: raft.term,
                ..record.clone()
            };
            self.record(&removed).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The raises under way: each raise record, cleared (with its Node's
    /// annotation) once its worker is a member or the raise timed out.
    async fn settle_raises(&self, raft: &LeaderView) -> Result<Vec<RaiseRecord>, String> {
        let request = RangeRequest {
            range: KeyRange::prefix(engenho_mesh::RAISES_PREFIX.as_bytes()),
            limit: RAISE_RECORDS_MAX,
            ..RangeRequest::default()
        };
        let (_, answer) = self.node.store().range(&request).map_err(|e| format!("reading raises: {e}"))?;
        let mut pending = Vec::new();
        for kv in &answer.kvs {
            let Ok(raise) = RaiseRecord::decode(&kv.value) else { continue };
            let joined = raft.members.iter().any(|m| m.info.name == raise.name);
            let expired = unix_ms().saturating_sub(raise.at_ms) >= self.policy.raise_timeout.as_millis() as u64;
            if !joined && !expired {
                pending.push(raise);
                continue;
            }
            let delete = engenho_store::DeleteRequest { range: KeyRange::single(kv.key.clone()), prev_kv: false };
            self.node
                .write(Command::Delete(delete))
                .await
                .map_err(|e| format!("clearing {}'s raise: {e}", raise.name))?;
            self.annotate(&raise.name, serde_json::Value::Null).await;
            if expired && !joined {
                tracing::warn!(node = %raise.name, "autopilot: the raised worker did not join in time");
            }
        }
        Ok(pending)
    }

    /// Raises a worker to standby: records the raise (what lets it obtain a
    /// replica's credentials), marks its Node, reports it.
    async fn raise(&self, raise: engenho_autopilot::Raise, raft: &LeaderView) -> Result<(), String> {
        tracing::info!(node = %raise.worker, action = "raise", reason = %raise.reason, "autopilot");
        let record =
            RaiseRecord { name: raise.worker.clone(), reason: raise.reason, at_ms: unix_ms(), term: raft.term };
        let put = PutRequest {
            key: engenho_mesh::raise_key(&record.name).into_bytes(),
            value: record.encode(),
            ..PutRequest::default()
        };
        self.node.write(Command::Put(put)).await.map_err(|e| format!("recording {}'s raise: {e}", record.name))?;
        self.annotate(&record.name, serde_json::json!("standby")).await;
        self.events.record(Event {
            regarding: node_regarding(&record.name),
            warning: false,
            reason: "Raised".into(),
            message: format!("{} is raised from worker to standby: {}", record.name, record.reason),
        });
        let event = engenho_chain::Event::Raised { node: record.name.clone(), reason: record.reason.clone() };
        self.unchained.lock().expect("unchained events lock").push_back(event);
        self.append_to_chain(raft).await
    }

    /// Sets (or, with `null`, removes) the raise annotation on Node `name`;
    /// a Node that cannot be marked now is marked by a later round.
    async fn annotate(&self, name: &str, value: serde_json::Value) {
        let patch = serde_json::json!({"metadata": {"annotations": {RAISE_ANNOTATION: value}}});
        let path = format!("/api/v1/nodes/{name}");
        let patched = self
            .client
            .send(http::Method::PATCH, &path, "application/merge-patch+json", patch.to_string().into_bytes())
            .await;
        if let Err(refused) = patched
            && refused.code != 404
        {
            tracing::warn!(node = %name, %refused, "autopilot: could not mark the Node");
        }
    }

    /// Records members gone from raft as removed (first: a wiped node
    /// joins again under its name after its old entry is removed), then
    /// members without a record (joined) or whose record says another role
    /// than raft (a leader stopped between a change and its record).
    async fn record_unrecorded(&self, raft: &LeaderView, records: &BTreeMap<u64, RoleRecord>) -> Result<(), String> {
        for (id, previous) in records {
            if previous.role != Role::Removed && !raft.members.iter().any(|m| m.id == *id) {
                let record = RoleRecord {
                    role: Role::Removed,
                    action: Action::Remove,
                    reason: "no longer a member".into(),
                    at_ms: unix_ms(),
                    term: raft.term,
                    ..previous.clone()
                };
                self.record(&record).await?;
            }
        }
        for member in &raft.members {
            let role = if member.voter { Role::Voter } else { Role::Learner };
            let previous = records.get(&member.id);
            if previous.is_some_and(|r| r.role == role) {
                continue;
            }
            let (action, reason) = match previous {
                None if member.leader => (Action::Join, "bootstrapped the cluster".to_owned()),
                None => (Action::Join, "joined as a learner".to_owned()),
                Some(_) if member.voter => (Action::Promote, "found voting without a record".to_owned()),
                Some(_) => (Action::Demote, "found not voting without a record".to_owned()),
            };
            let record = RoleRecord {
                id: member.id,
                name: member.info.name.clone(),
                role,
                action,
                reason,
                quarantined: previous.is_some_and(|r| r.quarantined),
                at_ms: unix_ms(),
                shifted_at_ms: previous.and_then(|r| r.shifted_at_ms),
                term: raft.term,
            };
            self.record(&record).await?;
        }
        Ok(())
    }

    /// The role records in the store, by member id (as this node applied
    /// them; the leader's own writes are applied before they return).
    fn records(&self) -> Result<BTreeMap<u64, RoleRecord>, String> {
        read_records(&self.node).map(|records| records.into_iter().map(|r| (r.id, r)).collect())
    }

    /// Writes `record` and reports it as an Event on its Node.
    async fn record(&self, record: &RoleRecord) -> Result<(), String> {
        let put = PutRequest {
            key: role_record_key(record.id).into_bytes(),
            value: record.encode(),
            ..PutRequest::default()
        };
        self.node.write(Command::Put(put)).await.map_err(|e| format!("recording {}'s role: {e}", record.name))?;
        let (reason, warning) = match record.action {
            Action::Join => ("Joined", false),
            Action::Promote => ("Promoted", false),
            Action::Demote => ("Demoted", false),
            Action::Remove if record.reason == LOWERED => ("Lowered", false),
            Action::Remove => ("Removed", true),
            Action::Quarantine => ("Quarantined", true),
            Action::Restore => ("Restored", false),
            Action::Lower => ("Lowering", false),
        };
        let role = match (record.action, record.role) {
            (Action::Lower, _) => "to give up its replica and become a worker",
            (_, Role::Voter) => "a voter (control plane)",
            (_, Role::Learner) => "a learner (standby)",
            (_, Role::Removed) => "no longer a member",
        };
        self.events.record(Event {
            regarding: node_regarding(&record.name),
            warning,
            reason: reason.into(),
            message: format!("{} is {role}: {}", record.name, record.reason),
        });
        if let Some(event) = chain_event(record) {
            let mut unchained = self.unchained.lock().expect("unchained events lock");
            if unchained.len() >= UNCHAINED_MAX {
                unchained.pop_front();
            }
            unchained.push_back(event);
        }
        Ok(())
    }
}

impl Autopilot {
    /// Whether the chain's catch-up is due (and, if so, marks it done now).
    fn catch_up_due(&self) -> bool {
        let mut at = self.caught_up_at.lock().expect("catch-up lock");
        let due = at.is_none_or(|at| at.elapsed() >= CATCH_UP_INTERVAL);
        if due {
            *at = Some(Instant::now());
        }
        due
    }

    /// The activations of Plugin versions the chain does not record yet:
    /// each Plugin's `status.activeDigest` against the digest the chain
    /// last recorded for it.
    async fn plugin_activations(&self, entries: &[engenho_chain::Entry]) -> Result<Vec<engenho_chain::Event>, String> {
        let mut chained: BTreeMap<&str, &str> = BTreeMap::new();
        for entry in entries {
            if let engenho_chain::Event::PluginActivated { name, digest } = &entry.event {
                chained.insert(name, digest);
            }
        }
        let listed = self
            .client
            .send(http::Method::GET, PLUGINS_PATH, "application/json", Vec::new())
            .await
            .map_err(|refused| format!("listing the Plugins: {refused}"))?;
        let listed: serde_json::Value =
            serde_json::from_slice(&listed).map_err(|e| format!("the Plugins listed: {e}"))?;
        let active = listed["items"].as_array().into_iter().flatten().filter_map(|plugin| {
            let name = plugin.pointer("/metadata/name")?.as_str()?;
            let digest = plugin.pointer("/status/activeDigest")?.as_str()?;
            (chained.get(name) != Some(&digest))
                .then(|| engenho_chain::Event::PluginActivated { name: name.to_owned(), digest: digest.to_owned() })
        });
        Ok(active.collect())
    }
}

/// What an Event about Node `name` regards.
fn node_regarding(name: &str) -> Regarding {
    Regarding {
        group: String::new(),
        version: "v1".into(),
        plural: "nodes".into(),
        namespace: String::new(),
        name: name.to_owned(),
        uid: name.to_owned(),
    }
}

/// Where the Plugins are listed.
const PLUGINS_PATH: &str = "/apis/engenho.io/v1alpha1/plugins";

/// The chain event of a role assignment (none for the bootstrapping
/// voter, whom the genesis names).
fn chain_event(record: &RoleRecord) -> Option<engenho_chain::Event> {
    use engenho_chain::{Event, Reason, Role as ChainRole};
    let role = match record.role {
        Role::Voter => ChainRole::Voter,
        Role::Learner | Role::Removed => ChainRole::Learner,
    };
    let node = record.name.clone();
    Some(match record.action {
        Action::Join if record.role == Role::Voter => return None,
        Action::Join => Event::Joined { node },
        Action::Promote => Event::Role { node, role: ChainRole::Voter, reason: Reason::Promote },
        Action::Demote => Event::Role { node, role: ChainRole::Learner, reason: Reason::Demote },
        Action::Quarantine => Event::Role { node, role, reason: Reason::Quarantine },
        Action::Restore => Event::Role { node, role, reason: Reason::Restore },
        Action::Lower => Event::Role { node, role, reason: Reason::Lower },
        Action::Remove => Event::Removed { node, reason: record.reason.clone() },
    })
}

/// Whether `event` belongs in the chain even where it leaves the members
/// and voters as they were: quarantines, restorations and plugin
/// activations do.
fn recorded_even_unchanged(event: &engenho_chain::Event) -> bool {
    use engenho_chain::{Event, Reason};
    matches!(
        event,
        Event::Role { reason: Reason::Quarantine | Reason::Restore | Reason::Lower, .. }
            | Event::Genesis { .. }
            | Event::Raised { .. }
            | Event::PluginActivated { .. }
    )
}

/// The events that bring the chain's members and voters to raft's.
fn catch_up(state: &engenho_chain::ChainState, raft: &LeaderView) -> Vec<engenho_chain::Event> {
    use engenho_chain::{Event, Reason, Role as ChainRole};
    let mut events = Vec::new();
    let named = |name: &str| raft.members.iter().find(|m| m.info.name == name);
    for gone in state.members.iter().filter(|name| named(name).is_none()) {
        events.push(Event::Removed { node: gone.clone(), reason: "no longer a member".into() });
    }
    for member in &raft.members {
        let name = &member.info.name;
        if !state.members.contains(name) {
            events.push(Event::Joined { node: name.clone() });
        }
        if member.voter != state.voters.contains(name) {
            let (role, reason) =
                if member.voter { (ChainRole::Voter, Reason::Promote) } else { (ChainRole::Learner, Reason::Demote) };
            events.push(Event::Role { node: name.clone(), role, reason });
        }
    }
    events
}

/// Every role record in `node`'s store, oldest assignment first.
///
/// # Errors
/// The store could not be read.
pub fn read_records(node: &Node) -> Result<Vec<RoleRecord>, String> {
    let request = RangeRequest {
        range: KeyRange::prefix(ROLE_RECORDS_PREFIX.as_bytes()),
        limit: ROLE_RECORDS_MAX,
        ..RangeRequest::default()
    };
    let (_, answer) = node.store().range(&request).map_err(|e| format!("reading role records: {e}"))?;
    let mut records: Vec<RoleRecord> = answer.kvs.iter().filter_map(|kv| RoleRecord::decode(&kv.value).ok()).collect();
    records.sort_by_key(|r| r.at_ms);
    Ok(records)
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Parses a duration as `250ms`, `2s`, `10m` or `1h`.
///
/// # Errors
/// Anything else.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 500ms, 2s, 10m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        "h" => Ok(Duration::from_secs(number * 3600)),
        _ => Err(format!("{text:?} is not a duration such as 500ms, 2s, 10m")),
    }
}
