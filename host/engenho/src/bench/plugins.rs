//! `engenho bench plugins`: admission policies as components. The cost of
//! one call of each built-in policy on a realistic 4 KB pod (as the API
//! server calls it: a future on the async runtime, under the host's
//! turns), loading a policy compiled and from the precompiled cache, the
//! four-policy chain's throughput on one core, and the latency of a live
//! swap on a running node.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use engenho_api::kube::plugins::built_in_policies;
use engenho_wasm::{AdmissionPolicy, Limits, Operation, PluginHost, Review, UserInfo, digest_of};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::{Cluster, System};

/// Arguments of `engenho bench plugins`.
#[derive(Debug, clap::Args)]
pub struct PluginBenchArgs {
    /// Calls measured per policy, and reviews through the chain.
    #[arg(long, default_value_t = 20_000)]
    calls: usize,
    /// Live swaps measured on the node.
    #[arg(long, default_value_t = 20)]
    swaps: usize,
}

/// A pod of about 4 KB of JSON, as a real workload's: labels,
/// annotations, two containers with environment, ports, probes and mounts.
fn realistic_pod() -> serde_json::Value {
    let env: Vec<serde_json::Value> = (0..18)
        .map(|i| serde_json::json!({"name": format!("SETTING_{i:02}"), "value": format!("value-number-{i:02}-for-the-app")}))
        .collect();
    let container = |name: &str| {
        serde_json::json!({
            "name": name,
            "image": format!("registry.example.com/team/{name}@sha256:{}", "ab".repeat(32)),
            "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "metrics"}],
            "env": env,
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}, "periodSeconds": 10},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}, {"name": "cache", "mountPath": "/cache"}],
            "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false},
        })
    };
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d9f8b6c5d-x2k4p",
            "namespace": "shop",
            "labels": {"app": "web", "team": "storefront", "tier": "frontend", "pod-template-hash": "7d9f8b6c5d"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
                "kubectl.kubernetes.io/restartedAt": "2026-11-25T10:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8b6c5d",
                "uid": "6a1f0c2e-8d4b-4c3a-9e7f-1b2c3d4e5f60", "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "containers": [container("web"), container("sidecar")],
            "volumes": [{"name": "config", "configMap": {"name": "web-config"}}, {"name": "cache", "emptyDir": {}}],
            "serviceAccountName": "web",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}],
        },
    })
}

fn review(object: &str) -> Review {
    Review {
        uid: "bench".into(),
        operation: Operation::Create,
        group: String::new(),
        version: "v1".into(),
        kind: "Pod".into(),
        plural: "pods".into(),
        subresource: String::new(),
        namespace: "shop".into(),
        name: "web-7d9f8b6c5d-x2k4p".into(),
        user: UserInfo {
            username: "system:serviceaccount:kube-system:replicaset-controller".into(),
            uid: String::new(),
            groups: vec!["system:serviceaccounts".into()],
        },
        dry_run: false,
        object: object.to_owned(),
        old_object: String::new(),
    }
}

/// Runs the plugin benchmark and prints its tables.
pub async fn run(args: PluginBenchArgs) -> anyhow::Result<()> {
    let root = tempfile::tempdir().context("temporary directory")?;
    let cache = root.path().join("cache");
    let pod = realistic_pod().to_string();
    let review = review(&pod);
    println!("pod: {} bytes of JSON; {} calls per policy\n", pod.len(), args.calls);

    let compiling = PluginHost::new(Some(cache.clone()))?;
    let warm = PluginHost::new(Some(cache.clone()))?;
    let mut policies = Vec::new();
    println!("| policy | component | compile + load | load from the precompiled cache | call p50 | call p99 |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, spec) in built_in_policies() {
        let bytes = engenho_plugin_artifacts::plugin(name).context("built-in policies are built")?;
        let mut config = spec["config"].clone();
        if name == "required-labels" {
            config = serde_json::json!({"labels": ["team", "app"]});
        }
        let config = config.to_string();
        let digest = digest_of(bytes);
        let started = Instant::now();
        AdmissionPolicy::load(&compiling, name, &digest, bytes, &config, Limits::default()).await?;
        let cold = started.elapsed();
        let started = Instant::now();
        let policy = AdmissionPolicy::load(&warm, name, &digest, bytes, &config, Limits::default()).await?;
        let cached = started.elapsed();
        let mut latencies = Vec::with_capacity(args.calls);
        for _ in 0..args.calls / 10 {
            policy.admit(&warm, &review).await?;
        }
        for _ in 0..args.calls {
            let started = Instant::now();
            let decision = policy.admit(&warm, &review).await?;
            latencies.push(started.elapsed());
            anyhow::ensure!(decision.allowed, "{name} refused the benchmark pod: {}", decision.reason);
        }
        latencies.sort();
        println!(
            "| {name} | {} KB | {} | {} | {} | {} |",
            bytes.len() / 1024,
            super::millis(cold),
            super::millis(cached),
            micros(percentile(&latencies, 0.50)),
            micros(percentile(&latencies, 0.99)),
        );
        policies.push(policy);
    }

    let started = Instant::now();
    for _ in 0..args.calls {
        for policy in &policies {
            policy.admit(&warm, &review).await?;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "\nfour-policy chain on one core: {:.0} reviews/s ({} per review)\n",
        args.calls as f64 / elapsed.as_secs_f64(),
        micros(elapsed / u32::try_from(args.calls).unwrap_or(u32::MAX)),
    );

    let swaps = swap_latency(root.path(), args.swaps).await?;
    println!("| live swaps | p50 | max |");
    println!("| --- | --- | --- |");
    println!(
        "| {} | {} | {} |",
        swaps.len(),
        super::millis(percentile(&swaps, 0.5)),
        super::millis(percentile(&swaps, 1.0))
    );
    Ok(())
}

/// The time from a Plugin's changed configuration being accepted by the API
/// to the first request decided by the new version, `swaps` times.
async fn swap_latency(root: &Path, swaps: usize) -> anyhow::Result<Vec<Duration>> {
    let dir = root.join("engenho-plugins");
    let cluster = Cluster::start(System::Engenho, 1, &dir, Path::new("etcd")).await?;
    cluster.wait_for_leader().await?;
    let client = super::api::connect(&dir.join("n0").join("kubeconfig")).await?;
    let plugins = crate::plugin::plugins_api(client.clone());
    let configmaps: Api<ConfigMap> = Api::default_namespaced(client);
    let probe: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "probe"}}))?;
    let dry_run = PostParams { dry_run: true, ..PostParams::default() };
    let mut latencies = Vec::with_capacity(swaps);
    for swap in 0..swaps {
        let requires = swap % 2 == 0;
        let labels = if requires { serde_json::json!(["swap"]) } else { serde_json::json!([]) };
        let patch = serde_json::json!({"spec": {"config": {"labels": labels}}});
        plugins.patch("required-labels", &PatchParams::default(), &Patch::Merge(&patch)).await?;
        let accepted = Instant::now();
        loop {
            let allowed = configmaps.create(&dry_run, &probe).await.is_ok();
            if allowed != requires {
                break;
            }
            anyhow::ensure!(accepted.elapsed() < Duration::from_secs(10), "swap {swap} never took effect");
        }
        latencies.push(accepted.elapsed());
    }
    latencies.sort();
    Ok(latencies)
}

fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * quantile).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}
