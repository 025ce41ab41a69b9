//! Declarative fleet scenarios, the runner that plays them on the embedded API server or a real
//! cluster with the real operator, sim-bmc and a boot backend, and the invariants checked all the way.
//! Property tests generate scenarios and shrink failures to replayable scenario files.

pub mod cli;
pub mod evidence;
pub mod exit;
pub mod explore;
pub mod invariants;
pub mod model;
pub mod report;
pub mod runner;
pub mod spec;
