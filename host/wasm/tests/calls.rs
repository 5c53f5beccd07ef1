//! Goal: plugin calls never block the async runtime's workers, and their
//! turns and instances are shared so that no plugin starves the others.
//! Method: the built test plugins in a real wasmtime host, called from a
//! multi-threaded tokio runtime with two workers, as the API server calls
//! them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use engenho_wasm::{
    AdmissionPolicy, Grants, Limits, Operation, PLUGIN_CALLS_IN_FLIGHT_MAX, PluginError, PluginHost, Review, UserInfo,
    digest_of,
};

/// Held by the tests that time a victim's call against a hog's: two such
/// tests at once would each see the other's hog on the machine's cores.
static TIMED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn review() -> Review {
    Review {
        uid: "r-1".into(),
        operation: Operation::Create,
        group: String::new(),
        version: "v1".into(),
        kind: "Pod".into(),
        plural: "pods".into(),
        subresource: String::new(),
        namespace: "default".into(),
        name: "web".into(),
        user: UserInfo { username: "admin".into(), uid: String::new(), groups: Vec::new() },
        dry_run: false,
        object: r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {}}}"#.into(),
        old_object: String::new(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Loads the misbehaving test plugin as `name` in `config`'s mode.
async fn misbehaving(host: &PluginHost, name: &str, config: &str, limits: Limits) -> Arc<AdmissionPolicy> {
    let bytes = engenho_plugin_artifacts::plugin("misbehaving").expect("built");
    let digest = digest_of(bytes);
    let loading = AdmissionPolicy::load_with_grants(host, name, &digest, bytes, config, limits, Grants::default());
    Arc::new(loading.await.expect("loads"))
}

/// Goal: a plugin that writes to stdout, reads a granted directory and
/// connects to a granted address works when called from an async runtime
/// (WASI's host calls are awaited, not run blocking on a worker).
/// Method: the `reach` mode with every grant, called from inside a
/// multi-threaded runtime.
#[test]
fn granted_calls_work_from_an_async_runtime() {
    let host = Arc::new(PluginHost::new(None).expect("host"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let peer = listener.local_addr().expect("address");
    let dir = tempfile::tempdir().expect("granted directory");
    std::fs::write(dir.path().join("greeting.txt"), "hello from the host\n").expect("file");
    let grants = Grants {
        environment: vec![("GREETING".into(), "hi".into())],
        directories: vec![(dir.path().to_owned(), "/data".into())],
        tcp_connect: vec![peer],
    };
    let bytes = engenho_plugin_artifacts::plugin("misbehaving").expect("built");
    let config = format!(r#"{{"mode": "reach", "peer": "{peer}"}}"#);
    let digest = digest_of(bytes);
    let warnings = runtime().block_on(async {
        let loading =
            AdmissionPolicy::load_with_grants(&host, "reach", &digest, bytes, &config, Limits::default(), grants);
        let policy = loading.await.expect("loads");
        policy.admit(&host, &review()).await.expect("decides").warnings
    });
    assert_eq!(warnings, ["stdout: written", "environment: hi", "file: hello from the host", "network: connected"]);
}

/// Goal: a plugin under load cannot take every thread or instance: others
/// still load and decide at once.
/// Method: 300 calls of a plugin that loops to its deadline are started
/// together (more than the allocator's 256 instances); meanwhile a new
/// plugin loads, then decides 8 concurrent calls well within the looping
/// plugin's deadline. The looping calls beyond its share are refused as
/// busy once they waited their deadline.
#[test]
fn a_plugin_under_load_cannot_starve_the_others() {
    let _timed = TIMED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let host = Arc::new(PluginHost::new(None).expect("host"));
    let hog_limits = Limits { deadline: Duration::from_secs(2), ..Limits::default() };
    let (victim_elapsed, outcomes) = runtime().block_on(async {
        let hog = misbehaving(&host, "hog", r#"{"mode": "loop"}"#, hog_limits).await;
        let mut hogging = Vec::new();
        for _ in 0..300 {
            let (hog, host) = (hog.clone(), host.clone());
            hogging.push(tokio::spawn(async move { hog.admit(&host, &review()).await }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Loading compiles, which takes its own time on a loaded machine;
        // the victim's calls are what must not starve.
        let victim = misbehaving(&host, "victim", r#"{"mode": "allow"}"#, Limits::default()).await;
        let started = Instant::now();
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (victim, host) = (victim.clone(), host.clone());
                tokio::spawn(async move { victim.admit(&host, &review()).await })
            })
            .collect();
        for call in calls {
            assert!(call.await.expect("joined").expect("the victim decides").allowed);
        }
        let victim_elapsed = started.elapsed();
        let mut outcomes = Vec::new();
        for call in hogging {
            outcomes.push(call.await.expect("joined"));
        }
        (victim_elapsed, outcomes)
    });
    assert!(victim_elapsed < Duration::from_secs(1), "the victim waited {victim_elapsed:?}");
    let deadlines = outcomes.iter().filter(|o| matches!(o, Err(PluginError::Deadline { .. }))).count();
    let busy: Vec<_> =
        outcomes.iter().filter_map(|o| o.as_ref().err()).filter(|e| matches!(e, PluginError::Busy { .. })).collect();
    assert_eq!(deadlines + busy.len(), 300, "every looping call ends in its deadline or a refusal");
    assert!(deadlines >= PLUGIN_CALLS_IN_FLIGHT_MAX as usize, "the hog ran its share");
    assert_eq!(busy[0].to_string(), "plugin hog could not run: its 4 calls in flight did not end within 2s");
}

/// Goal: the instances kept idle across plugins stay within the host's
/// budget, so that many plugins under concurrent load all keep deciding.
/// Method: 80 plugins each take 4 concurrent calls that sleep 20 ms (so
/// the calls overlap and each plugin wants 4 instances: 320, more than the
/// allocator holds); every call must succeed, and the idle instances stay
/// within the budget.
#[test]
fn idle_instances_across_plugins_stay_within_the_budget() {
    let host = Arc::new(PluginHost::new(None).expect("host"));
    let outcomes = runtime().block_on(async {
        let mut policies = Vec::new();
        for index in 0..80 {
            let name = format!("sleeper-{index}");
            // Waiting for a turn counts against the deadline: a long one.
            let limits = Limits { deadline: Duration::from_secs(10), ..Limits::default() };
            policies.push(misbehaving(&host, &name, r#"{"mode": "slow", "millis": 20}"#, limits).await);
        }
        let mut calls = Vec::new();
        for policy in &policies {
            for _ in 0..4 {
                let (policy, host) = (policy.clone(), host.clone());
                calls.push(tokio::spawn(async move { policy.admit(&host, &review()).await }));
            }
        }
        let mut outcomes = Vec::new();
        for call in calls {
            outcomes.push(call.await.expect("joined"));
        }
        (outcomes, host.idle_instances())
    });
    let (outcomes, idle) = outcomes;
    let failed: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).map(ToString::to_string).collect();
    assert!(failed.is_empty(), "{} calls failed, the first: {:?}", failed.len(), failed.first());
    assert!(idle <= 240, "{idle} instances idle");
    assert!(idle > 0, "instances are kept for reuse");
    assert_eq!(host.idle_instances(), 0, "dropped policies give their idle instances back");
}

/// Goal: a plugin that computes gives the runtime back at every epoch tick,
/// so that it holds no worker for longer than a tick at a time.
/// Method: on a runtime with a single thread, a plugin that loops to its
/// one-second deadline is started first; another plugin's call and a timer
/// on the same thread must still finish within a few ticks.
#[test]
fn a_computing_plugin_yields_its_thread_at_every_tick() {
    let _timed = TIMED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let host = Arc::new(PluginHost::new(None).expect("host"));
    let single = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (victim_elapsed, hogged) = single.block_on(async {
        let hog_limits = Limits { deadline: Duration::from_secs(1), ..Limits::default() };
        let hog = misbehaving(&host, "hog", r#"{"mode": "loop"}"#, hog_limits).await;
        let victim = misbehaving(&host, "victim", r#"{"mode": "allow"}"#, Limits::default()).await;
        let hogging = {
            let host = host.clone();
            tokio::spawn(async move { hog.admit(&host, &review()).await })
        };
        // The hog is running once the timer lets this task go on.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let started = Instant::now();
        assert!(victim.admit(&host, &review()).await.expect("the victim decides").allowed);
        let victim_elapsed = started.elapsed();
        (victim_elapsed, hogging.await.expect("joined"))
    });
    assert!(victim_elapsed < Duration::from_millis(200), "the victim waited {victim_elapsed:?}");
    assert!(matches!(hogged, Err(PluginError::Deadline { .. })), "{hogged:?}");
}
