//! The node as the agent reports it: labels, capacity and allocatable,
//! addresses, conditions, the versions it runs and its runtime handlers,
//! worked out from the [`Machine`] and the agent's settings.

use std::net::IpAddr;
use std::str::FromStr;

use engenho_api::kube::runtime_classes::{WASM_HANDLERS, handler_label};
use engenho_control::quantity::Quantity;
use serde_json::{Map, Value, json};

use crate::machine::Machine;

/// How much of a resource must stay available: an amount, or a percent of
/// the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// Bytes (memory, disk) or a count (process ids).
    Amount(u64),
    /// Percent of the total.
    Percent(u64),
}

impl Threshold {
    /// The amount this threshold keeps of `total`.
    pub fn of(self, total: u64) -> u64 {
        match self {
            Self::Amount(amount) => amount,
            Self::Percent(percent) => total / 100 * percent,
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Amount(amount) if amount % (1 << 20) == 0 => write!(f, "{}Mi", amount >> 20),
            Self::Amount(amount) => write!(f, "{amount}"),
            Self::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

/// The hard eviction thresholds (`--eviction-hard
/// memory.available<100Mi,nodefs.available<10%,pid.available<10%`, the
/// kubelet's flag and, but for process ids, its defaults): below one, the
/// node reports that pressure; memory's and the disk's are taken off
/// allocatable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvictionHard {
    /// `memory.available`.
    pub memory: Threshold,
    /// `nodefs.available`: the data directory's file system.
    pub nodefs: Threshold,
    /// `pid.available`.
    pub pids: Threshold,
}

impl Default for EvictionHard {
    fn default() -> Self {
        Self { memory: Threshold::Amount(100 << 20), nodefs: Threshold::Percent(10), pids: Threshold::Percent(10) }
    }
}

/// Why an `--eviction-hard` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a threshold: SIGNAL<QUANTITY or SIGNAL<PERCENT%, the signal memory.available, nodefs.available or \
     pid.available"
)]
pub struct EvictionError(pub String);

impl FromStr for EvictionHard {
    type Err = EvictionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut thresholds = Self::default();
        for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
            let refused = || EvictionError(pair.to_owned());
            let (signal, amount) = pair.split_once('<').ok_or_else(refused)?;
            let threshold = match amount.strip_suffix('%') {
                Some(percent) => Threshold::Percent(percent.parse().ok().filter(|p| *p <= 100).ok_or_else(refused)?),
                None => {
                    let quantity = Quantity::parse(amount).map_err(|_| refused())?;
                    Threshold::Amount(u64::try_from(quantity.milli_value() / 1000).map_err(|_| refused())?)
                }
            };
            match signal {
                "memory.available" => thresholds.memory = threshold,
                "nodefs.available" => thresholds.nodefs = threshold,
                "pid.available" => thresholds.pids = threshold,
                _ => return Err(refused()),
            }
        }
        Ok(thresholds)
    }
}

/// The label control-plane nodes (raft voters) carry.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// The label standby nodes (raft learners: full replicas that do not
/// vote) carry.
pub const STANDBY_LABEL: &str = "node-role.kubernetes.io/standby";

/// The label workers (nodes that hold no replica of the store) carry.
pub const WORKER_LABEL: &str = "node-role.kubernetes.io/worker";

/// A node's place in the cluster, as `kubectl get nodes` shows it
/// (ROLES).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// A raft voter.
    ControlPlane,
    /// A raft learner.
    Standby,
    /// Not a raft member: no replica of the store.
    Worker,
}

/// Resources set aside for the system, taken off allocatable
/// (`--system-reserved cpu=100m,memory=256Mi,ephemeral-storage=1Gi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reserved {
    /// Thousandths of a CPU.
    pub cpu_milli: u64,
    /// Bytes of memory.
    pub memory: u64,
    /// Bytes of the data directory's disk.
    pub ephemeral_storage: u64,
}

/// Why a `--system-reserved` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservedError {
    /// A pair without `=`.
    #[error("{0:?} is not RESOURCE=QUANTITY")]
    NotAPair(String),
    /// A resource other than cpu, memory and ephemeral-storage.
    #[error("{0:?} cannot be reserved: only cpu, memory and ephemeral-storage can")]
    UnknownResource(String),
    /// A quantity that does not parse, or is negative.
    #[error("{resource}={text}: not a quantity of zero or more")]
    BadQuantity {
        /// The resource.
        resource: String,
        /// The text given.
        text: String,
    },
}

impl FromStr for Reserved {
    type Err = ReservedError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut reserved = Self::default();
        for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
            let (resource, amount) = pair.split_once('=').ok_or_else(|| ReservedError::NotAPair(pair.into()))?;
            let bad = || ReservedError::BadQuantity { resource: resource.into(), text: amount.into() };
            let quantity = Quantity::parse(amount).map_err(|_| bad())?;
            let milli = u64::try_from(quantity.milli_value()).map_err(|_| bad())?;
            match resource {
                "cpu" => reserved.cpu_milli = milli,
                "memory" => reserved.memory = milli / 1000,
                "ephemeral-storage" => reserved.ephemeral_storage = milli / 1000,
                other => return Err(ReservedError::UnknownResource(other.into())),
            }
        }
        Ok(reserved)
    }
}

/// Taints the node registers with (`--register-with-taints
/// key=value:Effect,key:Effect`), as the kubelet's flag: set when the Node
/// is created, left to others after.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisterTaints(pub Vec<Value>);

/// Why a `--register-with-taints` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a taint: KEY[=VALUE]:EFFECT, the effect NoSchedule, PreferNoSchedule or NoExecute")]
pub struct TaintError(pub String);

impl FromStr for RegisterTaints {
    type Err = TaintError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let taints = text
            .split(',')
            .map(str::trim)
            .filter(|taint| !taint.is_empty())
            .map(|taint| {
                let refused = || TaintError(taint.to_owned());
                let (key_value, effect) = taint.rsplit_once(':').ok_or_else(refused)?;
                let (key, value) = key_value.split_once('=').unwrap_or((key_value, ""));
                let known = matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute");
                if key.is_empty() || !known {
                    return Err(refused());
                }
                Ok(json!({"key": key, "value": value, "effect": effect}))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(taints))
    }
}

/// What the agent says of its node beyond the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    /// The Node's name.
    pub name: String,
    /// The address other nodes reach this one at.
    pub internal_ip: Option<IpAddr>,
    /// The most pods the node runs (`--max-pods`).
    pub max_pods: u32,
    /// Resources set aside for the system.
    pub reserved: Reserved,
    /// Taints the Node is created with.
    pub register_taints: RegisterTaints,
    /// The hard eviction thresholds.
    pub eviction: EvictionHard,
    /// The pod runtime, as `nodeInfo.containerRuntimeVersion` gives it.
    pub runtime_version: String,
    /// The agent's version, as `nodeInfo.kubeletVersion` gives it.
    pub agent_version: String,
    /// The range the node's pod IPs come from, as `spec.podCIDR` gives it.
    pub pod_cidr: String,
    /// The port the node serves its pods' logs and ports on to the API
    /// servers (its peer port), as `daemonEndpoints.kubeletEndpoint`
    /// gives it.
    pub agent_port: u16,
}

/// The Node's labels: the standard ones, one per runtime handler, and its
/// role (the other roles' labels `null`, so that a merge patch removes
/// them).
pub fn labels(settings: &NodeSettings, role: NodeRole) -> Value {
    let mut labels = Map::new();
    labels.insert("kubernetes.io/hostname".into(), json!(settings.name));
    labels.insert("kubernetes.io/os".into(), json!(std::env::consts::OS));
    labels.insert("kubernetes.io/arch".into(), json!(architecture()));
    labels.insert("beta.kubernetes.io/os".into(), json!(std::env::consts::OS));
    labels.insert("beta.kubernetes.io/arch".into(), json!(architecture()));
    for handler in WASM_HANDLERS {
        labels.insert(handler_label(handler), json!("true"));
    }
    let flag = |on: bool| if on { json!("") } else { Value::Null };
    labels.insert(CONTROL_PLANE_LABEL.into(), flag(role == NodeRole::ControlPlane));
    labels.insert(STANDBY_LABEL.into(), flag(role == NodeRole::Standby));
    labels.insert(WORKER_LABEL.into(), flag(role == NodeRole::Worker));
    Value::Object(labels)
}

/// The architecture as Kubernetes names it (`amd64`, `arm64`).
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The Node's status at `now` (RFC 3339): `previous` is the conditions
/// last reported, whose transition times stay where a status did not
/// change.
pub fn status(settings: &NodeSettings, machine: &Machine, previous: &[Value], now: &str) -> Value {
    let reserved = settings.reserved;
    let eviction = settings.eviction;
    let memory_allocatable =
        machine.memory_total.saturating_sub(reserved.memory).saturating_sub(eviction.memory.of(machine.memory_total));
    let disk_allocatable = machine
        .disk_total
        .saturating_sub(reserved.ephemeral_storage)
        .saturating_sub(eviction.nodefs.of(machine.disk_total));
    let cpu_allocatable = (u64::from(machine.cpus) * 1000).saturating_sub(reserved.cpu_milli);
    let mut addresses = Vec::new();
    if let Some(ip) = settings.internal_ip.filter(|ip| !ip.is_unspecified()) {
        addresses.push(json!({"type": "InternalIP", "address": ip.to_string()}));
    }
    addresses.push(json!({"type": "Hostname", "address": settings.name}));
    let handlers: Vec<Value> = WASM_HANDLERS
        .iter()
        .map(|name| json!({"name": name, "features": {"recursiveReadOnlyMounts": false, "userNamespaces": false}}))
        .collect();
    json!({
        "capacity": {
            "cpu": machine.cpus.to_string(),
            "memory": kibibytes(machine.memory_total),
            "ephemeral-storage": kibibytes(machine.disk_total),
            "pods": settings.max_pods.to_string(),
        },
        "allocatable": {
            "cpu": millicores(cpu_allocatable),
            "memory": kibibytes(memory_allocatable),
            "ephemeral-storage": kibibytes(disk_allocatable),
            "pods": settings.max_pods.to_string(),
        },
        "addresses": addresses,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": settings.agent_port}},
        "conditions": conditions(machine, &eviction, previous, now),
        "nodeInfo": {
            "machineID": machine.machine_id,
            "systemUUID": machine.system_uuid,
            "bootID": machine.boot_id,
            "kernelVersion": machine.kernel_version,
            "osImage": machine.os_image,
            "containerRuntimeVersion": settings.runtime_version,
            "kubeletVersion": settings.agent_version,
            "kubeProxyVersion": "",
            "operatingSystem": std::env::consts::OS,
            "architecture": architecture(),
        },
        "runtimeHandlers": handlers,
    })
}

/// `bytes` in whole kibibytes, as the kubelet writes memory (`24576000Ki`).
fn kibibytes(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

/// Thousandths of a CPU as a quantity: whole CPUs where whole (`2`), else
/// `1900m`.
fn millicores(milli: u64) -> String {
    if milli.is_multiple_of(1000) { (milli / 1000).to_string() } else { format!("{milli}m") }
}

/// Ready, and the three pressures, as the machine stands against
/// `eviction`.
fn conditions(machine: &Machine, eviction: &EvictionHard, previous: &[Value], now: &str) -> Vec<Value> {
    let memory_pressure = machine.memory_available < eviction.memory.of(machine.memory_total);
    let disk_pressure = machine.disk_available < eviction.nodefs.of(machine.disk_total);
    let pid_pressure = machine.pid_max.saturating_sub(machine.pids_in_use) < eviction.pids.of(machine.pid_max);
    let memory_words = format!("node has less than {} of memory available", eviction.memory);
    let disk_words = format!("node's data directory has less than {} of its disk available", eviction.nodefs);
    let pid_words = format!("node has less than {} of its process ids available", eviction.pids);
    let pressure = |pressed: bool, kind: &str, ok: (&str, &str), pressed_words: (&str, &str)| {
        let (reason, message) = if pressed { pressed_words } else { ok };
        (kind.to_owned(), if pressed { "True" } else { "False" }, reason.to_owned(), message.to_owned())
    };
    let all = [
        (
            "Ready".to_owned(),
            "True",
            "KubeletReady".to_owned(),
            "engenho node agent is posting ready status".to_owned(),
        ),
        pressure(
            memory_pressure,
            "MemoryPressure",
            ("KubeletHasSufficientMemory", "node has sufficient memory available"),
            ("KubeletHasInsufficientMemory", &memory_words),
        ),
        pressure(
            disk_pressure,
            "DiskPressure",
            ("KubeletHasNoDiskPressure", "node has no disk pressure"),
            ("KubeletHasDiskPressure", &disk_words),
        ),
        pressure(
            pid_pressure,
            "PIDPressure",
            ("KubeletHasSufficientPID", "node has sufficient PID available"),
            ("KubeletHasInsufficientPID", &pid_words),
        ),
    ];
    all.into_iter()
        .map(|(kind, status, reason, message)| {
            let before = previous.iter().find(|c| c["type"] == kind.as_str());
            let transition =
                before.filter(|c| c["status"] == status).and_then(|c| c["lastTransitionTime"].as_str()).unwrap_or(now);
            json!({"type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": transition})
        })
        .collect()
}

/// Whether two statuses say the same, heartbeat times aside.
pub fn same_but_heartbeats(left: &Value, right: &Value) -> bool {
    let strip = |status: &Value| {
        let mut status = status.clone();
        for condition in status["conditions"].as_array_mut().into_iter().flatten() {
            if let Some(condition) = condition.as_object_mut() {
                condition.remove("lastHeartbeatTime");
            }
        }
        status
    };
    strip(left) == strip(right)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            memory_total: 24 << 30,
            memory_available: 20 << 30,
            disk_total: 100 << 30,
            disk_available: 50 << 30,
            pids_in_use: 500,
            pid_max: 4_194_304,
            kernel_version: "6.12.0".into(),
            os_image: "Debian GNU/Linux 13 (trixie)".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
            system_uuid: String::new(),
        }
    }

    fn settings() -> NodeSettings {
        NodeSettings {
            name: "n1".into(),
            internal_ip: Some("10.0.0.7".parse().expect("ip")),
            max_pods: 110,
            reserved: "cpu=100m,memory=256Mi".parse().expect("reserved"),
            register_taints: RegisterTaints::default(),
            eviction: EvictionHard::default(),
            runtime_version: "wasmtime://48.0.8".into(),
            agent_version: "v1.32.0-engenho.0.1.0".into(),
            pod_cidr: "127.244.0.0/16".into(),
            agent_port: 2380,
        }
    }

    #[test]
    fn reserved_resources_parse_as_the_kubelet_flag_does() {
        // Goal: `--system-reserved` takes cpu, memory and storage
        // quantities, and refuses anything else with a clear message.
        let reserved: Reserved = "cpu=1.5, memory=1Gi,ephemeral-storage=10G".parse().expect("reserved");
        assert_eq!(reserved, Reserved { cpu_milli: 1500, memory: 1 << 30, ephemeral_storage: 10_000_000_000 });
        assert_eq!("".parse::<Reserved>(), Ok(Reserved::default()));
        assert_eq!("gpu=1".parse::<Reserved>(), Err(ReservedError::UnknownResource("gpu".into())));
        assert_eq!("cpu".parse::<Reserved>(), Err(ReservedError::NotAPair("cpu".into())));
        assert!(matches!("memory=-1Gi".parse::<Reserved>(), Err(ReservedError::BadQuantity { .. })));
        assert!(matches!("memory=lots".parse::<Reserved>(), Err(ReservedError::BadQuantity { .. })));
    }

    #[test]
    fn registration_taints_parse_as_the_kubelet_flag_does() {
        // Goal: `--register-with-taints` as the kubelet reads it, with a
        // clear refusal of anything else.
        let taints: RegisterTaints = "dedicated=gpu:NoSchedule, maintenance:NoExecute".parse().expect("taints");
        assert_eq!(
            taints.0,
            [
                json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}),
                json!({"key": "maintenance", "value": "", "effect": "NoExecute"})
            ]
        );
        assert_eq!("".parse::<RegisterTaints>(), Ok(RegisterTaints::default()));
        for bad in ["dedicated=gpu", "dedicated:Sometimes", ":NoSchedule"] {
            assert_eq!(bad.parse::<RegisterTaints>(), Err(TaintError(bad.into())), "{bad}");
        }
    }

    #[test]
    fn eviction_thresholds_parse_as_the_kubelet_flag_does_and_decide_pressure() {
        // Goal: `--eviction-hard` as the kubelet reads it (amounts or
        // percents, unnamed signals keeping their defaults), refusing
        // anything else; the thresholds decide pressure and allocatable.
        let given: EvictionHard = "nodefs.available<1%, memory.available<1Gi".parse().expect("thresholds");
        assert_eq!(
            given,
            EvictionHard {
                memory: Threshold::Amount(1 << 30),
                nodefs: Threshold::Percent(1),
                pids: Threshold::Percent(10)
            }
        );
        assert_eq!("".parse::<EvictionHard>(), Ok(EvictionHard::default()));
        for bad in ["imagefs.available<15%", "memory.available>1Gi", "nodefs.available<101%", "memory.available<lots"] {
            assert_eq!(bad.parse::<EvictionHard>(), Err(EvictionError(bad.into())), "{bad}");
        }
        let mut pressed = machine();
        pressed.disk_available = 5 << 30;
        let default = status(&settings(), &pressed, &[], "t");
        assert_eq!(default["conditions"][2]["status"], "True", "5% free is under 10%");
        assert_eq!(
            default["conditions"][2]["message"],
            "node's data directory has less than 10% of its disk available"
        );
        let relaxed = NodeSettings { eviction: given, ..settings() };
        let status = status(&relaxed, &pressed, &[], "t");
        assert_eq!(status["conditions"][2]["status"], "False", "5% free is over 1%");
        let disk = (100u64 << 30) - (100u64 << 30) / 100;
        assert_eq!(status["allocatable"]["ephemeral-storage"], format!("{}Ki", disk / 1024));
        let memory = (24u64 << 30) - (256 << 20) - (1 << 30);
        assert_eq!(status["allocatable"]["memory"], format!("{}Ki", memory / 1024));
    }

    #[test]
    fn allocatable_is_capacity_less_what_is_reserved_and_the_eviction_thresholds() {
        // Goal: the kubelet's formula: capacity − reserved − hard eviction.
        let status = status(&settings(), &machine(), &[], "2026-12-06T12:00:00Z");
        assert_eq!(
            status["capacity"],
            json!({"cpu": "2", "memory": "25165824Ki", "ephemeral-storage": "104857600Ki", "pods": "110"})
        );
        let memory = (24u64 << 30) - (256 << 20) - (100 << 20);
        let disk = (100u64 << 30) - (100u64 << 30) / 100 * 10;
        assert_eq!(
            status["allocatable"],
            json!({"cpu": "1900m", "memory": format!("{}Ki", memory / 1024), "ephemeral-storage": format!("{}Ki", disk / 1024), "pods": "110"})
        );
        assert_eq!(
            status["addresses"],
            json!([{"type": "InternalIP", "address": "10.0.0.7"}, {"type": "Hostname", "address": "n1"}])
        );
        assert_eq!(status["nodeInfo"]["kubeletVersion"], "v1.32.0-engenho.0.1.0");
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 2380);
        assert_eq!(status["runtimeHandlers"][0]["name"], "wasi");
        assert_eq!(status["runtimeHandlers"][1]["name"], "tlisp");
    }

    #[test]
    fn conditions_follow_the_machine_and_keep_their_transition_times() {
        // Goal: each pressure turns True below its threshold, Ready stays
        // True, and a condition's lastTransitionTime moves only when its
        // status does.
        let first = status(&settings(), &machine(), &[], "t1");
        let conditions = first["conditions"].as_array().expect("conditions").clone();
        let kinds: Vec<(&str, &str)> = conditions
            .iter()
            .map(|c| (c["type"].as_str().expect("type"), c["status"].as_str().expect("status")))
            .collect();
        assert_eq!(
            kinds,
            [("Ready", "True"), ("MemoryPressure", "False"), ("DiskPressure", "False"), ("PIDPressure", "False")]
        );
        let mut pressed = machine();
        pressed.memory_available = 50 << 20;
        pressed.disk_available = 1 << 30;
        pressed.pids_in_use = pressed.pid_max - 10;
        let second = status(&settings(), &pressed, &conditions, "t2");
        for condition in second["conditions"].as_array().expect("conditions") {
            let pressure = condition["type"] != "Ready";
            assert_eq!(condition["status"], "True", "{condition}");
            assert_eq!(condition["lastTransitionTime"], if pressure { "t2" } else { "t1" }, "{condition}");
            assert_eq!(condition["lastHeartbeatTime"], "t2");
        }
        assert_eq!(second["conditions"][1]["reason"], "KubeletHasInsufficientMemory");
        let third = status(&settings(), &machine(), &[], "t3");
        assert!(same_but_heartbeats(&status(&settings(), &machine(), &conditions, "t9"), &first));
        assert!(!same_but_heartbeats(&third, &second));
    }

    #[test]
    fn labels_name_the_node_its_runtimes_and_its_role() {
        // Goal: the standard labels, one per runtime handler (what the
        // RuntimeClasses select), and its role's label (the others null,
        // which removes them in a merge patch).
        let voting = labels(&settings(), NodeRole::ControlPlane);
        assert_eq!(voting["kubernetes.io/hostname"], "n1");
        assert_eq!(voting["kubernetes.io/os"], "linux");
        assert_eq!(voting["runtime.engenho.io/wasi"], "true");
        assert_eq!(voting["runtime.engenho.io/tlisp"], "true");
        assert_eq!(voting[CONTROL_PLANE_LABEL], "");
        assert_eq!(voting[STANDBY_LABEL], Value::Null);
        let standby = labels(&settings(), NodeRole::Standby);
        assert_eq!((&standby[CONTROL_PLANE_LABEL], &standby[STANDBY_LABEL]), (&Value::Null, &json!("")));
        let worker = labels(&settings(), NodeRole::Worker);
        assert_eq!((&worker[CONTROL_PLANE_LABEL], &worker[STANDBY_LABEL]), (&Value::Null, &Value::Null));
        assert_eq!((&worker[WORKER_LABEL], &voting[WORKER_LABEL]), (&json!(""), &Value::Null));
    }
}
