//! The pods a Job makes from its template.

use engenho_controller::kinds::JOBS;
use engenho_controller::meta::OwnerReference;
use serde_json::{Map, Value, json};

use crate::model::{COMPLETION_INDEX, Job, TRACKING_FINALIZER};

/// The longest `generateName` prefix the API server keeps (it appends 5 characters).
const MAX_GENERATED_NAME_LENGTH: usize = 58;

/// The environment variable that carries an Indexed Job pod's index.
const INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";

/// A new pod of `job` from its template, with completion `index` for Indexed Jobs.
pub fn new_pod(job: &Job, index: Option<i32>) -> Value {
    let template = &job.spec.template;
    let mut metadata = Map::new();
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(map)) = template["metadata"].get(field) {
            metadata.insert(field.to_owned(), Value::Object(map.clone()));
        }
    }
    let name = &job.metadata.name;
    metadata.insert("generateName".into(), json!(generate_name(name, index)));
    metadata.insert("namespace".into(), json!(job.metadata.namespace));
    metadata.insert("ownerReferences".into(), json!([OwnerReference::controlled_by(&JOBS, "Job", &job.metadata)]));
    let mut finalizers = match template["metadata"].get("finalizers") {
        Some(Value::Array(list)) => list.clone(),
        _ => Vec::new(),
    };
    finalizers.push(json!(TRACKING_FINALIZER));
    metadata.insert("finalizers".into(), Value::Array(finalizers));
    let mut spec = match template.get("spec") {
        Some(Value::Object(spec)) => spec.clone(),
        _ => Map::new(),
    };
    if let Some(index) = index {
        for field in ["labels", "annotations"] {
            let entry = metadata.entry(field).or_insert_with(|| json!({}));
            entry[COMPLETION_INDEX] = json!(index.to_string());
        }
        if spec.get("hostname").and_then(Value::as_str).is_none_or(str::is_empty) {
            spec.insert("hostname".into(), json!(format!("{name}-{index}")));
        }
        for containers in ["containers", "initContainers"] {
            if let Some(Value::Array(list)) = spec.get_mut(containers) {
                list.iter_mut().for_each(add_index_variable);
            }
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// `<job>-`, or `<job>-<index>-` with the Job's name cut so the prefix fits.
fn generate_name(job: &str, index: Option<i32>) -> String {
    let Some(index) = index else { return format!("{job}-") };
    let suffix = format!("-{index}-");
    let room = MAX_GENERATED_NAME_LENGTH.saturating_sub(suffix.len());
    let cut = job.char_indices().map(|(i, _)| i).take_while(|i| *i <= room).last().unwrap_or(0);
    let prefix = if job.len() > room { &job[..cut] } else { job };
    format!("{prefix}{suffix}")
}

/// Gives `container` the index variable from the downward API, unless it sets one.
fn add_index_variable(container: &mut Value) {
    let Value::Object(container) = container else { return };
    let env = container.entry("env").or_insert_with(|| json!([]));
    let Value::Array(env) = env else { return };
    if env.iter().any(|v| v["name"] == INDEX_VARIABLE) {
        return;
    }
    let path = format!("metadata.annotations['{COMPLETION_INDEX}']");
    env.push(json!({"name": INDEX_VARIABLE, "valueFrom": {"fieldRef": {"fieldPath": path}}}));
}

#[cfg(test)]
mod tests {
    use super::*;
    use engenho_controller::meta::ObjectMeta;

    fn job() -> Job {
        let mut job = Job {
            metadata: ObjectMeta { name: "pi".into(), namespace: "ns".into(), uid: "u1".into(), ..Default::default() },
            ..Default::default()
        };
        job.spec.template = json!({
            "metadata": {"labels": {"app": "pi", "batch.kubernetes.io/job-name": "pi"}, "finalizers": ["example.com/keep"]},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl"}]},
        });
        job
    }

    #[test]
    fn a_pod_carries_the_template_owner_and_finalizer() {
        let pod = new_pod(&job(), None);
        assert_eq!(pod["metadata"]["generateName"], "pi-");
        assert_eq!(pod["metadata"]["labels"]["app"], "pi");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(pod["metadata"]["finalizers"], json!(["example.com/keep", TRACKING_FINALIZER]));
        assert_eq!(pod["spec"]["containers"][0]["image"], "perl");
        assert!(pod["spec"]["containers"][0].get("env").is_none());
    }

    #[test]
    fn an_indexed_pod_carries_its_index_everywhere_kubernetes_puts_it() {
        let pod = new_pod(&job(), Some(3));
        assert_eq!(pod["metadata"]["generateName"], "pi-3-");
        assert_eq!(pod["metadata"]["annotations"][COMPLETION_INDEX], "3");
        assert_eq!(pod["metadata"]["labels"][COMPLETION_INDEX], "3");
        assert_eq!(pod["spec"]["hostname"], "pi-3");
        let env = &pod["spec"]["containers"][0]["env"][0];
        assert_eq!(env["name"], INDEX_VARIABLE);
        assert_eq!(env["valueFrom"]["fieldRef"]["fieldPath"], format!("metadata.annotations['{COMPLETION_INDEX}']"));
    }

    #[test]
    fn a_long_name_is_cut_to_fit_the_index() {
        let long = "j".repeat(70);
        let name = generate_name(&long, Some(12));
        assert_eq!(name.len(), MAX_GENERATED_NAME_LENGTH);
        assert!(name.ends_with("-12-"));
    }
}
