//! `engenho mesh`: the cluster's distribution layer as an operator sees
//! it. `engenho mesh chain verify FILE --ca CA` checks an exported chain
//! of the cluster's transitions offline, with the cluster CA certificate
//! alone.

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
    /// The attested chain of the cluster's transitions.
    Chain {
        #[command(subcommand)]
        command: ChainCommand,
    },
}

#[derive(clap::Subcommand, Debug)]
enum ChainCommand {
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
pub fn run(args: MeshArgs) -> anyhow::Result<()> {
    match args.command {
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
