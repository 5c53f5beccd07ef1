//! The scoring strategies, as kube-scheduler's `leastResourceScorer`,
//! `mostResourceScorer` and `requestedToCapacityRatioScorer` compute them.

use engenho_scheduler::Quantity;
use engenho_scheduler::normalization::{mul_div, saturating_mul};

use crate::Resource;

/// A point of the `RequestedToCapacityRatio` function: at this utilization
/// (0 to 100), this score (0 to 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapePoint {
    /// Utilization, percent.
    pub utilization: i64,
    /// Score, 0 to 100.
    pub score: i64,
}

/// How nodes are scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// The less of each resource requested, the higher.
    LeastAllocated,
    /// The more of each resource requested, the higher.
    MostAllocated,
    /// By a broken-line function of each resource's utilization.
    RequestedToCapacityRatio(Vec<ShapePoint>),
}

/// The highest node score.
const MAX: u64 = 100;

impl Strategy {
    /// The node's score from each resource's (requested, allocatable),
    /// weighted by `resources` in the same order; resources with nothing
    /// allocatable are left out.
    pub fn score(&self, resources: &[Resource], allocations: &[(Quantity, Quantity)]) -> i64 {
        let weighted = resources.iter().zip(allocations).filter(|(_, (_, allocatable))| *allocatable > 0);
        let mut sum: i64 = 0;
        let mut weights: i64 = 0;
        for (resource, &(requested, allocatable)) in weighted {
            let score = match self {
                Self::LeastAllocated if requested > allocatable => 0,
                Self::LeastAllocated => mul_div(allocatable - requested, MAX, allocatable),
                Self::MostAllocated => mul_div(requested.min(allocatable), MAX, allocatable),
                Self::RequestedToCapacityRatio(shape) => {
                    let utilization = if requested > allocatable { MAX } else { mul_div(requested, MAX, allocatable) };
                    let score = broken_line(shape, i64::try_from(utilization).unwrap_or(100));
                    // RequestedToCapacityRatio leaves resources that score 0
                    // out of the average.
                    if score <= 0 {
                        continue;
                    }
                    u64::try_from(score).unwrap_or(MAX)
                }
            };
            let score = i64::try_from(score).unwrap_or(i64::MAX);
            sum = sum.saturating_add(saturating_mul(score, resource.weight));
            weights = weights.saturating_add(resource.weight);
        }
        if weights == 0 {
            return 0;
        }
        match self {
            // Rounded to the nearest, as kube rounds this one.
            Self::RequestedToCapacityRatio(_) => (sum as f64 / weights as f64).round() as i64,
            _ => sum / weights,
        }
    }
}

/// The shape's value at `utilization`: the first point's score up to it,
/// straight lines between points, the last point's score past it.
fn broken_line(shape: &[ShapePoint], utilization: i64) -> i64 {
    let Some(first) = shape.first() else { return 0 };
    if utilization <= first.utilization {
        return first.score;
    }
    for pair in shape.windows(2) {
        let &[from, to] = pair else { continue };
        if utilization <= to.utilization {
            let run = to.utilization - from.utilization;
            if run <= 0 {
                return to.score;
            }
            return from.score + (to.score - from.score) * (utilization - from.utilization) / run;
        }
    }
    shape.last().map_or(0, |last| last.score)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources() -> Vec<Resource> {
        vec![Resource { name: "cpu".into(), weight: 1 }, Resource { name: "memory".into(), weight: 1 }]
    }

    #[test]
    fn least_allocated_favours_free_room() {
        // Goal: kube's LeastAllocated: (free × 100 / allocatable) per
        // resource, weighted, integer division; overcommitted scores 0.
        let strategy = Strategy::LeastAllocated;
        assert_eq!(strategy.score(&resources(), &[(3000, 4000), (5000, 10000)]), (25 + 50) / 2);
        assert_eq!(strategy.score(&resources(), &[(5000, 4000), (0, 10000)]), 50);
        let weighted = vec![Resource { name: "cpu".into(), weight: 3 }, Resource { name: "memory".into(), weight: 1 }];
        assert_eq!(strategy.score(&weighted, &[(0, 4000), (10000, 10000)]), 75);
        assert_eq!(strategy.score(&resources(), &[(0, 0), (0, 0)]), 0);
    }

    #[test]
    fn most_allocated_favours_full_nodes() {
        // Goal: kube's MostAllocated, requests capped at allocatable.
        let strategy = Strategy::MostAllocated;
        assert_eq!(strategy.score(&resources(), &[(3000, 4000), (5000, 10000)]), (75 + 50) / 2);
        assert_eq!(strategy.score(&resources(), &[(9000, 4000), (0, 10000)]), 50);
    }

    #[test]
    fn requested_to_capacity_ratio_follows_the_shape() {
        // Goal: the broken line between shape points (scores already ×10),
        // resources scoring 0 left out, the average rounded.
        let shape = vec![ShapePoint { utilization: 0, score: 0 }, ShapePoint { utilization: 100, score: 100 }];
        let strategy = Strategy::RequestedToCapacityRatio(shape);
        assert_eq!(strategy.score(&resources(), &[(1000, 4000), (5000, 10000)]), 38);
        assert_eq!(strategy.score(&resources(), &[(0, 4000), (5000, 10000)]), 50);
        let falling = vec![ShapePoint { utilization: 20, score: 100 }, ShapePoint { utilization: 80, score: 0 }];
        assert_eq!(broken_line(&falling, 0), 100);
        assert_eq!(broken_line(&falling, 50), 50);
        assert_eq!(broken_line(&falling, 55), 42);
        assert_eq!(broken_line(&falling, 90), 0);
        assert_eq!(broken_line(&[], 50), 0);
    }
}
