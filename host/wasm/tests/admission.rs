//! Goal: admission policies run as components, contained by their limits.
//! Method: load the built plugins (host/plugin-artifacts) into a real
//! wasmtime host and call them as the API server will.

use std::time::{Duration, Instant};

use engenho_wasm::{AdmissionPolicy, Grants, Limits, Operation, PluginError, PluginHost, Review, UserInfo, digest_of};

fn plugin(name: &str) -> &'static [u8] {
    engenho_plugin_artifacts::plugin(name).expect("built by the artifacts crate")
}

async fn load(host: &PluginHost, name: &str, config: &str, limits: Limits) -> Result<AdmissionPolicy, PluginError> {
    let bytes = plugin(name);
    AdmissionPolicy::load(host, name, &digest_of(bytes), bytes, config, limits).await
}

fn pod_review(labels: &str, operation: Operation) -> Review {
    Review {
        uid: "r-1".into(),
        operation,
        group: String::new(),
        version: "v1".into(),
        kind: "Pod".into(),
        plural: "pods".into(),
        subresource: String::new(),
        namespace: "default".into(),
        name: "web".into(),
        user: UserInfo { username: "admin".into(), uid: String::new(), groups: vec!["system:masters".into()] },
        dry_run: false,
        object: format!(r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "web", "labels": {labels}}}}}"#),
        old_object: String::new(),
    }
}

#[tokio::test]
async fn required_labels_decides_by_its_configuration() {
    let host = PluginHost::new(None).expect("host");
    let policy =
        load(&host, "required-labels", r#"{"labels": ["team", "tier"]}"#, Limits::default()).await.expect("loads");
    let decision = policy.admit(&host, &pod_review(r#"{"team": "a"}"#, Operation::Create)).await.expect("decides");
    assert!(!decision.allowed);
    assert_eq!(decision.reason, "missing required labels: tier");
    let decision =
        policy.admit(&host, &pod_review(r#"{"team": "a", "tier": "web"}"#, Operation::Update)).await.expect("decides");
    assert!(decision.allowed, "{}", decision.reason);
    assert!(policy.admit(&host, &pod_review("{}", Operation::Delete)).await.expect("decides").allowed);

    let refused = load(&host, "required-labels", "not json", Limits::default()).await.err().expect("refused");
    assert!(matches!(refused, PluginError::Configuration { .. }), "{refused}");
    assert!(refused.to_string().contains("invalid configuration"), "{refused}");
}

#[tokio::test]
async fn bad_bytes_and_wrong_digests_are_refused() {
    let host = PluginHost::new(None).expect("host");
    let bytes = plugin("required-labels");
    let wrong = AdmissionPolicy::load(&host, "p", &digest_of(b"other"), bytes, "{}", Limits::default()).await;
    assert!(matches!(wrong, Err(PluginError::DigestMismatch { .. })));

    let core_module = b"\0asm\x01\0\0\0";
    let refused =
        AdmissionPolicy::load(&host, "core", &digest_of(core_module), core_module, "{}", Limits::default()).await;
    assert!(refused.err().expect("refused").to_string().contains("core WebAssembly module, not a component"));

    let truncated = &bytes[..bytes.len() / 2];
    let refused = AdmissionPolicy::load(&host, "cut", &digest_of(truncated), truncated, "{}", Limits::default()).await;
    assert!(matches!(refused, Err(PluginError::Invalid { .. })));

    let empty_component = b"\0asm\x0d\0\x01\0";
    let refused =
        AdmissionPolicy::load(&host, "empty", &digest_of(empty_component), empty_component, "{}", Limits::default())
            .await;
    let message = refused.err().expect("refused").to_string();
    assert!(message.contains("not an admission-policy component"), "{message}");
}

#[tokio::test]
async fn loops_memory_bombs_traps_and_nonsense_are_contained() {
    let host = PluginHost::new(None).expect("host");
    let limits = Limits { deadline: Duration::from_millis(50), memory_bytes: 16 << 20, ..Limits::default() };
    let review = pod_review("{}", Operation::Create);

    let looping = load(&host, "misbehaving", r#"{"mode": "loop"}"#, limits).await.expect("loads");
    let started = Instant::now();
    let error = looping.admit(&host, &review).await.expect_err("interrupted");
    assert!(matches!(error, PluginError::Deadline { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2), "stopped near its deadline: {:?}", started.elapsed());

    let bomb = load(&host, "misbehaving", r#"{"mode": "bomb"}"#, limits).await.expect("loads");
    let error = bomb.admit(&host, &review).await.expect_err("refused memory");
    assert!(matches!(error, PluginError::Trap { .. }), "{error}");

    let trap = load(&host, "misbehaving", r#"{"mode": "trap"}"#, limits).await.expect("loads");
    assert!(matches!(trap.admit(&host, &review).await, Err(PluginError::Trap { .. })));

    let nonsense = load(&host, "misbehaving", r#"{"mode": "bad-patch"}"#, limits).await.expect("loads");
    assert!(matches!(nonsense.admit(&host, &review).await, Err(PluginError::MalformedOutput { .. })));

    let fine = load(&host, "misbehaving", r#"{"mode": "allow"}"#, limits).await.expect("loads");
    assert!(fine.admit(&host, &review).await.expect("the host still works").allowed);
    assert!(error.to_string().contains("misbehaving"), "errors name the plugin: {error}");
}

#[tokio::test]
async fn components_are_kept_precompiled_on_disk() {
    let dir = tempfile::tempdir().expect("cache directory");
    let bytes = plugin("required-labels");
    let config = r#"{"labels": []}"#;
    {
        let host = PluginHost::new(Some(dir.path().to_owned())).expect("host");
        AdmissionPolicy::load(&host, "p", &digest_of(bytes), bytes, config, Limits::default()).await.expect("compiles");
    }
    let cached: Vec<_> = std::fs::read_dir(dir.path()).expect("listing").map(|e| e.expect("entry").path()).collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].to_string_lossy().contains(&digest_of(bytes)));

    let host = PluginHost::new(Some(dir.path().to_owned())).expect("host");
    let started = Instant::now();
    let policy =
        AdmissionPolicy::load(&host, "p", &digest_of(bytes), bytes, config, Limits::default()).await.expect("loads");
    let warm = started.elapsed();
    assert!(policy.admit(&host, &pod_review("{}", Operation::Create)).await.expect("decides").allowed);

    std::fs::write(&cached[0], b"garbage").expect("corrupt the cache");
    let host = PluginHost::new(Some(dir.path().to_owned())).expect("host");
    let policy = AdmissionPolicy::load(&host, "p", &digest_of(bytes), bytes, config, Limits::default())
        .await
        .expect("recompiles");
    assert!(policy.admit(&host, &pod_review("{}", Operation::Create)).await.expect("decides").allowed);
    eprintln!("loading from the precompiled cache took {warm:?}");
}

#[tokio::test]
async fn plugins_reach_only_what_they_are_granted() {
    let host = PluginHost::new(None).expect("host");
    let bytes = plugin("misbehaving");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let peer = listener.local_addr().expect("address");
    let config = format!(r#"{{"mode": "reach", "peer": "{peer}"}}"#);
    let config = config.as_str();
    let review = pod_review("{}", Operation::Create);
    let closed = load(&host, "misbehaving", config, Limits::default()).await.expect("loads");
    let warnings = closed.admit(&host, &review).await.expect("decides").warnings;
    assert_eq!(warnings[0], "stdout: written");
    assert_eq!(warnings[1], "environment: no variable");
    assert!(warnings[2].starts_with("file: no file"), "{warnings:?}");
    assert!(warnings[3].starts_with("network: no connection"), "{warnings:?}");

    let dir = tempfile::tempdir().expect("granted directory");
    std::fs::write(dir.path().join("greeting.txt"), "hello from the host\n").expect("file");
    let grants = Grants {
        environment: vec![("GREETING".into(), "hi".into())],
        directories: vec![(dir.path().to_owned(), "/data".into())],
        tcp_connect: vec![peer],
    };
    let open = AdmissionPolicy::load_with_grants(
        &host,
        "misbehaving",
        &digest_of(bytes),
        bytes,
        config,
        Limits::default(),
        grants,
    )
    .await
    .expect("loads");
    let warnings = open.admit(&host, &review).await.expect("decides").warnings;
    assert_eq!(warnings, ["stdout: written", "environment: hi", "file: hello from the host", "network: connected"]);
}
