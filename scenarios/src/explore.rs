//! Property-based exploration: random scenarios, run and shrunk into regression files.

use crate::cli::{ExploreArgs, exit};

pub fn explore(_args: ExploreArgs) -> u8 {
    eprintln!("error: exploration needs the runner, which is not wired yet");
    exit::HARNESS
}
