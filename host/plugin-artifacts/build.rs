//! Builds every plugin under `plugins/` for wasm32-wasip2 (release,
//! size-optimized) with the same cargo, and lists the components for
//! `src/lib.rs` to include.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugin crates (members of plugins/Cargo.toml), by package name.
const PLUGINS: [&str; 24] = [
    "pod-security",
    "resource-defaults",
    "image-allowlist",
    "required-labels",
    "misbehaving",
    "serviceaccount-controller",
    "replicaset-controller",
    "deployment-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "cronjob-controller",
    "misbehaving-controller",
    "endpointslice-controller",
    "nodelifecycle-controller",
    "node-name",
    "node-unschedulable",
    "node-resources-fit",
    "node-resources-balanced-allocation",
    "node-affinity",
    "taint-toleration",
    "inter-pod-affinity",
    "pod-topology-spread",
    "misbehaving-scheduler",
];

/// The components for pods (not plugins), by package name: the tlisp
/// runner shipped with every node, an example command and an example
/// wasi:http/proxy.
const POD_COMPONENTS: [&str; 3] = ["tlisp-runner", "toolbox", "hello-http"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.ancestors().nth(2).expect("host/plugin-artifacts is two levels deep").to_owned();
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // target/<profile>/build/<crate>-<hash>/out → target/plugins: one
    // build of the plugins shared by every profile.
    let target_dir = out_dir.ancestors().nth(4).map_or_else(|| out_dir.join("plugins"), |t| t.join("plugins"));
    println!("cargo:rerun-if-changed={}", plugins.display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for name in PLUGINS.iter().chain(&POD_COMPONENTS) {
        command.args(["-p", name]);
    }
    // The outer build's settings are for the host, not for the plugins.
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(variable);
    }
    let status = command.status().expect("running cargo for the plugins");
    assert!(status.success(), "building the plugins for wasm32-wasip2 failed (see above)");

    let mut listing = String::new();
    for (constant, doc, names) in [
        ("PLUGINS", "The built plugins", &PLUGINS[..]),
        ("POD_COMPONENTS", "The built example components for pods", &POD_COMPONENTS[..]),
    ] {
        listing.push_str(&format!(
            "/// {doc}, as (name, component bytes).\npub const {constant}: &[(&str, &[u8])] = &[\n"
        ));
        for name in names {
            let file = component_path(&target_dir, name);
            assert!(file.exists(), "{} was not built", file.display());
            listing.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", file.display().to_string()));
        }
        listing.push_str("];\n");
    }
    std::fs::write(out_dir.join("plugins.rs"), listing).expect("writing the plugin list");
}

/// Where plugin `name` is built: a library under its crate name, a
/// command (a binary) under its own.
fn component_path(target_dir: &Path, name: &str) -> PathBuf {
    let release = target_dir.join("wasm32-wasip2").join("release");
    let library = release.join(format!("{}.wasm", name.replace('-', "_")));
    if library.exists() { library } else { release.join(format!("{name}.wasm")) }
}
