//! Authentication: Basic on every request (as upstream) or a Redfish `SessionService` session
//! whose `X-Auth-Token` is re-created once on 401.

use bytes::Bytes;
use http::{Method, header};
use http_body_util::Full;
use serde_json::json;

use super::client::{RedfishClient, Result, header_value};
use super::error::RedfishError;

const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

/// How the client authenticates. Upstream uses Basic on every request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    #[default]
    Basic,
    /// Redfish `SessionService`: one `X-Auth-Token` per client, re-created once on 401.
    Session,
}

#[derive(Clone)]
pub(super) struct Session {
    token: String,
    location: Option<String>,
}

impl RedfishClient {
    /// Ends the session, if any. Basic auth has nothing to end.
    pub async fn logout(&self) -> Result<()> {
        let session = self.inner.session.lock().expect("session lock").take();
        if let Some(Session {
            location: Some(location),
            token,
        }) = session
        {
            let mut req = self.build(Method::DELETE, &location, None, false)?;
            req.headers_mut()
                .insert("X-Auth-Token", header_value(&token)?);
            let _ = self.send_once(req).await;
        }
        Ok(())
    }

    /// Sends with credentials; in session mode a 401 re-opens the session once.
    pub(super) async fn send_authenticated(
        &self,
        req: http::Request<Full<Bytes>>,
        path: &str,
    ) -> Result<http::Response<Bytes>> {
        if self.inner.options.auth == AuthMode::Basic {
            return self.send_once(req).await;
        }
        let (parts, body) = req.into_parts();
        let token = match self.session_token() {
            Some(t) => t,
            None => self.open_session().await?,
        };
        let mut first = http::Request::from_parts(parts.clone(), body.clone());
        first
            .headers_mut()
            .insert("X-Auth-Token", header_value(&token)?);
        match self.send_once(first).await {
            Err(RedfishError::Unauthorized { .. }) => {
                tracing::debug!(path, "Redfish session expired, opening a new one");
                let token = self.open_session().await?;
                let mut retry = http::Request::from_parts(parts, body);
                retry
                    .headers_mut()
                    .insert("X-Auth-Token", header_value(&token)?);
                self.send_once(retry).await
            }
            other => other,
        }
    }

    fn session_token(&self) -> Option<String> {
        self.inner
            .session
            .lock()
            .expect("session lock")
            .as_ref()
            .map(|s| s.token.clone())
    }

    pub(super) async fn open_session(&self) -> Result<String> {
        let creds = &self.inner.credentials;
        let body = json!({ "UserName": creds.username, "Password": creds.password });
        let req = self.build(
            Method::POST,
            SESSIONS,
            Some(Bytes::from(body.to_string())),
            false,
        )?;
        let response = self.send_once(req).await?;
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
            .map(|l| self.relative(l));
        *self.inner.session.lock().expect("session lock") = Some(Session {
            token: token.clone(),
            location,
        });
        Ok(token)
    }
}
