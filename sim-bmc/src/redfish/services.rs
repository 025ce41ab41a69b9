//! TaskService (task monitors), EventService (subscriptions, test events) and UpdateService (SimpleUpdate).

use std::sync::Arc;

use http::{StatusCode, header};
use serde_json::{Map, Value, json};

use super::collection::{collection, link, status_ok, timestamp, types};
use super::response::{Message, Resp, deleted, empty, error, json as json_resp, set_header};
use super::routes::{FIRMWARE_ITEMS, Route};
use super::{Ctx, UPDATE_DURATION};
use crate::bmc::Bmc;
use crate::bmc::events::Subscription;
use crate::bmc::tasks::{Task, TaskEffect};

const TASKS: &str = "/redfish/v1/TaskService/Tasks";
const MONITORS: &str = "/redfish/v1/TaskService/TaskMonitors";
const SUBSCRIPTIONS: &str = "/redfish/v1/EventService/Subscriptions";
const FIRMWARE: &str = "/redfish/v1/UpdateService/FirmwareInventory";

/// Applies effects of tasks that finished since the last look.
fn settle_tasks(bmc: &Bmc) {
    for effect in bmc.tasks.settle(bmc.clock.now_chrono()) {
        if let TaskEffect::Firmware { version, bios } = effect {
            bmc.manager_version
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut m = bmc.manager.lock().unwrap_or_else(|e| e.into_inner());
            if bios {
                m.bios_version = version;
            } else {
                m.firmware_version = version;
            }
        }
    }
}

pub fn render(bmc: &Arc<Bmc>, route: &Route) -> Option<Value> {
    settle_tasks(bmc);
    Some(match route {
        Route::TaskService => json!({
            "@odata.id": "/redfish/v1/TaskService",
            "@odata.type": types::TASK_SERVICE,
            "Id": "TaskService",
            "Name": "Task Service",
            "ServiceEnabled": true,
            "CompletedTaskOverWritePolicy": "Oldest",
            "LifeCycleEventOnTaskStateChange": false,
            "DateTime": timestamp(bmc.clock.now_chrono()),
            "Tasks": link(TASKS),
            "Status": status_ok(),
        }),
        Route::Tasks => collection(
            TASKS,
            "TaskCollection",
            "Task Collection",
            bmc.tasks.list().iter().map(|t| format!("{TASKS}/{}", t.id)),
        ),
        Route::Task(id) => task(&bmc.tasks.get(id)?),
        Route::EventService => json!({
            "@odata.id": "/redfish/v1/EventService",
            "@odata.type": types::EVENT_SERVICE,
            "Id": "EventService",
            "Name": "Event Service",
            "ServiceEnabled": true,
            "DeliveryRetryAttempts": 3,
            "DeliveryRetryIntervalSeconds": 1,
            "EventFormatTypes": ["Event"],
            "RegistryPrefixes": ["ResourceEvent", "Base"],
            "SSEFilterPropertiesSupported": {"EventFormatType": false, "MessageId": false, "OriginResource": false,
                "RegistryPrefix": false, "ResourceType": false, "MetricReportDefinition": false},
            "Subscriptions": link(SUBSCRIPTIONS),
            "Actions": {"#EventService.SubmitTestEvent": {
                "target": "/redfish/v1/EventService/Actions/EventService.SubmitTestEvent",
            }},
            "Status": status_ok(),
        }),
        Route::Subscriptions => collection(
            SUBSCRIPTIONS,
            "EventDestinationCollection",
            "Event Subscriptions Collection",
            bmc.subscriptions
                .list()
                .iter()
                .map(|s| format!("{SUBSCRIPTIONS}/{}", s.id)),
        ),
        Route::Subscription(id) => subscription(&bmc.subscriptions.get(id)?),
        Route::UpdateService => json!({
            "@odata.id": "/redfish/v1/UpdateService",
            "@odata.type": types::UPDATE_SERVICE,
            "Id": "UpdateService",
            "Name": "Update Service",
            "ServiceEnabled": true,
            "FirmwareInventory": link(FIRMWARE),
            "Actions": {"#UpdateService.SimpleUpdate": {
                "target": "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate",
                "TransferProtocol@Redfish.AllowableValues": ["HTTP", "HTTPS"],
            }},
            "Status": status_ok(),
        }),
        Route::FirmwareInventory => collection(
            FIRMWARE,
            "SoftwareInventoryCollection",
            "Firmware Inventory Collection",
            FIRMWARE_ITEMS.iter().map(|f| format!("{FIRMWARE}/{f}")),
        ),
        Route::Firmware(id) => {
            let m = bmc.manager_state();
            let version = if id == "BIOS" {
                m.bios_version
            } else {
                m.firmware_version
            };
            json!({
                "@odata.id": format!("{FIRMWARE}/{id}"),
                "@odata.type": types::SOFTWARE_INVENTORY,
                "Id": id,
                "Name": format!("{id} Firmware"),
                "Version": version,
                "Updateable": true,
                "Status": status_ok(),
            })
        }
        _ => return None,
    })
}

fn task(t: &Task) -> Value {
    let mut v = json!({
        "@odata.id": format!("{TASKS}/{}", t.id),
        "@odata.type": types::TASK,
        "Id": t.id,
        "Name": t.name,
        "TaskState": t.state,
        "TaskStatus": if t.state == "Exception" { "Critical" } else { "OK" },
        "PercentComplete": t.percent,
        "StartTime": timestamp(t.started),
        "TaskMonitor": format!("{MONITORS}/{}", t.id),
        "Messages": [{"MessageId": "TaskEvent.1.0.TaskProgressChanged", "Message": t.message, "MessageArgs": [], "Severity": "OK"}],
    });
    if let Some(end) = t.ended {
        v["EndTime"] = json!(timestamp(end));
    }
    v
}

fn subscription(s: &Subscription) -> Value {
    json!({
        "@odata.id": format!("{SUBSCRIPTIONS}/{}", s.id),
        "@odata.type": types::EVENT_DESTINATION,
        "Id": s.id,
        "Name": "Event Subscription",
        "Destination": s.destination,
        "Context": s.context,
        "Protocol": s.protocol,
        "EventFormatType": s.event_format_type,
        "SubscriptionType": "RedfishEvent",
        "DeliveryRetryPolicy": s.retry_policy,
    })
}

/// A task monitor: 202 while running, then the task itself.
pub fn task_monitor(bmc: &Arc<Bmc>, id: &str) -> Resp {
    settle_tasks(bmc);
    let Some(t) = bmc.tasks.get(id) else {
        return error(
            StatusCode::NOT_FOUND,
            vec![Message::resource_not_found("Task", id)],
        );
    };
    let status = if t.ended.is_some() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut resp = json_resp(status, &task(&t));
    if t.ended.is_none() {
        set_header(&mut resp, header::LOCATION, &format!("{MONITORS}/{id}"));
        set_header(&mut resp, header::RETRY_AFTER, "1");
    }
    resp
}

pub fn post(ctx: &Ctx<'_>, route: &Route) -> Resp {
    let Value::Object(body) = &ctx.body else {
        return error(StatusCode::BAD_REQUEST, vec![Message::malformed_json()]);
    };
    match route {
        Route::Subscriptions => create_subscription(ctx.bmc, body),
        Route::SubmitTestEvent => empty(StatusCode::NO_CONTENT),
        Route::SimpleUpdate => simple_update(ctx.bmc, body),
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            vec![Message::operation_not_allowed()],
        ),
    }
}

/// Subscriptions a BMC keeps at most, and the longest Destination or Context: bounds memory under a
/// hostile client (vendors allow a handful of subscriptions).
const MAX_SUBSCRIPTIONS: usize = 32;
const MAX_SUBSCRIPTION_TEXT: usize = 2048;

fn create_subscription(bmc: &Arc<Bmc>, body: &Map<String, Value>) -> Resp {
    let mut errors = Vec::new();
    // A property of the wrong type is an error, never silently replaced by its default.
    let mut text = |k: &str| match body.get(k) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errors.push(Message::property_value_type_error(&other.to_string(), k));
            None
        }
    };
    let destination = text("Destination");
    let protocol = text("Protocol").unwrap_or_else(|| "Redfish".into());
    let format = text("EventFormatType").unwrap_or_else(|| "Event".into());
    let policy = text("DeliveryRetryPolicy").unwrap_or_else(|| "RetryForever".into());
    let context = text("Context").unwrap_or_default();
    match &destination {
        None => errors.push(Message::create_failed_missing_req_properties("Destination")),
        Some(d) if !(d.starts_with("http://") || d.starts_with("https://")) => {
            errors.push(Message::property_value_type_error(d, "Destination"))
        }
        _ => {}
    }
    if protocol != "Redfish" {
        errors.push(Message::property_value_not_in_list(&protocol, "Protocol"));
    }
    if !["Event", "MetricReport"].contains(&format.as_str()) {
        errors.push(Message::property_value_not_in_list(
            &format,
            "EventFormatType",
        ));
    }
    if ![
        "TerminateAfterRetries",
        "SuspendRetries",
        "RetryForever",
        "RetryForeverWithBackoff",
    ]
    .contains(&policy.as_str())
    {
        errors.push(Message::property_value_not_in_list(
            &policy,
            "DeliveryRetryPolicy",
        ));
    }
    for value in [&destination, &Some(context.clone())].into_iter().flatten() {
        if value.len() > MAX_SUBSCRIPTION_TEXT {
            errors.push(Message::string_value_too_long(value, MAX_SUBSCRIPTION_TEXT));
        }
    }
    let (Some(destination), true) = (destination, errors.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, errors);
    };
    if bmc.subscriptions.list().len() >= MAX_SUBSCRIPTIONS {
        return error(
            StatusCode::BAD_REQUEST,
            vec![Message::create_limit_reached("EventDestination")],
        );
    }
    let sub = Subscription {
        id: String::new(),
        destination,
        context,
        protocol,
        event_format_type: format,
        event_types: Vec::new(),
        retry_policy: policy,
    };
    match bmc.subscriptions.create(sub) {
        Ok(s) => {
            let mut resp = json_resp(StatusCode::CREATED, &subscription(&s));
            set_header(
                &mut resp,
                header::LOCATION,
                &format!("{SUBSCRIPTIONS}/{}", s.id),
            );
            resp
        }
        Err(existing) => error(
            StatusCode::CONFLICT,
            vec![Message::resource_already_exists(
                "EventDestination",
                "Destination",
                &existing.destination,
            )],
        ),
    }
}

fn simple_update(bmc: &Arc<Bmc>, body: &Map<String, Value>) -> Resp {
    const ACTION: &str = "UpdateService.SimpleUpdate";
    let uri = match body.get("ImageURI") {
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                vec![Message::action_parameter_missing(ACTION, "ImageURI")],
            );
        }
        Some(Value::String(uri)) if uri.len() <= MAX_SUBSCRIPTION_TEXT => uri,
        Some(Value::String(uri)) => {
            return error(
                StatusCode::BAD_REQUEST,
                vec![Message::string_value_too_long(uri, MAX_SUBSCRIPTION_TEXT)],
            );
        }
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                vec![Message::action_parameter_value_type_error(
                    &other.to_string(),
                    "ImageURI",
                    ACTION,
                )],
            );
        }
    };
    let file = uri.rsplit('/').next().unwrap_or(uri);
    let version = file
        .trim_end_matches(".bin")
        .trim_end_matches(".exe")
        .to_string();
    let effect = if uri.contains("fail") {
        TaskEffect::Fail {
            message: format!("The firmware image {uri} could not be applied."),
        }
    } else {
        TaskEffect::Firmware {
            version,
            bios: file.to_ascii_lowercase().contains("bios"),
        }
    };
    let t = bmc.tasks.create(
        "Firmware update",
        effect,
        UPDATE_DURATION,
        bmc.clock.now_chrono(),
    );
    let mut resp = json_resp(StatusCode::ACCEPTED, &task(&t));
    set_header(&mut resp, header::LOCATION, &format!("{MONITORS}/{}", t.id));
    resp
}

pub fn patch(ctx: &Ctx<'_>, route: &Route) -> Resp {
    let Value::Object(body) = &ctx.body else {
        return error(StatusCode::BAD_REQUEST, vec![Message::malformed_json()]);
    };
    let current = render(ctx.bmc, route);
    let writable: &[&str] = match route {
        Route::Subscription(_) => &["Context"],
        _ => &[],
    };
    let mut errors = Vec::new();
    Message::reject_other_keys(body, writable, current.as_ref(), &mut errors);
    match body.get("Context") {
        Some(Value::String(c)) if c.len() > MAX_SUBSCRIPTION_TEXT => {
            errors.push(Message::string_value_too_long(c, MAX_SUBSCRIPTION_TEXT));
        }
        Some(v) if !v.is_string() => {
            errors.push(Message::property_value_type_error(
                &v.to_string(),
                "Context",
            ));
        }
        _ => {}
    }
    if !errors.is_empty() {
        return error(StatusCode::BAD_REQUEST, errors);
    }
    if let (Route::Subscription(id), Some(ctx_value)) =
        (route, body.get("Context").and_then(Value::as_str))
    {
        ctx.bmc.subscriptions.update_context(id, ctx_value);
    }
    match render(ctx.bmc, route) {
        Some(v) => json_resp(StatusCode::OK, &v),
        None => error(
            StatusCode::NOT_FOUND,
            vec![Message::resource_missing_at_uri(&format!("{route:?}"))],
        ),
    }
}

pub fn delete(ctx: &Ctx<'_>, route: &Route) -> Resp {
    let found = match route {
        Route::Subscription(id) => ctx.bmc.subscriptions.delete(id),
        _ => false,
    };
    deleted(found, route)
}
