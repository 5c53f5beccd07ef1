//! `engenho`: the node daemon and its command line.

mod autopilot;
mod bench;
mod chain;
mod content;
mod dev;
mod gossip;
mod mesh;
mod native;
mod plugin;
mod scheduler;
mod up;

use clap::{Parser, Subcommand};

/// mimalloc: the node allocates many small, short-lived buffers per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// engenho: a Kubernetes runtime whose policy runs as WebAssembly.
#[derive(Debug, Parser)]
#[command(name = "engenho", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start this node in the foreground (Ctrl-C stops it cleanly).
    Up(up::UpArgs),
    /// Start an N-node cluster on this machine (Ctrl-C stops every node).
    Dev(dev::DevArgs),
    /// Measure engenho (and the peers that run here) under load.
    Bench(bench::BenchArgs),
    /// Push, list and inspect the components pods run, by BLAKE3 digest.
    Content(content::ContentArgs),
    /// Make keys for, sign, push, list, check and start plugins.
    Plugin(plugin::PluginArgs),
    /// Try a scheduler profile against the cluster (a dry run).
    Scheduler(scheduler::SchedulerArgs),
    /// The distribution layer: members and roles, and the attested chain.
    Mesh(mesh::MeshArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ENGENHO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn,lsm_tree=warn,fjall=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log that cannot be written (stderr on a full disk) loses the
        // line; reporting that failure would print to the same stderr,
        // which panics the thread that logged (the store's, say).
        .log_internal_errors(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Up(args) => runtime.block_on(up::run(args)),
        Command::Dev(args) => runtime.block_on(dev::run(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Content(args) => runtime.block_on(content::run(args)),
        Command::Plugin(args) => runtime.block_on(plugin::run(args)),
        Command::Scheduler(args) => runtime.block_on(scheduler::run(args)),
        Command::Mesh(args) => runtime.block_on(mesh::run(args)),
    }
}

/// Prints `rows` (the first is the header) as columns two spaces apart.
fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().filter_map(|row| row.get(c)).map(String::len).max().unwrap_or(0)).collect();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
}
