//! In-process admission: validating and mutating callbacks per group and kind, answered with the same `Status`
//! a real webhook rejection gives (`admission webhook "NAME" denied the request: ...`).

use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::status::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// What a callback sees, modelled on `admission.k8s.io/v1` `AdmissionRequest`.
#[derive(Debug)]
pub struct AdmissionRequest<'a> {
    pub operation: Operation,
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub resource: &'a str,
    /// `""` for the main resource, `"status"` for the status subresource.
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    /// The new object (None on delete).
    pub object: Option<&'a Value>,
    /// The stored object (None on create).
    pub old_object: Option<&'a Value>,
    pub dry_run: bool,
}

pub type Validator = Arc<dyn Fn(&AdmissionRequest) -> Result<(), ApiError> + Send + Sync>;
pub type Mutator = Arc<dyn Fn(&AdmissionRequest, &mut Value) -> Result<(), ApiError> + Send + Sync>;

enum Hook {
    Validating(Validator),
    Mutating(Mutator),
}

struct Registration {
    name: String,
    group: String,
    kind: String,
    hook: Hook,
}

/// Registration point for admission callbacks; cloning shares the registrations.
#[derive(Clone, Default)]
pub struct Admission {
    hooks: Arc<RwLock<Vec<Registration>>>,
}

/// A rejection as a webhook gives it: controller-runtime's `Denied` answers 403 Forbidden.
pub fn denied(message: impl Into<String>) -> ApiError {
    ApiError::new(403, "Forbidden", message)
}

fn wrap(name: &str, mut err: ApiError) -> ApiError {
    // A webhook may not reject with a non-error code.
    if err.code < 400 {
        err.code = 400;
    }
    err.message = format!(
        "admission webhook \"{name}\" denied the request: {}",
        err.message
    );
    err
}

impl Admission {
    /// Registers a validating callback for `group`/`kind` (`"*"` matches any kind). `name` appears in rejections.
    pub fn validate(
        &self,
        name: &str,
        group: &str,
        kind: &str,
        f: impl Fn(&AdmissionRequest) -> Result<(), ApiError> + Send + Sync + 'static,
    ) {
        self.push(name, group, kind, Hook::Validating(Arc::new(f)));
    }

    /// Registers a mutating callback; mutators run before validators, in registration order.
    pub fn mutate(
        &self,
        name: &str,
        group: &str,
        kind: &str,
        f: impl Fn(&AdmissionRequest, &mut Value) -> Result<(), ApiError> + Send + Sync + 'static,
    ) {
        self.push(name, group, kind, Hook::Mutating(Arc::new(f)));
    }

    pub fn clear(&self) {
        self.hooks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn push(&self, name: &str, group: &str, kind: &str, hook: Hook) {
        let reg = Registration {
            name: name.into(),
            group: group.into(),
            kind: kind.into(),
            hook,
        };
        self.hooks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(reg);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.hooks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    fn matching(&self, req: &AdmissionRequest, mutating: bool) -> Vec<(String, Hook)> {
        let hooks = self.hooks.read().unwrap_or_else(|e| e.into_inner());
        hooks
            .iter()
            .filter(|r| r.group == req.group && (r.kind == "*" || r.kind == req.kind))
            .filter_map(|r| match (&r.hook, mutating) {
                (Hook::Mutating(m), true) => Some((r.name.clone(), Hook::Mutating(m.clone()))),
                (Hook::Validating(v), false) => Some((r.name.clone(), Hook::Validating(v.clone()))),
                _ => None,
            })
            .collect()
    }

    /// Runs the mutating callbacks on `object`.
    pub(crate) fn run_mutating(
        &self,
        req: &AdmissionRequest,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        for (name, hook) in self.matching(req, true) {
            if let Hook::Mutating(m) = hook {
                m(req, object).map_err(|e| wrap(&name, e))?;
            }
        }
        Ok(())
    }

    pub(crate) fn run_validating(&self, req: &AdmissionRequest) -> Result<(), ApiError> {
        for (name, hook) in self.matching(req, false) {
            if let Hook::Validating(v) = hook {
                v(req).map_err(|e| wrap(&name, e))?;
            }
        }
        Ok(())
    }
}
