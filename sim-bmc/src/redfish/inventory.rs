//! A System's hardware inventory: Processors, Memory, Storage (Drives, Volumes), SimpleStorage,
//! EthernetInterfaces and BootOptions.

use std::sync::Arc;

use serde_json::{Value, json};

use super::collection::{collection, link, status_ok, types};
use super::routes::{Route, dimm_count};
use crate::bmc::{Bmc, SystemEntry};
use crate::machine::BOOT_OPTIONS;

const DIMM_MIB: u32 = 32 * 1024;

pub fn cpu_model(arm: bool) -> &'static str {
    if arm {
        "Ampere(R) Altra(R) Processor Q80-30"
    } else {
        "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    }
}

pub fn render(bmc: &Arc<Bmc>, route: &Route) -> Option<Value> {
    let sys = |i: &usize| &bmc.systems[*i];
    Some(match route {
        Route::Processors(i) => {
            let s = sys(i);
            let b = base(s);
            collection(
                &format!("{b}/Processors"),
                "ProcessorCollection",
                "Processors Collection",
                (0..s.hardware.cpu_sockets).map(|n| format!("{b}/Processors/CPU{n}")),
            )
        }
        Route::Processor(i, n) => processor(sys(i), *n),
        Route::Memory(i) => {
            let s = sys(i);
            let b = base(s);
            collection(
                &format!("{b}/Memory"),
                "MemoryCollection",
                "Memory Collection",
                (0..dimm_count(s.hardware.memory_gib)).map(|n| format!("{b}/Memory/DIMM{n}")),
            )
        }
        Route::Dimm(i, n) => dimm(sys(i), *n),
        Route::Storages(i) => {
            let b = base(sys(i));
            collection(
                &format!("{b}/Storage"),
                "StorageCollection",
                "Storage Collection",
                [format!("{b}/Storage/RAID1")],
            )
        }
        Route::Storage(i) => storage(sys(i)),
        Route::Drive(i, n) => drive(sys(i), *n),
        Route::Volumes(i) => {
            let b = base(sys(i));
            collection(
                &format!("{b}/Storage/RAID1/Volumes"),
                "VolumeCollection",
                "Volume Collection",
                [format!("{b}/Storage/RAID1/Volumes/1")],
            )
        }
        Route::Volume(i) => volume(sys(i)),
        Route::SimpleStorages(i) => {
            let b = base(sys(i));
            collection(
                &format!("{b}/SimpleStorage"),
                "SimpleStorageCollection",
                "Simple Storage Collection",
                [format!("{b}/SimpleStorage/1")],
            )
        }
        Route::SimpleStorage(i) => simple_storage(sys(i)),
        Route::EthernetInterfaces(i) => {
            let s = sys(i);
            let b = base(s);
            collection(
                &format!("{b}/EthernetInterfaces"),
                "EthernetInterfaceCollection",
                "Ethernet Interface Collection",
                (0..s.macs.len()).map(|n| format!("{b}/EthernetInterfaces/NIC{n}")),
            )
        }
        Route::EthernetInterface(i, n) => nic(sys(i), *n),
        Route::BootOptions(i) => {
            let b = base(sys(i));
            collection(
                &format!("{b}/BootOptions"),
                "BootOptionCollection",
                "Boot Option Collection",
                BOOT_OPTIONS
                    .iter()
                    .map(|(r, _, _)| format!("{b}/BootOptions/{r}")),
            )
        }
        Route::BootOption(i, n) => {
            let (reference, display, _) = BOOT_OPTIONS[*n];
            json!({
                "@odata.id": format!("{}/BootOptions/{reference}", base(sys(i))),
                "@odata.type": types::BOOT_OPTION,
                "Id": reference,
                "Name": display,
                "BootOptionReference": reference,
                "DisplayName": display,
                "BootOptionEnabled": true,
            })
        }
        _ => return None,
    })
}

fn base(s: &SystemEntry) -> String {
    format!("/redfish/v1/Systems/{}", s.id)
}

fn processor(s: &SystemEntry, n: usize) -> Value {
    let arm = s.machine.inner.cfg.architecture == "arm64";
    let cores = s.hardware.cores_per_socket;
    json!({
        "@odata.id": format!("{}/Processors/CPU{n}", base(s)),
        "@odata.type": types::PROCESSOR,
        "Id": format!("CPU{n}"),
        "Name": "Processor",
        "Socket": format!("CPU {}", n + 1),
        "ProcessorType": "CPU",
        "ProcessorArchitecture": if arm { "ARM" } else { "x86" },
        "InstructionSet": if arm { "ARM-A64" } else { "x86-64" },
        "Manufacturer": if arm { "Ampere(R)" } else { "Intel(R) Corporation" },
        "Model": cpu_model(arm),
        "MaxSpeedMHz": 3200,
        "TotalCores": cores,
        "TotalThreads": if arm { cores } else { cores * 2 },
        "Status": status_ok(),
    })
}

fn dimm(s: &SystemEntry, n: usize) -> Value {
    let per_dimm = if s.hardware.memory_gib < 32 {
        s.hardware.memory_gib * 1024
    } else {
        DIMM_MIB
    };
    json!({
        "@odata.id": format!("{}/Memory/DIMM{n}", base(s)),
        "@odata.type": types::MEMORY,
        "Id": format!("DIMM{n}"),
        "Name": format!("DIMM {n}"),
        "CapacityMiB": per_dimm,
        "MemoryDeviceType": "DDR4",
        "MemoryType": "DRAM",
        "OperatingSpeedMhz": 3200,
        "Manufacturer": "Samsung",
        "Status": status_ok(),
    })
}

fn storage(s: &SystemEntry) -> Value {
    let b = base(s);
    json!({
        "@odata.id": format!("{b}/Storage/RAID1"),
        "@odata.type": types::STORAGE,
        "Id": "RAID1",
        "Name": "RAID Controller 1",
        "Drives": (0..s.hardware.disks).map(|n| link(format!("{b}/Storage/RAID1/Drives/Disk{n}"))).collect::<Vec<_>>(),
        "Drives@odata.count": s.hardware.disks,
        "Volumes": link(format!("{b}/Storage/RAID1/Volumes")),
        "Status": status_ok(),
    })
}

fn drive(s: &SystemEntry, n: usize) -> Value {
    json!({
        "@odata.id": format!("{}/Storage/RAID1/Drives/Disk{n}", base(s)),
        "@odata.type": types::DRIVE,
        "Id": format!("Disk{n}"),
        "Name": format!("Solid State Disk {n}"),
        "CapacityBytes": s.hardware.disk_bytes,
        "MediaType": "SSD",
        "Protocol": "SATA",
        "Manufacturer": "Micron",
        "Model": "5300 PRO",
        "SerialNumber": format!("{}-D{n}", s.serial),
        "Status": status_ok(),
    })
}

fn volume(s: &SystemEntry) -> Value {
    let b = base(s);
    json!({
        "@odata.id": format!("{b}/Storage/RAID1/Volumes/1"),
        "@odata.type": types::VOLUME,
        "Id": "1",
        "Name": "System volume",
        "CapacityBytes": s.hardware.disk_bytes,
        "RAIDType": if s.hardware.disks > 1 { "RAID1" } else { "RAID0" },
        "Status": status_ok(),
        "Links": {
            "Drives": (0..s.hardware.disks.min(2)).map(|n| link(format!("{b}/Storage/RAID1/Drives/Disk{n}"))).collect::<Vec<_>>(),
        },
    })
}

fn simple_storage(s: &SystemEntry) -> Value {
    json!({
        "@odata.id": format!("{}/SimpleStorage/1", base(s)),
        "@odata.type": types::SIMPLE_STORAGE,
        "Id": "1",
        "Name": "Simple Storage Controller",
        "Devices": (0..s.hardware.disks).map(|n| json!({
            "Name": format!("Solid State Disk {n}"),
            "Manufacturer": "Micron",
            "Model": "5300 PRO",
            "CapacityBytes": s.hardware.disk_bytes,
            "Status": status_ok(),
        })).collect::<Vec<_>>(),
        "Status": status_ok(),
    })
}

fn nic(s: &SystemEntry, n: usize) -> Value {
    let mac = &s.macs[n];
    json!({
        "@odata.id": format!("{}/EthernetInterfaces/NIC{n}", base(s)),
        "@odata.type": types::ETHERNET_INTERFACE,
        "Id": format!("NIC{n}"),
        "Name": format!("Ethernet Interface {n}"),
        "MACAddress": mac,
        "PermanentMACAddress": mac,
        "SpeedMbps": 25000,
        "LinkStatus": "LinkUp",
        "InterfaceEnabled": true,
        "Status": status_ok(),
    })
}
