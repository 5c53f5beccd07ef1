//! Controller: every active namespace has a ServiceAccount named `default`
//! and a ConfigMap `kube-root-ca.crt` holding the cluster's CA bundle, as
//! kube-controller-manager's serviceaccount and root-ca-cert-publisher
//! controllers keep them.
//!
//! Configuration: `{"rootCA": "<PEM>"}`, the bundle to publish.

use engenho_controller::kinds::{CONFIG_MAPS, NAMESPACES, SERVICE_ACCOUNTS};
use engenho_controller::meta::ObjectMeta;
use engenho_controller::{ApiError, Cluster, Controller, Interest, Key, Outcome, Trigger, Write};
use serde::Deserialize;
use serde_json::{Value, json};

/// The ServiceAccount every namespace has.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The ConfigMap with the cluster's CA bundle in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// The key of the bundle in [`ROOT_CA_CONFIG_MAP`].
pub const ROOT_CA_KEY: &str = "ca.crt";

/// What the ConfigMap says of itself, as Kubernetes annotates it.
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using \
                                   internal endpoints such as the internal service IP or kubernetes.default.svc. No \
                                   other usage is guaranteed across distributions of Kubernetes clusters.";

/// The controller's configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// The CA bundle to publish (PEM).
    #[serde(rename = "rootCA")]
    root_ca: String,
}

/// Keeps each namespace's default ServiceAccount and CA bundle.
pub struct ServiceAccounts {
    root_ca: String,
}

/// A namespace, as far as this controller reads it.
#[derive(Clone, Deserialize)]
struct Namespace {
    #[serde(default)]
    metadata: ObjectMeta,
}

/// A ConfigMap's data.
#[derive(Clone, Deserialize)]
struct ConfigMap {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    data: std::collections::BTreeMap<String, String>,
}

impl Controller for ServiceAccounts {
    fn configure(config: &str) -> Result<(Self, Vec<Interest>), String> {
        let config: Config = match config.trim() {
            "" => Config::default(),
            text => serde_json::from_str(text).map_err(|e| format!("invalid configuration: {e}"))?,
        };
        let interests = vec![
            Interest::new(NAMESPACES, [Trigger::Itself]),
            Interest::new(SERVICE_ACCOUNTS, [Trigger::Namespace]),
            Interest::new(CONFIG_MAPS, [Trigger::Namespace]),
        ];
        Ok((Self { root_ca: config.root_ca }, interests))
    }

    fn reconcile<C: Cluster>(&self, cluster: &C, key: &Key) -> Outcome {
        self.sync(cluster, &key.name).into()
    }
}

impl ServiceAccounts {
    fn sync<C: Cluster>(&self, cluster: &C, namespace: &str) -> Result<Outcome, ApiError> {
        let Some(found) = cluster.get_as::<Namespace>(&NAMESPACES, "", namespace)? else { return Ok(Outcome::Done) };
        if found.metadata.is_deleting() {
            return Ok(Outcome::Done);
        }
        let mut writes = Vec::new();
        if cluster.get(&SERVICE_ACCOUNTS, namespace, DEFAULT_SERVICE_ACCOUNT)?.is_none() {
            writes.push(Write::Create {
                kind: SERVICE_ACCOUNTS,
                namespace: namespace.to_owned(),
                object: json!({
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace},
                }),
            });
        }
        if !self.root_ca.is_empty() {
            writes.extend(
                self.root_ca_write(
                    cluster.get_as::<ConfigMap>(&CONFIG_MAPS, namespace, ROOT_CA_CONFIG_MAP)?,
                    namespace,
                ),
            );
        }
        for answer in cluster.apply(writes) {
            match answer {
                // Made meanwhile by someone else: what it should be.
                Err(error) if error.is_conflict() && error.reason == "AlreadyExists" => {}
                // The namespace went meanwhile.
                Err(error) if error.is_not_found() || error.code == 403 => {}
                Err(error) => return Err(error),
                Ok(_) => {}
            }
        }
        Ok(Outcome::Done)
    }

    /// The write that makes `found` (the namespace's ConfigMap, if any)
    /// hold the bundle, if it does not.
    fn root_ca_write(&self, found: Option<ConfigMap>, namespace: &str) -> Option<Write> {
        let wanted_data = json!({ ROOT_CA_KEY: self.root_ca });
        let annotations = json!({"kubernetes.io/description": ROOT_CA_DESCRIPTION});
        match found {
            None => Some(Write::Create {
                kind: CONFIG_MAPS,
                namespace: namespace.to_owned(),
                object: json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": namespace, "annotations": annotations},
                    "data": wanted_data,
                }),
            }),
            Some(map) if map.data.len() == 1 && map.data.get(ROOT_CA_KEY) == Some(&self.root_ca) => None,
            Some(map) => {
                let mut metadata = serde_json::to_value(&map.metadata).unwrap_or(Value::Null);
                metadata["annotations"]["kubernetes.io/description"] = json!(ROOT_CA_DESCRIPTION);
                Some(Write::Update {
                    kind: CONFIG_MAPS,
                    namespace: namespace.to_owned(),
                    object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": wanted_data}),
                })
            }
        }
    }
}

engenho_controller::export_controller!(ServiceAccounts);

#[cfg(test)]
mod tests {
    use super::*;

    fn controller() -> ServiceAccounts {
        ServiceAccounts { root_ca: "PEM".into() }
    }

    #[test]
    fn a_missing_or_changed_bundle_is_written_and_a_current_one_left() {
        let current = ConfigMap {
            metadata: ObjectMeta { name: ROOT_CA_CONFIG_MAP.into(), ..ObjectMeta::default() },
            data: [(ROOT_CA_KEY.to_owned(), "PEM".to_owned())].into(),
        };
        assert_eq!(controller().root_ca_write(Some(current), "a"), None);
        let stale = ConfigMap {
            metadata: ObjectMeta {
                name: ROOT_CA_CONFIG_MAP.into(),
                resource_version: "7".into(),
                ..ObjectMeta::default()
            },
            data: [(ROOT_CA_KEY.to_owned(), "OLD".to_owned())].into(),
        };
        let Some(Write::Update { object, .. }) = controller().root_ca_write(Some(stale), "a") else {
            panic!("a stale bundle is replaced")
        };
        assert_eq!(object["data"][ROOT_CA_KEY], "PEM");
        assert_eq!(object["metadata"]["resourceVersion"], "7");
        assert!(matches!(controller().root_ca_write(None, "a"), Some(Write::Create { .. })));
    }

    #[test]
    fn configuration_names_the_bundle() {
        let (controller, interests) = ServiceAccounts::configure(r#"{"rootCA": "PEM"}"#).expect("configures");
        assert_eq!(controller.root_ca, "PEM");
        assert_eq!(interests.len(), 3);
        assert!(ServiceAccounts::configure(r#"{"other": 1}"#).is_err());
    }
}
