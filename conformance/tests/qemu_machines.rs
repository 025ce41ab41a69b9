//! `certify --embedded --machines qemu`: the boot profile with real VMs (iPXE ROM, the Debian kernel, a busybox
//! test OS). The reference backend passes; the same backend behind a proxy that puts a UTF-8 byte-order mark
//! before its iPXE scripts fails, although the simulated firmware (which skips the mark) passes it: only real
//! iPXE judges that script. Skips, saying why, without qemu, the iPXE ROM, a kernel, busybox or python3.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Forwards GETs to the reference backend and marks iPXE scripts with a BOM.
const BOM_PROXY: &str = r##"
import http.server, sys, urllib.request, urllib.error
listen, upstream = sys.argv[1], sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with urllib.request.urlopen("http://" + upstream + self.path, timeout=60) as r:
                body, status, ctype = r.read(), r.status, r.headers.get("Content-Type", "text/plain")
        except urllib.error.HTTPError as e:
            body, status, ctype = e.read(), e.code, e.headers.get("Content-Type", "text/plain")
        if body.startswith(b"#!ipxe"):
            body = b"\xef\xbb\xbf" + body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
host, port = listen.rsplit(":", 1)
http.server.ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
"##;

fn skip_reason() -> Option<String> {
    if let Some(why) =
        qemu_machines::RealMachines::unavailable(&qemu_machines::QemuOptions::default())
    {
        return Some(why);
    }
    let python = Command::new("python3").arg("--version").output();
    (!python.is_ok_and(|o| o.status.success())).then(|| "no python3 for the proxy".to_string())
}

fn reference_backend(listen: &str) -> String {
    format!(
        "{} reference-backend --listen {listen} --registry {{registry}} --boot-modes ipxe",
        env!("CARGO_BIN_EXE_conformance")
    )
}

struct Outcome {
    code: i32,
    report: Value,
    stderr: String,
}

impl Outcome {
    /// The report's entry for rule `id` (`Null` when the report has none).
    fn rule(&self, id: &str) -> &Value {
        let rules = self.report["rules"].as_array().unwrap();
        rules.iter().find(|r| r["id"] == id).unwrap_or(&Value::Null)
    }

    fn verdict(&self, rule: &str) -> String {
        self.rule(rule)["verdict"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn reasons(&self, rule: &str) -> String {
        match self.rule(rule) {
            Value::Null => String::new(),
            found => found["reasons"].to_string(),
        }
    }
}

fn certify(backend: &str, report_dir: &Path, machines: &str) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(["certify", "--embedded", "--backend-cmd", backend, "--quiet"])
        .args(["--machines", machines, "--profile", "boot"])
        .args(["--rule", "SBC-BOOT-001", "--rule", "SBC-BOOT-002"])
        .arg("--report-dir")
        .arg(report_dir)
        .output()
        .expect("run conformance");
    let report = std::fs::read_to_string(report_dir.join("report.json")).unwrap_or_else(|e| {
        panic!(
            "no report.json ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Outcome {
        code: out.status.code().unwrap_or(-1),
        report: serde_json::from_str(&report).expect("report.json"),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

#[test]
fn real_machines_pass_the_reference_backend_and_fail_a_script_real_ipxe_rejects() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    let honest_dir = dir.path().join("honest");
    let honest = certify(&reference_backend("{boot_addr}"), &honest_dir, "qemu");
    println!("{}", honest.stderr);
    assert_eq!(honest.code, 0, "{}", honest.stderr);
    for rule in ["SBC-BOOT-001", "SBC-BOOT-002"] {
        assert_eq!(
            honest.verdict(rule),
            "pass",
            "{rule}: {}",
            honest.reasons(rule)
        );
    }
    // The run names its machines: the report directory's machines.json and the summary line.
    let machines: Value = serde_json::from_slice(
        &std::fs::read(honest_dir.join("machines.json")).expect("machines.json"),
    )
    .unwrap();
    assert_eq!(machines["driver"], "qemu");
    assert!(
        !machines["machines"].as_array().unwrap().is_empty(),
        "{machines}"
    );
    assert!(
        honest.stderr.contains("machines: qemu"),
        "{}",
        honest.stderr
    );

    let proxy = dir.path().join("bom_proxy.py");
    std::fs::write(&proxy, BOM_PROXY).unwrap();
    let upstream = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let marked = format!(
        "{} & exec python3 {} {{boot_addr}} {upstream}",
        reference_backend(&upstream.to_string()),
        proxy.display()
    );
    // The simulated firmware skips the mark and boots: it cannot judge this script.
    let simulated = certify(&marked, &dir.path().join("simulated"), "simulated");
    assert_eq!(
        simulated.verdict("SBC-BOOT-001"),
        "pass",
        "{}",
        simulated.reasons("SBC-BOOT-001")
    );
    // Real iPXE does not run a script that does not start with #!ipxe.
    let real = certify(&marked, &dir.path().join("real"), "qemu");
    assert_ne!(real.code, 0, "{}", real.stderr);
    assert_eq!(
        real.verdict("SBC-BOOT-001"),
        "fail",
        "{}",
        real.reasons("SBC-BOOT-001")
    );
    println!("real iPXE: {}", real.reasons("SBC-BOOT-001"));
}
