//! Goal: a node never runs on a corrupt data directory, and says which
//! file is corrupt and what to do; the files the store writes are private.
//! Method: run a real node, write through etcdctl, stop it, flip one byte
//! of the database journal (or of the raft snapshot) on disk, start it
//! again and expect it to exit with an error that names the file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use engenho_store::{CORRUPT_REMEDY, PRIVATE_FILE_MODE};

use crate::support::{EngenhoNode, wait_for};

/// Raft log entries between snapshots in the snapshot test.
const SNAPSHOT_LOGS: &str = "20";

/// Every file under `dir`, in its subdirectories too.
fn files(dir: &Path) -> Vec<PathBuf> {
    entries(dir).into_iter().filter(|path| !path.is_dir()).collect()
}

/// `dir` and everything under it.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![dir.to_owned()];
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

/// Starts `node` with `extra` arguments, expects it to fail, and returns
/// what it logged.
fn failed_start(node: &mut EngenhoNode, extra: &[&str]) -> String {
    node.start(extra);
    let status = node.wait_exit();
    assert!(!status.success(), "a node on a corrupt data directory must not run; log:\n{}", node.log_text());
    node.log_text()
}

#[test]
fn a_flipped_byte_in_the_database_journal_stops_the_start() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "journal");
    node.start_ready(&[]);
    let marker = "flip-one-byte-of-this-value-on-disk";
    node.etcdctl_ok(&["put", "precious", marker]);
    node.stop();

    let db = node.dir.join("db");
    let (file, at) = files(&db)
        .into_iter()
        .find_map(|file| {
            let bytes = std::fs::read(&file).expect("read");
            bytes.windows(marker.len()).position(|w| w == marker.as_bytes()).map(|at| (file, at))
        })
        .expect("the value is in the database's journal");
    flip_byte(&file, at);

    let log = failed_start(&mut node, &[]);
    assert!(log.contains(&format!("{} is corrupt (journal checksum mismatch)", db.display())), "{log}");
    assert!(log.contains(CORRUPT_REMEDY), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_flipped_byte_in_the_raft_snapshot_stops_the_start() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "snapshot");
    node.start_ready(&["--snapshot-logs", SNAPSHOT_LOGS]);
    let snapshot = node.dir.join("raft-snapshot.bin");
    let mut written = 0;
    wait_for("a raft snapshot", Duration::from_secs(60), || {
        written += 1;
        node.etcdctl_ok(&["put", &format!("k{written}"), "v"]);
        snapshot.exists()
    });
    node.stop();

    for file in files(&node.dir.join("db")).iter().chain([&snapshot]) {
        let mode = std::fs::metadata(file).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, PRIVATE_FILE_MODE, "{}", file.display());
    }
    let size = std::fs::metadata(&snapshot).expect("metadata").len();
    flip_byte(&snapshot, usize::try_from(size / 2).expect("small"));

    let log = failed_start(&mut node, &["--snapshot-logs", SNAPSHOT_LOGS]);
    assert!(log.contains(&format!("{} is corrupt (checksum mismatch)", snapshot.display())), "{log}");
    assert!(log.contains(CORRUPT_REMEDY), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// A data directory whose files were opened up (0644 files, 0755
/// directories) is private again once the node has started, every key,
/// token, certificate and database file included.
#[test]
fn a_start_makes_the_data_directory_private_again() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "private");
    node.start_ready(&[]);
    node.etcdctl_ok(&["put", "k", "v"]);
    node.stop();
    for path in &entries(&node.dir) {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    node.start_ready(&[]);
    for path in entries(&node.dir) {
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        let expected = if path.is_dir() { 0o700 } else { PRIVATE_FILE_MODE };
        assert_eq!(mode, expected, "{} is {mode:o}", path.display());
    }
    for key in ["pki/ca.key", "pki/node.key", "pki/etcd-client.key", "admin-token", "join-token", "kubeconfig"] {
        assert!(node.dir.join(key).exists(), "{key} is in the data directory");
    }
    assert_eq!(node.local_value("k").as_deref(), Some("v"));
    node.stop();
}
