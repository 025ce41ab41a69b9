//! The scenario_file fuzz target's bounded run in the test suite: every committed corpus and
//! regression input, then a fixed number of seeded mutations of them, through the same harness as
//! `cargo fuzz run` (`fuzz/harness.rs`). Long runs: scenarios/README.md, "Fuzzing".

#[path = "../fuzz/harness.rs"]
mod harness;

use fuzz_replay::{SeededRun, edits};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

fuzz_replay::bounded_run_tests! {
    target: "scenario_file",
    min_corpus: 7,
    harness: harness::run,
    edit: edit,
    seeded: SeededRun {
        cases: 1000,
        default_seed: 0x5ce4_a210,
        save_prefix: "scenario-fuzz",
        save_extension: ".yaml",
    },
}

/// Tokens that reach the checks: numbers first (the ones that replace numbers), then durations and YAML.
const TOKENS: &[&[u8]] = &[
    b"4294967295",
    b"1000000000",
    b"0",
    b"-1",
    b".nan",
    b"1e309",
    b"99999h",
    b"1.5ms",
    b"24h",
    b"\n  ",
    b": ",
    b"- ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"&a ",
    b"*a",
    b"Available",
    b"Ready",
    b"bmc-0-system-0",
    b"count: ",
    b"systemsPerBmc: 64\n",
    b"\"",
    b"\xff",
];

/// A YAML-aware edit: byte edits plus tokens that reach the checks (numbers, durations, names).
fn edit(rng: &mut ChaCha8Rng, out: &mut Vec<u8>, at: usize, other: &[u8]) {
    match rng.random_range(0..5) {
        0 if at < out.len() => edits::flip_bit(rng, out, at),
        1 => edits::insert_token(rng, out, at, TOKENS),
        2 if at < out.len() => edits::delete(rng, out, at, 24),
        3 if !other.is_empty() => edits::splice(rng, out, at, other, 80),
        _ => {
            // Replace a number with a token: where sizes and durations are.
            if let Some(pos) = out[at.min(out.len())..].iter().position(u8::is_ascii_digit) {
                let start = at + pos;
                let end = out[start..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(out.len(), |n| start + n);
                let token = TOKENS[rng.random_range(0..6)];
                out.splice(start..end, token.iter().copied());
            }
        }
    }
}
