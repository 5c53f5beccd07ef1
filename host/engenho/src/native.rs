//! The built-in scheduler plugins compiled into the binary, the same
//! crates as their components: what `engenho bench scheduler` compares the
//! components against, in its own cycles and on a node started with
//! `engenho up --native-scheduler-plugins`.

use std::sync::Arc;

use engenho_scheduler::{Instance, Plugin};
use engenho_scheduling::{NativePlugin, NativePlugins};

/// Built-in plugin `name` compiled into the binary, configured by `config`
/// (JSON), and the calls it takes part in; `None` for a plugin that is not
/// built in.
pub fn plugin(name: &str, config: &str) -> Option<Result<NativePlugin, String>> {
    fn configured<P: Plugin>(config: &str) -> Result<NativePlugin, String> {
        let (instance, abilities) = Instance::<P>::configure(config)?;
        Ok((Box::new(instance), abilities))
    }
    Some(match name {
        "node-name" => configured::<node_name::NodeName>(config),
        "node-unschedulable" => configured::<node_unschedulable::NodeUnschedulable>(config),
        "taint-toleration" => configured::<taint_toleration::TaintToleration>(config),
        "node-affinity" => configured::<node_affinity::NodeAffinity>(config),
        "node-resources-fit" => configured::<node_resources_fit::NodeResourcesFit>(config),
        "pod-topology-spread" => configured::<pod_topology_spread::PodTopologySpread>(config),
        "inter-pod-affinity" => configured::<inter_pod_affinity::InterPodAffinity>(config),
        "node-resources-balanced-allocation" => {
            configured::<node_resources_balanced_allocation::BalancedAllocation>(config)
        }
        _ => return None,
    })
}

/// Every built-in plugin compiled into the binary, for a node's scheduler.
pub fn plugins() -> NativePlugins {
    Arc::new(plugin)
}
