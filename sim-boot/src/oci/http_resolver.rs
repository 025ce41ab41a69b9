//! An [`ImageResolver`] speaking the distribution API through the crate's tower-based [`HttpClient`], so
//! image resolution can run in-process (e.g. against [`super::Registry::router`]) without sockets.
//! Plain HTTP only; HTTPS registries need [`super::OciClientResolver`].

use bytes::Bytes;
use http::{Request, StatusCode, header};

use super::reference::ImageRef;
use super::resolve::{
    ACCEPTED, Layer, OwnedResolver, ResolveError, ResolvedImage, check_blob, parse_manifest,
    resolve_with,
};
use boot_image::sha256_digest;
use http_client::{Fetched, HttpClient};

#[derive(Clone)]
pub struct HttpResolver {
    http: HttpClient,
}

impl HttpResolver {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    async fn manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> Result<(serde_json::Value, String), ResolveError> {
        let url = format!(
            "http://{}/v2/{}/manifests/{reference}",
            image.registry(),
            image.repository()
        );
        let request = Request::get(&url)
            .header(header::ACCEPT, ACCEPTED.join(", "))
            .body(axum::body::Body::empty());
        let request = request.map_err(|e| ResolveError::registry(image, e.to_string()))?;
        let response = self
            .http
            .send(request)
            .await
            .map_err(|detail| ResolveError::registry(image, detail))?;
        let body = check(image, &url, &response)?;
        let digest = sha256_digest(&body);
        let announced = response
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok());
        if announced.is_some_and(|a| a != digest)
            || (reference.starts_with("sha256:") && reference != digest)
        {
            let detail = format!("manifest from {url} hashes to {digest}, announced {announced:?}");
            return Err(ResolveError::registry(image, detail));
        }
        parse_manifest(image, &body, digest)
    }
}

impl OwnedResolver for HttpResolver {
    async fn resolve_owned(
        self,
        image: ImageRef,
        architecture: String,
    ) -> Result<ResolvedImage, ResolveError> {
        let (this, image_ref) = (&self, &image);
        let pull = move |digest: Option<String>| async move {
            let reference = digest.as_deref().unwrap_or(image_ref.version());
            this.manifest(image_ref, reference).await
        };
        resolve_with(image_ref, &architecture, pull).await
    }

    async fn fetch_owned(self, image: ImageRef, layer: Layer) -> Result<Bytes, ResolveError> {
        let url = format!(
            "http://{}/v2/{}/blobs/{}",
            image.registry(),
            image.repository(),
            layer.digest
        );
        let unavailable = |detail: String| ResolveError::BlobUnavailable {
            image: image.canonical().to_string(),
            digest: layer.digest.clone(),
            detail,
        };
        let response = self.http.get(&url).await.map_err(unavailable)?;
        if !response.status.is_success() {
            return Err(unavailable(format!(
                "{url} answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body).trim()
            )));
        }
        check_blob(&image, layer, response.body)
    }
}

fn check(image: &ImageRef, url: &str, response: &Fetched) -> Result<Bytes, ResolveError> {
    let detail = || {
        format!(
            "{url} answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body).trim()
        )
    };
    match response.status {
        s if s.is_success() => Ok(response.body.clone()),
        StatusCode::NOT_FOUND => Err(ResolveError::not_found(image, detail())),
        _ => Err(ResolveError::registry(image, detail())),
    }
}
