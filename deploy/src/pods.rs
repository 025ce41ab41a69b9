//! A workload of the built manifests as one container outside Kubernetes: the image, args, env, user,
//! read-only root, emptyDir and ConfigMap mounts, named ports, HTTP probes, and the DNS names of the
//! Services that select it. The container tests run exactly this, so a flag, port or probe that does not
//! match the binary in its image fails there.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::manifests::{Manifests, containers, kind_of, name_of, namespace_of, pod_spec};

/// One container of a Deployment or Job, as docker would run it.
#[derive(Clone, Debug, PartialEq)]
pub struct PodPlan {
    pub workload: String,
    pub namespace: String,
    /// The image without its tag (`metal-harness/sim-boot`).
    pub image: String,
    pub args: Vec<String>,
    /// Literal values; `fieldRef: metadata.name` becomes the workload's name.
    pub env: Vec<(String, String)>,
    /// `runAsUser:runAsGroup` of the pod (or container) security context.
    pub user: Option<String>,
    pub read_only_root: bool,
    /// Capabilities the container drops (`ALL`).
    pub cap_drop: Vec<String>,
    /// emptyDir mount paths (tmpfs in docker).
    pub scratch_dirs: Vec<String>,
    /// Files of ConfigMap volumes: container path and content.
    pub files: Vec<(String, String)>,
    /// containerPort by port name.
    pub ports: BTreeMap<String, u16>,
    pub probes: Vec<HttpProbe>,
    /// `NAME.NAMESPACE.svc.cluster.local` of every Service selecting the pod.
    pub service_names: Vec<String>,
    /// How long the kubelet waits after SIGTERM before it kills the container (Kubernetes' default 30 s).
    pub termination_grace_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpProbe {
    /// startupProbe, livenessProbe or readinessProbe.
    pub kind: String,
    pub path: String,
    pub port: u16,
}

impl PodPlan {
    /// The first container of workload `kind/name` in `m`, resolved against the ConfigMaps and Services of `m`.
    pub fn from_manifests(m: &Manifests, kind: &str, name: &str) -> Result<PodPlan, String> {
        let w = m
            .get(kind, name)
            .ok_or_else(|| format!("no {kind} {name} in the manifests"))?;
        let namespace = namespace_of(w).unwrap_or("default").to_string();
        let c = *containers(w)
            .first()
            .ok_or_else(|| format!("{kind} {name} has no container"))?;
        let spec = pod_spec(w);
        let image = c["image"].as_str().unwrap_or_default();
        let image = image.split(':').next().unwrap_or(image).to_string();
        let args = strings(&c["args"]);
        let mut env = Vec::new();
        for e in c["env"].as_array().into_iter().flatten() {
            let key = e["name"].as_str().unwrap_or_default().to_string();
            if let Some(v) = e["value"].as_str() {
                env.push((key, v.to_string()));
            } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" {
                env.push((key, name.to_string()));
            } else {
                return Err(format!(
                    "{kind} {name}: env {key} has a source a container cannot have"
                ));
            }
        }
        let security = |field: &str| {
            let v = &c["securityContext"][field];
            if v.is_null() {
                spec["securityContext"][field].clone()
            } else {
                v.clone()
            }
        };
        let user = match (
            security("runAsUser").as_i64(),
            security("runAsGroup").as_i64(),
        ) {
            (Some(u), Some(g)) => Some(format!("{u}:{g}")),
            (Some(u), None) => Some(u.to_string()),
            _ => None,
        };
        let read_only_root = c["securityContext"]["readOnlyRootFilesystem"] == true;
        let cap_drop = strings(&c["securityContext"]["capabilities"]["drop"]);
        let ports: BTreeMap<String, u16> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p["name"].as_str()?.to_string(),
                    p["containerPort"].as_u64()? as u16,
                ))
            })
            .collect();
        let (scratch_dirs, files) = mounts(m, spec, c, &namespace)?;
        let mut probes = Vec::new();
        for kind in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let get = &c[kind]["httpGet"];
            if get.is_null() {
                continue;
            }
            let port = port_number(&get["port"], &ports).ok_or_else(|| {
                format!(
                    "{name}: {kind} port {} is not a container port",
                    get["port"]
                )
            })?;
            probes.push(HttpProbe {
                kind: kind.into(),
                path: get["path"].as_str().unwrap_or("/").to_string(),
                port,
            });
        }
        let labels = &spec_labels(w);
        let mut service_names = Vec::new();
        for s in m.of_kind("Service") {
            let s_ns = namespace_of(s).unwrap_or("default");
            let selector = s["spec"]["selector"].as_object();
            let selects = s_ns == namespace
                && selector.is_some_and(|sel| {
                    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
                });
            if !selects {
                continue;
            }
            // Docker has no port translation: a Service port must be the container port it targets.
            for p in s["spec"]["ports"].as_array().into_iter().flatten() {
                let target = if p["targetPort"].is_null() {
                    &p["port"]
                } else {
                    &p["targetPort"]
                };
                let container_port = port_number(target, &ports).ok_or_else(|| {
                    format!(
                        "Service {}: targetPort {target} is no port of {name}",
                        name_of(s)
                    )
                })?;
                if p["port"].as_u64() != Some(u64::from(container_port)) {
                    return Err(format!(
                        "Service {}: port {} forwards to {container_port}; the container tests need them equal",
                        name_of(s),
                        p["port"]
                    ));
                }
            }
            service_names.push(format!("{}.{s_ns}.svc.cluster.local", name_of(s)));
        }
        Ok(PodPlan {
            workload: name.to_string(),
            namespace,
            image,
            args,
            env,
            user,
            read_only_root,
            cap_drop,
            scratch_dirs,
            files,
            ports,
            probes,
            service_names,
            termination_grace_seconds: spec["terminationGracePeriodSeconds"].as_u64().unwrap_or(30),
        })
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn spec_labels(w: &Value) -> serde_json::Map<String, Value> {
    let template = match kind_of(w) {
        "CronJob" => &w["spec"]["jobTemplate"]["spec"]["template"],
        _ => &w["spec"]["template"],
    };
    template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn port_number(port: &Value, named: &BTreeMap<String, u16>) -> Option<u16> {
    match port {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => named.get(s).copied(),
        _ => None,
    }
}

type Mounts = (Vec<String>, Vec<(String, String)>);

/// emptyDir mounts become scratch dirs; ConfigMap mounts become files (every key, or the listed items).
fn mounts(m: &Manifests, spec: &Value, c: &Value, namespace: &str) -> Result<Mounts, String> {
    let mut scratch = Vec::new();
    let mut files = Vec::new();
    for mount in c["volumeMounts"].as_array().into_iter().flatten() {
        let path = mount["mountPath"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('/');
        let vol_name = mount["name"].as_str().unwrap_or_default();
        let volume = spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == vol_name)
            .ok_or_else(|| format!("volume {vol_name} is mounted but not declared"))?;
        if volume.get("emptyDir").is_some() {
            scratch.push(path.to_string());
        } else if let Some(cm) = volume["configMap"]["name"].as_str() {
            let map = m
                .of_kind("ConfigMap")
                .find(|o| name_of(o) == cm && namespace_of(o).unwrap_or("default") == namespace)
                .ok_or_else(|| {
                    format!("ConfigMap {namespace}/{cm} is mounted but not in the manifests")
                })?;
            let data = map["data"].as_object().cloned().unwrap_or_default();
            let items: Vec<(String, String)> = match volume["configMap"]["items"].as_array() {
                Some(items) => items
                    .iter()
                    .map(|i| {
                        (
                            i["key"].as_str().unwrap_or_default().into(),
                            i["path"].as_str().unwrap_or_default().into(),
                        )
                    })
                    .collect(),
                None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
            };
            for (key, rel) in items {
                let content = data
                    .get(&key)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("ConfigMap {cm} has no key {key}"))?;
                files.push((format!("{path}/{rel}"), content.to_string()));
            }
        } else {
            return Err(format!(
                "volume {vol_name}: only emptyDir and configMap volumes can run in a container here"
            ));
        }
    }
    Ok((scratch, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ns}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {runAsUser: 65532, runAsGroup: 65532}
      containers:
      - name: web
        image: metal-harness/web:dev
        args: [--listen=0.0.0.0:8080]
        env:
        - {name: A, value: b}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: http}}
        securityContext: {readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        volumeMounts:
        - {name: tmp, mountPath: /tmp}
        - {name: conf, mountPath: /etc/web/}
      volumes:
      - {name: tmp, emptyDir: {}}
      - {name: conf, configMap: {name: web-conf}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-conf, namespace: ns}
data: {web.yaml: "a: 1\n"}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ns}
spec:
  selector: {app: web}
  ports: [{port: 8080, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: ns}
spec:
  selector: {app: other}
  ports: [{port: 1}]
"#;

    #[test]
    fn a_deployment_becomes_a_container_plan() {
        let m = Manifests::parse(YAML).unwrap();
        let p = PodPlan::from_manifests(&m, "Deployment", "web").unwrap();
        assert_eq!(p.image, "metal-harness/web");
        assert_eq!(p.args, vec!["--listen=0.0.0.0:8080"]);
        assert_eq!(
            p.env,
            vec![("A".into(), "b".into()), ("POD_NAME".into(), "web".into())]
        );
        assert_eq!(p.user.as_deref(), Some("65532:65532"));
        assert!(p.read_only_root);
        assert_eq!(p.cap_drop, vec!["ALL"]);
        assert_eq!(p.scratch_dirs, vec!["/tmp"]);
        assert_eq!(p.files, vec![("/etc/web/web.yaml".into(), "a: 1\n".into())]);
        assert_eq!(
            p.probes,
            vec![HttpProbe {
                kind: "readinessProbe".into(),
                path: "/healthz".into(),
                port: 8080
            }]
        );
        assert_eq!(p.service_names, vec!["web.ns.svc.cluster.local"]);
    }

    #[test]
    fn a_service_port_that_differs_from_its_target_is_refused() {
        let yaml = YAML.replace(
            "ports: [{port: 8080, targetPort: http}]",
            "ports: [{port: 80, targetPort: http}]",
        );
        let m = Manifests::parse(&yaml).unwrap();
        let e = PodPlan::from_manifests(&m, "Deployment", "web").unwrap_err();
        assert!(e.contains("port 80 forwards to 8080"), "{e}");
        let yaml = YAML.replace("port: http}}", "port: metrics}}");
        let m = Manifests::parse(&yaml).unwrap();
        let e = PodPlan::from_manifests(&m, "Deployment", "web").unwrap_err();
        assert!(e.contains("readinessProbe port"), "{e}");
    }
}
