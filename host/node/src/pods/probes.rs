//! Container probes, as the kubelet runs them: `startupProbe`, then
//! `readinessProbe` and `livenessProbe`, each every `periodSeconds` after
//! `initialDelaySeconds`, within `timeoutSeconds`, its result turning after
//! `successThreshold` successes or `failureThreshold` failures in a row.
//! `httpGet` (HTTP, a status from 200 to 399) and `tcpSocket` (a
//! connection) reach the pod's IP; `exec` and `grpc` probes cannot run
//! against a component and say so.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `startupProbe`.
    Startup,
    /// `readinessProbe`.
    Readiness,
    /// `livenessProbe`.
    Liveness,
}

impl Kind {
    /// The probe's name, as Events word it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Readiness => "Readiness",
            Kind::Liveness => "Liveness",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Kind::Startup => "startupProbe",
            Kind::Readiness => "readinessProbe",
            Kind::Liveness => "livenessProbe",
        }
    }
}

/// A probe's result turned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The container (its index in the pod's worker).
    pub index: usize,
    /// Which probe.
    pub kind: Kind,
    /// Whether it now succeeds.
    pub ok: bool,
    /// Why it failed, when it did.
    pub message: Option<String>,
    /// Whether the probe can run at all (an `exec` probe cannot).
    pub runnable: bool,
}

/// Bytes of a probe's response read, at most.
const RESPONSE_BYTES_MAX: usize = 10 << 10;

/// The settings of one probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    kind: Kind,
    action: Action,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

#[derive(Debug, Clone, PartialEq)]
enum Action {
    Http { port: u16, path: String },
    Tcp { port: u16 },
    Unsupported(String),
}

/// The probe of `kind` of `container`, if it has one.
pub fn probe_of(container: &Value, kind: Kind) -> Option<Probe> {
    let spec = container.get(kind.field()).filter(|p| p.is_object())?;
    let seconds = |field: &str, default: u64| Duration::from_secs(spec[field].as_u64().unwrap_or(default));
    let count =
        |field: &str, default: u32| spec[field].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(default).max(1);
    let port = |value: &Value| -> Result<u16, String> {
        match value {
            Value::Number(n) => {
                n.as_u64().and_then(|n| u16::try_from(n).ok()).ok_or_else(|| format!("port {n} is out of range"))
            }
            Value::String(name) => container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == name.as_str())
                .and_then(|p| p["containerPort"].as_u64())
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| format!("the container has no port named {name:?}")),
            _ => Err("the probe names no port".to_owned()),
        }
    };
    let action = if let Some(http) = spec.get("httpGet") {
        match (http["scheme"].as_str(), port(&http["port"])) {
            (Some(scheme), _) if !scheme.eq_ignore_ascii_case("http") => {
                Action::Unsupported(format!("{scheme} probes are not supported: the node serves pods over HTTP"))
            }
            (_, Ok(port)) => Action::Http { port, path: http["path"].as_str().unwrap_or("/").to_owned() },
            (_, Err(error)) => Action::Unsupported(error),
        }
    } else if let Some(tcp) = spec.get("tcpSocket") {
        match port(&tcp["port"]) {
            Ok(port) => Action::Tcp { port },
            Err(error) => Action::Unsupported(error),
        }
    } else if spec.get("exec").is_some() {
        Action::Unsupported("exec probes are not supported: a component has no processes to exec".to_owned())
    } else {
        Action::Unsupported("only httpGet and tcpSocket probes are supported".to_owned())
    };
    let success_threshold = if kind == Kind::Readiness { count("successThreshold", 1) } else { 1 };
    Some(Probe {
        kind,
        action,
        initial_delay: seconds("initialDelaySeconds", 0),
        period: seconds("periodSeconds", 10).max(Duration::from_secs(1)),
        timeout: seconds("timeoutSeconds", 1).max(Duration::from_secs(1)),
        success_threshold,
        failure_threshold: count("failureThreshold", 3),
    })
}

impl Probe {
    /// Which probe it is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Runs the probe against `ip` until the task is aborted, telling
    /// `outcomes` of container `index` whenever its result turns (and of
    /// the first result).
    pub async fn run(self, index: usize, ip: IpAddr, outcomes: mpsc::Sender<Outcome>) {
        if let Action::Unsupported(message) = &self.action {
            let outcome =
                Outcome { index, kind: self.kind, ok: false, message: Some(message.clone()), runnable: false };
            let _ = outcomes.send(outcome).await;
            return;
        }
        tokio::time::sleep(self.initial_delay).await;
        let (mut successes, mut failures, mut reported) = (0, 0, None);
        loop {
            let result = tokio::time::timeout(self.timeout, self.once(ip))
                .await
                .unwrap_or_else(|_| Err(format!("timed out after {}s", self.timeout.as_secs())));
            let message = match result {
                Ok(()) => {
                    (successes, failures) = (successes + 1, 0);
                    None
                }
                Err(message) => {
                    (successes, failures) = (0, failures + 1);
                    Some(message)
                }
            };
            let turned = if successes >= self.success_threshold {
                Some(true)
            } else if failures >= self.failure_threshold {
                Some(false)
            } else {
                None
            };
            if let Some(ok) = turned.filter(|ok| reported != Some(*ok) || (!ok && self.kind == Kind::Liveness)) {
                reported = Some(ok);
                if outcomes.send(Outcome { index, kind: self.kind, ok, message, runnable: true }).await.is_err() {
                    return;
                }
                if !ok {
                    failures = 0;
                }
            }
            tokio::time::sleep(self.period).await;
        }
    }

    async fn once(&self, ip: IpAddr) -> Result<(), String> {
        match &self.action {
            Action::Tcp { port } => {
                let address = SocketAddr::new(ip, *port);
                tokio::net::TcpStream::connect(address).await.map(drop).map_err(|e| format!("dial tcp {address}: {e}"))
            }
            Action::Http { port, path } => {
                let address = SocketAddr::new(ip, *port);
                let mut stream = tokio::net::TcpStream::connect(address)
                    .await
                    .map_err(|e| format!("Get \"http://{address}{path}\": {e}"))?;
                let request = format!(
                    "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                );
                stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
                let mut head = vec![0; RESPONSE_BYTES_MAX];
                let read = stream.read(&mut head).await.map_err(|e| e.to_string())?;
                let status_line = String::from_utf8_lossy(&head[..read]).lines().next().unwrap_or_default().to_owned();
                let code: u16 = status_line.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                if (200..400).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("HTTP probe failed with statuscode: {code}"))
                }
            }
            Action::Unsupported(message) => Err(message.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn probes_are_read_as_the_kubelet_reads_them() {
        // Goal: defaults, named ports, and unsupported kinds with reasons.
        let container = json!({"ports": [{"name": "web", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "web"}, "periodSeconds": 2},
            "livenessProbe": {"tcpSocket": {"port": 8080}, "failureThreshold": 5},
            "startupProbe": {"exec": {"command": ["true"]}}});
        let ready = probe_of(&container, Kind::Readiness).expect("a readiness probe");
        assert_eq!(ready.action, Action::Http { port: 8080, path: "/ready".into() });
        assert_eq!(
            (ready.period, ready.timeout, ready.failure_threshold),
            (Duration::from_secs(2), Duration::from_secs(1), 3)
        );
        let live = probe_of(&container, Kind::Liveness).expect("a liveness probe");
        assert_eq!((live.action.clone(), live.failure_threshold), (Action::Tcp { port: 8080 }, 5));
        let start = probe_of(&container, Kind::Startup).expect("a startup probe");
        assert!(matches!(start.action, Action::Unsupported(ref m) if m.contains("exec probes are not supported")));
        let bad = json!({"readinessProbe": {"httpGet": {"port": "nope"}}});
        assert!(
            matches!(probe_of(&bad, Kind::Readiness).expect("probe").action, Action::Unsupported(ref m) if m.contains("no port named"))
        );
        assert_eq!(probe_of(&json!({}), Kind::Liveness), None);
    }

    #[tokio::test]
    async fn a_probe_reports_when_its_result_turns() {
        // Goal: a tcp probe on a port nothing serves fails after its
        // threshold; once something listens, it succeeds.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        let container =
            json!({"readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1}});
        let probe = probe_of(&container, Kind::Readiness).expect("probe");
        let (sender, mut outcomes) = mpsc::channel(4);
        let task = tokio::spawn(probe.run(3, "127.0.0.1".parse().expect("ip"), sender));
        let first = outcomes.recv().await.expect("a first result");
        assert_eq!((first.index, first.ok), (3, false));
        assert!(first.message.as_deref().is_some_and(|m| m.contains("dial tcp")), "{first:?}");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind again");
        let second =
            tokio::time::timeout(Duration::from_secs(10), outcomes.recv()).await.expect("in time").expect("turned");
        assert!(second.ok);
        task.abort();
        drop(listener);
    }
}
