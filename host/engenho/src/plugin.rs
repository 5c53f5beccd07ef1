//! `engenho plugin`: make signing keys, sign, push and list plugins, check
//! a component, and start a new plugin crate.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use engenho_api::kube::plugins::{ADMISSION_WORLD, SigningKey};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};

/// `engenho plugin` arguments.
#[derive(Debug, clap::Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PluginCommand {
    /// Make a signing key (written readable by its owner only) and print its
    /// public key, for a PluginSigner's `spec.publicKey`.
    Keygen {
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the signature of a component as plugin NAME with the powers
    /// given (none by default): what a Plugin's `spec.signature` holds.
    Sign {
        /// The signing key.
        #[arg(long)]
        key: PathBuf,
        /// The plugin's name (the Plugin object's).
        #[arg(long)]
        name: String,
        /// What the signature grants the plugin.
        #[command(flatten)]
        powers: PowerArgs,
        /// The component file.
        component: PathBuf,
    },
    /// Upload a component and create or update its Plugin object, signed.
    Push(PushArgs),
    /// List the cluster's plugins and their state.
    List,
    /// Check a component: its digest, size and world.
    Inspect {
        /// The component file.
        component: PathBuf,
    },
    /// Start a new plugin crate that builds and tests out of the box.
    New {
        /// The world: only `admission` so far.
        #[arg(long, default_value = "admission")]
        world: String,
        /// The crate's name (and directory).
        name: String,
    },
}

/// `engenho plugin push` arguments.
#[derive(Debug, clap::Args)]
struct PushArgs {
    /// The signing key.
    #[arg(long)]
    key: PathBuf,
    /// The plugin's name.
    #[arg(long)]
    name: String,
    /// Configuration, as JSON (not signed: it only parameterises the
    /// signed code).
    #[arg(long, default_value = "{}")]
    config: String,
    /// What the signature grants the plugin.
    #[command(flatten)]
    powers: PowerArgs,
    /// Which requests it sees: `GROUPS:RESOURCES:OPERATIONS`, each a comma
    /// list (`"":pods:CREATE,UPDATE`; `*` for all). Repeatable.
    #[arg(long = "rule", required = true)]
    rules: Vec<String>,
    /// `Fail` or `Ignore`.
    #[arg(long, default_value = "Fail")]
    failure_policy: String,
    /// The component file.
    component: PathBuf,
}

/// What a signature grants a plugin, as flags: the signed part of its
/// spec besides its name, world and digest.
#[derive(Debug, clap::Args)]
struct PowerArgs {
    /// Whether the policy mutates objects.
    #[arg(long)]
    mutating: bool,
    /// Longest a call may run, in milliseconds (the host's default: 100).
    #[arg(long)]
    deadline_millis: Option<u64>,
    /// Largest memory of a call, in bytes (the host's default: 64 MiB).
    #[arg(long)]
    memory_bytes: Option<u64>,
    /// An environment variable the plugin sees, NAME=VALUE. Repeatable.
    #[arg(long = "env")]
    environment: Vec<String>,
    /// A host directory the plugin may read, HOST_PATH:PATH. Repeatable.
    #[arg(long = "directory")]
    directories: Vec<String>,
    /// An address the plugin may open TCP connections to, IP:PORT.
    /// Repeatable.
    #[arg(long = "tcp-connect")]
    tcp_connect: Vec<String>,
}

impl PowerArgs {
    /// A Plugin spec of `digest` with these powers.
    fn spec(&self, digest: &str) -> anyhow::Result<serde_json::Value> {
        let mut environment = serde_json::Map::new();
        for variable in &self.environment {
            let (name, value) =
                variable.split_once('=').with_context(|| format!("--env {variable:?} is not NAME=VALUE"))?;
            environment.insert(name.to_owned(), value.into());
        }
        let directories = self
            .directories
            .iter()
            .map(|directory| {
                let (host, path) = directory
                    .split_once(':')
                    .with_context(|| format!("--directory {directory:?} is not HOST_PATH:PATH"))?;
                Ok(serde_json::json!({"hostPath": host, "path": path}))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut limits = serde_json::Map::new();
        if let Some(millis) = self.deadline_millis {
            limits.insert("deadlineMillis".into(), millis.into());
        }
        if let Some(bytes) = self.memory_bytes {
            limits.insert("memoryBytes".into(), bytes.into());
        }
        Ok(serde_json::json!({
            "world": ADMISSION_WORLD,
            "digest": digest,
            "limits": limits,
            "grants": {"environment": environment, "directories": directories, "tcpConnect": self.tcp_connect},
            "admission": {"mutating": self.mutating},
        }))
    }
}

/// Runs `engenho plugin`.
pub async fn run(args: PluginArgs) -> anyhow::Result<()> {
    match args.command {
        PluginCommand::Keygen { out } => {
            if out.exists() {
                bail!("{} exists; not overwriting a key", out.display());
            }
            let key = SigningKey::load_or_create(&out).map_err(anyhow::Error::msg)?;
            println!("{}", key.public_base64());
        }
        PluginCommand::Sign { key, name, powers, component } => {
            let key = load_key(&key)?;
            let spec = powers.spec(&engenho_wasm::digest_of(&read(&component)?))?;
            println!("{}", key.sign_plugin(&name, &spec).map_err(anyhow::Error::msg)?);
        }
        PluginCommand::Push(push_args) => push(push_args).await?,
        PluginCommand::List => list().await?,
        PluginCommand::Inspect { component } => {
            let bytes = read(&component)?;
            println!("digest: {}", engenho_wasm::digest_of(&bytes));
            println!("bytes:  {}", bytes.len());
            let host = engenho_wasm::PluginHost::new(None)?;
            let name = component.file_stem().map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into_owned());
            engenho_wasm::AdmissionPolicy::check(&host, &name, &bytes)?;
            println!("world:  {ADMISSION_WORLD}");
        }
        PluginCommand::New { world, name } => scaffold(&world, &name)?,
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn load_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_text(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The cluster's `Plugin` objects.
pub(crate) fn plugins_api(client: kube::Client) -> Api<DynamicObject> {
    engenho_kind_api(client, "Plugin", "plugins")
}

/// The cluster's objects of the cluster-scoped engenho.io/v1alpha1 kind
/// `kind` (`plural`).
pub(crate) fn engenho_kind_api(client: kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    Api::all_with(
        client,
        &ApiResource {
            group: "engenho.io".into(),
            version: "v1alpha1".into(),
            api_version: "engenho.io/v1alpha1".into(),
            kind: kind.into(),
            plural: plural.into(),
        },
    )
}

async fn push(args: PushArgs) -> anyhow::Result<()> {
    let key = load_key(&args.key)?;
    let bytes = read(&args.component)?;
    let digest = engenho_wasm::digest_of(&bytes);
    let config: serde_json::Value = serde_json::from_str(&args.config).context("--config is not JSON")?;
    let rules = args.rules.iter().map(|rule| parse_rule(rule)).collect::<anyhow::Result<Vec<_>>>()?;
    let client = kube::Client::try_default().await.context("connecting with the kubeconfig")?;
    let upload = http::Request::put(format!("/apis/engenho.io/v1alpha1/components/{digest}"))
        .header(http::header::CONTENT_TYPE, "application/wasm")
        .body(bytes)?;
    client.request_text(upload).await.context("uploading the component")?;
    let mut spec = args.powers.spec(&digest)?;
    spec["config"] = config;
    spec["failurePolicy"] = args.failure_policy.into();
    spec["admission"]["rules"] = rules.into();
    spec["signature"] = key.sign_plugin(&args.name, &spec).map_err(anyhow::Error::msg)?.into();
    let plugin = serde_json::json!({
        "apiVersion": "engenho.io/v1alpha1",
        "kind": "Plugin",
        "metadata": {"name": args.name},
        "spec": spec,
    });
    let params = PatchParams::apply("engenho-plugin").force();
    plugins_api(client).patch(&args.name, &params, &Patch::Apply(&plugin)).await.context("applying the Plugin")?;
    println!("plugin/{} pushed: {digest}", args.name);
    Ok(())
}

/// `GROUPS:RESOURCES:OPERATIONS` as a rule.
fn parse_rule(text: &str) -> anyhow::Result<serde_json::Value> {
    let parts: Vec<&str> = text.split(':').collect();
    let [groups, resources, operations] = parts.as_slice() else {
        bail!("a rule is GROUPS:RESOURCES:OPERATIONS, such as \"\":pods:CREATE,UPDATE; got {text:?}");
    };
    let list = |part: &str| -> Vec<String> { part.split(',').map(|s| s.trim_matches('"').to_owned()).collect() };
    Ok(serde_json::json!({"apiGroups": list(groups), "resources": list(resources), "operations": list(operations)}))
}

async fn list() -> anyhow::Result<()> {
    let client = kube::Client::try_default().await.context("connecting with the kubeconfig")?;
    let plugins = plugins_api(client).list(&Default::default()).await.context("listing plugins")?;
    println!("{:<24} {:<18} {:<16} {:<6} MESSAGE", "NAME", "WORLD", "DIGEST", "READY");
    for plugin in plugins.items {
        let text = |pointer: &str| plugin.data.pointer(pointer).and_then(|v| v.as_str()).unwrap_or("").to_owned();
        let digest = text("/spec/digest");
        println!(
            "{:<24} {:<18} {:<16} {:<6} {}",
            plugin.metadata.name.unwrap_or_default(),
            text("/spec/world"),
            digest.get(..16).unwrap_or(&digest),
            text("/status/conditions/0/status"),
            text("/status/conditions/0/message"),
        );
    }
    Ok(())
}

/// The WIT files a plugin crate builds against.
const WIT_FILES: [(&str, &str); 2] = [
    ("wit/host.wit", include_str!("../../../wit/host.wit")),
    ("wit/admission.wit", include_str!("../../../wit/admission.wit")),
];

fn scaffold(world: &str, name: &str) -> anyhow::Result<()> {
    if world != "admission" {
        bail!("only the admission world can be scaffolded so far");
    }
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid || name.starts_with('-') {
        bail!("a plugin name is lowercase letters, digits and '-': {name:?}");
    }
    let dir = PathBuf::from(name);
    if dir.exists() {
        bail!("{} exists", dir.display());
    }
    let crate_name = name.replace('-', "_");
    let files = [
        ("Cargo.toml", CARGO_TOML.replace("NAME", name)),
        ("src/lib.rs", LIB_RS.replace("CRATE", &crate_name)),
        ("README.md", README_MD.replace("NAME", name).replace("CRATE", &crate_name)),
        (".gitignore", "target/\n".to_owned()),
    ];
    for (path, text) in files.iter().map(|(p, t)| (*p, t.as_str())).chain(WIT_FILES) {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    println!("created {}: cd {name} && cargo test && cargo build --release --target wasm32-wasip2", dir.display());
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "NAME"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]
doctest = false

[dependencies]
serde_json = "1"
wit-bindgen = { version = "0.57", default-features = false, features = ["macros", "realloc"] }

[profile.release]
opt-level = "s"
lto = true
strip = true
codegen-units = 1
panic = "abort"

# A crate of its own, outside any enclosing workspace.
[workspace]
"#;

const LIB_RS: &str = r#"//! An engenho admission policy: refuses objects whose name starts with a
//! configured prefix (`{"forbiddenPrefix": "tmp-"}`). Replace `decide` with
//! your policy.

use std::cell::RefCell;

wit_bindgen::generate!({
    world: "admission-policy",
    path: "wit",
});

use engenho::plugins::admission_types::{Decision, Operation, Review};
use exports::engenho::plugins::policy::Guest;

thread_local! {
    static FORBIDDEN_PREFIX: RefCell<String> = const { RefCell::new(String::new()) };
}

struct Policy;

impl Guest for Policy {
    fn configure(config: String) -> Result<(), String> {
        let config: serde_json::Value = serde_json::from_str(&config).map_err(|e| format!("invalid configuration: {e}"))?;
        let prefix = config.get("forbiddenPrefix").and_then(|p| p.as_str()).unwrap_or_default().to_owned();
        FORBIDDEN_PREFIX.with(|p| *p.borrow_mut() = prefix);
        Ok(())
    }

    fn admit(review: Review) -> Decision {
        let prefix = FORBIDDEN_PREFIX.with(|p| p.borrow().clone());
        match decide(&review.name, review.operation, &prefix) {
            None => Decision { allowed: true, reason: String::new(), patch: String::new(), warnings: Vec::new() },
            Some(reason) => Decision { allowed: false, reason, patch: String::new(), warnings: Vec::new() },
        }
    }
}

/// Why the request is refused, if it is.
fn decide(name: &str, operation: Operation, forbidden_prefix: &str) -> Option<String> {
    let creating = operation == Operation::Create;
    (creating && !forbidden_prefix.is_empty() && name.starts_with(forbidden_prefix))
        .then(|| format!("names starting with {forbidden_prefix:?} are not allowed"))
}

export!(Policy);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_new_objects_with_the_prefix() {
        assert!(decide("tmp-a", Operation::Create, "tmp-").is_some());
        assert!(decide("web", Operation::Create, "tmp-").is_none());
        assert!(decide("tmp-a", Operation::Delete, "tmp-").is_none());
        assert!(decide("tmp-a", Operation::Create, "").is_none());
    }
}
"#;

const README_MD: &str = r#"# NAME

An engenho admission policy (WIT world `admission-policy`, in `wit/`).

```sh
cargo test                                      # the policy's own tests
cargo build --release --target wasm32-wasip2    # target/wasm32-wasip2/release/CRATE.wasm
engenho plugin inspect target/wasm32-wasip2/release/CRATE.wasm
engenho plugin push --key signer.key --name NAME --rule '"":configmaps:CREATE' \
    --config '{"forbiddenPrefix": "tmp-"}' target/wasm32-wasip2/release/CRATE.wasm
```
"#;
