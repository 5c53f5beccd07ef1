//! A pod's lifecycle as Kubernetes defines it, kept apart from running
//! anything: each container's state (waiting, running, terminated), its
//! restart count and last state; restart decisions by the pod's
//! `restartPolicy` with exponential back-off; the pod's phase and
//! conditions; and the status these make.

use std::time::Duration;

use serde_json::{Value, json};

/// The first wait before a crashed container starts again (the first
/// restart is at once).
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);

/// The longest wait before a crashed container starts again.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A run this long resets the back-off.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

/// Waiting reason of a container between crashes.
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";

/// A pod's `restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Restart every container that ends.
    Always,
    /// Restart containers that fail.
    OnFailure,
    /// Restart nothing.
    Never,
}

impl RestartPolicy {
    /// The policy of `pod` (`Always` when unset).
    pub fn of(pod: &Value) -> Self {
        match pod.pointer("/spec/restartPolicy").and_then(Value::as_str) {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container of the pod that ended with `code` starts again.
    pub fn restarts(self, code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => code != 0,
            RestartPolicy::Never => false,
        }
    }

    /// Whether an init container that ended with `code` starts again
    /// (init containers run until they succeed unless the policy is
    /// `Never`).
    pub fn restarts_init(self, code: i32) -> bool {
        code != 0 && self != RestartPolicy::Never
    }
}

/// How a run of a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    /// Its exit code.
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, …
    pub reason: String,
    /// What the node has to say about it.
    pub message: Option<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: String,
}

impl Terminated {
    fn json(&self, container_id: &str) -> Value {
        let mut terminated = json!({"exitCode": self.exit_code, "reason": self.reason,
            "startedAt": self.started_at, "finishedAt": self.finished_at, "containerID": container_id});
        if let Some(message) = &self.message {
            terminated["message"] = json!(message);
        }
        json!({"terminated": terminated})
    }
}

/// A container's state now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not running: why, and what the node has to say.
    Waiting {
        /// `ContainerCreating`, `ErrImagePull`, `CrashLoopBackOff`, …
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Running since `started_at` (RFC 3339).
    Running {
        /// When the run started.
        started_at: String,
    },
    /// Ended, not to start again.
    Terminated(Terminated),
}

/// One container of a pod, as the node keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The container's name.
    pub name: String,
    /// Its image, as the spec gives it.
    pub image: String,
    /// The digest its image resolved to, once known.
    pub image_id: Option<String>,
    /// Whether it is an init container.
    pub init: bool,
    /// Runs started after its first.
    pub restart_count: u32,
    /// Whether a run of it has started (so that the next is a restart).
    pub started_before: bool,
    /// Its state.
    pub state: State,
    /// How its last run ended.
    pub last: Option<Terminated>,
    /// The wait before its next start, after the last crash.
    pub backoff: Option<Duration>,
    /// Whether its run in progress is ready (its readiness probe, if any,
    /// passes).
    pub ready: bool,
    /// Whether its run in progress has started (its startup probe, if
    /// any, passed).
    pub started_up: bool,
}

impl Slot {
    /// The slot of container `spec` (an init container when `init`), taking
    /// up what `reported` (its status as last reported, if any) says: a
    /// node that restarts keeps restart counts, states and last states.
    pub fn new(spec: &Value, init: bool, reported: Option<&Value>) -> Self {
        let mut slot = Slot {
            name: spec["name"].as_str().unwrap_or_default().to_owned(),
            image: spec["image"].as_str().unwrap_or_default().to_owned(),
            image_id: None,
            init,
            restart_count: 0,
            started_before: false,
            state: State::Waiting { reason: "ContainerCreating".into(), message: None },
            last: None,
            backoff: None,
            ready: false,
            started_up: false,
        };
        let Some(reported) = reported else { return slot };
        slot.restart_count = reported["restartCount"].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        slot.last = terminated_of(&reported["lastState"]);
        if let Some(running) = reported.pointer("/state/running") {
            slot.started_before = true;
            let started_at = running["startedAt"].as_str().unwrap_or_default().to_owned();
            slot.state = State::Running { started_at };
        } else if let Some(ended) = terminated_of(&reported["state"]) {
            slot.started_before = true;
            slot.state = State::Terminated(ended);
        } else {
            slot.started_before = slot.last.is_some();
        }
        slot
    }

    /// Whether it has ended and will not start again.
    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated(_))
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// Whether it ended with success, not to start again.
    pub fn succeeded(&self) -> bool {
        matches!(&self.state, State::Terminated(t) if t.exit_code == 0)
    }

    /// Records a start at `now` (ready and started, until probes say
    /// otherwise).
    pub fn started(&mut self, now: &str) {
        if self.started_before {
            self.restart_count += 1;
        }
        self.started_before = true;
        self.state = State::Running { started_at: now.to_owned() };
        self.ready = true;
        self.started_up = true;
    }

    /// Records the end of the run in progress; the wait before the next
    /// start, if it starts again under `policy`. `ran` is how long it ran;
    /// `pod` names the pod in the back-off message.
    pub fn ended(&mut self, ended: Terminated, policy: RestartPolicy, ran: Duration, pod: &str) -> Option<Duration> {
        let again = if self.init { policy.restarts_init(ended.exit_code) } else { policy.restarts(ended.exit_code) };
        if !again {
            self.state = State::Terminated(ended);
            return None;
        }
        let wait = match self.backoff {
            _ if ran >= BACKOFF_RESET_AFTER => Duration::ZERO,
            None => Duration::ZERO,
            Some(Duration::ZERO) => BACKOFF_INITIAL,
            Some(wait) => (wait * 2).min(BACKOFF_MAX),
        };
        self.backoff = Some(wait);
        self.last = Some(ended);
        self.state = State::Waiting {
            reason: CRASH_LOOP_BACK_OFF.into(),
            message: Some(format!("back-off {}s restarting failed container={} pod={pod}", wait.as_secs(), self.name)),
        };
        Some(wait)
    }

    /// Its status, as a pod's `containerStatuses` item.
    pub fn status(&self, pod_uid: &str) -> Value {
        let container_id = format!("wasmtime://{pod_uid}/{}/{}", self.name, self.restart_count);
        let state = match &self.state {
            State::Waiting { reason, message } => {
                let mut waiting = json!({"reason": reason});
                if let Some(message) = message {
                    waiting["message"] = json!(message);
                }
                json!({"waiting": waiting})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated(t) => t.json(&container_id),
        };
        let running = self.is_running();
        let mut status = json!({
            "name": self.name, "image": self.image,
            "imageID": self.image_id.as_ref().map(|d| format!("blake3:{d}")).unwrap_or_default(),
            "ready": running && self.ready, "started": running && self.started_up, "restartCount": self.restart_count, "state": state,
            "lastState": self.last.as_ref().map_or_else(|| json!({}), |t| t.json(&container_id)),
        });
        if self.started_before {
            status["containerID"] = json!(container_id);
        }
        status
    }
}

fn terminated_of(state: &Value) -> Option<Terminated> {
    let t = state.get("terminated")?;
    Some(Terminated {
        exit_code: t["exitCode"].as_i64().and_then(|c| i32::try_from(c).ok()).unwrap_or(0),
        reason: t["reason"].as_str().unwrap_or_default().to_owned(),
        message: t["message"].as_str().map(str::to_owned),
        started_at: t["startedAt"].as_str().unwrap_or_default().to_owned(),
        finished_at: t["finishedAt"].as_str().unwrap_or_default().to_owned(),
    })
}

/// The phase of a pod whose containers are `slots`, under `policy`, as the
/// kubelet computes it: a container waiting after a crash counts as
/// stopped, one waiting to start for the first time as waiting.
pub fn phase(slots: &[Slot], policy: RestartPolicy) -> &'static str {
    let (init, main): (Vec<&Slot>, Vec<&Slot>) = slots.iter().partition(|s| s.init);
    if init.iter().any(|s| matches!(&s.state, State::Terminated(t) if t.exit_code != 0)) {
        return "Failed";
    }
    if !init.iter().all(|s| s.succeeded()) {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for slot in main {
        match &slot.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                succeeded += usize::from(t.exit_code == 0);
            }
            State::Waiting { .. } if slot.last.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    match () {
        () if waiting > 0 => "Pending",
        () if running > 0 => "Running",
        () if stopped == 0 => "Pending",
        () if policy == RestartPolicy::Always => "Running",
        () if stopped == succeeded && slots.iter().filter(|s| !s.init).all(Slot::is_terminated) => "Succeeded",
        () if policy == RestartPolicy::Never => "Failed",
        () if slots.iter().filter(|s| !s.init).all(Slot::is_terminated) => "Failed",
        () => "Running",
    }
}

/// The conditions the node owns (`Initialized`, `ContainersReady`,
/// `Ready`) for `slots`, keeping each one's `lastTransitionTime` from
/// `current` (the pod's conditions now) while its status holds; the
/// others in `current` (`PodScheduled`) kept as they are.
pub fn conditions(current: &[Value], slots: &[Slot], terminal: bool, now: &str) -> Vec<Value> {
    let initialized = slots.iter().filter(|s| s.init).all(Slot::succeeded);
    let main: Vec<&Slot> = slots.iter().filter(|s| !s.init).collect();
    let unready: Vec<&str> = main.iter().filter(|s| !(s.is_running() && s.ready)).map(|s| s.name.as_str()).collect();
    let ready = !terminal && unready.is_empty();
    let pending_init: Vec<&str> = slots.iter().filter(|s| s.init && !s.succeeded()).map(|s| s.name.as_str()).collect();
    let mut owned = vec![("Initialized", initialized, "ContainersNotInitialized", {
        format!("containers with incomplete status: [{}]", pending_init.join(" "))
    })];
    let (reason, message) = if terminal {
        ("PodCompleted", String::new())
    } else {
        ("ContainersNotReady", format!("containers with unready status: [{}]", unready.join(" ")))
    };
    owned.push(("ContainersReady", ready, reason, message.clone()));
    owned.push(("Ready", ready, reason, message));
    let mut conditions: Vec<Value> = current
        .iter()
        .filter(|c| !matches!(c["type"].as_str(), Some("Initialized" | "Ready" | "ContainersReady")))
        .cloned()
        .collect();
    for (kind, holds, reason, message) in owned {
        let status = if holds { "True" } else { "False" };
        let before = current.iter().find(|c| c["type"] == kind);
        let since =
            before.filter(|c| c["status"] == status).and_then(|c| c["lastTransitionTime"].as_str()).unwrap_or(now);
        let mut condition = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
        if !holds || (terminal && kind != "Initialized") {
            condition["reason"] = json!(reason);
            if !message.is_empty() {
                condition["message"] = json!(message);
            }
        }
        conditions.push(condition);
    }
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str) -> Value {
        json!({"name": name, "image": "blake3:00"})
    }

    fn exit(code: i32) -> Terminated {
        let reason = if code == 0 { "Completed" } else { "Error" };
        Terminated {
            exit_code: code,
            reason: reason.into(),
            message: None,
            started_at: "t0".into(),
            finished_at: "t1".into(),
        }
    }

    #[test]
    fn restarts_follow_the_policy_with_growing_waits() {
        // Goal: Always restarts every end, OnFailure only failures, Never
        // none; the first restart is at once, then 10 s doubling to 5 min;
        // a long run resets the wait; the count grows by one per restart.
        let mut slot = Slot::new(&container("app"), false, None);
        slot.started("t0");
        let mut waits = Vec::new();
        for _ in 0..8 {
            waits.push(slot.ended(exit(1), RestartPolicy::Always, Duration::from_secs(1), "p_ns(u)").expect("again"));
            assert!(matches!(&slot.state, State::Waiting { reason, .. } if reason == CRASH_LOOP_BACK_OFF));
            slot.started("t2");
        }
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(slot.restart_count, 8);
        assert_eq!(slot.ended(exit(0), RestartPolicy::Always, BACKOFF_RESET_AFTER, "p"), Some(Duration::ZERO));
        slot.started("t3");
        assert_eq!(slot.ended(exit(0), RestartPolicy::OnFailure, Duration::ZERO, "p"), None);
        assert!(slot.succeeded());
        let mut never = Slot::new(&container("app"), false, None);
        never.started("t0");
        assert_eq!(never.ended(exit(1), RestartPolicy::Never, Duration::ZERO, "p"), None);
        assert!(never.is_terminated() && !never.succeeded());
        let mut init = Slot::new(&container("setup"), true, None);
        init.started("t0");
        assert_eq!(init.ended(exit(0), RestartPolicy::Always, Duration::ZERO, "p"), None, "a done init container");
    }

    #[test]
    fn phases_are_the_kubelets() {
        // Goal: Pending until init containers succeed and containers first
        // start; Running while any runs or will restart; Succeeded when all
        // succeeded for good; Failed when any failed for good.
        let running = |name: &str| {
            let mut s = Slot::new(&container(name), false, None);
            s.started("t");
            s
        };
        let ended = |name: &str, code: i32, policy: RestartPolicy| {
            let mut s = running(name);
            s.ended(exit(code), policy, Duration::ZERO, "p");
            s
        };
        let fresh = Slot::new(&container("a"), false, None);
        assert_eq!(phase(std::slice::from_ref(&fresh), RestartPolicy::Always), "Pending");
        assert_eq!(phase(&[running("a")], RestartPolicy::Always), "Running");
        assert_eq!(phase(&[ended("a", 1, RestartPolicy::Always)], RestartPolicy::Always), "Running");
        assert_eq!(phase(&[ended("a", 0, RestartPolicy::Never)], RestartPolicy::Never), "Succeeded");
        assert_eq!(phase(&[ended("a", 0, RestartPolicy::Never), running("b")], RestartPolicy::Never), "Running");
        let failed = [ended("a", 0, RestartPolicy::Never), ended("b", 1, RestartPolicy::Never)];
        assert_eq!(phase(&failed, RestartPolicy::Never), "Failed");
        assert_eq!(phase(&[ended("a", 1, RestartPolicy::OnFailure)], RestartPolicy::OnFailure), "Running");
        let mut init = Slot::new(&container("setup"), true, None);
        assert_eq!(phase(&[init.clone(), fresh.clone()], RestartPolicy::Always), "Pending");
        init.started("t");
        init.ended(exit(1), RestartPolicy::Never, Duration::ZERO, "p");
        assert_eq!(phase(&[init, fresh], RestartPolicy::Never), "Failed");
    }

    #[test]
    fn a_restarted_node_takes_up_counts_and_states() {
        // Goal: restart counts, states and last states survive; a run that
        // was in progress counts as started, so its next start is a
        // restart; a container that ended for good stays ended.
        let reported = json!({"name": "app", "restartCount": 4, "state": {"running": {"startedAt": "t9"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "t1", "finishedAt": "t2"}}});
        let mut slot = Slot::new(&container("app"), false, Some(&reported));
        assert_eq!((slot.restart_count, slot.started_before), (4, true));
        assert!(slot.is_running());
        assert_eq!(slot.last.as_ref().map(|t| t.exit_code), Some(1));
        slot.started("t10");
        assert_eq!(slot.restart_count, 5);
        let done = json!({"name": "app", "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "t1", "finishedAt": "t2"}}});
        assert!(Slot::new(&container("app"), false, Some(&done)).succeeded());
    }

    #[test]
    fn conditions_keep_their_transition_times() {
        // Goal: Ready follows the containers; a condition that holds keeps
        // its time; PodScheduled stays.
        let mut slot = Slot::new(&container("app"), false, None);
        let scheduled = json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"});
        let first = conditions(&[scheduled], std::slice::from_ref(&slot), false, "t1");
        let find = |c: &[Value], kind: &str| c.iter().find(|c| c["type"] == kind).cloned().expect("a condition");
        assert_eq!(find(&first, "Ready")["status"], "False");
        assert_eq!(find(&first, "Ready")["message"], "containers with unready status: [app]");
        assert_eq!(find(&first, "PodScheduled")["lastTransitionTime"], "t0");
        slot.started("t2");
        let second = conditions(&first, std::slice::from_ref(&slot), false, "t2");
        assert_eq!(
            (find(&second, "Ready")["status"].clone(), find(&second, "Initialized")["lastTransitionTime"].clone()),
            (json!("True"), json!("t1"))
        );
        let third = conditions(&second, std::slice::from_ref(&slot), false, "t3");
        assert_eq!(find(&third, "Ready")["lastTransitionTime"], "t2");
    }
}
