//! A read-only OCI distribution (API v2) registry over a [`Catalog`]: `/v2/`, manifests by tag or digest,
//! blobs (with Range), tag lists, GET and HEAD; OCI error JSON for everything else.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::json;

use super::catalog::Catalog;
use crate::bytes_response;

/// The registry's HTTP surface. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    catalog: Arc<Catalog>,
}

impl Registry {
    pub fn new(catalog: Catalog) -> Self {
        Self {
            catalog: Arc::new(catalog),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v2/", any(base))
            .route("/v2", any(base))
            .route("/v2/{*path}", any(dispatch))
            .with_state(self.clone())
    }
}

/// An OCI distribution error response.
fn oci_error(status: StatusCode, code: &str, message: &str, detail: serde_json::Value) -> Response {
    let body = json!({"errors": [{"code": code, "message": message, "detail": detail}]});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn api_version_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        "docker-distribution-api-version",
        http::HeaderValue::from_static("registry/2.0"),
    );
    response
}

async fn base(method: Method) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return api_version_header(unsupported(&method));
    }
    api_version_header(
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response(),
    )
}

fn unsupported(method: &Method) -> Response {
    oci_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "the operation is unsupported: this registry is read-only",
        json!({"method": method.as_str()}),
    )
}

async fn dispatch(
    State(registry): State<Registry>,
    method: Method,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return api_version_header(unsupported(&method));
    }
    let response = match split_path(&path) {
        Some((name, Endpoint::Manifest(reference))) => {
            registry.manifest(&method, &headers, name, reference)
        }
        Some((name, Endpoint::Blob(digest))) => registry.blob(&method, &headers, name, digest),
        Some((name, Endpoint::Tags)) => registry.tags(name),
        None => oci_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
            json!({"path": path}),
        ),
    };
    api_version_header(response)
}

enum Endpoint<'a> {
    Manifest(&'a str),
    Blob(&'a str),
    Tags,
}

/// Splits `<name>/manifests/<ref>`, `<name>/blobs/<digest>` or `<name>/tags/list`; names may contain slashes.
fn split_path(path: &str) -> Option<(&str, Endpoint<'_>)> {
    if let Some(name) = path.strip_suffix("/tags/list") {
        return Some((name, Endpoint::Tags));
    }
    if let Some((name, reference)) = path.rsplit_once("/manifests/") {
        return Some((name, Endpoint::Manifest(reference)));
    }
    let (name, digest) = path.rsplit_once("/blobs/")?;
    Some((name, Endpoint::Blob(digest)))
}

fn valid_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Registry {
    fn manifest(
        &self,
        method: &Method,
        headers: &HeaderMap,
        name: &str,
        reference: &str,
    ) -> Response {
        if !self.catalog.has_repository(name) {
            return oci_error(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                "repository name not known to registry",
                json!({"name": name}),
            );
        }
        if reference.contains(':') && !valid_digest(reference) {
            return oci_error(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
                json!({"digest": reference}),
            );
        }
        match self.catalog.manifest(name, reference) {
            Some(m) => bytes_response::serve(method, headers, &m.bytes, &m.media_type, &m.digest),
            None => oci_error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown to registry",
                json!({"name": name, "reference": reference}),
            ),
        }
    }

    fn blob(&self, method: &Method, headers: &HeaderMap, name: &str, digest: &str) -> Response {
        if !valid_digest(digest) {
            return oci_error(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                "provided digest is not a sha256 digest",
                json!({"digest": digest}),
            );
        }
        if !self.catalog.has_repository(name) {
            return oci_error(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                "repository name not known to registry",
                json!({"name": name}),
            );
        }
        match self.catalog.blob(name, digest) {
            Some(bytes) => {
                bytes_response::serve(method, headers, bytes, "application/octet-stream", digest)
            }
            None => oci_error(
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                "blob unknown to registry",
                json!({"digest": digest}),
            ),
        }
    }

    fn tags(&self, name: &str) -> Response {
        match self.catalog.tags(name) {
            Some(tags) => {
                let body = json!({"name": name, "tags": tags});
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::from(body.to_string()),
                )
                    .into_response()
            }
            None => oci_error(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                "repository name not known to registry",
                json!({"name": name}),
            ),
        }
    }
}
