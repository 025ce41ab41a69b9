//! Legacy discovery: `/version`, `/api`, `/apis`, `/apis/{g}`, `/api/v1`, `/apis/{g}/{v}` (kubectl falls back to
//! these from aggregated discovery; kube's `Discovery::run` uses them).

use std::sync::Arc;

use axum::extract::State as AxState;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};
use k8s_openapi::apimachinery::pkg::version::Info;
use serde::Serialize;
use sha2_free_hash::short_hash;

use super::value_response;
use crate::ops::State;
use crate::status::{ApiError, ApiResult};

/// The Kubernetes version this server emulates (kubectl's version dispatcher picks a matching client).
pub const MAJOR: &str = "1";
pub const MINOR: &str = "33";

fn json<T: Serialize>(v: &T) -> Response {
    value_response(StatusCode::OK, &serde_json::to_value(v).unwrap_or_default())
}

pub async fn version() -> Response {
    json(&Info {
        major: MAJOR.into(),
        minor: MINOR.into(),
        git_version: format!("v{MAJOR}.{MINOR}.0"),
        git_commit: "0000000000000000000000000000000000000000".into(),
        git_tree_state: "clean".into(),
        build_date: "2026-01-01T00:00:00Z".into(),
        go_version: "none (metal-harness embedded apiserver)".into(),
        compiler: "rustc".into(),
        platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        ..Default::default()
    })
}

fn any_cidr() -> Vec<ServerAddressByClientCIDR> {
    vec![ServerAddressByClientCIDR {
        client_cidr: "0.0.0.0/0".into(),
        server_address: String::new(),
    }]
}

pub async fn core_versions(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    if super::aggregated::wanted(&headers) {
        return super::aggregated::document(&st, true);
    }
    json(&APIVersions {
        versions: vec!["v1".into()],
        server_address_by_client_cidrs: any_cidr(),
    })
}

fn api_group(name: &str, versions: &[String]) -> APIGroup {
    let gvs: Vec<GroupVersionForDiscovery> = versions
        .iter()
        .map(|v| GroupVersionForDiscovery {
            group_version: format!("{name}/{v}"),
            version: v.clone(),
        })
        .collect();
    APIGroup {
        name: name.into(),
        preferred_version: gvs.first().cloned(),
        versions: gvs,
        server_address_by_client_cidrs: None,
    }
}

pub async fn group_list(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    if super::aggregated::wanted(&headers) {
        return super::aggregated::document(&st, false);
    }
    let groups = st
        .registry
        .groups()
        .iter()
        .map(|(g, vs)| api_group(g, vs))
        .collect();
    json(&APIGroupList { groups })
}

pub fn group(st: &State, name: &str) -> ApiResult<Response> {
    let groups = st.registry.groups();
    let (g, vs) = groups
        .iter()
        .find(|(g, _)| g == name)
        .ok_or_else(ApiError::path_not_found)?;
    Ok(json(&api_group(g, vs)))
}

pub fn resource_list(st: &State, group: &str, version: &str) -> ApiResult<Response> {
    let infos = st.registry.in_group_version(group, version);
    if infos.is_empty() && !(group.is_empty() && version == "v1") {
        return Err(ApiError::path_not_found());
    }
    let mut resources = Vec::new();
    for info in infos {
        let verbs = info.verbs().into_iter().map(String::from).collect();
        resources.push(APIResource {
            name: info.plural.clone(),
            singular_name: info.singular.clone(),
            namespaced: info.namespaced,
            kind: info.kind.clone(),
            verbs,
            short_names: (!info.short_names.is_empty()).then(|| info.short_names.clone()),
            categories: (!info.categories.is_empty()).then(|| info.categories.clone()),
            // Schemaless kinds say so by carrying no storage version hash.
            storage_version_hash: (!info.schemaless).then(|| {
                short_hash(&format!(
                    "{}/{}/{}",
                    info.group, info.versions[0], info.kind
                ))
            }),
            group: None,
            version: None,
        });
        if info.has_status {
            resources.push(sub_resource(
                &info.plural,
                "status",
                &info.kind,
                info.namespaced,
            ));
        }
        if info.kind == "Namespace" && info.group.is_empty() {
            resources.push(sub_resource(&info.plural, "finalize", &info.kind, false));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(json(&APIResourceList {
        group_version,
        resources,
    }))
}

fn sub_resource(plural: &str, sub: &str, kind: &str, namespaced: bool) -> APIResource {
    APIResource {
        name: format!("{plural}/{sub}"),
        singular_name: String::new(),
        namespaced,
        kind: kind.into(),
        verbs: if sub == "status" {
            vec!["get".into(), "patch".into(), "update".into()]
        } else {
            vec!["update".into()]
        },
        ..Default::default()
    }
}

/// A stable short hash for `storageVersionHash` without pulling in a crypto crate.
mod sha2_free_hash {
    use base64::Engine;

    pub fn short_hash(s: &str) -> String {
        // FNV-1a 64: stable across runs and platforms, which is all the field needs.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in s.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        base64::engine::general_purpose::STANDARD.encode(h.to_be_bytes())
    }
}
