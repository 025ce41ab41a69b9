//! The `certify --embedded --backend-cmd` path end to end: the real binary starts the embedded API server,
//! supervises the backend as a child process (here the reference backend subcommand), and writes the reports.

use std::process::Command;

fn certify(
    mode: &str,
    report_dir: &std::path::Path,
    rules: &[&str],
) -> (i32, serde_json::Value, String) {
    let exe = env!("CARGO_BIN_EXE_conformance");
    let backend = format!(
        "{exe} reference-backend --listen {{boot_addr}} --registry {{registry}} --misbehave {mode}"
    );
    let mut cmd = Command::new(exe);
    cmd.args([
        "certify",
        "--embedded",
        "--backend-cmd",
        &backend,
        "--profile",
        "core,boot",
        "--quiet",
    ])
    .args([
        "--implementation",
        "sim-boot",
        "--implementation-version",
        mode,
    ])
    .arg("--report-dir")
    .arg(report_dir);
    for r in rules {
        cmd.args(["--rule", r]);
    }
    let out = cmd.output().expect("run conformance");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let report = std::fs::read_to_string(report_dir.join("report.json")).unwrap_or_else(|_| {
        panic!(
            "no report; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&report).expect("report.json"),
        stdout,
    )
}

#[test]
fn embedded_certify_passes_the_reference_backend_and_fails_a_liar() {
    let dir = tempfile::tempdir().unwrap();
    let rules = [
        "SBC-CORE-001",
        "SBC-IGN-001",
        "SBC-BOOT-001",
        "SBC-BOOT-002",
    ];
    let (code, report, stdout) = certify("none", &dir.path().join("honest"), &rules);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(report["result"], "success", "{stdout}");
    assert!(stdout.contains("SUCCESS"), "{stdout}");
    for file in ["report.yaml", "junit.xml", "summary.md", "backend.log"] {
        assert!(dir.path().join("honest").join(file).exists(), "{file}");
    }

    let (code, report, stdout) = certify("wrong-ignition", &dir.path().join("liar"), &rules);
    assert_eq!(code, 1, "{stdout}");
    let boot002 = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "SBC-BOOT-002")
        .unwrap();
    assert_eq!(boot002["verdict"], "fail", "{stdout}");
    assert!(report["command"].as_str().unwrap().contains("--embedded"));
}
