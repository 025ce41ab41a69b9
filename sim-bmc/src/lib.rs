//! A fleet of simulated Redfish BMCs, each owning a simulated machine with power and boot behaviour.
//! Real Redfish clients cannot tell it from a vendor BMC; faults can be injected per BMC and endpoint,
//! and every machine keeps an event log that tests use as independent evidence.
