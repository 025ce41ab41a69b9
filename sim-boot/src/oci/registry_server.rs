//! A read-only OCI distribution (API v2) registry over a [`Catalog`]: `/v2/`, manifests by tag or digest,
//! blobs (with Range), tag lists, GET and HEAD; OCI error JSON for everything else. Answers as
//! distribution/distribution does where clients depend on it: `Accept` negotiation of manifests, digest and
//! length headers on HEAD, and optionally the anonymous bearer-token flow of public registries
//! ([`super::registry_auth`]).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::json;

use super::catalog::Catalog;
use super::registry_auth::{Access, TokenAuth};
use crate::bytes_response;
use boot_image::media;

/// The registry's HTTP surface. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    catalog: Arc<Catalog>,
    auth: Option<Arc<TokenAuth>>,
}

impl Registry {
    pub fn new(catalog: Catalog) -> Self {
        Self {
            catalog: Arc::new(catalog),
            auth: None,
        }
    }

    /// Requires a bearer token from the registry's own `/token` endpoint on every `/v2/` request, as Docker
    /// Hub and ghcr.io do for public images: anonymous clients get a pull token for the scope they ask for.
    /// `scheme` (`https` or `http`) goes into the challenge's realm URL; `clock` stamps the tokens and
    /// `seed` (OS randomness when None) draws their signing key.
    pub fn with_token_auth(mut self, scheme: &str, clock: clock::Clock, seed: Option<u64>) -> Self {
        let entropy = clock::Entropy::from_seed(seed);
        self.auth = Some(Arc::new(TokenAuth::new(scheme, clock, &entropy)));
        self
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn router(&self) -> Router {
        let mut router = Router::new()
            .route("/v2/", any(base))
            .route("/v2", any(base))
            .route("/v2/{*path}", any(dispatch));
        if self.auth.is_some() {
            router = router.route(super::registry_auth::TOKEN_PATH, any(token));
        }
        router.with_state(self.clone())
    }

    /// `Some(401 response)` when auth is on and the request's token does not grant `access`.
    fn unauthorized(&self, headers: &HeaderMap, uri: &Uri, access: &Access) -> Option<Response> {
        let auth = self.auth.as_ref()?;
        auth.denial(headers, uri, access)
    }
}

async fn token(State(registry): State<Registry>, method: Method, uri: Uri) -> Response {
    if method != Method::GET {
        return unsupported(&method);
    }
    match &registry.auth {
        Some(auth) => auth.issue(uri.query().unwrap_or_default()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An OCI distribution error response.
/// Distribution's answer for a repository the registry does not hold.
fn name_unknown(name: &str) -> Response {
    oci_error(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        "repository name not known to registry",
        json!({"name": name}),
    )
}

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

async fn base(
    State(registry): State<Registry>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return api_version_header(unsupported(&method));
    }
    if let Some(denied) = registry.unauthorized(&headers, &uri, &Access::Base) {
        return api_version_header(denied);
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
    uri: Uri,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return api_version_header(unsupported(&method));
    }
    if let Some((name, _)) = split_path(&path) {
        let access = Access::Pull(name.to_string());
        if let Some(denied) = registry.unauthorized(&headers, &uri, &access) {
            return api_version_header(denied);
        }
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

/// Whether the request's `Accept` lists `media_type`. As in distribution, OCI manifests and indexes are served
/// only to clients that name their type (a missing `Accept` accepts neither); Docker schema 2 types, which
/// predate negotiation, are served to any client. Values may be comma-joined or repeated; parameters are ignored.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    if media_type != media::OCI_MANIFEST && media_type != media::OCI_INDEX {
        return true;
    }
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.split(';').next().unwrap_or_default().trim() == media_type)
}

/// distribution's wording, which clients and people search for.
fn not_acceptable_message(media_type: &str) -> &'static str {
    if media_type == media::OCI_INDEX {
        "OCI index found, but accept header does not support OCI indexes"
    } else {
        "OCI manifest found, but accept header does not support OCI manifests"
    }
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
            return name_unknown(name);
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
            Some(m) if !accepts(headers, &m.media_type) => oci_error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                not_acceptable_message(&m.media_type),
                json!({"name": name, "reference": reference, "mediaType": m.media_type}),
            ),
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
            return name_unknown(name);
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
            None => name_unknown(name),
        }
    }
}
