//! The arithmetic of a rollout, as Kubernetes' deployment controller does
//! it: surge and unavailability bounds, how far the new ReplicaSet grows,
//! how far old ones shrink, and how a resize spreads over ReplicaSets.
//!
//! Each function takes the ReplicaSets' sizes and availability and answers
//! new sizes; none writes.

use std::cmp::Ordering;

use engenho_controller::replicasets::ReplicaSet;

use crate::model::{Deployment, IntOrPercent};

/// The default of `maxSurge` and `maxUnavailable`.
const DEFAULT_BOUND: &str = "25%";

/// `value` scaled against `total`: an int as is; a percentage of `total`,
/// rounded up or down (Kubernetes' `GetScaledValueFromIntOrPercent`). An
/// unreadable percentage counts as 0.
pub fn scaled(value: &IntOrPercent, total: i64, round_up: bool) -> i64 {
    match value {
        IntOrPercent::Int(n) => *n,
        IntOrPercent::Text(text) => {
            let percent: i64 = text.strip_suffix('%').and_then(|n| n.trim().parse().ok()).unwrap_or(0);
            let product = percent * total;
            if round_up { (product + 99).div_euclid(100) } else { product.div_euclid(100) }
        }
    }
}

/// The surge and unavailability bounds of a rolling update of `desired`
/// pods: surge rounded up, unavailability down, and one unavailable pod
/// allowed when both come to zero (Kubernetes' `ResolveFenceposts`).
pub fn fenceposts(surge: &IntOrPercent, unavailable: &IntOrPercent, desired: i64) -> (i64, i64) {
    let surge = scaled(surge, desired, true).max(0);
    let unavailable = scaled(unavailable, desired, false).max(0);
    if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

/// The configured bounds of `deployment`'s rolling update (defaults 25%).
fn bounds(deployment: &Deployment) -> (IntOrPercent, IntOrPercent) {
    let rolling = deployment.spec.strategy.rolling_update.clone().unwrap_or_default();
    let default = || IntOrPercent::Text(DEFAULT_BOUND.into());
    (rolling.max_surge.unwrap_or_else(default), rolling.max_unavailable.unwrap_or_else(default))
}

/// How many pods above its count `deployment` may run (0 unless it rolls).
pub fn max_surge(deployment: &Deployment) -> i64 {
    if !deployment.spec.strategy.is_rolling() {
        return 0;
    }
    let (surge, unavailable) = bounds(deployment);
    fenceposts(&surge, &unavailable, deployment.spec.desired()).0
}

/// How many of `deployment`'s pods may be unavailable (0 unless it rolls,
/// at most its count).
pub fn max_unavailable(deployment: &Deployment) -> i64 {
    let desired = deployment.spec.desired();
    if !deployment.spec.strategy.is_rolling() || desired == 0 {
        return 0;
    }
    let (surge, unavailable) = bounds(deployment);
    fenceposts(&surge, &unavailable, desired).1.min(desired)
}

/// The pods `sets` ask for.
pub fn total_replicas<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    sets.into_iter().map(ReplicaSet::replicas).sum()
}

/// The size of the new ReplicaSet `new` can grow to now: for a rolling
/// update as far as `maxSurge` above the count allows over all of
/// `all` (which holds `new`), never past the count; for Recreate the
/// count (Kubernetes' `NewRSNewReplicas`).
pub fn new_replicas(deployment: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> i64 {
    let desired = deployment.spec.desired();
    if !deployment.spec.strategy.is_rolling() {
        return desired;
    }
    let current = total_replicas(all.iter().copied());
    let most = desired + max_surge(deployment);
    if current >= most {
        return new.replicas();
    }
    new.replicas() + (most - current).min(desired - new.replicas())
}

/// The new sizes of the old ReplicaSets `old` (active ones) of a rolling
/// update, as Kubernetes' `reconcileOldReplicaSets` shrinks them: as far as
/// the available pods of all ReplicaSets stay at or above the count less
/// `maxUnavailable` (counting the new ReplicaSet's missing pods as
/// unavailable), unhealthy pods first, oldest ReplicaSets first. Answers
/// one size for each of `old`, in order.
pub fn shrink_old(deployment: &Deployment, old: &[&ReplicaSet], new: &ReplicaSet) -> Vec<i64> {
    let mut sizes: Vec<i64> = old.iter().map(|set| set.replicas()).collect();
    let old_count: i64 = sizes.iter().sum();
    if old_count == 0 {
        return sizes;
    }
    let all_count = old_count + new.replicas();
    let min_available = deployment.spec.desired() - max_unavailable(deployment);
    let new_unavailable = new.replicas() - kept_available(new);
    let most = all_count - min_available - new_unavailable;
    if most <= 0 {
        return sizes;
    }
    let mut order: Vec<usize> = (0..old.len()).collect();
    order.sort_by(|a, b| by_creation(old[*a], old[*b]));
    // Unhealthy pods first: they do not count as available anyway.
    let mut cleaned = 0;
    for &i in &order {
        if cleaned >= most {
            break;
        }
        let unhealthy = sizes[i] - kept_available(old[i]);
        if sizes[i] == 0 || unhealthy <= 0 {
            continue;
        }
        let take = (most - cleaned).min(unhealthy);
        sizes[i] -= take;
        cleaned += take;
    }
    // Then available pods, as far as availability allows.
    let available: i64 = old.iter().copied().map(kept_available).sum::<i64>() + kept_available(new);
    if available <= min_available {
        return sizes;
    }
    let allowed = available - min_available;
    let mut taken = 0;
    for &i in &order {
        if taken >= allowed {
            break;
        }
        if sizes[i] == 0 {
            continue;
        }
        let take = sizes[i].min(allowed - taken);
        sizes[i] -= take;
        taken += take;
    }
    sizes
}

/// The available pods of `set` that it keeps: its status's count, but no
/// more than its size. A ReplicaSet just scaled down reports the pods it
/// is deleting until its next status; they are not there to count on.
fn kept_available(set: &ReplicaSet) -> i64 {
    set.status.available_replicas.min(set.replicas()).max(0)
}

/// Oldest first, then by name (Kubernetes' `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    a.created().cmp(&b.created()).then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The sizes the active ReplicaSets `active` take when `deployment`'s count
/// changed mid-rollout (Kubernetes' proportional scaling): the pods to add
/// or remove so all hold the count plus `maxSurge` are spread in proportion
/// to each one's share of the count it was sized for (its
/// `max-replicas` annotation), the leftover going to the largest. One size
/// for each of `active`, in order.
pub fn proportional(deployment: &Deployment, active: &[&ReplicaSet]) -> Vec<i64> {
    let desired = deployment.spec.desired();
    let mut sizes: Vec<i64> = active.iter().map(|set| set.replicas()).collect();
    let allowed = if desired > 0 { desired + max_surge(deployment) } else { 0 };
    let to_add = allowed - sizes.iter().sum::<i64>();
    if to_add == 0 {
        return sizes;
    }
    // Larger first; on a tie newer first when growing, older when shrinking.
    let mut order: Vec<usize> = (0..active.len()).collect();
    order.sort_by(|a, b| {
        let (a, b) = (active[*a], active[*b]);
        let by_age = if to_add > 0 { b.created().cmp(&a.created()) } else { a.created().cmp(&b.created()) };
        b.replicas().cmp(&a.replicas()).then(by_age)
    });
    let mut added = 0;
    for &i in &order {
        let proportion = proportion(deployment, active[i], to_add, added);
        sizes[i] += proportion;
        added += proportion;
    }
    if let Some(&largest) = order.first() {
        sizes[largest] = (sizes[largest] + to_add - added).max(0);
    }
    sizes
}

/// How many pods of `to_add` (of which `added` were given out) `set` takes
/// (Kubernetes' `GetProportion`).
fn proportion(deployment: &Deployment, set: &ReplicaSet, to_add: i64, added: i64) -> i64 {
    if set.replicas() == 0 || to_add == added {
        return 0;
    }
    let fraction = fraction(deployment, set);
    let left = to_add - added;
    if to_add > 0 { fraction.min(left) } else { fraction.max(left) }
}

/// The change of `set`'s size that keeps its share of the deployment's
/// largest size (Kubernetes' `getReplicaSetFraction`).
fn fraction(deployment: &Deployment, set: &ReplicaSet) -> i64 {
    let desired = deployment.spec.desired();
    if desired == 0 {
        return -set.replicas();
    }
    let most = desired + max_surge(deployment);
    let before = crate::revision::annotation_number(&set.metadata.annotations, crate::revision::MAX_REPLICAS)
        .filter(|n| *n != 0)
        .unwrap_or(deployment.status.replicas);
    if before == 0 {
        return 0;
    }
    // Rounded half away from zero, as Go's math.Round.
    let scaled = (set.replicas() * most) as f64 / before as f64;
    scaled.round() as i64 - set.replicas()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A rolling deployment of `replicas` with the bounds given.
    pub(crate) fn deployment(replicas: i64, surge: serde_json::Value, unavailable: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "v1"}]}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            },
        }))
        .expect("a deployment")
    }

    /// A ReplicaSet `name` created at second `age` of `replicas` pods,
    /// `available` of them available.
    pub(crate) fn set(name: &str, age: u32, replicas: i64, available: i64) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": format!("2026-01-01T00:00:{age:02}Z")},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available},
        }))
        .expect("a replica set")
    }

    #[test]
    fn bounds_round_surge_up_and_unavailability_down() {
        let pct = |s: &str| IntOrPercent::Text(s.into());
        assert_eq!(fenceposts(&pct("25%"), &pct("25%"), 10), (3, 2));
        assert_eq!(fenceposts(&pct("25%"), &pct("25%"), 1), (1, 0));
        assert_eq!(fenceposts(&IntOrPercent::Int(0), &IntOrPercent::Int(0), 5), (0, 1));
        assert_eq!(fenceposts(&IntOrPercent::Int(2), &pct("50%"), 5), (2, 2));
        assert_eq!(max_unavailable(&deployment(2, json!(0), json!(5))), 2);
        assert_eq!(max_surge(&deployment(10, json!("25%"), json!("25%"))), 3);
    }

    #[test]
    fn the_new_replica_set_grows_within_the_surge() {
        // Goal: 10 pods, surge 3: the new set grows to 3 beside 10 old ones,
        // not at all at 13 pods, and never past 10.
        let d = deployment(10, json!(3), json!(0));
        let old = set("old", 0, 10, 10);
        let new = set("new", 1, 0, 0);
        assert_eq!(new_replicas(&d, &[&old, &new], &new), 3);
        let grown = set("new", 1, 3, 0);
        assert_eq!(new_replicas(&d, &[&old, &grown], &grown), 3);
        let old = set("old", 0, 2, 2);
        let big = set("new", 1, 9, 9);
        assert_eq!(new_replicas(&d, &[&old, &big], &big), 10);
    }

    #[test]
    fn old_replica_sets_shrink_within_the_unavailability() {
        // Goal: with 10 desired and 2 unavailable allowed, old pods go as
        // far as 8 stay available, unhealthy ones first, oldest set first.
        let d = deployment(10, json!(3), json!(2));
        let oldest = set("a", 0, 4, 2);
        let older = set("b", 1, 6, 6);
        let new = set("new", 2, 3, 3);
        // 13 pods, 11 available: 2 unhealthy go, then 3 more (11 - 8): the
        // oldest set's 2 left and 1 of the other's.
        assert_eq!(shrink_old(&d, &[&older, &oldest], &new), [5, 0]);
        // While new pods are not available, old ones go only down to the 8
        // that must stay available.
        let waiting = set("new", 2, 3, 0);
        assert_eq!(shrink_old(&d, &[&set("b", 1, 10, 10)], &waiting), [8]);
        let at_minimum = set("b", 1, 8, 8);
        assert_eq!(shrink_old(&d, &[&at_minimum], &waiting), [8]);
    }

    #[test]
    fn pods_an_old_replica_set_is_deleting_do_not_count_as_available() {
        // Goal: 6 desired, 1 unavailable allowed; the old set was just
        // scaled 5 → 4 and its status still counts 5 available; with the
        // new set at 4 (2 available), only 1 more old pod may go (4 + 2 − 5),
        // not 2.
        let d = deployment(6, json!(2), json!(1));
        let mut stale = set("old", 0, 4, 4);
        stale.status.available_replicas = 5;
        stale.status.replicas = 5;
        let new = set("new", 1, 4, 2);
        assert_eq!(shrink_old(&d, &[&stale], &new), [3]);
        assert_eq!(shrink_old(&d, &[&set("old", 0, 4, 4)], &new), [3]);
    }

    #[test]
    fn a_resize_mid_rollout_spreads_proportionally() {
        // Goal: Kubernetes' example: 10 replicas, surge 3, sets of 8 (old)
        // and 5 (new) sized for 13; scaled to 15 (18 with surge), the 5
        // extra pods go 3 to the old set and 2 to the new.
        let mut d = deployment(15, json!(3), json!(2));
        d.status.replicas = 13;
        let mut old = set("old", 0, 8, 8);
        let mut new = set("new", 1, 5, 0);
        for s in [&mut old, &mut new] {
            s.metadata.annotations.insert(crate::revision::MAX_REPLICAS.into(), "13".into());
        }
        assert_eq!(proportional(&d, &[&old, &new]), [11, 7]);
        let zero = deployment(0, json!(3), json!(2));
        assert_eq!(proportional(&zero, &[&old, &new]), [0, 0]);
    }
}
