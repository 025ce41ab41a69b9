//! One Redfish request on the wire: the URL under the BMC's base, the Redfish headers, the
//! per-request timeout, and the answer's status mapped to a typed error.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode, header};
use http_body_util::Full;
use tower::ServiceExt as _;

use super::error::{RedfishError, Result, message_from_body};
use super::transport::HttpService;

/// Marks a transport failure before the request left (nothing reached the BMC).
pub(super) const CONNECT_PREFIX: &str = "connect: ";

pub(super) struct Wire {
    http: HttpService,
    base: String,
    timeout: Duration,
}

impl Wire {
    /// `endpoint` is `scheme://host:port` (a trailing slash or path is ignored).
    pub(super) fn new(http: HttpService, endpoint: &str, timeout: Duration) -> Result<Self> {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| RedfishError::InvalidEndpoint(format!("{endpoint}: {e}")))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(RedfishError::InvalidEndpoint(format!(
                "{endpoint}: needs scheme and host"
            )));
        };
        Ok(Self {
            http,
            base: format!("{scheme}://{authority}"),
            timeout,
        })
    }

    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// A request for `path` with the Redfish headers (JSON, OData 4.0), without credentials.
    pub(super) fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<http::Request<Full<Bytes>>> {
        let url = format!("{}{}", self.base, path);
        let mut builder = http::Request::builder()
            .method(method)
            .uri(&url)
            .header(header::ACCEPT, "application/json")
            .header("OData-Version", "4.0");
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| RedfishError::InvalidEndpoint(format!("{url}: {e}")))
    }

    /// One attempt with the per-request timeout; maps the status to a typed error.
    pub(super) async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Bytes>> {
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let call = self.http.clone().oneshot(req);
        let response = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => return Err(RedfishError::Timeout(self.timeout)),
            Ok(Err(e)) => return Err(transport_error(e)),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let message = message_from_body(response.body());
        Err(match status {
            StatusCode::UNAUTHORIZED => RedfishError::Unauthorized {
                status: status.as_u16(),
                message,
            },
            s if s.is_server_error() => RedfishError::Server {
                status: s.as_u16(),
                message,
            },
            s => RedfishError::Rejected {
                method,
                path,
                status: s.as_u16(),
                message,
            },
        })
    }

    /// A `Location` header as a path under the base.
    pub(super) fn relative(&self, location: &str) -> String {
        location
            .strip_prefix(&self.base)
            .unwrap_or(location)
            .to_owned()
    }
}

pub(super) fn header_value(value: &str) -> Result<http::HeaderValue> {
    http::HeaderValue::from_str(value)
        .map_err(|e| RedfishError::InvalidEndpoint(format!("header value: {e}")))
}

fn transport_error(error: tower::BoxError) -> RedfishError {
    let connect = error
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .is_some_and(hyper_util::client::legacy::Error::is_connect);
    let message = error_chain(&*error);
    if connect {
        RedfishError::Connection(format!("{CONNECT_PREFIX}{message}"))
    } else {
        RedfishError::Connection(message)
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}
