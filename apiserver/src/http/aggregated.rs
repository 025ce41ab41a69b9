//! Aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`) for `/api` and `/apis`, answered when
//! the client asks for it (kubectl does first; kube's `Discovery::run_aggregated` does too).

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::discovery::v2::{
    APIGroupDiscovery, APIGroupDiscoveryList, APIResourceDiscovery, APISubresourceDiscovery,
    APIVersionDiscovery, GroupVersionKind,
};

use crate::ops::State;
use crate::resources::ResourceInfo;

const CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the Accept header prefers aggregated discovery v2.
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split(',').next())
        .is_some_and(|first| {
            let params: Vec<&str> = first.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
                && params.contains(&"as=APIGroupDiscoveryList")
        })
}

fn gvk(group: &str, version: &str, kind: &str) -> Option<GroupVersionKind> {
    Some(GroupVersionKind {
        group: Some(group.into()),
        version: Some(version.into()),
        kind: Some(kind.into()),
    })
}

fn resource(info: &ResourceInfo, version: &str) -> APIResourceDiscovery {
    let mut subresources = Vec::new();
    if info.has_status {
        subresources.push(APISubresourceDiscovery {
            subresource: Some("status".into()),
            response_kind: gvk(&info.group, version, &info.kind),
            verbs: vec!["get".into(), "patch".into(), "update".into()],
            ..Default::default()
        });
    }
    APIResourceDiscovery {
        resource: Some(info.plural.clone()),
        response_kind: gvk(&info.group, version, &info.kind),
        scope: Some(
            if info.namespaced {
                "Namespaced"
            } else {
                "Cluster"
            }
            .into(),
        ),
        singular_resource: Some(info.singular.clone()),
        verbs: info.verbs().into_iter().map(String::from).collect(),
        short_names: info.short_names.clone(),
        categories: info.categories.clone(),
        subresources,
    }
}

/// The discovery document of the core group (`core == true`) or of all named groups.
pub fn document(st: &State, core: bool) -> Response {
    let mut items = Vec::new();
    let groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".into()])]
    } else {
        st.registry.groups()
    };
    for (group, versions) in groups {
        let versions = versions
            .iter()
            .map(|v| APIVersionDiscovery {
                version: Some(v.clone()),
                resources: st
                    .registry
                    .in_group_version(&group, v)
                    .iter()
                    .map(|i| resource(i, v))
                    .collect(),
                freshness: Some("Current".into()),
            })
            .collect();
        items.push(APIGroupDiscovery {
            metadata: Some(ObjectMeta {
                name: Some(group),
                ..Default::default()
            }),
            versions,
        });
    }
    let mut body = serde_json::to_value(APIGroupDiscoveryList {
        metadata: Some(Default::default()),
        items,
    })
    .unwrap_or_default();
    body["kind"] = "APIGroupDiscoveryList".into();
    body["apiVersion"] = "apidiscovery.k8s.io/v2".into();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response()
}
