//! `engenho mesh`: the cluster's distribution layer as an operator sees
//! it. `engenho mesh status` shows, through the kubeconfig (`$KUBECONFIG`),
//! the raft members with their roles and progress and what gossip says of
//! each; `engenho mesh chain export` writes the cluster's chain of
//! transitions, and `engenho mesh chain verify FILE --ca CA` checks it
//! offline, with the cluster CA certificate alone.

use std::path::PathBuf;

use anyhow::Context;

/// `engenho mesh` arguments.
#[derive(clap::Args, Debug)]
pub struct MeshArgs {
    #[command(subcommand)]
    command: MeshCommand,
}

#[derive(clap::Subcommand, Debug)]
enum MeshCommand {
    /// The members, their roles and raft progress, and their gossip
    /// liveness, as the node the kubeconfig reaches sees them.
    Status {
        /// Print the node's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The attested chain of the cluster's transitions.
    Chain {
        #[command(subcommand)]
        command: ChainCommand,
    },
}

#[derive(clap::Subcommand, Debug)]
enum ChainCommand {
    /// Write the cluster's chain, as the node the kubeconfig reaches holds
    /// it, to standard output (JSON, the form `verify` checks).
    Export,
    /// Check an exported chain offline: hashes, order, the leader's and
    /// the witnesses' signatures, the signers' certificates. Exits 0 when
    /// it holds, non-zero naming the first bad entry otherwise.
    Verify {
        /// The chain file (JSON, as exported).
        file: PathBuf,
        /// The cluster CA certificate (a node's `pki/ca.crt`).
        #[arg(long)]
        ca: PathBuf,
    },
}

/// Runs an `engenho mesh` command.
///
/// # Errors
/// Files that cannot be read, or a chain that does not verify.
pub async fn run(args: MeshArgs) -> anyhow::Result<()> {
    match args.command {
        MeshCommand::Status { json } => {
            let client = kube::Client::try_default().await.context("connecting with the kubeconfig")?;
            let request = http::Request::get("/mesh/status").body(Vec::new())?;
            let status: serde_json::Value = client.request(request).await.context("reading /mesh/status")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(())
        }
        MeshCommand::Chain { command: ChainCommand::Export } => {
            let client = kube::Client::try_default().await.context("connecting with the kubeconfig")?;
            let request = http::Request::get("/mesh/chain").body(Vec::new())?;
            let text = client.request_text(request).await.context("reading /mesh/chain")?;
            print!("{text}");
            Ok(())
        }
        MeshCommand::Chain { command: ChainCommand::Verify { file, ca } } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let ca = std::fs::read_to_string(&ca).with_context(|| format!("reading {}", ca.display()))?;
            let verified = engenho_chain::verify_text(&text, &ca)
                .with_context(|| format!("{} does not verify", file.display()))?;
            let voters: Vec<&str> = verified.voters.iter().map(String::as_str).collect();
            println!(
                "{}: {} entries verify; voters at the end: {}; head {}",
                file.display(),
                verified.entries,
                voters.join(", "),
                verified.head.as_deref().unwrap_or("(empty)")
            );
            Ok(())
        }
    }
}

/// The status as tables: the raft members, then nodes only gossip knows.
fn print_status(status: &serde_json::Value) {
    let text = |value: &serde_json::Value| value.as_str().map_or_else(|| value.to_string(), str::to_owned);
    let mut rows = vec![["NODE", "ROLE", "RAFT ID", "APPLIED", "GOSSIP", "PEER"].map(str::to_owned).to_vec()];
    let members = status["members"].as_array().into_iter().flatten();
    let others = status["gossipOnly"].as_array().into_iter().flatten();
    for member in members.chain(others) {
        let gossip = &member["gossip"];
        let liveness = match gossip["live"].as_bool() {
            Some(true) => "live",
            Some(false) => "dead",
            None => "unheard",
        };
        let mut role = member["role"].as_str().unwrap_or("not a member").to_owned();
        if member["leader"].as_bool() == Some(true) {
            role.push_str(" (leader)");
        }
        if member["quarantined"].as_bool() == Some(true) {
            role.push_str(" (quarantined)");
        }
        let applied = gossip["state"]["raft_applied"].as_u64().map_or_else(|| "-".to_owned(), |a| a.to_string());
        let peer = member["peer"].as_str().or(gossip["addr"].as_str()).unwrap_or("-").to_owned();
        let id = member["id"].as_str().unwrap_or("-").to_owned();
        rows.push(vec![text(&member["name"]), role, id, applied, liveness.to_owned(), peer]);
    }
    crate::print_table(&rows);
    let transitions = status["transitions"].as_array().into_iter().flatten();
    let mut rows = vec![["WHEN", "NODE", "ACTION", "ROLE", "TERM", "REASON"].map(str::to_owned).to_vec()];
    for record in transitions {
        let when = record["atMs"]
            .as_i64()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map_or_else(|| "-".to_owned(), |at| at.format("%H:%M:%S%.3f").to_string());
        let row = [&record["name"], &record["action"], &record["role"], &record["term"], &record["reason"]].map(text);
        rows.push([vec![when], row.to_vec()].concat());
    }
    if rows.len() > 1 {
        println!("\nlast transitions:");
        crate::print_table(&rows);
    }
    println!(
        "\nseen from {} (raft term {}, applied {}); gossip datagrams refused: {}",
        text(&status["node"]),
        status["raft"]["term"],
        status["raft"]["appliedIndex"],
        status["refused"]
    );
}
