//! The plugin's configuration: kube-scheduler's `PodTopologySpreadArgs`.

use serde::Deserialize;

use engenho_scheduler::UnsatisfiableAction;

/// The node label of the hostname domain.
pub const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
/// The node label of the zone domain.
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";

/// `PodTopologySpreadArgs`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    default_constraints: Vec<DefaultConstraint>,
    #[serde(default)]
    defaulting_type: Option<DefaultingType>,
}

/// Where the constraints of pods without their own come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum DefaultingType {
    /// kube-scheduler's built-in ones.
    System,
    /// `defaultConstraints`.
    List,
}

/// One of `defaultConstraints` (a `v1.TopologySpreadConstraint` without a
/// selector, which each pod's services and controllers give).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DefaultConstraint {
    max_skew: i64,
    topology_key: String,
    when_unsatisfiable: Action,
}

/// `whenUnsatisfiable`, spelled as in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Action {
    DoNotSchedule,
    ScheduleAnyway,
}

/// A constraint for pods that have none of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Default {
    /// The most the counts may differ between domains.
    pub max_skew: u32,
    /// The node label whose value is the domain.
    pub topology_key: String,
    /// What happens when it cannot be met.
    pub when_unsatisfiable: UnsatisfiableAction,
}

/// The configuration, checked.
pub struct Checked {
    /// The constraints of pods without their own.
    pub defaults: Vec<Default>,
    /// Whether they are kube-scheduler's built-in ones.
    pub system_defaulted: bool,
}

impl Args {
    /// The configuration checked as kube validates `PodTopologySpreadArgs`.
    ///
    /// # Errors
    /// What is wrong, naming the field.
    pub fn check(self) -> Result<Checked, String> {
        let defaulting = self.defaulting_type.unwrap_or(DefaultingType::System);
        if defaulting == DefaultingType::System {
            if !self.default_constraints.is_empty() {
                return Err(
                    "invalid configuration: defaultConstraints: must be empty when defaultingType is \"System\"".into(),
                );
            }
            return Ok(Checked { defaults: system_defaults(), system_defaulted: true });
        }
        let mut defaults: Vec<Default> = Vec::with_capacity(self.default_constraints.len());
        for (i, constraint) in self.default_constraints.into_iter().enumerate() {
            let path = format!("invalid configuration: defaultConstraints[{i}]");
            let max_skew = u32::try_from(constraint.max_skew).ok().filter(|&skew| skew > 0);
            let Some(max_skew) = max_skew else {
                return Err(format!("{path}.maxSkew: {} must be greater than zero", constraint.max_skew));
            };
            if constraint.topology_key.is_empty() {
                return Err(format!("{path}.topologyKey: required"));
            }
            let when_unsatisfiable = match constraint.when_unsatisfiable {
                Action::DoNotSchedule => UnsatisfiableAction::DoNotSchedule,
                Action::ScheduleAnyway => UnsatisfiableAction::ScheduleAnyway,
            };
            if defaults
                .iter()
                .any(|d| d.topology_key == constraint.topology_key && d.when_unsatisfiable == when_unsatisfiable)
            {
                return Err(format!(
                    "{path}: {:?} is listed twice with the same whenUnsatisfiable",
                    constraint.topology_key
                ));
            }
            defaults.push(Default { max_skew, topology_key: constraint.topology_key, when_unsatisfiable });
        }
        Ok(Checked { defaults, system_defaulted: false })
    }
}

/// kube-scheduler's built-in default constraints: hosts within 3, zones
/// within 5, both preferred.
fn system_defaults() -> Vec<Default> {
    vec![
        Default {
            max_skew: 3,
            topology_key: HOSTNAME_KEY.into(),
            when_unsatisfiable: UnsatisfiableAction::ScheduleAnyway,
        },
        Default { max_skew: 5, topology_key: ZONE_KEY.into(), when_unsatisfiable: UnsatisfiableAction::ScheduleAnyway },
    ]
}
