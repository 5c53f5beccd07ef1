//! The logs of the containers this node runs, as `pods/log` serves them:
//! the run the pod's status names (or the one before it, for
//! `--previous`), selected by time and tail, and, when followed, what the
//! run goes on writing until it ends.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use engenho_api::kube::logs::{LogQuery, LogStream, PodLogs};
use engenho_runtime::logs::{self, ReadOptions, Record};
use futures::StreamExt;
use serde_json::Value;

use super::worker::{log_path, pod_dir};

/// How often a followed log is looked at for more.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Bytes read from a followed log at once.
const FOLLOW_CHUNK: usize = 64 << 10;

/// The log files being written now: a follower stops at the end of one
/// that is not.
#[derive(Debug, Default, Clone)]
pub struct Writing(Arc<Mutex<HashSet<PathBuf>>>);

impl Writing {
    /// Marks `path` as being written (`true`) or done (`false`).
    pub fn set(&self, path: &Path, writing: bool) {
        let mut paths = self.0.lock().expect("log set lock");
        if writing {
            paths.insert(path.to_owned());
        } else {
            paths.remove(path);
        }
    }

    fn contains(&self, path: &Path) -> bool {
        self.0.lock().expect("log set lock").contains(path)
    }
}

/// The logs of node `node`'s pods, under `pods_dir`.
pub struct NodeLogs {
    node: String,
    pods_dir: PathBuf,
    writing: Writing,
}

impl NodeLogs {
    /// The logs of `node`'s pods, under `pods_dir`, `writing` telling
    /// which runs go on.
    pub fn new(node: String, pods_dir: PathBuf, writing: Writing) -> Self {
        Self { node, pods_dir, writing }
    }
}

impl PodLogs for NodeLogs {
    fn node(&self) -> &str {
        &self.node
    }

    fn open(&self, pod: &Value, query: &LogQuery) -> Result<LogStream, String> {
        let text = |pointer: &str| pod.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
        let name = text("/metadata/name");
        let path = run_log(pod, query, &self.pods_dir)?;
        let options = ReadOptions {
            tail: query.tail_lines,
            since: query.since,
            timestamps: query.timestamps,
            limit_bytes: query.limit_bytes,
        };
        let gone = |e: std::io::Error| format!("the log of pod {name} cannot be read: {e}");
        if !query.follow {
            let bytes = logs::read(&path, &options).map_err(gone)?;
            return Ok(futures::stream::once(async move { Ok(Bytes::from(bytes)) }).boxed());
        }
        let file = File::open(&path).map_err(gone)?;
        let start = file.metadata().map_err(gone)?.len();
        let first = logs::select(logs::records(&path, Some(start)).map_err(gone)?, &options);
        let follower = Follower {
            path,
            file,
            offset: start,
            partial: Vec::new(),
            timestamps: query.timestamps,
            left: query.limit_bytes.map(|limit| limit.saturating_sub(first.len())),
            writing: self.writing.clone(),
        };
        let first = futures::stream::once(async move { Ok(Bytes::from(first)) });
        Ok(first.chain(follower.stream()).boxed())
    }
}

/// The log file of the run `query` asks for, of the container it names.
fn run_log(pod: &Value, query: &LogQuery, pods_dir: &Path) -> Result<PathBuf, String> {
    let text = |pointer: &str| pod.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    let name = text("/metadata/name");
    let names: Vec<&str> = super::spec::containers(pod).filter_map(|c| c["name"].as_str()).collect();
    let main: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match (&query.container, main.as_slice()) {
        (Some(container), _) if names.contains(&container.as_str()) => container.as_str(),
        (Some(container), _) => return Err(format!("container {container} is not valid for pod {name}")),
        (None, [only]) => only,
        (None, _) => {
            let choices = main.join(" ");
            return Err(format!("a container name must be specified for pod {name}, choose one of: [{choices}]"));
        }
    };
    let status = ["/status/containerStatuses", "/status/initContainerStatuses"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .find(|s| s["name"] == container);
    let restarts = status.and_then(|s| s["restartCount"].as_u64()).unwrap_or(0);
    let started =
        status.is_some_and(|s| s.get("containerID").is_some_and(|id| id.as_str().is_some_and(|id| !id.is_empty())));
    let run = if query.previous {
        match restarts.checked_sub(1) {
            Some(run) if started => run,
            _ => return Err(format!("previous terminated container \"{container}\" in pod \"{name}\" not found")),
        }
    } else if started {
        restarts
    } else {
        let reason = status
            .and_then(|s| s.pointer("/state/waiting/reason"))
            .and_then(Value::as_str)
            .unwrap_or("ContainerCreating");
        return Err(format!("container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"));
    };
    let dir = pod_dir(pods_dir, text("/metadata/namespace"), name, text("/metadata/uid"));
    let path = log_path(&dir, container, u32::try_from(run).unwrap_or(u32::MAX));
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("the log of run {run} of container \"{container}\" in pod \"{name}\" is not kept on this node"))
    }
}

/// Follows a log file from `offset`: whole records as they are written,
/// across rotations, until the run ends.
struct Follower {
    path: PathBuf,
    file: File,
    offset: u64,
    partial: Vec<u8>,
    timestamps: bool,
    left: Option<usize>,
    writing: Writing,
}

impl Follower {
    fn stream(self) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures::stream::unfold(Some(self), |state| async move {
            let mut follower = state?;
            loop {
                if follower.left == Some(0) {
                    return None;
                }
                // Whether the run still writes, asked before reading: what
                // it wrote before it ended is read below.
                let writing = follower.writing.contains(&follower.path);
                match follower.read_more() {
                    Ok(bytes) if !bytes.is_empty() => return Some((Ok(Bytes::from(bytes)), Some(follower))),
                    Ok(_) if follower.reopen_if_rotated() => continue,
                    Ok(_) if !writing => return None,
                    Ok(_) => tokio::time::sleep(FOLLOW_POLL).await,
                    Err(error) => return Some((Err(error), None)),
                }
            }
        })
    }

    /// What was written since the last read, rendered (whole records only).
    fn read_more(&mut self) -> std::io::Result<Vec<u8>> {
        let mut chunk = vec![0; FOLLOW_CHUNK];
        self.file.seek(SeekFrom::Start(self.offset))?;
        let read = self.file.read(&mut chunk)?;
        self.offset += read as u64;
        self.partial.extend_from_slice(&chunk[..read]);
        let mut out = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            if let Some(record) = Record::parse(String::from_utf8_lossy(&line[..end]).as_ref()) {
                record.render(self.timestamps, &mut out);
            }
        }
        if let Some(left) = self.left.as_mut() {
            out.truncate(*left);
            *left -= out.len();
        }
        Ok(out)
    }

    /// Whether the path now names a new file (the old one was rotated):
    /// if so, goes on from the start of the new one.
    fn reopen_if_rotated(&mut self) -> bool {
        let (Ok(now), Ok(open)) = (std::fs::metadata(&self.path), self.file.metadata()) else { return false };
        if now.ino() == open.ino() {
            return false;
        }
        match File::open(&self.path) {
            Ok(file) => {
                self.file = file;
                self.offset = 0;
                self.partial.clear();
                true
            }
            Err(_) => false,
        }
    }
}
