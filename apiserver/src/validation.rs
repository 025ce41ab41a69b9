//! Object validation against the resource's structural schema (filled in with schema, pruning, defaulting, CEL).

use serde_json::Value;

use crate::registry::ResourceInfo;
use crate::status::ApiResult;

/// Validates (and prunes/defaults) `new`; `old` is the stored object on update.
pub fn validate(
    _info: &ResourceInfo,
    _version: &str,
    _old: Option<&Value>,
    _new: &mut Value,
    _strict: bool,
) -> ApiResult<()> {
    Ok(())
}
