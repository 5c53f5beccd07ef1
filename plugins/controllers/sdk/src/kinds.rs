//! The kinds the built-in controllers read and write.

use crate::Kind;

/// Core `v1` pods.
pub const PODS: Kind = Kind::new("", "v1", "pods");
/// Core `v1` nodes.
pub const NODES: Kind = Kind::new("", "v1", "nodes");
/// Core `v1` namespaces.
pub const NAMESPACES: Kind = Kind::new("", "v1", "namespaces");
/// Core `v1` services.
pub const SERVICES: Kind = Kind::new("", "v1", "services");
/// Core `v1` endpoints (the legacy form of EndpointSlices).
pub const ENDPOINTS: Kind = Kind::new("", "v1", "endpoints");
/// Core `v1` service accounts.
pub const SERVICE_ACCOUNTS: Kind = Kind::new("", "v1", "serviceaccounts");
/// Core `v1` config maps.
pub const CONFIG_MAPS: Kind = Kind::new("", "v1", "configmaps");
/// Core `v1` persistent volume claims.
pub const PERSISTENT_VOLUME_CLAIMS: Kind = Kind::new("", "v1", "persistentvolumeclaims");
/// `apps/v1` deployments.
pub const DEPLOYMENTS: Kind = Kind::new("apps", "v1", "deployments");
/// `apps/v1` replica sets.
pub const REPLICA_SETS: Kind = Kind::new("apps", "v1", "replicasets");
/// `apps/v1` stateful sets.
pub const STATEFUL_SETS: Kind = Kind::new("apps", "v1", "statefulsets");
/// `apps/v1` daemon sets.
pub const DAEMON_SETS: Kind = Kind::new("apps", "v1", "daemonsets");
/// `apps/v1` controller revisions.
pub const CONTROLLER_REVISIONS: Kind = Kind::new("apps", "v1", "controllerrevisions");
/// `batch/v1` jobs.
pub const JOBS: Kind = Kind::new("batch", "v1", "jobs");
/// `batch/v1` cron jobs.
pub const CRON_JOBS: Kind = Kind::new("batch", "v1", "cronjobs");
/// `discovery.k8s.io/v1` endpoint slices.
pub const ENDPOINT_SLICES: Kind = Kind::new("discovery.k8s.io", "v1", "endpointslices");
/// `coordination.k8s.io/v1` leases.
pub const LEASES: Kind = Kind::new("coordination.k8s.io", "v1", "leases");
