//! Helpers shared by the integration tests: an in-process Redfish client over the BMC's tower Service.
#![allow(dead_code)]

use axum::body::Body;
use base64::Engine;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sim_bmc::{BindMode, Fleet, FleetHandle, FleetOptions, FleetSpec};
use tower::ServiceExt;

pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The first `@Message.ExtendedInfo` MessageId of an error body.
    pub fn message_id(&self) -> String {
        self.json["error"]["@Message.ExtendedInfo"][0]["MessageId"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// An in-process client for one BMC.
pub struct Client {
    pub router: axum::Router,
    pub auth: Option<(String, String)>,
    pub token: Option<String>,
}

impl Client {
    pub fn new(fleet: &FleetHandle, bmc: &str) -> Self {
        let info = fleet.bmc_info(bmc).expect("bmc exists");
        Self {
            router: fleet.router(bmc).expect("router"),
            auth: Some((info.username.clone(), info.password.clone())),
            token: None,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some((u, p)) = &self.auth {
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req = req.header("Authorization", format!("Basic {b64}"));
        }
        if let Some(t) = &self.token {
            req = req.header("X-Auth-Token", t);
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("Content-Type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Body::from(body.unwrap_or("").to_string()))
            .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, body: &str) -> Reply {
        self.send(Method::PATCH, path, Some(body), &[]).await
    }
}

/// Starts an in-process fleet from YAML.
pub async fn fleet(yaml: &str, opts: FleetOptions) -> FleetHandle {
    let spec = FleetSpec::from_yaml(yaml).expect("fleet yaml");
    Fleet::start(
        spec,
        FleetOptions {
            bind: BindMode::InProcess,
            ..opts
        },
    )
    .await
    .expect("fleet starts")
}

/// Waits (see [`wait_until`]) until the machine has recorded an event of `kind`.
pub async fn wait_for_event(machine: &sim_bmc::MachineHandle, kind: sim_bmc::MachineEventKind) {
    wait_until(|| machine.events().iter().any(|e| e.kind == kind)).await;
}

/// Polls `f` under tokio's clock until it returns true, advancing time in small steps (bounded).
pub async fn wait_until(mut f: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 20 s of (virtual) time");
}
