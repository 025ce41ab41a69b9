//! The one error type of all reconcilers. Variant names are the `error` metric label.

use crate::redfish::RedfishError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("redfish: {0}")]
    Redfish(#[from] RedfishError),
    /// An object this reconcile depends on does not exist (yet).
    #[error("missing {kind} {name}")]
    Missing { kind: &'static str, name: String },
    /// An object is malformed in a way the schema does not catch; reported as an Event and skipped.
    #[error("invalid {kind} {name}: {reason}")]
    Invalid {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("registry: {0}")]
    Registry(String),
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// A reconcile panicked; caught so the other reconciles keep running.
    #[error("reconcile panicked: {0}")]
    Panic(String),
}

impl Error {
    /// Stable label for metrics (`controller_runtime_reconcile_errors_total{error=...}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "Kube",
            Self::Redfish(_) => "Redfish",
            Self::Missing { .. } => "Missing",
            Self::Invalid { .. } => "Invalid",
            Self::Registry(_) => "Registry",
            Self::Finalizer(_) => "Finalizer",
            Self::Panic(_) => "Panic",
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Kube(kube::Error::Api(s)) if s.code == 404)
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Kube(kube::Error::Api(s)) if s.code == 409)
    }
}

impl<E: std::error::Error + 'static> From<kube::runtime::finalizer::Error<E>> for Error {
    fn from(error: kube::runtime::finalizer::Error<E>) -> Self {
        Self::Finalizer(error.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
