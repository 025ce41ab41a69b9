//! `/redfish`, the service root, the OData service document and `$metadata`.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::collection::{link, types};
use super::response::{Resp, empty};
use super::routes::Route;
use crate::bmc::Bmc;

/// Top-level services linked from the service root: (property, URI).
const SERVICES: &[(&str, &str)] = &[
    ("Systems", "/redfish/v1/Systems"),
    ("Managers", "/redfish/v1/Managers"),
    ("Chassis", "/redfish/v1/Chassis"),
    ("SessionService", "/redfish/v1/SessionService"),
    ("AccountService", "/redfish/v1/AccountService"),
    ("Tasks", "/redfish/v1/TaskService"),
    ("EventService", "/redfish/v1/EventService"),
    ("UpdateService", "/redfish/v1/UpdateService"),
];

pub fn render(bmc: &Arc<Bmc>, route: &Route) -> Option<Value> {
    Some(match route {
        Route::Versions => json!({"v1": "/redfish/v1/"}),
        Route::OData => {
            let mut value =
                vec![json!({"name": "Service", "kind": "Singleton", "url": "/redfish/v1/"})];
            value.extend(
                SERVICES
                    .iter()
                    .map(|(n, u)| json!({"name": n, "kind": "Singleton", "url": u})),
            );
            value.push(json!({"name": "Sessions", "kind": "Singleton", "url": "/redfish/v1/SessionService/Sessions"}));
            json!({"@odata.context": "/redfish/v1/$metadata", "value": value})
        }
        Route::Root => service_root(bmc),
        _ => return None,
    })
}

fn service_root(bmc: &Arc<Bmc>) -> Value {
    let vendor = bmc.vendor();
    let mut root = json!({
        "@odata.id": "/redfish/v1",
        "@odata.type": types::SERVICE_ROOT,
        "Id": "RootService",
        "Name": "Root Service",
        "RedfishVersion": "1.17.0",
        "UUID": bmc.identity.service_uuid,
        "Vendor": vendor.manufacturer(),
        "Product": vendor.manager_model(),
        "ProtocolFeaturesSupported": {
            "ExpandQuery": {"ExpandAll": false, "Levels": false, "Links": false, "NoLinks": false},
            "FilterQuery": false,
            "SelectQuery": false,
            "OnlyMemberQuery": false,
            "ExcerptQuery": false,
            "DeepOperations": {"DeepPATCH": false, "DeepPOST": false},
        },
        "Links": {"Sessions": link("/redfish/v1/SessionService/Sessions")},
    });
    for (name, uri) in SERVICES {
        root[*name] = link(*uri);
    }
    root
}

/// Schema files referenced from `$metadata`: (file stem, versioned namespace or "").
const REFERENCES: &[(&str, &str)] = &[
    ("ServiceRoot", types::SERVICE_ROOT),
    ("ComputerSystem", types::SYSTEM),
    ("ComputerSystemCollection", ""),
    ("Manager", types::MANAGER),
    ("ManagerCollection", ""),
    ("Chassis", types::CHASSIS),
    ("ChassisCollection", ""),
    ("Processor", types::PROCESSOR),
    ("ProcessorCollection", ""),
    ("Memory", types::MEMORY),
    ("MemoryCollection", ""),
    ("Storage", types::STORAGE),
    ("StorageCollection", ""),
    ("Drive", types::DRIVE),
    ("Volume", types::VOLUME),
    ("VolumeCollection", ""),
    ("SimpleStorage", types::SIMPLE_STORAGE),
    ("SimpleStorageCollection", ""),
    ("EthernetInterface", types::ETHERNET_INTERFACE),
    ("EthernetInterfaceCollection", ""),
    ("Bios", types::BIOS),
    ("BootOption", types::BOOT_OPTION),
    ("BootOptionCollection", ""),
    ("SessionService", types::SESSION_SERVICE),
    ("Session", types::SESSION),
    ("SessionCollection", ""),
    ("AccountService", types::ACCOUNT_SERVICE),
    ("ManagerAccount", types::ACCOUNT),
    ("ManagerAccountCollection", ""),
    ("Role", types::ROLE),
    ("RoleCollection", ""),
    ("TaskService", types::TASK_SERVICE),
    ("Task", types::TASK),
    ("TaskCollection", ""),
    ("EventService", types::EVENT_SERVICE),
    ("EventDestination", types::EVENT_DESTINATION),
    ("EventDestinationCollection", ""),
    ("UpdateService", types::UPDATE_SERVICE),
    ("SoftwareInventory", types::SOFTWARE_INVENTORY),
    ("SoftwareInventoryCollection", ""),
    ("ManagerNetworkProtocol", types::NETWORK_PROTOCOL),
    ("ActionInfo", types::ACTION_INFO),
    ("Message", "#Message.v1_1_1.Message"),
    ("Settings", ""),
    ("Resource", ""),
    ("RedfishExtensions", "#RedfishExtensions.v1_0_0.x"),
];

fn metadata_xml() -> &'static str {
    static XML: OnceLock<String> = OnceLock::new();
    XML.get_or_init(|| {
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">\n",
        );
        for (stem, ty) in REFERENCES {
            out.push_str(&format!("  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/{stem}_v1.xml\">\n"));
            out.push_str(&format!("    <edmx:Include Namespace=\"{stem}\"/>\n"));
            let versioned = ty.trim_start_matches('#').rsplit_once('.').map(|(ns, _)| ns).filter(|ns| ns.contains(".v"));
            if let Some(ns) = versioned {
                out.push_str(&format!("    <edmx:Include Namespace=\"{ns}\"/>\n"));
            }
            out.push_str("  </edmx:Reference>\n");
        }
        out.push_str(concat!(
            "  <edmx:DataServices>\n",
            "    <Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\" Namespace=\"Service\">\n",
            "      <EntityContainer Name=\"Service\" Extends=\"ServiceRoot.v1_15_0.ServiceContainer\"/>\n",
            "    </Schema>\n",
            "  </edmx:DataServices>\n",
            "</edmx:Edmx>\n"
        ));
        out
    })
}

pub fn metadata(_bmc: &Arc<Bmc>, head: bool) -> Resp {
    let mut resp = empty(StatusCode::OK);
    if !head {
        *resp.body_mut() = Body::from(metadata_xml());
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}
