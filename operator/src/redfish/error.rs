//! Typed Redfish errors and their mapping to the BMC `Ready` condition reasons upstream uses.

use std::time::Duration;

use crate::keys::conditions;

pub type Result<T, E = RedfishError> = std::result::Result<T, E>;

/// Why a Redfish call failed.
#[derive(Debug, thiserror::Error)]
pub enum RedfishError {
    /// 401: wrong or missing credentials.
    #[error("authentication failed ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// Any 5xx answer (after bounded retries).
    #[error("BMC answered {status}: {message}")]
    Server { status: u16, message: String },
    /// Any other non-success answer (4xx other than 401).
    #[error("BMC rejected {method} {path} with {status}: {message}")]
    Rejected {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    /// The TCP/TLS connection could not be established or broke.
    #[error("connection to BMC failed: {0}")]
    Connection(String),
    /// No answer within the per-request timeout.
    #[error("BMC did not answer within {0:?}")]
    Timeout(Duration),
    /// The BMC answered 2xx with a body we could not understand.
    #[error("BMC sent an unreadable answer for {path}: {message}")]
    Decode { path: String, message: String },
    /// The BMC does not offer what we asked for (e.g. a reset type not in its allowable values).
    #[error("BMC does not support {0}")]
    Unsupported(String),
    /// The address/config of the BMC is invalid.
    #[error("invalid BMC endpoint: {0}")]
    InvalidEndpoint(String),
}

impl RedfishError {
    /// The `Ready=False` reason for this error (upstream: 401 → AuthenticationFailed, 500 →
    /// InternalServerError, 503 and transport failures → ConnectionFailed, anything else → UnknownError).
    pub fn ready_reason(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => conditions::REASON_AUTHENTICATION_FAILED,
            Self::Server { status: 503, .. } | Self::Connection(_) | Self::Timeout(_) => {
                conditions::REASON_CONNECTION_FAILED
            }
            Self::Server { .. } => conditions::REASON_INTERNAL_SERVER_ERROR,
            _ => conditions::REASON_UNKNOWN_ERROR,
        }
    }

    /// Whether repeating the same request may succeed (5xx and transport failures only).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Server { .. } | Self::Connection(_) | Self::Timeout(_)
        )
    }

    /// HTTP status, when the BMC answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { status, .. }
            | Self::Server { status, .. }
            | Self::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Extracts the most useful human message from a Redfish error body (`error.@Message.ExtendedInfo`).
pub(crate) fn message_from_body(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned();
    };
    let error = &value["error"];
    let extended = error["@Message.ExtendedInfo"]
        .as_array()
        .and_then(|infos| infos.iter().find_map(|info| info["Message"].as_str()));
    extended
        .or_else(|| error["message"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}
