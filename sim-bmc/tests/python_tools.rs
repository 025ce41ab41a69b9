//! Real third-party Redfish clients (sushy, python-redfish) and DMTF's validators against live BMCs.
//! They need the Python venv from `.ci/run` (METAL_HARNESS_PYTHON); without it they say why and pass.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use sim_bmc::vendor::Vendor;
use sim_bmc::{Fleet, FleetHandle, FleetOptions, FleetSpec};

fn python() -> Option<PathBuf> {
    match std::env::var_os("METAL_HARNESS_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!(
                "SKIP: METAL_HARNESS_PYTHON is not set (run via .ci/run, which creates the venv from .ci/python-requirements.txt)"
            );
            None
        }
    }
}

/// A console script installed next to the venv's interpreter.
fn venv_tool(py: &Path, name: &str) -> PathBuf {
    py.parent().expect("venv bin dir").join(name)
}

/// A DMTF validator from the venv, pointed at `bmc` with HTTP Basic credentials.
fn validator(py: &Path, tool: &str, bmc: &sim_bmc::BmcInfo) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(venv_tool(py, tool));
    command.args(["-r", &bmc.url, "-u", &bmc.username, "-p", &bmc.password]);
    command.args(["--authtype", "Basic"]);
    command
}

async fn run(cmd: &mut tokio::process::Command) -> Output {
    cmd.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("tool finished within 240 s")
        .expect("tool started")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn live_fleet(vendor: Vendor) -> FleetHandle {
    let yaml = format!(
        "seed: 11\nbmcs:\n  - name: v\n    vendor: {}\n    latencies: {{powerOnMs: 50, powerOffMs: 50, gracefulShutdownMs: 50, postMs: 10}}\n",
        vendor.as_str()
    );
    Fleet::start(
        FleetSpec::from_yaml(&yaml).unwrap(),
        FleetOptions::default(),
    )
    .await
    .expect("fleet starts")
}

/// The DMTF CSDL bundled in the nv-redfish-schema crate (a dev-dependency, so cargo has it unpacked).
fn csdl_dir() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo"));
    let src = home.join("registry").join("src");
    for index in std::fs::read_dir(&src).expect("cargo registry src") {
        let dir = index
            .unwrap()
            .path()
            .join("nv-redfish-schema-0.22.1/redfish-csdl/csdl");
        if dir.join("ComputerSystem_v1.xml").exists() {
            return dir;
        }
    }
    panic!("nv-redfish-schema CSDL not found under {}", src.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sushy_and_python_redfish_drive_a_full_cycle() {
    let Some(py) = python() else { return };
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    for vendor in [Vendor::Dell, Vendor::Hpe, Vendor::Ami] {
        let fleet = live_fleet(vendor).await;
        let b = fleet.bmcs()[0].clone();
        for script in ["sushy_cycle.py", "redfish_cycle.py"] {
            let out = run(tokio::process::Command::new(&py)
                .arg(here.join(script))
                .args([&b.url, &b.username, &b.password, &b.systems[0].odata_id]))
            .await;
            assert!(
                out.status.success(),
                "{script} against {vendor:?}:\n{}",
                text(&out)
            );
        }
        let machine = fleet.machine(&b.systems[0].uuid).unwrap();
        let resets = machine
            .events()
            .into_iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    sim_bmc::MachineEventKind::ResetRequested { accepted: true, .. }
                )
            })
            .count();
        assert_eq!(resets, 6, "sushy: On+ForceOff, redfish: 2x(On+ForceOff)");
        fleet.shutdown().await;
    }
}

/// (PASS, WARN, FAIL) from the service validator's summary table.
fn service_counts(out: &str) -> (u64, u64, u64) {
    let re = regex::Regex::new(r"\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|").unwrap();
    let c = re
        .captures_iter(out)
        .last()
        .unwrap_or_else(|| panic!("no summary table in:\n{out}"));
    (
        c[1].parse().unwrap(),
        c[2].parse().unwrap(),
        c[3].parse().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_validator_passes_every_flavour_offline() {
    let Some(py) = python() else { return };
    let csdl = csdl_dir();
    for vendor in Vendor::ALL {
        let fleet = live_fleet(vendor).await;
        let b = fleet.bmcs()[0].clone();
        let logs = tempfile::tempdir().unwrap();
        let out = run(validator(&py, "rf_service_validator", &b)
            .arg("--schema_directory")
            .arg(&csdl)
            .arg("--logdir")
            .arg(logs.path()))
        .await;
        let all = text(&out);
        let (pass, warn, fail) = service_counts(&all);
        eprintln!("service validator {vendor:?}: PASS {pass} WARN {warn} FAIL {fail}");
        assert!(
            pass > 500,
            "{vendor:?}: too few PASS ({pass}); schemas not found?\n{all}"
        );
        assert_eq!(fail, 0, "{vendor:?}: service validator FAILs:\n{all}");
        fleet.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_validator_accepts_the_metal_operator_profile() {
    let Some(py) = python() else { return };
    let profile =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/profiles/SimBmcBaseline.v1_0_0.json");
    for vendor in Vendor::ALL {
        let fleet = live_fleet(vendor).await;
        let b = fleet.bmcs()[0].clone();
        let logs = tempfile::tempdir().unwrap();
        let out = run(validator(&py, "rf_interop_validator", &b)
            .arg("--logdir")
            .arg(logs.path())
            .arg(&profile))
        .await;
        let all = text(&out);
        let (pass, warn, fail) = service_counts(&all);
        eprintln!("interop validator {vendor:?}: PASS {pass} WARN {warn} FAIL {fail}");
        assert!(
            out.status.success() && fail == 0 && pass > 20,
            "{vendor:?}:\n{all}"
        );
        fleet.shutdown().await;
    }
}

/// Assertions that only an HTTPS-only service can pass; the plain-HTTP run reports them by design.
const HTTPS_ONLY_ASSERTIONS: &[&str] =
    &["SEC_BASIC_AUTH_OVER_HTTPS", "SEC_SESSION_CREATE_HTTPS_ONLY"];

/// Runs the sim-bmc binary and the protocol validator together inside `unshare -n`; returns
/// (PASS count, FAIL rows).
async fn protocol_validator(py: &Path, vendor: Vendor, https: bool) -> (u64, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let fleet_file = dir.path().join("fleet.yaml");
    let fleet = format!(
        "seed: 3\nbmcs:\n  - {{name: p, vendor: {}}}\nnetwork: {{httpsOnly: {https}}}\n",
        vendor.as_str()
    );
    std::fs::write(&fleet_file, fleet).unwrap();
    let report = dir.path().join("report");
    let (tls_args, scheme) = if https {
        ("--tls --cert-out \"$D/cert.pem\"", "https")
    } else {
        ("", "http")
    };
    // The BMC runs inside the namespace too (the binary), so that only loopback exists for both.
    // REQUESTS_CA_BUNDLE: the validator verifies TLS in every session, not only where --ca-bundle reaches.
    let script = format!(
        r#"set -e
D="{dir}"
ip link set lo up
"{bin}" --fleet "{fleet}" {tls_args} > "$D/bmc.out" 2>&1 &
BMC=$!
trap 'kill $BMC' EXIT
for i in $(seq 100); do grep -q '^p ' "$D/bmc.out" && break; sleep 0.1; done
URL=$(awk '/^p /{{print $3}}' "$D/bmc.out" | sed 's#^http:#{scheme}:#')
[ -f "$D/cert.pem" ] && export REQUESTS_CA_BUNDLE="$D/cert.pem"
"{validator}" -r "$URL" -u admin -p password --report-dir "{report}" --report-type tsv || true
"#,
        bin = env!("CARGO_BIN_EXE_sim-bmc"),
        fleet = fleet_file.display(),
        dir = dir.path().display(),
        validator = venv_tool(py, "rf_protocol_validator").display(),
        report = report.display(),
    );
    let out =
        run(tokio::process::Command::new("unshare").args(["-n", "bash", "-c", &script])).await;
    let all = text(&out);
    let summary = regex::Regex::new(r"PASS: (\d+), WARN: (\d+), FAIL: (\d+)").unwrap();
    let c = summary
        .captures(&all)
        .unwrap_or_else(|| panic!("no summary:\n{all}"));
    eprintln!(
        "protocol validator {vendor:?} https={https}: PASS {} WARN {} FAIL {}",
        &c[1], &c[2], &c[3]
    );
    let tsv = std::fs::read_dir(&report)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "tsv"))
        .expect("tsv report");
    let fails = std::fs::read_to_string(tsv)
        .unwrap()
        .lines()
        .filter(|l| l.split('\t').nth(4) == Some("FAIL"))
        .map(str::to_string)
        .collect();
    (c[1].parse().unwrap(), fails)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_validator_in_a_private_network_namespace() {
    let Some(py) = python() else { return };
    let probe = std::process::Command::new("unshare")
        .args(["-n", "ip", "link", "set", "lo", "up"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIP: `unshare -n ip link set lo up` does not work here; the protocol validator sends SSDP multicast and must stay in a netns"
        );
        return;
    }
    for vendor in [Vendor::Dell, Vendor::Hpe, Vendor::Ami] {
        // HTTPS-only, as a production BMC: no FAIL at all.
        let (pass, fails) = protocol_validator(&py, vendor, true).await;
        assert!(pass > 300, "{vendor:?}: too few PASS over HTTPS");
        assert!(
            fails.is_empty(),
            "{vendor:?} over HTTPS:\n{}",
            fails.join("\n")
        );
    }
    // Plain HTTP (how metal-operator's tests talk to BMCs): only the HTTPS-only rules may fail.
    let (pass, fails) = protocol_validator(&py, Vendor::Dell, false).await;
    let unexpected: Vec<_> = fails
        .iter()
        .filter(|l| !HTTPS_ONLY_ASSERTIONS.iter().any(|a| l.starts_with(a)))
        .collect();
    assert!(pass > 300, "too few PASS over HTTP");
    assert!(unexpected.is_empty(), "over HTTP:\n{unexpected:?}");
}
