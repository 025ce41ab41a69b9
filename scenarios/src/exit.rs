//! The exit codes every subcommand shares.

/// Everything as expected.
pub const OK: u8 = 0;
/// An unexpected invariant violation or an unmet expectation.
pub const VIOLATION: u8 = 1;
/// The scenario file is invalid.
pub const INVALID: u8 = 2;
/// The harness or its environment failed (a component could not start).
pub const HARNESS: u8 = 3;
