//! Scenario files that ask for the impossible: sizes one process cannot hold, durations that
//! overflow, expectations that cannot hold. `validate` and `run` both answer exit 2 with
//! `file:line:column` and the reason, never a panic or an abort.

use std::path::PathBuf;
use std::process::{Command, Output};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn harness(args: &[&str], file: &PathBuf) -> Output {
    Command::new(env!("CARGO_BIN_EXE_metal-harness"))
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

/// Runs `validate` and `run` on `text`; both must exit 2 with every `(line, needle)` in stderr.
fn rejected(text: &str, wanted: &[(u32, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "s.yaml", text);
    for args in [&["validate"][..], &["run", "--quiet"][..]] {
        let out = harness(args, &file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for (line, needle) in wanted {
            let located = stderr
                .lines()
                .any(|l| l.contains(&format!("s.yaml:{line}:")) && l.contains(needle));
            assert!(
                located,
                "{args:?}: no line {line} error with {needle:?} in:\n{stderr}"
            );
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_billion_bmcs_is_refused_with_the_bound() {
    rejected(
        "name: big\nfleet:\n  bmcs: 1000000000\n",
        &[(3, "one process holds at most 20000")],
    );
    // Found by the fuzz harness: zero systems made four billion BMCs zero servers.
    rejected(
        "name: zero\nfleet:\n  bmcs: 4000000000\n  systemsPerBmc: 0\n",
        &[(3, "4000000000 BMCs; one process holds at most 20000")],
    );
    rejected(
        "name: big\nfleet:\n  bmcs: 2\n  systemsPerBmc: 4000000000\n",
        &[(4, "exceed the limit of 64")],
    );
}

#[test]
fn a_billion_claims_is_refused_with_the_bound() {
    rejected(
        "name: claims\nfleet:\n  bmcs: 2\nworkload:\n  steps:\n    - do: {createClaims: {name: c, count: 1000000000}}\n",
        &[(6, "holds at most 20000")],
    );
}

#[test]
fn huge_durations_are_refused_not_a_panic() {
    rejected(
        "name: long\nfleet:\n  bmcs: 1\nexpect:\n  within: 99999999999999999999h\n",
        &[(5, "exceeds the limit of 24h")],
    );
    rejected(
        "name: long\nfleet:\n  bmcs: 1\nworkload:\n  steps:\n    - do: {pause: {duration: 18446744073709551615s}}\n",
        &[(6, "exceeds the limit of 24h")],
    );
}

#[test]
fn expectations_that_cannot_hold_are_refused_each_at_its_line() {
    rejected(
        "name: states\nfleet:\n  bmcs: 2\nexpect:\n  servers:\n    Ready: 1\n    Available: 3\n  claimsBound: 3\n",
        &[
            (6, "\"Ready\" is not a Server state"),
            (7, "3 Servers Available but the fleet has 2"),
        ],
    );
    rejected(
        "name: bound\nfleet:\n  bmcs: 2\nworkload:\n  steps:\n    - do: {createClaims: {name: c, count: 3}}\nexpect:\n  claimsBound: 3\n",
        &[(8, "claimsBound 3 exceeds the 2 Servers")],
    );
    rejected(
        "name: wait\nfleet:\n  bmcs: 1\nworkload:\n  steps:\n    - waitFor: {serversInState: Online}\n      do: wait\n",
        &[(6, "\"Online\" is not a Server state")],
    );
    rejected(
        "name: select\nfleet:\n  bmcs: 1\n  serverLabels: [{labels: {rack: r1}}]\nworkload:\n  steps:\n    - do: {createClaims: {name: c, serverSelector: {rack: r2}}}\n    - do: {annotate: {kind: Server, name: nope, annotations: {a: b}}}\n",
        &[
            (7, "serverSelector matches no Server"),
            (8, "Server \"nope\" does not exist"),
        ],
    );
}

#[test]
fn bmc_faults_sim_bmc_would_refuse_are_refused_here() {
    rejected(
        "name: slow\nfleet:\n  bmcs: 1\nfaults:\n  - at: 1s\n    fault: {bmc: {bmcs: all, kind: {slow: {latency: 11m}}}}\n",
        &[(5, "exceeds 10m")],
    );
    let many: String = (0..65)
        .map(|i| format!("  - at: {i}s\n    fault: {{bmc: {{bmcs: all, kind: authFailure}}}}\n"))
        .collect();
    rejected(
        &format!("name: many\nfleet:\n  bmcs: 1\nfaults:\n{many}"),
        &[(4 + 2 * 64 + 1, "65 faults exceed the limit of 64")],
    );
}

#[test]
fn an_endless_file_is_refused_without_reading_it_all() {
    let out = harness(&["validate"], &PathBuf::from("/dev/zero"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("larger than the limit of 16 MiB"),
        "{stderr}"
    );
}
