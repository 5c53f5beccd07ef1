//! The plugin's configuration: kube-scheduler's `NodeResourcesFitArgs`.

use serde::Deserialize;

use crate::{Resource, ShapePoint, Strategy};

/// `NodeResourcesFitArgs`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Args {
    /// Extended resources the filter does not check.
    #[serde(default)]
    ignored_resources: Vec<String>,
    /// Groups (the part before `/`) of extended resources the filter does
    /// not check.
    #[serde(default)]
    ignored_resource_groups: Vec<String>,
    /// How nodes are scored.
    #[serde(default)]
    scoring_strategy: Option<ScoringStrategy>,
}

/// `ScoringStrategy`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScoringStrategy {
    #[serde(rename = "type")]
    kind: Option<StrategyType>,
    #[serde(default)]
    resources: Vec<ResourceSpec>,
    #[serde(default)]
    requested_to_capacity_ratio: Option<RequestedToCapacityRatio>,
}

/// The scoring strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum StrategyType {
    LeastAllocated,
    MostAllocated,
    RequestedToCapacityRatio,
}

/// `ResourceSpec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceSpec {
    name: String,
    #[serde(default)]
    weight: i64,
}

/// `RequestedToCapacityRatioParam`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestedToCapacityRatio {
    shape: Vec<UtilizationShapePoint>,
}

/// `UtilizationShapePoint`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UtilizationShapePoint {
    utilization: i32,
    score: i32,
}

/// The configuration, checked.
pub struct Checked {
    /// Extended resources the filter does not check.
    pub ignored_resources: Vec<String>,
    /// Groups of extended resources the filter does not check.
    pub ignored_resource_groups: Vec<String>,
    /// How nodes are scored.
    pub strategy: Strategy,
    /// The resources scored, with their weights.
    pub resources: Vec<Resource>,
}

/// The highest score of a `requestedToCapacityRatio` shape point.
const MAX_SHAPE_SCORE: i32 = 10;

fn invalid(path: &str, problem: impl std::fmt::Display) -> String {
    format!("invalid configuration: {path}: {problem}")
}

impl Args {
    /// The configuration with kube's defaults filled in, checked as kube
    /// validates `NodeResourcesFitArgs`.
    ///
    /// # Errors
    /// What is wrong, naming the field.
    pub fn check(self) -> Result<Checked, String> {
        for (i, group) in self.ignored_resource_groups.iter().enumerate() {
            if group.contains('/') || group.is_empty() {
                return Err(invalid(
                    &format!("ignoredResourceGroups[{i}]"),
                    format!("{group:?} is not a resource group name"),
                ));
            }
        }
        let Some(scoring) = self.scoring_strategy else {
            return Ok(Checked {
                ignored_resources: self.ignored_resources,
                ignored_resource_groups: self.ignored_resource_groups,
                strategy: Strategy::LeastAllocated,
                resources: default_resources(),
            });
        };
        let Some(kind) = scoring.kind else {
            return Err(invalid(
                "scoringStrategy.type",
                "required: LeastAllocated, MostAllocated or RequestedToCapacityRatio",
            ));
        };
        let resources = if scoring.resources.is_empty() { default_resources() } else { resources(scoring.resources)? };
        let strategy = match (kind, scoring.requested_to_capacity_ratio) {
            (StrategyType::LeastAllocated, _) => Strategy::LeastAllocated,
            (StrategyType::MostAllocated, _) => Strategy::MostAllocated,
            (StrategyType::RequestedToCapacityRatio, None) => {
                return Err(invalid(
                    "scoringStrategy.requestedToCapacityRatio",
                    "required for RequestedToCapacityRatio",
                ));
            }
            (StrategyType::RequestedToCapacityRatio, Some(ratio)) => {
                Strategy::RequestedToCapacityRatio(shape(ratio.shape)?)
            }
        };
        Ok(Checked {
            ignored_resources: self.ignored_resources,
            ignored_resource_groups: self.ignored_resource_groups,
            strategy,
            resources,
        })
    }
}

fn default_resources() -> Vec<Resource> {
    vec![Resource { name: "cpu".into(), weight: 1 }, Resource { name: "memory".into(), weight: 1 }]
}

fn resources(specs: Vec<ResourceSpec>) -> Result<Vec<Resource>, String> {
    let mut resources: Vec<Resource> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let path = format!("scoringStrategy.resources[{i}]");
        // A weight left out (0) defaults to 1, as kube defaults it.
        let weight = if spec.weight == 0 { 1 } else { spec.weight };
        if !(1..=100).contains(&weight) {
            return Err(invalid(&format!("{path}.weight"), format!("{weight} is not in 1..=100")));
        }
        if spec.name.is_empty() {
            return Err(invalid(&format!("{path}.name"), "required"));
        }
        if resources.iter().any(|resource| resource.name == spec.name) {
            return Err(invalid(&format!("{path}.name"), format!("{:?} is listed twice", spec.name)));
        }
        resources.push(Resource { name: spec.name, weight });
    }
    Ok(resources)
}

fn shape(points: Vec<UtilizationShapePoint>) -> Result<Vec<ShapePoint>, String> {
    const PATH: &str = "scoringStrategy.requestedToCapacityRatio.shape";
    if points.is_empty() {
        return Err(invalid(PATH, "must have at least one point"));
    }
    let mut shape: Vec<ShapePoint> = Vec::with_capacity(points.len());
    for (i, point) in points.into_iter().enumerate() {
        if !(0..=100).contains(&point.utilization) {
            return Err(invalid(
                &format!("{PATH}[{i}].utilization"),
                format!("{} is not in 0..=100", point.utilization),
            ));
        }
        if shape.last().is_some_and(|last| i64::from(point.utilization) <= last.utilization) {
            return Err(invalid(&format!("{PATH}[{i}].utilization"), "must be greater than the previous point's"));
        }
        if !(0..=MAX_SHAPE_SCORE).contains(&point.score) {
            return Err(invalid(
                &format!("{PATH}[{i}].score"),
                format!("{} is not in 0..={MAX_SHAPE_SCORE}", point.score),
            ));
        }
        // Shape scores run 0..=10; node scores 0..=100.
        shape.push(ShapePoint { utilization: i64::from(point.utilization), score: i64::from(point.score) * 10 });
    }
    Ok(shape)
}
