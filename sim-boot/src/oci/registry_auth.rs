//! The bearer-token flow of public registries (Docker Hub, ghcr.io) for the generated registry: a request
//! without a token gets `401` with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`; the client fetches
//! an anonymous pull token for that scope from `/token` on the same server and retries with it.
//! Tokens are stateless (the granted repositories plus a keyed hash), so memory stays flat however many
//! are issued; they do not expire within a run.

use std::collections::BTreeSet;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, Uri, header};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Where the token endpoint is served, on the registry's own address.
pub const TOKEN_PATH: &str = "/token";
/// The `service` the challenge names and the token endpoint serves.
pub const SERVICE: &str = "metal-harness-registry";
/// What clients are told about a token's lifetime (they refresh after it; the registry does not enforce it).
const EXPIRES_IN_SECONDS: u64 = 300;
/// Bound of the scopes one token request may ask for.
const MAX_SCOPES: usize = 64;

/// What a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// `/v2/`: any valid token.
    Base,
    /// Pull from this repository.
    Pull(String),
}

pub struct TokenAuth {
    scheme: String,
    secret: [u8; 32],
    clock: clock::Clock,
}

impl TokenAuth {
    /// `clock` stamps `issued_at`; `entropy` draws the signing key (seed it to replay a run's tokens).
    pub fn new(scheme: &str, clock: clock::Clock, entropy: &clock::Entropy) -> Self {
        let mut secret = [0u8; 32];
        entropy.fill_bytes(&mut secret);
        Self {
            scheme: scheme.to_string(),
            secret,
            clock,
        }
    }

    fn signature(&self, payload: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(self.secret);
        hash.update([0]);
        hash.update(payload.as_bytes());
        hex::encode(hash.finalize())
    }

    /// The token granting pull on `repositories`.
    fn token(&self, repositories: &BTreeSet<String>) -> String {
        use base64::Engine;
        let payload = repositories.iter().cloned().collect::<Vec<_>>().join(" ");
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.as_bytes());
        format!("{encoded}.{}", self.signature(&payload))
    }

    /// The repositories a presented token grants, or None when it is not one of ours.
    fn granted(&self, token: &str) -> Option<BTreeSet<String>> {
        use base64::Engine;
        let (encoded, signature) = token.split_once('.')?;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()?;
        let payload = String::from_utf8(payload).ok()?;
        // Not constant-time: this registry guards generated test images, not secrets.
        (self.signature(&payload) == signature).then(|| {
            payload
                .split(' ')
                .filter(|r| !r.is_empty())
                .map(String::from)
                .collect()
        })
    }

    /// None when the request's bearer token grants `access`; else the 401 a registry answers.
    pub fn denial(&self, headers: &HeaderMap, uri: &Uri, access: &Access) -> Option<Response> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        let granted = presented.and_then(|t| self.granted(t.trim()));
        let allowed = match (&granted, access) {
            (Some(_), Access::Base) => true,
            (Some(repositories), Access::Pull(name)) => repositories.contains(name),
            (None, _) => false,
        };
        (!allowed).then(|| self.challenge(headers, uri, access, presented.is_some()))
    }

    fn challenge(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        access: &Access,
        had_token: bool,
    ) -> Response {
        // HTTP/2 clients send the authority in the URI, HTTP/1.1 clients in Host.
        let host = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            })
            .unwrap_or_else(|| "localhost".into());
        let mut value = format!(
            "Bearer realm=\"{}://{host}{TOKEN_PATH}\",service=\"{SERVICE}\"",
            self.scheme
        );
        let detail = match access {
            Access::Base => json!(null),
            Access::Pull(name) => {
                value.push_str(&format!(",scope=\"repository:{name}:pull\""));
                if had_token {
                    value.push_str(",error=\"insufficient_scope\"");
                }
                json!([{"Type": "repository", "Name": name, "Action": "pull"}])
            }
        };
        let body = json!({"errors": [{
            "code": "UNAUTHORIZED",
            "message": "authentication required",
            "detail": detail,
        }]});
        (
            StatusCode::UNAUTHORIZED,
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (header::WWW_AUTHENTICATE, value),
            ],
            body.to_string(),
        )
            .into_response()
    }

    /// `GET /token?service=…&scope=repository:NAME:pull[&scope=…]`: an anonymous pull token for the named
    /// repositories (push is never granted: the registry is read-only).
    pub fn issue(&self, query: &str) -> Response {
        let mut repositories = BTreeSet::new();
        let mut service = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "scope" => {
                    for scope in value.split(' ').filter(|s| !s.is_empty()) {
                        if let Some(name) = pull_scope(scope) {
                            repositories.insert(name.to_string());
                        }
                    }
                }
                "service" => service = Some(value.to_string()),
                _ => {}
            }
        }
        if service.as_deref().is_some_and(|s| s != SERVICE) || repositories.len() > MAX_SCOPES {
            let message = match service {
                Some(s) if s != SERVICE => format!("unknown service {s:?}; this is {SERVICE:?}"),
                _ => format!("at most {MAX_SCOPES} scopes per token"),
            };
            let body = json!({"errors": [{"code": "DENIED", "message": message}]});
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response();
        }
        let token = self.token(&repositories);
        let body = json!({
            "token": token,
            "access_token": token,
            "expires_in": EXPIRES_IN_SECONDS,
            "issued_at": clock::format_k8s(self.clock.now_chrono()),
        });
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// `repository:NAME:ACTIONS` → NAME when the actions include pull.
fn pull_scope(scope: &str) -> Option<&str> {
    let rest = scope.strip_prefix("repository:")?;
    let (name, actions) = rest.rsplit_once(':')?;
    actions
        .split(',')
        .any(|a| a == "pull" || a == "*")
        .then_some(name)
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers.insert(header::HOST, "127.0.0.1:5000".parse().unwrap());
        headers
    }

    fn issued(auth: &TokenAuth, query: &str) -> String {
        let response = auth.issue(query);
        assert_eq!(response.status(), StatusCode::OK);
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["token"], value["access_token"]);
        value["token"].as_str().unwrap().to_string()
    }

    #[test]
    fn tokens_grant_exactly_their_scopes() {
        let auth = TokenAuth::new("https", clock::Clock::wall(), &clock::Entropy::os());
        let uri: Uri = "/v2/ironcore/os/manifests/1.0".parse().unwrap();
        let token = issued(
            &auth,
            "service=metal-harness-registry&scope=repository%3Aironcore%2Fos%3Apull%2Cpush",
        );
        let pull = |name: &str| Access::Pull(name.into());
        assert!(
            auth.denial(&bearer(&token), &uri, &pull("ironcore/os"))
                .is_none()
        );
        assert!(auth.denial(&bearer(&token), &uri, &Access::Base).is_none());
        let denied = auth
            .denial(&bearer(&token), &uri, &pull("ironcore/probe-os"))
            .unwrap();
        let challenge = denied.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(
            challenge,
            "Bearer realm=\"https://127.0.0.1:5000/token\",service=\"metal-harness-registry\",\
             scope=\"repository:ironcore/probe-os:pull\",error=\"insufficient_scope\""
        );
        // A token of another registry instance, or a tampered one, grants nothing.
        let other = issued(
            &TokenAuth::new("https", clock::Clock::wall(), &clock::Entropy::os()),
            "scope=repository:ironcore/os:pull",
        );
        assert!(auth.denial(&bearer(&other), &uri, &Access::Base).is_some());
        let (payload, signature) = token.split_once('.').unwrap();
        let forged = format!("{payload}x.{signature}");
        assert!(auth.denial(&bearer(&forged), &uri, &Access::Base).is_some());
    }

    #[test]
    fn requests_without_a_token_are_challenged_and_bad_token_requests_refused() {
        let auth = TokenAuth::new("http", clock::Clock::wall(), &clock::Entropy::os());
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "localhost:1".parse().unwrap());
        let response = auth
            .denial(&headers, &"/v2/".parse().unwrap(), &Access::Base)
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"http://localhost:1/token\",service=\"metal-harness-registry\""
        );
        assert_eq!(
            auth.issue("service=docker.io").status(),
            StatusCode::BAD_REQUEST
        );
        let many: Vec<String> = (0..=MAX_SCOPES)
            .map(|i| format!("scope=repository:r{i}:pull"))
            .collect();
        assert_eq!(
            auth.issue(&many.join("&")).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
