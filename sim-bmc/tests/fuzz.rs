//! The fuzz target's bounded run in the test suite: every committed corpus and regression input, then
//! a fixed number of seeded mutations of them, through the same harness as `cargo fuzz run`
//! (`fuzz/harness.rs`). Long runs: sim-bmc/README.md, "Fuzzing".

#[path = "../fuzz/harness.rs"]
mod harness;

use fuzz_replay::{SeededRun, edits};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

fuzz_replay::bounded_run_tests! {
    target: "redfish_request",
    min_corpus: 40,
    harness: harness::run,
    edit: edit,
    seeded: SeededRun {
        cases: 400,
        default_seed: 0x05ee_db3c,
        save_prefix: "sim-bmc-fuzz",
        save_extension: "",
    },
}

/// Tokens of the HTTP and JSON around a Redfish request.
const TOKENS: &[&[u8]] = &[
    b"\n%%\n",
    b"{",
    b"}",
    b"[",
    b"\"",
    b"\xff",
    b":",
    b"\n\n",
    b"null",
    b"-1e999",
    b"Content-Length: 0\n",
    b"If-Match: *\n",
];

/// One libFuzzer-style edit: flip, insert, delete, duplicate or splice bytes.
fn edit(rng: &mut ChaCha8Rng, out: &mut Vec<u8>, at: usize, other: &[u8]) {
    match rng.random_range(0..6) {
        0 if at < out.len() => edits::flip_bit(rng, out, at),
        1 => out.insert(at, rng.random()),
        2 if at < out.len() => edits::delete(rng, out, at, 16),
        3 if !other.is_empty() => edits::splice(rng, out, at, other, 64),
        4 => edits::insert_token(rng, out, at, TOKENS),
        _ if !out.is_empty() => out[0] = rng.random(),
        _ => {}
    }
}
