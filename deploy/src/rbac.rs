//! RBAC as Kubernetes evaluates it, over the objects in a built overlay: which rules a ServiceAccount
//! gets through its (Cluster)RoleBindings, whether they allow a request, and which grants go unused.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use crate::manifests::{Manifests, kind_of, name_of, namespace_of};
use crate::recorder::ApiRequest;

/// One `rules[]` entry of a Role or ClusterRole.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
    #[serde(default)]
    pub non_resource_urls: Vec<String>,
}

impl PolicyRule {
    fn allows(&self, req: &ApiRequest) -> bool {
        let group_ok = self.api_groups.iter().any(|g| g == "*" || *g == req.group);
        let verb_ok = self.verbs.iter().any(|v| v == "*" || *v == req.verb);
        let resource_ok = self
            .resources
            .iter()
            .any(|r| resource_matches(r, &req.resource, req.subresource.as_deref()));
        let name_ok = self.resource_names.is_empty()
            || req
                .name
                .as_ref()
                .is_some_and(|n| self.resource_names.contains(n));
        group_ok && verb_ok && resource_ok && name_ok
    }
}

/// `pods`, `pods/status`, `*`, `*/status`, `pods/*` as kube-apiserver's RBAC authorizer matches them.
fn resource_matches(rule: &str, resource: &str, subresource: Option<&str>) -> bool {
    if rule == "*" {
        return true;
    }
    match subresource {
        None => rule == resource,
        Some(sub) => {
            rule == format!("{resource}/{sub}")
                || rule == format!("*/{sub}")
                || rule == format!("{resource}/*")
        }
    }
}

/// Where a rule applies: cluster-wide (ClusterRoleBinding) or in one namespace (RoleBinding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Cluster,
    Namespace(String),
}

/// A rule together with where it applies and which role it came from.
#[derive(Clone, Debug)]
pub struct Grant {
    pub scope: Scope,
    pub role: String,
    pub rule: PolicyRule,
}

/// Everything a ServiceAccount is granted by the objects of one overlay.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    pub grants: Vec<Grant>,
}

#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    #[error("{binding} refers to {role_kind} {role:?}, which is not in the manifests")]
    MissingRole {
        binding: String,
        role_kind: String,
        role: String,
    },
    #[error("malformed {kind} {name}: {message}")]
    Malformed {
        kind: String,
        name: String,
        message: String,
    },
}

impl Grants {
    /// The grants of `system:serviceaccount:{namespace}:{name}` through the bindings in `manifests`.
    pub fn for_service_account(
        manifests: &Manifests,
        namespace: &str,
        name: &str,
    ) -> Result<Grants, RbacError> {
        let mut grants = Vec::new();
        for binding in manifests.objects() {
            let kind = kind_of(binding);
            if kind != "RoleBinding" && kind != "ClusterRoleBinding" {
                continue;
            }
            let binding_ns = namespace_of(binding).unwrap_or_default();
            if !binds_service_account(binding, binding_ns, namespace, name) {
                continue;
            }
            let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
            let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
            let role = manifests.objects().iter().find(|o| {
                kind_of(o) == role_kind
                    && name_of(o) == role_name
                    && (role_kind == "ClusterRole"
                        || namespace_of(o).unwrap_or_default() == binding_ns)
            });
            let role = role.ok_or_else(|| RbacError::MissingRole {
                binding: format!("{kind} {binding_ns}/{}", name_of(binding)),
                role_kind: role_kind.into(),
                role: role_name.into(),
            })?;
            let scope = if kind == "ClusterRoleBinding" {
                Scope::Cluster
            } else {
                Scope::Namespace(binding_ns.to_string())
            };
            for rule in rules_of(role, manifests)? {
                grants.push(Grant {
                    scope: scope.clone(),
                    role: format!("{role_kind}/{role_name}"),
                    rule,
                });
            }
        }
        Ok(Grants { grants })
    }

    /// Whether some grant allows `req` (in its namespace, for a RoleBinding).
    pub fn allows(&self, req: &ApiRequest) -> bool {
        self.grants.iter().any(|g| {
            let in_scope = match &g.scope {
                Scope::Cluster => true,
                Scope::Namespace(ns) => req.namespace.as_deref() == Some(ns.as_str()),
            };
            in_scope && g.rule.allows(req)
        })
    }

    /// Every `(role, verb, group/resource)` granted explicitly (no wildcards) that no request used.
    pub fn unused(&self, used: &BTreeSet<ApiRequest>) -> Vec<String> {
        let mut out = BTreeSet::new();
        for g in &self.grants {
            // A wildcard grant is a deliberate "whatever exists" (e.g. listing every kind for leftovers): no
            // run can use all of it, so only explicit grants are held to being used.
            let wildcard = [&g.rule.api_groups, &g.rule.resources, &g.rule.verbs]
                .iter()
                .any(|list| list.iter().any(|x| x == "*"));
            if wildcard {
                continue;
            }
            for group in &g.rule.api_groups {
                for resource in &g.rule.resources {
                    for verb in &g.rule.verbs {
                        let (res, sub) = match resource.split_once('/') {
                            Some((r, s)) => (r, Some(s)),
                            None => (resource.as_str(), None),
                        };
                        let hit = used.iter().any(|u| {
                            u.group == *group
                                && u.resource == res
                                && u.subresource.as_deref() == sub
                                && u.verb == *verb
                                && match &g.scope {
                                    Scope::Cluster => true,
                                    Scope::Namespace(ns) => {
                                        u.namespace.as_deref() == Some(ns.as_str())
                                    }
                                }
                        });
                        if !hit {
                            let group = if group.is_empty() { "core" } else { group };
                            out.insert(format!("{}: {verb} {group}/{resource}", g.role));
                        }
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}

fn binds_service_account(binding: &Value, binding_ns: &str, namespace: &str, name: &str) -> bool {
    binding["subjects"].as_array().is_some_and(|subjects| {
        subjects.iter().any(|s| {
            s["kind"] == "ServiceAccount"
                && s["name"] == name
                // A RoleBinding's subject without a namespace means the binding's namespace.
                && s["namespace"].as_str().unwrap_or(binding_ns) == namespace
        })
    })
}

/// A role's rules; for a ClusterRole with an `aggregationRule`, the rules of every ClusterRole its
/// selectors match (what kube-controller-manager's aggregation controller writes into it).
fn rules_of(role: &Value, manifests: &Manifests) -> Result<Vec<PolicyRule>, RbacError> {
    let malformed = |message: String| RbacError::Malformed {
        kind: kind_of(role).into(),
        name: name_of(role).into(),
        message,
    };
    let Some(selectors) = role["aggregationRule"]["clusterRoleSelectors"].as_array() else {
        return parse_rules(role);
    };
    let mut rules = Vec::new();
    for selector in selectors {
        if selector.get("matchExpressions").is_some() {
            return Err(malformed(
                "matchExpressions in aggregation selectors are not supported here".into(),
            ));
        }
        let labels = selector["matchLabels"]
            .as_object()
            .ok_or_else(|| malformed("selector without matchLabels".into()))?;
        for candidate in manifests
            .objects()
            .iter()
            .filter(|o| kind_of(o) == "ClusterRole")
        {
            let matches = labels
                .iter()
                .all(|(k, v)| candidate["metadata"]["labels"][k] == *v);
            if matches && name_of(candidate) != name_of(role) {
                rules.extend(parse_rules(candidate)?);
            }
        }
    }
    Ok(rules)
}

fn parse_rules(role: &Value) -> Result<Vec<PolicyRule>, RbacError> {
    let rules = role.get("rules").cloned().unwrap_or(Value::Array(vec![]));
    serde_json::from_value(rules).map_err(|e| RbacError::Malformed {
        kind: kind_of(role).into(),
        name: name_of(role).into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        verb: &str,
        group: &str,
        resource: &str,
        sub: Option<&str>,
        ns: Option<&str>,
    ) -> ApiRequest {
        ApiRequest {
            verb: verb.into(),
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: sub.map(Into::into),
            namespace: ns.map(Into::into),
            name: Some("x".into()),
        }
    }

    fn manifests(yaml: &str) -> Manifests {
        Manifests::parse(yaml).unwrap()
    }

    const OBJECTS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: sbc-status}
rules:
- apiGroups: [metal.ironcore.dev]
  resources: [serverbootconfigurations/status]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: sbc-status}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sbc-status}
subjects: [{kind: ServiceAccount, name: backend, namespace: sys}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: leases, namespace: sys}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, update]
  resourceNames: [x]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: leases, namespace: sys}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leases}
subjects: [{kind: ServiceAccount, name: backend}]
"#;

    #[test]
    fn subresources_namespaces_and_names_are_respected() {
        let grants = Grants::for_service_account(&manifests(OBJECTS), "sys", "backend").unwrap();
        let g = "metal.ironcore.dev";
        assert!(grants.allows(&request(
            "patch",
            g,
            "serverbootconfigurations",
            Some("status"),
            Some("a")
        )));
        assert!(
            !grants.allows(&request(
                "patch",
                g,
                "serverbootconfigurations",
                None,
                Some("a")
            )),
            "status-only"
        );
        assert!(!grants.allows(&request(
            "update",
            g,
            "serverbootconfigurations",
            Some("status"),
            Some("a")
        )));
        assert!(grants.allows(&request(
            "get",
            "coordination.k8s.io",
            "leases",
            None,
            Some("sys")
        )));
        assert!(
            !grants.allows(&request(
                "get",
                "coordination.k8s.io",
                "leases",
                None,
                Some("other")
            )),
            "RoleBinding is namespaced"
        );
        let mut other_name = request("get", "coordination.k8s.io", "leases", None, Some("sys"));
        other_name.name = Some("y".into());
        assert!(!grants.allows(&other_name), "resourceNames restrict");
        let nobody =
            Grants::for_service_account(&manifests(OBJECTS), "sys", "someone-else").unwrap();
        assert!(nobody.grants.is_empty());
    }

    #[test]
    fn unused_grants_are_listed() {
        let grants = Grants::for_service_account(&manifests(OBJECTS), "sys", "backend").unwrap();
        let used = BTreeSet::from([request(
            "patch",
            "metal.ironcore.dev",
            "serverbootconfigurations",
            Some("status"),
            Some("a"),
        )]);
        assert_eq!(
            grants.unused(&used),
            vec![
                "Role/leases: get coordination.k8s.io/leases".to_string(),
                "Role/leases: update coordination.k8s.io/leases".to_string()
            ]
        );
    }

    #[test]
    fn aggregated_cluster_roles_get_the_rules_of_the_roles_they_select() {
        let yaml = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: children}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {aggregate: "yes"}}]
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: pods, labels: {aggregate: "yes"}}
rules: [{apiGroups: [""], resources: [pods], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: other, labels: {aggregate: "no"}}
rules: [{apiGroups: [""], resources: [services], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: children}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: children}
subjects: [{kind: ServiceAccount, name: suite, namespace: sys}]
"#;
        let grants = Grants::for_service_account(&manifests(yaml), "sys", "suite").unwrap();
        let mut list = request("list", "", "pods", None, Some("ns"));
        list.name = None;
        assert!(grants.allows(&list));
        list.resource = "services".into();
        assert!(
            !grants.allows(&list),
            "a ClusterRole with another label is not aggregated"
        );
    }

    #[test]
    fn a_binding_to_a_missing_role_is_an_error() {
        let yaml = OBJECTS.replace("name: sbc-status}\nsubjects", "name: nope}\nsubjects");
        let err = Grants::for_service_account(&manifests(&yaml), "sys", "backend").unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }
}
