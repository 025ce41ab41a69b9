//! External tools the checks drive (kubectl, shellcheck, docker, kind) and where the repository is.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Upper bound for one tool invocation, so a hung kubectl cannot hang the test suite.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("`{tool}` is not installed or not on PATH ({source})")]
    Missing {
        tool: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` did not finish within {timeout:?}")]
    TimedOut { command: String, timeout: Duration },
    #[error("`{command}`: {source}")]
    Io {
        command: String,
        source: std::io::Error,
    },
}

/// The workspace root (this crate lives in `<root>/deploy`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `tool args...` with a bounded wait, returning stdout; stderr is in the error.
pub fn run_tool<S: AsRef<OsStr>>(tool: &str, args: &[S]) -> Result<String, ToolError> {
    run_tool_with_env(tool, args, &[])
}

pub fn run_tool_with_env<S: AsRef<OsStr>>(
    tool: &str,
    args: &[S],
    env: &[(&str, &OsStr)],
) -> Result<String, ToolError> {
    let command = std::iter::once(tool.to_string())
        .chain(
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ToolError::Missing {
            tool: tool.into(),
            source,
        },
        _ => ToolError::Io {
            command: command.clone(),
            source,
        },
    })?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(TOOL_TIMEOUT) {
        Ok(out) => out.map_err(|source| ToolError::Io {
            command: command.clone(),
            source,
        })?,
        Err(_) => {
            return Err(ToolError::TimedOut {
                command,
                timeout: TOOL_TIMEOUT,
            });
        }
    };
    if !output.status.success() {
        return Err(ToolError::Failed {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether `tool` can be executed at all.
pub fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Why a container-engine test cannot run here, or `None` when docker (with a reachable daemon) and kind exist.
/// A docker client without a daemon is common on CI machines, so the daemon is asked, not just the binary.
pub fn container_engine_missing() -> Option<String> {
    if !installed("docker") {
        return Some("the docker CLI is not installed".into());
    }
    if let Err(e) = run_tool("docker", &["info", "--format", "{{.ServerVersion}}"]) {
        return Some(format!("no Docker daemon is reachable: {e}"));
    }
    if !installed("kind") {
        return Some(
            "kind is not installed (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
                .into(),
        );
    }
    None
}
