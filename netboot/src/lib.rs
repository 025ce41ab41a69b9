//! The firmware and OS side of a simulated network boot: the DHCP-answer-driven iPXE/HTTP-boot client,
//! an iPXE script interpreter, artifact verification, and the agents (the discovery probe) the booted OS runs.
//! It plugs into sim-bmc's machines through `sim_bmc::boot::NetworkBoot`, so Ready is checked by a real boot.

pub mod facts;
pub mod firmware;
pub mod ipxe;
pub mod options;
pub mod os;
pub mod probe;
pub mod verify;

pub use facts::{DerivedFacts, MachineFacts, NetworkFacts};
pub use firmware::Netboot;
pub use options::NetbootOptions;
pub use probe::ProbeOptions;
