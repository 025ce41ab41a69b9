//! The `certify --embedded --backend-cmd` path end to end, as a vendor runs it: the real binary starts the embedded
//! API server, supervises the backend as a child process (the reference backend subcommand, or a command that is
//! not a backend at all), writes the reports and decides the exit code from the requested level.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

struct Outcome {
    code: i32,
    report: Option<Value>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn verdict(&self, rule: &str) -> String {
        let report = self.report.as_ref().expect("report.json");
        let rules = report["rules"].as_array().unwrap();
        let found = rules.iter().find(|r| r["id"] == rule);
        found
            .and_then(|r| r["verdict"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    fn passed(&self) -> Vec<String> {
        let report = self.report.as_ref().expect("report.json");
        report["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["verdict"] == "pass")
            .map(|r| r["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn reference_backend(mode: &str) -> String {
    format!(
        "{} reference-backend --listen {{boot_addr}} --registry {{registry}} --misbehave {mode}",
        env!("CARGO_BIN_EXE_conformance")
    )
}

fn certify(backend: &str, report_dir: &Path, extra: &[&str]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conformance"));
    cmd.args(["certify", "--embedded", "--backend-cmd", backend, "--quiet"])
        .args(extra)
        .arg("--report-dir")
        .arg(report_dir);
    let out = cmd.output().expect("run conformance");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        report: std::fs::read_to_string(report_dir.join("report.json"))
            .ok()
            .map(|r| serde_json::from_str(&r).expect("report.json")),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

const RULES: [&str; 10] = [
    "--rule",
    "SBC-CORE-001",
    "--rule",
    "SBC-IGN-001",
    "--rule",
    "SBC-BOOT-001",
    "--rule",
    "SBC-BOOT-002",
    "--profile",
    "core,boot",
];

#[test]
fn conformance_cli_certifies_the_reference_backend_extended_and_fails_a_liar() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = RULES.to_vec();
    args.extend(["--level", "extended"]);
    let honest = certify(
        &reference_backend("none"),
        &dir.path().join("honest"),
        &args,
    );
    assert_eq!(honest.code, 0, "{}\n{}", honest.stdout, honest.stderr);
    let report = honest.report.as_ref().unwrap();
    assert_eq!(report["result"], "success");
    assert_eq!(report["certification"]["metLevel"], "extended");
    assert!(
        honest
            .stdout
            .contains("CERTIFIED: extended (requested extended)"),
        "{}",
        honest.stdout
    );
    assert!(
        honest.stdout.contains("core: extended CONFORMANT"),
        "{}",
        honest.stdout
    );
    for file in ["report.yaml", "junit.xml", "summary.md", "backend.log"] {
        assert!(dir.path().join("honest").join(file).exists(), "{file}");
    }
    let junit = std::fs::read_to_string(dir.path().join("honest/junit.xml")).unwrap();
    assert!(junit.contains("conformance.level.met"), "{junit}");

    let liar = certify(
        &reference_backend("wrong-ignition"),
        &dir.path().join("liar"),
        &RULES,
    );
    assert_eq!(liar.code, 1, "{}", liar.stdout);
    assert_eq!(liar.verdict("SBC-BOOT-002"), "fail", "{}", liar.stdout);
    let report = liar.report.as_ref().unwrap();
    assert_eq!(report["certification"]["metLevel"], Value::Null);
    assert!(
        liar.stdout.contains("NOT CERTIFIED at baseline"),
        "{}",
        liar.stdout
    );
    assert!(report["command"].as_str().unwrap().contains("--embedded"));
}

#[test]
fn conformance_cli_backend_that_cannot_start_earns_nothing_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    // Without {boot_addr} the suite does not wait for a listener: the run starts, and the exit is noticed.
    let started = std::time::Instant::now();
    let missing = certify(
        "/nonexistent/backend --kubeconfig {kubeconfig}",
        &dir.path().join("missing"),
        &["--profile", "core"],
    );
    assert_eq!(missing.code, 3, "{}\n{}", missing.stdout, missing.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "a dead backend must stop the run early, took {:?}",
        started.elapsed()
    );
    assert!(
        missing.passed().is_empty(),
        "passed: {:?}",
        missing.passed()
    );
    let first_screen: String = missing
        .stdout
        .lines()
        .take(8)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        first_screen.contains("BACKEND NOT RUNNING") && first_screen.contains("127"),
        "{first_screen}"
    );
    assert!(
        missing.stdout.contains("not found"),
        "the log's last lines are shown: {}",
        missing.stdout
    );
    let report = missing.report.as_ref().unwrap();
    assert_eq!(report["certification"]["conformant"], false);
    assert!(report["backendStopped"]["exited"].as_bool().unwrap());

    // With {boot_addr} the suite waits for the listener and sees the exit before any check runs.
    let never_listens = certify(
        "exit 7 # {boot_addr}",
        &dir.path().join("never-listens"),
        &["--profile", "core"],
    );
    assert_eq!(never_listens.code, 3, "{}", never_listens.stderr);
    assert!(
        never_listens.stderr.contains("BACKEND NOT RUNNING")
            && never_listens.stderr.contains("exit status: 7"),
        "{}",
        never_listens.stderr
    );
}

#[test]
fn conformance_cli_backend_that_never_reconciles_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let idle = certify(
        "sleep 300",
        &dir.path().join("idle"),
        &[
            "--profile",
            "core",
            "--timeout",
            "first-status=3",
            "--timeout",
            "time-to-ready=10",
        ],
    );
    assert_eq!(idle.code, 3, "{}\n{}", idle.stdout, idle.stderr);
    assert!(idle.passed().is_empty(), "passed: {:?}", idle.passed());
    assert!(
        idle.stdout
            .contains("wrote no ServerBootConfiguration status"),
        "{}",
        idle.stdout
    );
}
