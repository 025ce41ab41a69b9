//! The Python example backend (`conformance/examples/python-backend/`) certified through the real binary:
//! `certify --embedded --backend-cmd` with the built-in registries on HTTPS (a CA made for the run), so a
//! backend that only speaks HTTPS to registries must pass `core` and `boot`. A second run turns on the
//! registries' bearer-token flow and leaves the CA to the environment (`REQUESTS_CA_BUNDLE`).
//!
//! Needs the venv of `.ci/run` (METAL_HARNESS_PYTHON, with `kubernetes` from .ci/python-requirements.txt);
//! without it the test says why and passes (under CI=true it fails instead).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn python() -> Option<PathBuf> {
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    let skip = |why: String| {
        assert!(!in_ci, "CI must run the Python example backend: {why}");
        eprintln!("SKIP: {why}");
        None
    };
    let Some(py) = std::env::var_os("METAL_HARNESS_PYTHON").map(PathBuf::from) else {
        return skip("METAL_HARNESS_PYTHON is not set (run via .ci/run, which creates the venv from .ci/python-requirements.txt)".into());
    };
    let probe = Command::new(&py)
        .args(["-c", "import kubernetes, requests, yaml"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(py),
        Ok(out) => skip(format!(
            "{} cannot import the kubernetes client (pinned in .ci/python-requirements.txt): {}",
            py.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => skip(format!("{} does not run: {e}", py.display())),
    }
}

/// Runs `certify --embedded --quiet` with `args`, writing its report into `report_dir`.
fn run_certify(args: &[&str], report_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(["certify", "--embedded", "--quiet"])
        .args(args)
        .arg("--report-dir")
        .arg(report_dir)
        .output()
        .expect("run conformance")
}

/// Runs certify; returns the exit code, report.json, the output for messages and the whole backend.log.
fn certify(
    backend: &str,
    extra: &[&str],
    report_dir: &Path,
) -> (i32, serde_json::Value, String, String) {
    let args = [
        &[
            "--backend-cmd",
            backend,
            "--implementation",
            "python-example",
        ],
        extra,
    ]
    .concat();
    let out = run_certify(&args, report_dir);
    let log = std::fs::read_to_string(report_dir.join("backend.log")).unwrap_or_default();
    let text = format!(
        "stdout:\n{}\nstderr:\n{}\nbackend.log (last 4000 bytes):\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        &log[log.len().saturating_sub(4000)..]
    );
    let report = std::fs::read_to_string(report_dir.join("report.json"))
        .unwrap_or_else(|_| panic!("no report.json\n{text}"));
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&report).expect("report.json"),
        text,
        log,
    )
}

/// Every rule of `profiles` passed (MUST, SHOULD and MAY; baseline and extension alike).
fn assert_all_pass(report: &serde_json::Value, profiles: &[&str], text: &str) {
    let rules: Vec<_> = report["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| profiles.contains(&r["profile"].as_str().unwrap_or_default()))
        .collect();
    assert!(
        rules.len() >= 20,
        "expected the rules of {profiles:?}, got {}",
        rules.len()
    );
    let not_passed: Vec<String> = rules
        .iter()
        .filter(|r| r["verdict"] != "pass")
        .map(|r| format!("{} {}: {}", r["id"], r["verdict"], r["reasons"]))
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}\n{text}");
}

/// Certifies the example backend started with `flags`: it must exit 0 with every rule of `profiles` passed.
/// Returns the output for messages and the whole backend.log.
fn certifies_python(
    py: &Path,
    flags: &str,
    profiles: &[&str],
    extra: &[&str],
    report_dir: &Path,
) -> (String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python-backend/backend.py");
    let backend = format!("{} {} {flags}", py.display(), script.display());
    let profile = profiles.join(",");
    let args = [&["--profile", &profile], extra].concat();
    let (code, report, text, log) = certify(&backend, &args, report_dir);
    assert_eq!(code, 0, "{text}");
    assert_all_pass(&report, profiles, &text);
    (text, log)
}

#[test]
fn conformance_python_backend_certifies_core_and_boot_over_https() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (text, log) = certifies_python(
        &py,
        "--kubeconfig {kubeconfig} --listen {boot_addr} --registry {registry} --ca-file {ca_file}",
        &["core", "boot"],
        &[],
        &dir.path().join("https"),
    );
    assert!(
        log.contains("over https"),
        "the backend reached the registry over HTTPS\n{text}"
    );

    // Token flow on, CA from REQUESTS_CA_BUNDLE only (the oracle of the boot profile reads registries
    // without tokens, so core only).
    let (text, log) = certifies_python(
        &py,
        "--listen {boot_addr} --registry {registry} --registry-scheme {registry_scheme}",
        &["core"],
        &["--registry-auth", "token"],
        &dir.path().join("token"),
    );
    assert!(
        log.contains("bearer token for 127.0.0.1:"),
        "the backend answered the registry's token challenge\n{text}"
    );
}

#[test]
fn conformance_ca_file_over_plain_http_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_certify(
        &[
            "--registry-scheme",
            "http",
            "--backend-cmd",
            "sleep 30 --ca {ca_file}",
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("{ca_file}") && stderr.contains("--registry-scheme http"),
        "{stderr}"
    );
}
