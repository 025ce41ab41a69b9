//! SessionService (login/logout, timeout) and AccountService (accounts, predefined roles).

use std::sync::Arc;

use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

use super::Ctx;
use super::collection::{collection, link, status_ok, timestamp, types};
use super::response::{Message, Resp, deleted, empty, error, json as json_resp, set_header};
use super::routes::Route;
use crate::bmc::accounts::{DEFAULT_MAX_SESSIONS, Session};
use crate::bmc::{Bmc, Privilege, Role};

const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";
const ACCOUNTS: &str = "/redfish/v1/AccountService/Accounts";
const ROLES: &str = "/redfish/v1/AccountService/Roles";

pub fn render(bmc: &Arc<Bmc>, route: &Route) -> Option<Value> {
    Some(match route {
        Route::SessionService => json!({
            "@odata.id": "/redfish/v1/SessionService",
            "@odata.type": types::SESSION_SERVICE,
            "Id": "SessionService",
            "Name": "Session Service",
            "ServiceEnabled": true,
            "SessionTimeout": bmc.sessions.timeout().as_secs(),
            "Sessions": link(SESSIONS),
            "Status": status_ok(),
        }),
        Route::Sessions => collection(
            SESSIONS,
            "SessionCollection",
            "Session Collection",
            bmc.sessions
                .list()
                .iter()
                .map(|s| format!("{SESSIONS}/{}", s.id)),
        ),
        Route::Session(id) => session(&bmc.sessions.get(id)?),
        Route::AccountService => json!({
            "@odata.id": "/redfish/v1/AccountService",
            "@odata.type": types::ACCOUNT_SERVICE,
            "Id": "AccountService",
            "Name": "Account Service",
            "ServiceEnabled": true,
            "MinPasswordLength": 1,
            "MaxPasswordLength": 64,
            "LocalAccountAuth": "Enabled",
            "Accounts": link(ACCOUNTS),
            "Roles": link(ROLES),
            "Status": status_ok(),
        }),
        Route::Accounts => collection(
            ACCOUNTS,
            "ManagerAccountCollection",
            "Accounts Collection",
            bmc.accounts
                .list()
                .iter()
                .map(|a| format!("{ACCOUNTS}/{}", a.id)),
        ),
        Route::Account(id) => {
            let a = bmc.accounts.get(id)?;
            json!({
                "@odata.id": format!("{ACCOUNTS}/{}", a.id),
                "@odata.type": types::ACCOUNT,
                "Id": a.id,
                "Name": "User Account",
                "UserName": a.username,
                "RoleId": a.role.as_str(),
                "Enabled": a.enabled,
                "Locked": false,
                "AccountTypes": ["Redfish"],
                "Links": {"Role": link(format!("{ROLES}/{}", a.role.as_str()))},
            })
        }
        Route::Roles => collection(
            ROLES,
            "RoleCollection",
            "Roles Collection",
            Role::ALL.iter().map(|r| format!("{ROLES}/{}", r.as_str())),
        ),
        Route::Role(id) => {
            let role = Role::parse(id)?;
            json!({
                "@odata.id": format!("{ROLES}/{}", role.as_str()),
                "@odata.type": types::ROLE,
                "Id": role.as_str(),
                "Name": format!("{} Role", role.as_str()),
                "RoleId": role.as_str(),
                "IsPredefined": true,
                "AssignedPrivileges": role.privileges(),
            })
        }
        _ => return None,
    })
}

fn session(s: &Session) -> Value {
    json!({
        "@odata.id": format!("{SESSIONS}/{}", s.id),
        "@odata.type": types::SESSION,
        "Id": s.id,
        "Name": "User Session",
        "UserName": s.username,
        "SessionType": "Redfish",
        "CreatedTime": timestamp(s.created),
    })
}

fn str_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
    errors: &mut Vec<Message>,
) -> Option<&'a str> {
    match body.get(name) {
        None => {
            errors.push(Message::property_missing(name));
            None
        }
        Some(v) => {
            let s = v.as_str();
            if s.is_none() {
                errors.push(Message::property_value_type_error(&v.to_string(), name));
            }
            s
        }
    }
}

/// Accounts a BMC holds at most (real BMCs have 16 or so slots); bounds memory under a hostile client.
const MAX_ACCOUNTS: usize = 64;
/// Longest user name and password accepted (bytes), well above what vendors allow.
const MAX_USERNAME: usize = 256;
const MAX_PASSWORD: usize = 256;

/// Login (POST Sessions) and account creation (POST Accounts).
pub fn post(ctx: &Ctx<'_>, route: &Route) -> Resp {
    let Value::Object(body) = &ctx.body else {
        return error(StatusCode::BAD_REQUEST, vec![Message::malformed_json()]);
    };
    let mut errors = Vec::new();
    match route {
        Route::Sessions => {
            let user = str_field(body, "UserName", &mut errors);
            let pass = str_field(body, "Password", &mut errors);
            let (Some(user), Some(pass)) = (user, pass) else {
                return error(StatusCode::BAD_REQUEST, errors);
            };
            login(ctx.bmc, user, pass)
        }
        Route::Accounts => {
            let user = str_field(body, "UserName", &mut errors);
            let pass = str_field(body, "Password", &mut errors);
            let role = str_field(body, "RoleId", &mut errors);
            let role = role.and_then(|r| {
                let parsed = Role::parse(r);
                if parsed.is_none() {
                    errors.push(Message::property_value_not_in_list(r, "RoleId"));
                }
                parsed
            });
            let enabled = match body.get("Enabled") {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    errors.push(Message::property_value_type_error(
                        &other.to_string(),
                        "Enabled",
                    ));
                    true
                }
            };
            for (value, limit) in [(user, MAX_USERNAME), (pass, MAX_PASSWORD)] {
                if let Some(v) = value.filter(|v| v.len() > limit) {
                    errors.push(Message::string_value_too_long(v, limit));
                }
            }
            let (Some(user), Some(pass), Some(role), true) = (user, pass, role, errors.is_empty())
            else {
                return error(StatusCode::BAD_REQUEST, errors);
            };
            if ctx.bmc.accounts.list().len() >= MAX_ACCOUNTS {
                return error(
                    StatusCode::BAD_REQUEST,
                    vec![Message::create_limit_reached("ManagerAccount")],
                );
            }
            if ctx.bmc.accounts.by_name(user).is_some() {
                return error(
                    StatusCode::CONFLICT,
                    vec![Message::resource_already_exists(
                        "ManagerAccount",
                        "UserName",
                        user,
                    )],
                );
            }
            let account = ctx.bmc.accounts.create(user, pass, role, enabled);
            let location = format!("{ACCOUNTS}/{}", account.id);
            let mut resp = json_resp(
                StatusCode::CREATED,
                &render(ctx.bmc, &Route::Account(account.id)).unwrap_or_default(),
            );
            set_header(&mut resp, header::LOCATION, &location);
            resp
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            vec![Message::operation_not_allowed()],
        ),
    }
}

fn login(bmc: &Arc<Bmc>, user: &str, pass: &str) -> Resp {
    let principal = if bmc.faults.auth_failure() {
        None
    } else {
        bmc.accounts.verify(user, pass)
    };
    let Some(principal) = principal else {
        let mut resp = error(StatusCode::UNAUTHORIZED, vec![Message::no_valid_session()]);
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"RedfishService\""),
        );
        return resp;
    };
    let max = bmc.faults.session_limit().unwrap_or(DEFAULT_MAX_SESSIONS);
    let Some(s) = bmc.sessions.create(&principal, bmc.clock.now_chrono(), max) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            vec![Message::session_limit_exceeded()],
        );
    };
    let mut resp = json_resp(StatusCode::CREATED, &session(&s));
    set_header(&mut resp, header::LOCATION, &format!("{SESSIONS}/{}", s.id));
    if let Ok(v) = HeaderValue::from_str(&s.token) {
        resp.headers_mut().insert("X-Auth-Token", v);
    }
    resp
}

/// PATCH of SessionService (timeout) and of an account.
pub fn patch(ctx: &Ctx<'_>, route: &Route) -> Resp {
    let bmc = ctx.bmc;
    let Value::Object(body) = &ctx.body else {
        return error(StatusCode::BAD_REQUEST, vec![Message::malformed_json()]);
    };
    let current = render(bmc, route);
    let mut errors = Vec::new();
    match route {
        Route::SessionService => {
            Message::reject_other_keys(body, &["SessionTimeout"], current.as_ref(), &mut errors);
            let timeout = body.get("SessionTimeout").map(|v| match v.as_u64() {
                Some(t) if (30..=86400).contains(&t) => Some(t),
                _ => {
                    errors.push(Message::property_value_not_in_list(
                        &v.to_string(),
                        "SessionTimeout",
                    ));
                    None
                }
            });
            if !errors.is_empty() {
                return error(StatusCode::BAD_REQUEST, errors);
            }
            if let Some(Some(t)) = timeout {
                bmc.sessions.set_timeout(t);
            }
        }
        Route::Account(id) => {
            let Some(account) = bmc.accounts.get(id) else {
                return error(
                    StatusCode::NOT_FOUND,
                    vec![Message::resource_not_found("ManagerAccount", id)],
                );
            };
            let principal = ctx.principal.as_ref();
            let is_admin = principal.is_some_and(|p| p.role.has(Privilege::ConfigureUsers));
            let is_self = principal.is_some_and(|p| p.username == account.username);
            let self_only = body.keys().all(|k| k == "Password");
            if !(is_admin || (is_self && self_only)) {
                return error(
                    StatusCode::FORBIDDEN,
                    vec![Message::insufficient_privilege()],
                );
            }
            Message::reject_other_keys(
                body,
                &["Password", "UserName", "RoleId", "Enabled"],
                current.as_ref(),
                &mut errors,
            );
            let get_str = |k: &str, errors: &mut Vec<Message>| {
                body.get(k).and_then(|v| {
                    let s = v.as_str();
                    if s.is_none() {
                        errors.push(Message::property_value_type_error(&v.to_string(), k));
                    }
                    s
                })
            };
            let password = get_str("Password", &mut errors);
            let username = get_str("UserName", &mut errors);
            let role = get_str("RoleId", &mut errors).and_then(|r| {
                let parsed = Role::parse(r);
                if parsed.is_none() {
                    errors.push(Message::property_value_not_in_list(r, "RoleId"));
                }
                parsed
            });
            let enabled = body.get("Enabled").and_then(Value::as_bool);
            if !errors.is_empty() {
                return error(StatusCode::BAD_REQUEST, errors);
            }
            bmc.accounts.update(id, username, password, role, enabled);
        }
        _ => {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                vec![Message::operation_not_allowed()],
            );
        }
    }
    match render(bmc, route) {
        Some(v) => json_resp(StatusCode::OK, &v),
        None => empty(StatusCode::NO_CONTENT),
    }
}

/// Logout and account deletion.
pub fn delete(ctx: &Ctx<'_>, route: &Route) -> Resp {
    let bmc = ctx.bmc;
    let found = match route {
        Route::Session(id) => bmc.sessions.delete(id),
        Route::Account(id) => bmc.accounts.delete(id),
        _ => false,
    };
    deleted(found, route)
}
