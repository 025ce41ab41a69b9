//! The reference backend in its correct mode, run as a process through `certify --embedded` as any vendor's
//! backend is, certifies `extended`: every rule of every profile passes, crashes are judged through the process.

use std::process::Command;

#[test]
fn conformance_reference_backend_certifies_extended_on_every_profile() {
    let exe = env!("CARGO_BIN_EXE_conformance");
    let dir = tempfile::tempdir().unwrap();
    let backend = format!("{exe} reference-backend --listen {{boot_addr}} --registry {{registry}}");
    let out = Command::new(exe)
        .args(["certify", "--embedded", "--backend-cmd", &backend])
        .args(["--profile", "core,boot,resilience,scale", "--scale", "20"])
        .args(["--level", "extended", "--quiet"])
        .args(["--implementation", "sim-boot"])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .expect("run conformance");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let not_passed: Vec<_> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["requested"] == true && r["verdict"] != "pass")
        .map(|r| format!("{} {}: {}", r["id"], r["verdict"], r["reasons"]))
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    assert_eq!(report["certification"]["metLevel"], "extended");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for profile in ["core", "boot", "resilience", "scale"] {
        assert!(
            stdout.contains(&format!("{profile}: extended CONFORMANT")),
            "{profile}: {stdout}"
        );
    }
}
