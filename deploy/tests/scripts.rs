//! The hack/ scripts: shellcheck-clean, and without a container engine they stop at once and name
//! every missing tool. With docker and kind present, the ignored `kind_quickstart` runs the whole path.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use deploy::tools::{container_engine_missing, installed, repo_root, run_tool};

const SCRIPTS: &[&str] = &[
    "hack/lib.sh",
    "hack/kind-up.sh",
    "hack/kind-conformance.sh",
    "hack/container-images.sh",
];

#[test]
fn scripts_are_shellcheck_clean() {
    if !installed("shellcheck") {
        println!(
            "SKIP: shellcheck is not installed (apt-get install shellcheck); the scripts were not linted"
        );
        return;
    }
    let root = repo_root();
    let paths: Vec<PathBuf> = SCRIPTS.iter().map(|s| root.join(s)).collect();
    let mut args = vec!["-x".as_ref(), "--severity=style".as_ref()];
    args.extend(paths.iter().map(|p| p.as_os_str()));
    if let Err(e) = run_tool("shellcheck", &args) {
        panic!("shellcheck found problems:\n{e}");
    }
}

/// A PATH holding only the tools the scripts use besides docker and kind.
fn path_without_container_tools(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in [
        "bash", "dirname", "basename", "awk", "grep", "sed", "kubectl", "mktemp", "rm",
    ] {
        if let Some(found) = which(tool) {
            symlink(found, bin.join(tool)).unwrap();
        }
    }
    bin
}

/// Runs `script` with only `path` on PATH; it must exit 2. Returns its stderr.
fn refused_with_2(path: &Path, script: &str) -> String {
    let out = Command::new(path.join("bash"))
        .arg(repo_root().join(script))
        .env("PATH", path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{script}: {stderr}");
    stderr
}

#[test]
fn scripts_name_every_missing_tool_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_without_container_tools(dir.path());
    for script in ["hack/kind-up.sh", "hack/kind-conformance.sh"] {
        let stderr = refused_with_2(&path, script);
        assert!(stderr.contains("missing tools"), "{script}: {stderr}");
        assert!(
            stderr.contains("- docker:") && stderr.contains("- kind:"),
            "{script} must name docker and kind: {stderr}"
        );
        assert!(
            !stderr.contains("- kubectl:"),
            "{script}: kubectl is present: {stderr}"
        );
    }
}

/// A docker CLI without a daemon (common on CI machines) is reported as such, not as a build failure.
#[test]
fn a_docker_cli_without_a_daemon_is_reported() {
    let Some(docker) = which("docker") else {
        println!("SKIP: no docker CLI on this machine");
        return;
    };
    if run_tool("docker", &["info"]).is_ok() {
        println!("SKIP: a Docker daemon answers here; the no-daemon message cannot be provoked");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = path_without_container_tools(dir.path());
    symlink(docker, path.join("docker")).unwrap();
    // kind only has to exist for the scripts to get as far as asking the daemon.
    let kind = path.join("kind");
    std::fs::write(&kind, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&kind, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for script in ["hack/kind-up.sh", "hack/kind-conformance.sh"] {
        let stderr = refused_with_2(&path, script);
        assert!(
            stderr.contains("no Docker daemon answers"),
            "{script}: {stderr}"
        );
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Without docker, hack/container-images.sh stops before doing anything and names it.
#[test]
fn container_images_names_a_missing_docker() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_without_container_tools(dir.path());
    let out = Command::new(path.join("bash"))
        .arg(repo_root().join("hack/container-images.sh"))
        .env("PATH", &path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing tool: docker"), "{stderr}");
    let bad = Command::new("bash")
        .arg(repo_root().join("hack/container-images.sh"))
        .args(["--images", "sim-bmc,frobnicator"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown image 'frobnicator'"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn unknown_arguments_are_refused_and_help_is_printed() {
    for script in [
        "hack/kind-up.sh",
        "hack/kind-conformance.sh",
        "hack/container-images.sh",
    ] {
        let help = Command::new("bash")
            .arg(repo_root().join(script))
            .arg("--help")
            .output()
            .unwrap();
        assert!(help.status.success(), "{script} --help");
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("Usage: hack/"),
            "{script} --help"
        );
        let bad = Command::new("bash")
            .arg(repo_root().join(script))
            .arg("--frobnicate")
            .output()
            .unwrap();
        assert_eq!(bad.status.code(), Some(2), "{script}");
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("unknown argument '--frobnicate'"),
            "{script}"
        );
    }
}

/// The real thing: a kind cluster with the images, the overlay, and the conformance core profile
/// against in-cluster sim-boot. Needs docker (with a daemon) and kind; takes minutes.
#[test]
#[ignore = "creates a kind cluster (docker + kind, several minutes): cargo test -p deploy -- --ignored kind_quickstart"]
fn kind_quickstart() {
    if let Some(why) = container_engine_missing() {
        println!("SKIP: {why}");
        return;
    }
    let root = repo_root();
    for script in ["hack/kind-up.sh", "hack/kind-conformance.sh"] {
        let status = Command::new("bash")
            .arg(root.join(script))
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(status.success(), "{script} failed: {status}");
    }
}
