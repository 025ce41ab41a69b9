//! Authentication: Basic on every request (as upstream) or a Redfish `SessionService` session
//! whose `X-Auth-Token` is re-created once on 401.

use std::sync::Mutex;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, header};
use http_body_util::Full;
use serde_json::json;

use super::error::{RedfishError, Result};
use super::wire::{Wire, header_value};

const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

/// How the client authenticates. Upstream uses Basic on every request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    #[default]
    Basic,
    /// Redfish `SessionService`: one `X-Auth-Token` per client, re-created once on 401.
    Session,
}

#[derive(Clone, Debug)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Clone)]
struct Session {
    token: String,
    location: Option<String>,
}

/// The credentials of one client and, in session mode, its current session.
pub(super) struct Auth {
    mode: AuthMode,
    credentials: Credentials,
    session: Mutex<Option<Session>>,
}

impl Auth {
    pub(super) fn new(mode: AuthMode, credentials: Credentials) -> Self {
        Self {
            mode,
            credentials,
            session: Mutex::new(None),
        }
    }

    pub(super) fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Sends with credentials; in session mode a 401 re-opens the session once.
    pub(super) async fn send(
        &self,
        wire: &Wire,
        mut req: http::Request<Full<Bytes>>,
        path: &str,
    ) -> Result<http::Response<Bytes>> {
        if self.mode == AuthMode::Basic {
            let creds = &self.credentials;
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", creds.username, creds.password));
            req.headers_mut().insert(
                header::AUTHORIZATION,
                header_value(&format!("Basic {token}"))?,
            );
            return wire.send(req).await;
        }
        let (parts, body) = req.into_parts();
        let token = match self.token() {
            Some(t) => t,
            None => self.open_session(wire).await?,
        };
        let mut first = http::Request::from_parts(parts.clone(), body.clone());
        first
            .headers_mut()
            .insert("X-Auth-Token", header_value(&token)?);
        match wire.send(first).await {
            Err(RedfishError::Unauthorized { .. }) => {
                tracing::debug!(path, "Redfish session expired, opening a new one");
                let token = self.open_session(wire).await?;
                let mut retry = http::Request::from_parts(parts, body);
                retry
                    .headers_mut()
                    .insert("X-Auth-Token", header_value(&token)?);
                wire.send(retry).await
            }
            other => other,
        }
    }

    fn token(&self) -> Option<String> {
        self.session
            .lock()
            .expect("session lock")
            .as_ref()
            .map(|s| s.token.clone())
    }

    pub(super) async fn open_session(&self, wire: &Wire) -> Result<String> {
        let creds = &self.credentials;
        let body = json!({ "UserName": creds.username, "Password": creds.password });
        let req = wire.request(Method::POST, SESSIONS, Some(Bytes::from(body.to_string())))?;
        let response = wire.send(req).await?;
        let token = response
            .headers()
            .get("X-Auth-Token")
            .and_then(|t| t.to_str().ok())
            .ok_or_else(|| RedfishError::Decode {
                path: SESSIONS.into(),
                message: "no X-Auth-Token".into(),
            })?
            .to_owned();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(|l| wire.relative(l));
        *self.session.lock().expect("session lock") = Some(Session {
            token: token.clone(),
            location,
        });
        Ok(token)
    }

    /// Ends the session, if any. Basic auth has nothing to end.
    pub(super) async fn logout(&self, wire: &Wire) -> Result<()> {
        let session = self.session.lock().expect("session lock").take();
        if let Some(Session {
            location: Some(location),
            token,
        }) = session
        {
            let mut req = wire.request(Method::DELETE, &location, None)?;
            req.headers_mut()
                .insert("X-Auth-Token", header_value(&token)?);
            let _ = wire.send(req).await;
        }
        Ok(())
    }
}
