//! Redfish responses: JSON with the standard headers, and errors with Base-registry `@Message.ExtendedInfo`.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};

pub type Resp = Response<Body>;

/// Base message registry version the MessageIds are taken from.
pub const BASE_REGISTRY: &str = "Base.1.16";

/// One Base-registry message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: &'static str,
    pub message: String,
    pub args: Vec<String>,
    pub severity: &'static str,
    pub resolution: &'static str,
    /// A service-defined resolution (GeneralError), replacing `resolution`.
    pub dynamic_resolution: Option<String>,
    pub related: Vec<String>,
}

/// Most messages one error answer carries: a body with 100,000 unknown properties gets the first
/// 32, not 100,000 (each message is ~500 bytes, so that answer would cost hundreds of MiB).
pub const MAX_MESSAGES: usize = 32;

/// Longest piece of request text echoed in a message: a hostile body cannot multiply into the answer.
const ECHO_LIMIT: usize = 256;

/// `s` cut to `ECHO_LIMIT` bytes (at a character boundary) with an ellipsis.
fn clip(s: &str) -> String {
    if s.len() <= ECHO_LIMIT {
        return s.to_string();
    }
    let mut end = ECHO_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Message {
    fn new(id: &'static str, message: String, args: Vec<String>, resolution: &'static str) -> Self {
        Self {
            id,
            message,
            args,
            severity: "Critical",
            resolution,
            dynamic_resolution: None,
            related: Vec::new(),
        }
    }

    pub fn related_to(mut self, pointer: impl Into<String>) -> Self {
        self.related.push(pointer.into());
        self
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "@odata.type": "#Message.v1_1_1.Message",
            "MessageId": format!("{BASE_REGISTRY}.{}", self.id),
            "Message": self.message,
            "MessageArgs": self.args,
            "MessageSeverity": self.severity,
            "Resolution": self.dynamic_resolution.as_deref().unwrap_or(self.resolution),
        });
        if !self.related.is_empty() {
            v["RelatedProperties"] = json!(self.related);
        }
        v
    }

    /// Classifies keys that are not writable: known read-only (present in the payload) vs unknown.
    pub(crate) fn reject_other_keys(
        body: &Map<String, Value>,
        writable: &[&str],
        current: Option<&Value>,
        errors: &mut Vec<Message>,
    ) {
        for key in body
            .keys()
            .filter(|k| !writable.contains(&k.as_str()) && !k.starts_with('@'))
            .take(MAX_MESSAGES)
        {
            if current.and_then(|c| c.get(key)).is_some() {
                errors.push(Self::property_not_writable(key));
            } else {
                errors.push(Self::property_unknown(key));
            }
        }
    }

    pub fn success() -> Self {
        Self {
            id: "Success",
            message: "The request completed successfully.".into(),
            args: vec![],
            severity: "OK",
            resolution: "None.",
            dynamic_resolution: None,
            related: vec![],
        }
    }
    pub fn resource_not_found(kind: &str, id: &str) -> Self {
        let id = clip(id);
        Self::new(
            "ResourceNotFound",
            format!("The requested resource of type {kind} named '{id}' was not found."),
            vec![kind.into(), id],
            "Provide a valid resource identifier and resubmit the request.",
        )
    }
    pub fn resource_missing_at_uri(uri: &str) -> Self {
        let uri = clip(uri);
        Self::new(
            "ResourceMissingAtURI",
            format!("The resource at the URI '{uri}' was not found."),
            vec![uri],
            "Place a valid resource at the URI or correct the URI and resubmit the request.",
        )
    }
    pub fn operation_not_allowed() -> Self {
        Self::new(
            "OperationNotAllowed",
            "The HTTP method is not allowed on this resource.".into(),
            vec![],
            "None.",
        )
    }
    pub fn no_valid_session() -> Self {
        Self::new(
            "NoValidSession",
            "There is no valid session established with the implementation.".into(),
            vec![],
            "Establish a session before attempting any operations.",
        )
    }
    pub fn insufficient_privilege() -> Self {
        Self::new(
            "InsufficientPrivilege",
            "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.".into(),
            vec![],
            "Either abandon the operation or change the associated access rights and resubmit the request if the operation failed.",
        )
    }
    pub fn malformed_json() -> Self {
        Self::new(
            "MalformedJSON",
            "The request body submitted was malformed JSON and could not be parsed by the receiving service.".into(),
            vec![],
            "Ensure that the request body is valid JSON and resubmit the request.",
        )
    }
    pub fn property_unknown(name: &str) -> Self {
        let name = clip(name);
        Self::new(
            "PropertyUnknown",
            format!("The property {name} is not in the list of valid properties for the resource."),
            vec![name.clone()],
            "Remove the unknown property from the request body and resubmit the request if the operation failed.",
        )
        .related_to(format!("#/{name}"))
    }
    pub fn property_not_writable(name: &str) -> Self {
        let name = clip(name);
        Self::new(
            "PropertyNotWritable",
            format!("The property {name} is a read only property and cannot be assigned a value."),
            vec![name.clone()],
            "Remove the property from the request body and resubmit the request if the operation failed.",
        )
        .related_to(format!("#/{name}"))
    }
    pub fn property_value_not_in_list(value: &str, name: &str) -> Self {
        let (value, name) = (clip(value), clip(name));
        Self::new(
            "PropertyValueNotInList",
            format!("The value '{value}' for the property {name} is not in the list of acceptable values."),
            vec![value, name.clone()],
            "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.",
        )
        .related_to(format!("#/{name}"))
    }
    pub fn property_value_type_error(value: &str, name: &str) -> Self {
        let (value, name) = (clip(value), clip(name));
        Self::new(
            "PropertyValueTypeError",
            format!("The value '{value}' for the property {name} is not a type that the property can accept."),
            vec![value, name.clone()],
            "Correct the value for the property in the request body and resubmit the request if the operation failed.",
        )
        .related_to(format!("#/{name}"))
    }
    pub fn property_missing(name: &str) -> Self {
        let name = clip(name);
        Self::new(
            "PropertyMissing",
            format!("The property {name} is a required property and must be included in the request."),
            vec![name.clone()],
            "Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed.",
        )
        .related_to(format!("#/{name}"))
    }
    pub fn action_parameter_missing(action: &str, param: &str) -> Self {
        Self::new(
            "ActionParameterMissing",
            format!(
                "The action {action} requires the parameter {param} to be present in the request body."
            ),
            vec![action.into(), param.into()],
            "Supply the action with the required parameter in the request body when the request is resubmitted.",
        )
    }
    pub fn action_parameter_value_not_in_list(value: &str, param: &str, action: &str) -> Self {
        let (value, param) = (clip(value), clip(param));
        Self::new(
            "ActionParameterValueNotInList",
            format!(
                "The value '{value}' for the parameter {param} in the action {action} is not in the list of acceptable values."
            ),
            vec![value, param, action.into()],
            "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.",
        )
    }
    pub fn action_parameter_unknown(action: &str, param: &str) -> Self {
        let param = clip(param);
        Self::new(
            "ActionParameterUnknown",
            format!("The action {action} was submitted with the invalid parameter {param}."),
            vec![action.into(), param],
            "Correct the invalid parameter and resubmit the request if the operation failed.",
        )
    }
    pub fn resource_in_use() -> Self {
        Self::new(
            "ResourceInUse",
            "The change to the requested resource failed because the resource is in use or in transition.".into(),
            vec![],
            "Remove the condition and resubmit the request if the operation failed.",
        )
    }
    pub fn precondition_failed() -> Self {
        Self::new(
            "PreconditionFailed",
            "The ETag supplied did not match the ETag required to change this resource.".into(),
            vec![],
            "Try the operation again using the appropriate ETag.",
        )
    }
    pub fn service_temporarily_unavailable(secs: u64) -> Self {
        Self::new(
            "ServiceTemporarilyUnavailable",
            format!("The service is temporarily unavailable. Retry in {secs} seconds."),
            vec![secs.to_string()],
            "Wait for the indicated retry duration and retry the operation.",
        )
    }
    pub fn internal_error() -> Self {
        Self::new(
            "InternalError",
            "The request failed due to an internal service error. The service is still operational.".into(),
            vec![],
            "Resubmit the request. If the problem persists, consider resetting the service.",
        )
    }
    /// Base has no size message: GeneralError is the one meant to carry a service-defined Resolution.
    pub fn body_too_large(limit: usize) -> Self {
        let mut m = Self::new(
            "GeneralError",
            "A general error has occurred. See Resolution for information on how to resolve the error, or @Message.ExtendedInfo if Resolution is not provided.".into(),
            vec![],
            "",
        );
        m.dynamic_resolution = Some(format!(
            "The request body exceeds the limit of {limit} bytes; reduce it and resubmit the request."
        ));
        m
    }
    pub fn headers_too_large(bytes: usize, count: usize) -> Self {
        let mut m = Self::body_too_large(0);
        m.dynamic_resolution = Some(format!(
            "The request headers exceed the limit of {bytes} bytes or {count} fields; reduce them and resubmit the request."
        ));
        m
    }
    pub fn action_parameter_value_type_error(value: &str, param: &str, action: &str) -> Self {
        let (value, param) = (clip(value), clip(param));
        Self::new(
            "ActionParameterValueTypeError",
            format!(
                "The value '{value}' for the parameter {param} in the action {action} is of a different type than the parameter can accept."
            ),
            vec![value, param, action.into()],
            "Correct the value for the parameter in the request body and resubmit the request if the operation failed.",
        )
    }
    pub fn create_limit_reached(kind: &str) -> Self {
        Self::new(
            "CreateLimitReachedForResource",
            format!(
                "The create operation failed because the {kind} collection has reached the limit of possible resources."
            ),
            vec![],
            "Either delete resources and resubmit the request if the operation failed or do not resubmit the request.",
        )
    }
    pub fn string_value_too_long(value: &str, limit: usize) -> Self {
        let value = clip(value);
        Self::new(
            "StringValueTooLong",
            format!("The string '{value}' exceeds the length limit {limit}."),
            vec![value.clone(), limit.to_string()],
            "Resubmit the request with an appropriate string length.",
        )
    }
    pub fn session_limit_exceeded() -> Self {
        Self::new(
            "SessionLimitExceeded",
            "The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.".into(),
            vec![],
            "Reduce the number of other sessions before trying to establish the session or increase the limit of simultaneous sessions, if supported.",
        )
    }
    pub fn resource_already_exists(kind: &str, property: &str, value: &str) -> Self {
        let value = clip(value);
        Self::new(
            "ResourceAlreadyExists",
            format!(
                "The requested resource of type {kind} with the property {property} with the value '{value}' already exists."
            ),
            vec![kind.into(), property.into(), value],
            "Do not repeat the create operation as the resource has already been created.",
        )
    }
    pub fn query_not_supported() -> Self {
        Self::new(
            "QueryNotSupported",
            "Querying is not supported by the implementation.".into(),
            vec![],
            "Remove the query parameters and resubmit the request if the operation failed.",
        )
    }
    pub fn header_invalid(header: &str) -> Self {
        let header = clip(header);
        Self::new(
            "HeaderInvalid",
            format!("The header '{header}' is invalid."),
            vec![header],
            "Resubmit the request using a valid header.",
        )
    }
    pub fn unsupported_media_type() -> Self {
        Self::new(
            "UnsupportedMediaType",
            "The request specified a Content-Type header that is not supported.".into(),
            vec![],
            "Resubmit the request with a supported Content-Type header.",
        )
    }
    pub fn create_failed_missing_req_properties(name: &str) -> Self {
        Self::new(
            "CreateFailedMissingReqProperties",
            format!(
                "The create operation failed because the required property {name} was missing from the request."
            ),
            vec![name.into()],
            "Correct the body to include the required property with a valid value and resubmit the request if the operation failed.",
        )
    }
}

/// Sets the headers every Redfish response carries.
fn common_headers(resp: &mut Resp) {
    let h = resp.headers_mut();
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("X-Frame-Options", HeaderValue::from_static("DENY"));
}

/// A JSON response.
pub fn json(status: StatusCode, value: &Value) -> Resp {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    common_headers(&mut resp);
    resp
}

/// A response without a body.
/// Sets a header when `value` is a valid header value (ids and paths always are).
pub fn set_header(resp: &mut Resp, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// The answer to a DELETE: 204 when `found` was deleted, else 404 naming `route`.
pub fn deleted(found: bool, route: &super::routes::Route) -> Resp {
    if found {
        empty(StatusCode::NO_CONTENT)
    } else {
        error(
            StatusCode::NOT_FOUND,
            vec![Message::resource_missing_at_uri(&format!("{route:?}"))],
        )
    }
}

pub fn empty(status: StatusCode) -> Resp {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    common_headers(&mut resp);
    resp
}

/// A Redfish error response; the first message becomes `error.code`.
pub fn error(status: StatusCode, mut messages: Vec<Message>) -> Resp {
    messages.truncate(MAX_MESSAGES);
    let first = messages.first().map(|m| (m.id, m.message.clone()));
    let (code, message) = match first {
        Some((id, _)) if messages.len() == 1 => (format!("{BASE_REGISTRY}.{id}"), messages[0].message.clone()),
        _ => (
            format!("{BASE_REGISTRY}.GeneralError"),
            "A general error has occurred. See Resolution for information on how to resolve the error, or @Message.ExtendedInfo if Resolution is not provided.".to_string(),
        ),
    };
    let body = json!({"error": {
        "code": code,
        "message": message,
        "@Message.ExtendedInfo": messages.iter().map(Message::to_json).collect::<Vec<_>>(),
    }});
    json(status, &body)
}

/// A success response carrying `Base.Success` (HPE-style action answers).
pub fn success_message(status: StatusCode) -> Resp {
    json(
        status,
        &json!({"@Message.ExtendedInfo": [Message::success().to_json()]}),
    )
}

/// Weak ETag of a rendered payload (plus a salt for injected churn).
pub fn etag_of(value: &Value, salt: u64) -> String {
    etag_of_bytes(&serde_json::to_vec(value).unwrap_or_default(), salt)
}

/// ETag of serialized JSON. SipHash with fixed keys: stable for the process and cheap per request
/// (ETags only need to change when the resource does, not resist forgery).
pub fn etag_of_bytes(bytes: &[u8], salt: u64) -> String {
    use std::hash::Hasher;
    #[allow(deprecated)]
    // SipHasher's fixed keys are the point: the same payload always hashes the same.
    let mut h = std::hash::SipHasher::new();
    h.write(bytes);
    h.write_u64(salt);
    format!("W/\"{:016x}\"", h.finish())
}

/// A JSON response from already-serialized bytes.
pub fn json_bytes(status: StatusCode, body: impl Into<Body>) -> Resp {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    common_headers(&mut resp);
    resp
}
