//! Goal: `engenho mesh chain verify FILE --ca CA` holds a chain of the
//! cluster's transitions to its signatures offline, with the CA
//! certificate alone: exit 0 and a summary when it holds, non-zero naming
//! the first bad entry when a byte of it changed. Method: a cluster CA and
//! Ed25519 node certificates made as `engenho up` makes them, a chain
//! signed by its leader and witnesses, the real binary.

use std::collections::BTreeMap;
use std::process::Command;

use engenho_chain::{ChainFile, Entry, Event, FORMAT, NodeKey, Reason, Role};

#[test]
fn an_exported_chain_verifies_offline_and_a_changed_byte_is_named() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = engenho_pki::ClusterCa::create(&dir.path().join("pki")).expect("a CA");
    let mut certificates = BTreeMap::new();
    let mut keys = Vec::new();
    for name in ["a", "b"] {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("an Ed25519 key");
        let request = rcgen::CertificateParams::default().serialize_request(&key).expect("a request");
        let profile = engenho_pki::Profile::Node { name: name.into(), ip: "127.0.0.1".parse().expect("ip") };
        let certificate = ca.sign_request(&request.pem().expect("pem"), &profile).expect("issued");
        certificates.insert(name.to_owned(), engenho_chain::canonical_pem(&certificate).expect("pem"));
        keys.push(NodeKey::from_pkcs8(name, &key.serialize_der()).expect("key"));
    }
    let events = [
        Event::Genesis { voters: vec!["a".into()] },
        Event::Joined { node: "b".into() },
        Event::Role { node: "b".into(), role: Role::Voter, reason: Reason::Promote },
        Event::Role { node: "b".into(), role: Role::Learner, reason: Reason::Demote },
    ];
    let mut entries: Vec<Entry> = Vec::new();
    for (index, event) in events.into_iter().enumerate() {
        let mut entry = Entry::after(entries.last(), 1, 5 + index as u64, "2026-12-06T12:00:00Z".into(), event);
        entry.sign_as_leader(&keys[0]);
        if index == 3 {
            entry.witness(&keys[1]);
        }
        entries.push(entry);
    }
    let file = ChainFile { format: FORMAT.into(), certificates, entries };
    let path = dir.path().join("chain.json");
    std::fs::write(&path, file.to_text()).expect("write the chain");
    let ca_path = dir.path().join("pki").join("ca.crt");
    let verify = |path: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_engenho"))
            .args(["mesh", "chain", "verify"])
            .arg(path)
            .arg("--ca")
            .arg(&ca_path)
            .output()
            .expect("run engenho mesh chain verify")
    };
    let held = verify(&path);
    let said = String::from_utf8_lossy(&held.stdout);
    assert!(held.status.success(), "{said}{}", String::from_utf8_lossy(&held.stderr));
    assert!(said.contains("4 entries verify; voters at the end: a;"), "{said}");

    let changed = dir.path().join("changed.json");
    std::fs::write(&changed, file.to_text().replacen("\"raft_index\": 7", "\"raft_index\": 8", 1)).expect("write");
    let refused = verify(&changed);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(said.contains("entry 2: the leader signature of a does not verify"), "{said}");
}
