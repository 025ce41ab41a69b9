//! What the booted OS sees of its hardware: NICs and LLDP neighbours, reported by the probe.

use metal_api::probe_registry::{LldpInterface, LldpNeighbor, NetworkInterface};

/// The machine's network as the OS sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkFacts {
    pub interfaces: Vec<NetworkInterface>,
    pub lldp: Vec<LldpInterface>,
}

/// Supplies network facts for a machine (a topology model can replace the default).
pub trait MachineFacts: Send + Sync + 'static {
    fn network(&self, system_uuid: &str, macs: &[String]) -> NetworkFacts;
}

/// One NIC per MAC (`eth0`, `eth1`, …), each cabled to a port of a leaf switch derived from the MAC, with a
/// documentation-range address; deterministic so tests can predict what discovery reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct DerivedFacts;

impl MachineFacts for DerivedFacts {
    fn network(&self, _system_uuid: &str, macs: &[String]) -> NetworkFacts {
        let mut facts = NetworkFacts::default();
        for (index, mac) in macs.iter().enumerate() {
            let name = format!("eth{index}");
            let octets: Vec<u8> = mac
                .split(':')
                .filter_map(|o| u8::from_str_radix(o, 16).ok())
                .collect();
            let last = octets.last().copied().unwrap_or(0);
            let switch = octets.get(4).copied().unwrap_or(0);
            facts.interfaces.push(NetworkInterface {
                name: name.clone(),
                ip_addresses: vec![format!("198.51.100.{}", last.max(1))],
                mac_address: mac.to_ascii_lowercase(),
                carrier_status: "up".into(),
                ..Default::default()
            });
            facts.lldp.push(LldpInterface {
                name,
                neighbors: vec![LldpNeighbor {
                    chassis_id: format!("02:5a:00:00:{switch:02x}:{index:02x}"),
                    port_id: format!("Ethernet{}", u16::from(last) + 1),
                    port_description: format!("server port {last}"),
                    system_name: format!("leaf-{switch:02x}-{index}"),
                    system_description: "simulated leaf switch".into(),
                    ..Default::default()
                }],
            });
        }
        facts
    }
}
