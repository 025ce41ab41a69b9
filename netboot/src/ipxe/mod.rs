//! The iPXE subset firmware runs: a parser and an interpreter.

pub mod interp;
pub mod parse;

pub use interp::{BootSelection, Builtins, Download, Fetcher, Image, run};
pub use parse::{ParseError, Script, expand, parse};
