//! `engenho scheduler`: try a scheduler profile against the cluster without
//! binding anything.

use std::path::PathBuf;

use anyhow::{Context, bail};
use engenho_api::kube::scheduler::trial::{EXPLAIN_ANNOTATION, TRY_ALL_ANNOTATION};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::Value;

/// `engenho scheduler` arguments.
#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    #[command(subcommand)]
    command: SchedulerCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SchedulerCommand {
    /// Place the cluster's pending pods with a candidate SchedulerProfile
    /// (a dry run: nothing is bound or written) and print where each would
    /// go compared with today.
    Try(TryArgs),
}

/// `engenho scheduler try` arguments.
#[derive(Debug, clap::Args)]
struct TryArgs {
    /// Place every pod bound under the profile's scheduler name again too,
    /// as if it were pending.
    #[arg(long)]
    all: bool,
    /// A pod (NAMESPACE/NAME) whose every plugin verdict and score to
    /// print, node by node. Repeatable.
    #[arg(long = "explain", value_name = "NAMESPACE/POD")]
    explain: Vec<String>,
    /// The SchedulerProfile file (YAML or JSON).
    profile: PathBuf,
}

/// Runs `engenho scheduler`.
pub async fn run(args: SchedulerArgs) -> anyhow::Result<()> {
    match args.command {
        SchedulerCommand::Try(try_args) => try_profile(try_args).await,
    }
}

/// The cluster's `SchedulerProfile` objects.
fn profiles_api(client: kube::Client) -> Api<DynamicObject> {
    crate::plugin::engenho_kind_api(client, "SchedulerProfile", "schedulerprofiles")
}

async fn try_profile(args: TryArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.profile).with_context(|| format!("reading {}", args.profile.display()))?;
    let mut profile: Value =
        serde_yaml::from_str(&text).with_context(|| format!("{} is not YAML", args.profile.display()))?;
    if profile.get("kind").and_then(Value::as_str) != Some("SchedulerProfile") {
        bail!("{} is not a SchedulerProfile", args.profile.display());
    }
    let name = profile.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    if name.is_empty() {
        bail!("{}: the profile has no metadata.name", args.profile.display());
    }
    for pod in &args.explain {
        if !pod.split_once('/').is_some_and(|(n, p)| !n.is_empty() && !p.is_empty()) {
            bail!("--explain {pod:?} is not NAMESPACE/POD");
        }
    }
    let annotations = &mut profile["metadata"]["annotations"];
    if !annotations.is_object() {
        *annotations = serde_json::json!({});
    }
    annotations[TRY_ALL_ANNOTATION] = args.all.to_string().into();
    annotations[EXPLAIN_ANNOTATION] = args.explain.join(",").into();
    let object: DynamicObject = serde_json::from_value(profile).context("the profile is not a Kubernetes object")?;

    let client = kube::Client::try_default().await.context("connecting with the kubeconfig")?;
    let api = profiles_api(client);
    let params = PostParams { dry_run: true, ..PostParams::default() };
    let exists = api.get_opt(&name).await.context("reading the SchedulerProfile")?.is_some();
    let answer = match exists {
        true => api.replace(&name, &params, &object).await,
        false => api.create(&params, &object).await,
    };
    let answer = answer.map_err(|error| match error {
        kube::Error::Api(status) => anyhow::anyhow!("{}", status.message),
        other => anyhow::Error::new(other).context("trying the SchedulerProfile"),
    })?;
    let Some(trial) = answer.data.pointer("/status/trial") else {
        bail!("the server answered without a trial (does it run engenho's scheduler?)");
    };
    print!("{}", render(trial));
    Ok(())
}

/// The report as the command prints it.
fn render(trial: &Value) -> String {
    let mut out = String::new();
    let rows: Vec<[String; 3]> = items(trial.get("pods"))
        .filter(|p| text(p, "result") != "Same")
        .map(|p| {
            let trial = match p.get("trial").and_then(Value::as_str) {
                Some(node) => node.to_owned(),
                None => format!("<{}> {}", text(p, "result").to_lowercase(), text(p, "message")),
            };
            let today = p.get("today").and_then(Value::as_str).unwrap_or("<pending>").to_owned();
            [format!("{}/{}", text(p, "namespace"), text(p, "name")), today, trial]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("no pod would go elsewhere\n");
    } else {
        out.push_str(&table(&[["POD".into(), "TODAY".into(), "TRIAL".into()]], &rows));
    }
    let summary = &trial["summary"];
    let count = |field: &str| summary.get(field).and_then(Value::as_u64).unwrap_or(0);
    out.push_str(&format!(
        "{} pods of scheduler {:?}: {} same, {} moved, {} newly placed, {} unschedulable, {} failed (store revision {}, {} ms)\n",
        count("pods"),
        text(trial, "schedulerName"),
        count("same"),
        count("moved"),
        count("placed"),
        count("unschedulable"),
        count("failed"),
        text(trial, "revision"),
        trial.get("tookMillis").and_then(Value::as_u64).unwrap_or(0),
    ));
    let left_out = trial.get("podsLeftOut").and_then(Value::as_u64).unwrap_or(0);
    if left_out > 0 {
        out.push_str(&format!("({left_out} more pods are not listed)\n"));
    }
    for explanation in items(trial.get("explanations")) {
        out.push('\n');
        out.push_str(&render_explanation(explanation));
    }
    out
}

/// One explained pod: its nodes × the profile's plugins.
fn render_explanation(explanation: &Value) -> String {
    let pod = format!("{}/{}", text(explanation, "namespace"), text(explanation, "name"));
    let chosen = explanation.get("chosen").and_then(Value::as_str);
    let mut out = match chosen {
        Some(node) => format!("{pod}: chosen {node}\n"),
        None => format!("{pod}: {}\n", text(explanation, "message")),
    };
    let nodes: Vec<&Value> = items(explanation.get("nodes")).collect();
    let mut plugins: Vec<String> = Vec::new();
    for node in &nodes {
        for entry in items(node.get("filters")).chain(items(node.get("scores"))) {
            let plugin = text(entry, "plugin").to_owned();
            if !plugins.contains(&plugin) {
                plugins.push(plugin);
            }
        }
    }
    if nodes.is_empty() {
        return out;
    }
    let mut header = vec!["NODE".to_owned()];
    header.extend(plugins.iter().map(|p| p.to_uppercase()));
    header.push("TOTAL".into());
    let mut rows = Vec::new();
    let mut reasons = Vec::new();
    for node in &nodes {
        let name = text(node, "name");
        let marker = if Some(name) == chosen { "*" } else { "" };
        let mut row = vec![format!("{name}{marker}")];
        for plugin in &plugins {
            let by = |field: &str| items(node.get(field)).find(|e| text(e, "plugin") == plugin);
            let verdict = by("filters").map(|f| {
                let reason: Vec<&str> = items(f.get("reasons")).filter_map(Value::as_str).collect();
                if !reason.is_empty() {
                    reasons.push(format!("  {name}: {plugin}: {}", reason.join("; ")));
                }
                text(f, "verdict").to_lowercase()
            });
            let score = by("scores").map(|s| {
                let value = |field: &str| s.get(field).and_then(Value::as_u64).unwrap_or(0);
                format!("{}x{}", value("score"), value("weight"))
            });
            row.push(match (verdict, score) {
                (Some(verdict), Some(score)) => format!("{verdict} {score}"),
                (Some(verdict), None) => verdict,
                (None, Some(score)) => score,
                (None, None) => "-".into(),
            });
        }
        row.push(node.get("total").and_then(Value::as_u64).map_or_else(|| "-".into(), |t| t.to_string()));
        rows.push(row);
    }
    out.push_str(&table(&[header], &rows));
    let left_out = explanation.get("nodesLeftOut").and_then(Value::as_u64).unwrap_or(0);
    if left_out > 0 {
        out.push_str(&format!("({left_out} more nodes are not listed)\n"));
    }
    for reason in reasons {
        out.push_str(&reason);
        out.push('\n');
    }
    out
}

/// `header` and `rows` in columns as wide as their widest cell.
fn table<R: AsRef<[String]>>(header: &[R], rows: &[R]) -> String {
    let all: Vec<&[String]> = header.iter().chain(rows).map(AsRef::as_ref).collect();
    let columns = all.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| all.iter().filter_map(|r| r.get(c)).map(|cell| cell.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in all {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn items(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value.and_then(Value::as_array).into_iter().flatten()
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_report_lists_changed_pods_a_summary_and_each_explanation() {
        let trial = json!({
            "revision": "42", "schedulerName": "default-scheduler",
            "summary": {"pods": 3, "same": 1, "moved": 1, "placed": 0, "unschedulable": 1, "failed": 0},
            "podsLeftOut": 0,
            "pods": [
                {"namespace": "default", "name": "web", "today": "small", "trial": "large", "result": "Moved"},
                {"namespace": "default", "name": "huge", "today": null, "trial": null, "result": "Unschedulable",
                 "message": "0/2 nodes are available: 2 Insufficient cpu."},
                {"namespace": "default", "name": "db", "today": "large", "trial": "large", "result": "Same"},
            ],
            "explanations": [{"namespace": "default", "name": "web", "chosen": "large", "nodes": [
                {"name": "large", "feasible": true, "total": 300,
                 "filters": [{"plugin": "taint-toleration", "verdict": "Fits", "reasons": []}],
                 "scores": [{"plugin": "taint-toleration", "score": 100, "weight": 3}]},
                {"name": "gpu", "feasible": false, "total": null,
                 "filters": [{"plugin": "taint-toleration", "verdict": "Unresolvable",
                              "reasons": ["node(s) had untolerated taint {dedicated: gpu}"]}],
                 "scores": []},
            ]}],
        });
        let printed = render(&trial);
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines[0], "POD           TODAY      TRIAL");
        assert_eq!(lines[1], "default/web   small      large");
        assert_eq!(lines[2], "default/huge  <pending>  <unschedulable> 0/2 nodes are available: 2 Insufficient cpu.");
        assert!(!printed.contains("default/db"), "unchanged pods are only counted: {printed}");
        assert!(lines[3].starts_with("3 pods of scheduler \"default-scheduler\": 1 same, 1 moved"), "{printed}");
        assert_eq!(lines[5], "default/web: chosen large");
        assert_eq!(lines[6], "NODE    TAINT-TOLERATION  TOTAL");
        assert_eq!(lines[7], "large*  fits 100x3        300");
        assert_eq!(lines[8], "gpu     unresolvable      -");
        assert_eq!(lines[9], "  gpu: taint-toleration: node(s) had untolerated taint {dedicated: gpu}");
    }
}
