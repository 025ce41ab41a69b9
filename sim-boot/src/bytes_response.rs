//! Serving immutable bytes over HTTP: HEAD, Content-Length, ETag/If-None-Match, digest headers and
//! single byte ranges (206/416), shared by the registry and the boot server.

use axum::body::Body;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

/// Header carrying the OCI digest of the whole content (registries send it; so does the boot server).
pub const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// `digest` is `sha256:<hex>`; it is echoed as `Docker-Content-Digest`, as a strong ETag and as an
/// RFC 3230 `Digest: sha-256=<base64>` header.
pub fn serve(
    method: &Method,
    request: &HeaderMap,
    bytes: &Bytes,
    content_type: &str,
    digest: &str,
) -> Response {
    let etag = format!("\"{digest}\"");
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(DOCKER_CONTENT_DIGEST, digest);
    if let Some(rfc3230) = rfc3230_digest(digest) {
        builder = builder.header("digest", rfc3230);
    }
    if request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag || v == "*")
    {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("valid response");
    }
    let total = bytes.len() as u64;
    let range = request.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, slice) = match range.map(|r| parse_range(r, total)) {
        None => (StatusCode::OK, bytes.clone()),
        Some(Some((start, end))) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{total}"),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                bytes.slice(start as usize..=end as usize),
            )
        }
        Some(None) => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{total}"))
                .body(Body::empty())
                .expect("valid response");
        }
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, slice.len());
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(slice)
    };
    builder.body(body).expect("valid response")
}

fn rfc3230_digest(digest: &str) -> Option<HeaderValue> {
    let raw = hex::decode(digest.strip_prefix("sha256:")?).ok()?;
    let value = format!(
        "sha-256={}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    );
    HeaderValue::from_str(&value).ok()
}

/// Parses a single `bytes=` range into inclusive offsets; multi-range requests are refused.
pub fn parse_range(value: &str, total: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || total == 0 {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            if n == 0 {
                return None;
            }
            (total.saturating_sub(n), total - 1)
        }
        (start, "") => (start.parse().ok()?, total - 1),
        (start, end) => {
            let end: u64 = end.parse().ok()?;
            (start.parse().ok()?, end.min(total - 1))
        }
    };
    if start > end || start >= total {
        return None;
    }
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=9-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn serves_partial_content_with_headers() {
        let bytes = Bytes::from_static(b"0123456789");
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=2-4"));
        let response = serve(
            &Method::GET,
            &headers,
            &bytes,
            "application/octet-stream",
            "sha256:00",
        );
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "3");
        assert_eq!(response.headers()[header::CONTENT_RANGE], "bytes 2-4/10");
        assert_eq!(response.headers()[DOCKER_CONTENT_DIGEST], "sha256:00");
    }
}
