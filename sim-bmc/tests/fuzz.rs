//! The fuzz target's bounded run in the test suite: every committed corpus and regression input, then
//! a fixed number of seeded mutations of them, through the same harness as `cargo fuzz run`
//! (`fuzz/harness.rs`). Long runs: sim-bmc/README.md, "Fuzzing".

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("readable");
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn corpus_and_regressions_replay() {
    let corpus = inputs(&fuzz_dir().join("corpus/redfish_request"));
    assert!(corpus.len() >= 40, "the seed corpus is committed");
    for (path, data) in corpus
        .iter()
        .chain(&inputs(&fuzz_dir().join("regressions/redfish_request")))
    {
        let name = path.display().to_string();
        if let Err(e) = std::panic::catch_unwind(|| harness::run(data)) {
            std::panic::resume_unwind(Box::new(format!("{name}: {e:?}")));
        }
    }
}

/// One libFuzzer-style mutation: flip, insert, delete, duplicate or splice bytes.
fn mutate(rng: &mut ChaCha8Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=out.len());
        match rng.random_range(0..6) {
            0 if at < out.len() => out[at] ^= 1 << rng.random_range(0..8),
            1 => out.insert(at, rng.random()),
            2 if at < out.len() => {
                let end = rng.random_range(at..=out.len().min(at + 16));
                out.drain(at..end);
            }
            3 if !other.is_empty() => {
                let from = rng.random_range(0..other.len());
                let end = rng.random_range(from..=other.len().min(from + 64));
                out.splice(at..at, other[from..end].iter().copied());
            }
            4 => {
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
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            _ if !out.is_empty() => out[0] = rng.random(),
            _ => {}
        }
    }
    out
}

#[test]
fn seeded_mutations_hold_every_property() {
    // A fixed count keeps the run deterministic and a few seconds long; FUZZ_SEED reproduces one.
    // FUZZ_SECONDS=N instead runs until N seconds have passed (the long run when cargo-fuzz is not
    // at hand) and reports executions and peak RSS.
    const CASES: usize = 400;
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let seed = env("FUZZ_SEED").unwrap_or(0x05ee_db3c);
    let budget = env("FUZZ_SECONDS").map(std::time::Duration::from_secs);
    let started = std::time::Instant::now();
    eprintln!("seeded_mutations_hold_every_property: FUZZ_SEED={seed}");
    let corpus: Vec<Vec<u8>> = inputs(&fuzz_dir().join("corpus/redfish_request"))
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut case = 0;
    while budget.map_or(case < CASES, |b| started.elapsed() < b) {
        let base = &corpus[rng.random_range(0..corpus.len())];
        let other = &corpus[rng.random_range(0..corpus.len())];
        let input = mutate(&mut rng, base, other);
        if let Err(e) = std::panic::catch_unwind(|| harness::run(&input)) {
            let path = std::env::temp_dir().join(format!("sim-bmc-fuzz-{seed}-{case}"));
            let _ = std::fs::write(&path, &input);
            panic!(
                "case {case} (FUZZ_SEED={seed}) broke a property: {e:?}; input saved to {} \
                 (copy it to fuzz/regressions/redfish_request/)",
                path.display()
            );
        }
        case += 1;
    }
    eprintln!(
        "{case} executions in {:.0?}, peak RSS {} MiB",
        started.elapsed(),
        peak_rss_mib()
    );
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
