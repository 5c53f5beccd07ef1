//! Test plugin for the host's containment of controllers. It reconciles
//! ConfigMaps labelled `probe=yes`; its configuration
//! (`{"mode": "ok", "tag": "v1"}`) names what it does with each:
//!
//! - `ok`: records a `Reconciled` event and annotates the ConfigMap with
//!   `probe/reconciled-by: <tag>`;
//! - `fail`: answers that it failed;
//! - `trap`: traps;
//! - `loop`: never returns;
//! - `overfetch`: asks the host for more cached objects at once than it
//!   serves, and answers the host's refusal as its failure;
//! - `refuse`: refuses its configuration.

use engenho_controller::kinds::CONFIG_MAPS;
use engenho_controller::meta::ObjectMeta;
use engenho_controller::{Cluster, Controller, EventType, Interest, Key, ObjectRef, Outcome, Trigger, Write};
use serde::Deserialize;
use serde_json::json;

/// The plugin's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: String,
    #[serde(default)]
    tag: String,
}

/// Misbehaves as configured.
pub struct Misbehaving {
    config: Config,
}

#[derive(Clone, Deserialize)]
struct ConfigMap {
    metadata: ObjectMeta,
}

impl Controller for Misbehaving {
    fn configure(config: &str) -> Result<(Self, Vec<Interest>), String> {
        let config: Config = serde_json::from_str(config).map_err(|e| format!("invalid configuration: {e}"))?;
        if !["ok", "fail", "trap", "loop", "overfetch", "refuse"].contains(&config.mode.as_str()) {
            return Err(format!("unknown mode {:?}", config.mode));
        }
        if config.mode == "refuse" {
            return Err("refused on purpose".into());
        }
        Ok((Self { config }, vec![Interest::new(CONFIG_MAPS, [Trigger::Itself])]))
    }

    fn reconcile<C: Cluster>(&self, cluster: &C, key: &Key) -> Outcome {
        let found = match cluster.get_as::<ConfigMap>(&CONFIG_MAPS, &key.namespace, &key.name) {
            Ok(Some(found)) if found.metadata.labels.get("probe").is_some_and(|v| v == "yes") => found,
            Ok(_) => return Outcome::Done,
            Err(error) => return Outcome::Failed(error.to_string()),
        };
        match self.config.mode.as_str() {
            "fail" => Outcome::Failed("failed on purpose".into()),
            "trap" => panic!("trapped on purpose"),
            "overfetch" => {
                let versions: Vec<u64> = (1..=10_001).collect();
                match cluster.fetch(&CONFIG_MAPS, &versions) {
                    Ok(_) => Outcome::Done,
                    Err(error) => Outcome::Failed(error.to_string()),
                }
            }
            "loop" => {
                let mut spins: u64 = 0;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            _ => {
                let tag = &self.config.tag;
                if found.metadata.annotations.get("probe/reconciled-by") == Some(tag) {
                    return Outcome::Done;
                }
                let message = format!("reconciled by {tag}");
                cluster.emit(&ObjectRef::to(&CONFIG_MAPS, &found.metadata), EventType::Normal, "Reconciled", &message);
                let patch = json!({"metadata": {"annotations": {"probe/reconciled-by": tag},
                    "resourceVersion": found.metadata.resource_version}});
                let write = Write::Patch {
                    kind: CONFIG_MAPS,
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    subresource: String::new(),
                    patch,
                };
                match cluster.write(write) {
                    Ok(_) => Outcome::Done,
                    Err(error) => Outcome::Failed(error.to_string()),
                }
            }
        }
    }
}

engenho_controller::export_controller!(Misbehaving);
