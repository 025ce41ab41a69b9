//! The bounded fuzz run shared by the crates' test suites: corpus and regression replay, then seeded
//! mutations through the same harness `cargo fuzz run` uses, so a failing input is saved and reproducible.
//! Each crate supplies its harness and its mutation; the loop, the seed and the report live here once.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One fuzz target of a crate: its `fuzz/` folder and the target's name there.
#[derive(Debug, Clone)]
pub struct Target {
    /// The crate's `fuzz/` folder (holding `corpus/<name>` and `regressions/<name>`).
    pub fuzz_dir: PathBuf,
    /// The cargo-fuzz target name.
    pub name: &'static str,
}

/// One seeded edit of `out` at byte `at` (`0..=out.len()`), free to copy bytes from `other`
/// (another corpus entry); a crate's edits are where its fuzzing knows its input format.
pub type Edit = fn(&mut ChaCha8Rng, &mut Vec<u8>, usize, &[u8]);

/// One to four seeded edits of `input`, libFuzzer-style.
pub fn mutate(rng: &mut ChaCha8Rng, input: &[u8], other: &[u8], edit: Edit) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=out.len());
        edit(rng, &mut out, at, other);
    }
    out
}

/// The edits every input format wants; each draws from `rng` in a fixed order so a seed repeats a case.
pub mod edits {
    use rand::Rng;
    use rand_chacha::ChaCha8Rng;

    /// Flips one bit of the byte at `at` (which must be in `out`).
    pub fn flip_bit(rng: &mut ChaCha8Rng, out: &mut [u8], at: usize) {
        out[at] ^= 1 << rng.random_range(0..8);
    }

    /// Deletes up to `max` bytes from `at` (which must be in `out`).
    pub fn delete(rng: &mut ChaCha8Rng, out: &mut Vec<u8>, at: usize, max: usize) {
        let end = rng.random_range(at..=out.len().min(at + max));
        out.drain(at..end);
    }

    /// Inserts up to `max` bytes copied from a random place of `other` (which must not be empty).
    pub fn splice(rng: &mut ChaCha8Rng, out: &mut Vec<u8>, at: usize, other: &[u8], max: usize) {
        let from = rng.random_range(0..other.len());
        let end = rng.random_range(from..=other.len().min(from + max));
        out.splice(at..at, other[from..end].iter().copied());
    }

    /// Inserts one of `tokens` at `at`.
    pub fn insert_token(rng: &mut ChaCha8Rng, out: &mut Vec<u8>, at: usize, tokens: &[&[u8]]) {
        let token = tokens[rng.random_range(0..tokens.len())];
        out.splice(at..at, token.iter().copied());
    }
}

/// The two tests of a crate's bounded fuzz run, `corpus_and_regressions_replay` and
/// `seeded_mutations_hold_every_property`, for one target, harness and edit.
#[macro_export]
macro_rules! bounded_run_tests {
    (
        target: $name:literal,
        min_corpus: $min_corpus:expr,
        harness: $harness:path,
        edit: $edit:path,
        seeded: $run:expr $(,)?
    ) => {
        fn target() -> $crate::Target {
            $crate::Target::new(env!("CARGO_MANIFEST_DIR"), $name)
        }

        #[test]
        fn corpus_and_regressions_replay() {
            target().replay($min_corpus, $harness);
        }

        #[test]
        fn seeded_mutations_hold_every_property() {
            target().seeded_mutations(&$run, $edit, $harness);
        }
    };
}

/// How many cases a seeded run makes and how it names what it saves.
#[derive(Debug, Clone)]
pub struct SeededRun {
    /// Cases when `FUZZ_SECONDS` is unset; fixed so the test is deterministic and a few seconds long
    /// (`FUZZ_SECONDS=N` runs for N seconds instead: the long run when cargo-fuzz is not at hand).
    pub cases: usize,
    /// The seed when `FUZZ_SEED` is unset.
    pub default_seed: u64,
    /// File name prefix of a saved failing input in the temporary folder.
    pub save_prefix: &'static str,
    /// File name extension of a saved input (`""` for none).
    pub save_extension: &'static str,
}

impl Target {
    /// The target `name` under `<manifest_dir>/fuzz`.
    pub fn new(manifest_dir: &str, name: &'static str) -> Self {
        Self {
            fuzz_dir: PathBuf::from(manifest_dir).join("fuzz"),
            name,
        }
    }

    /// The committed corpus, sorted by path.
    pub fn corpus(&self) -> Vec<(PathBuf, Vec<u8>)> {
        inputs(&self.fuzz_dir.join("corpus").join(self.name))
    }

    /// The committed regression inputs, sorted by path.
    pub fn regressions(&self) -> Vec<(PathBuf, Vec<u8>)> {
        inputs(&self.fuzz_dir.join("regressions").join(self.name))
    }

    /// Runs every corpus and regression input through `harness`; a panic names the input.
    ///
    /// Panics too when the corpus has fewer than `min_corpus` entries (it is committed, so a short one is lost).
    pub fn replay(&self, min_corpus: usize, harness: impl Fn(&[u8])) {
        let corpus = self.corpus();
        assert!(corpus.len() >= min_corpus, "the seed corpus is committed");
        for (path, data) in corpus.iter().chain(&self.regressions()) {
            let name = path.display().to_string();
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| harness(data))) {
                resume_unwind(Box::new(format!("{name}: {e:?}")));
            }
        }
    }

    /// Runs seeded mutations of the corpus through `harness` until `run.cases` (or `FUZZ_SECONDS`) is spent.
    ///
    /// A failing case is saved to the temporary folder and the panic says where and which seed repeats it.
    pub fn seeded_mutations(&self, run: &SeededRun, edit: Edit, harness: impl Fn(&[u8])) {
        let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
        let seed = env("FUZZ_SEED").unwrap_or(run.default_seed);
        let budget = env("FUZZ_SECONDS").map(Duration::from_secs);
        let started = Instant::now();
        eprintln!("seeded_mutations_hold_every_property: FUZZ_SEED={seed}");
        let corpus: Vec<Vec<u8>> = self.corpus().into_iter().map(|(_, d)| d).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut case = 0;
        while budget.map_or(case < run.cases, |b| started.elapsed() < b) {
            let base = &corpus[rng.random_range(0..corpus.len())];
            let other = &corpus[rng.random_range(0..corpus.len())];
            let input = mutate(&mut rng, base, other, edit);
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| harness(&input))) {
                let file = format!("{}-{seed}-{case}{}", run.save_prefix, run.save_extension);
                let path = std::env::temp_dir().join(file);
                let _ = std::fs::write(&path, &input);
                panic!(
                    "case {case} (FUZZ_SEED={seed}) broke a property: {e:?}; input saved to {} \
                     (copy it to fuzz/regressions/{}/)",
                    path.display(),
                    self.name
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
}

/// The files directly in `dir` with their bytes, sorted by path; none when `dir` is missing.
pub fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
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

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> u64 {
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
