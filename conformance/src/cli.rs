//! The `conformance` command line: `certify` against a kubeconfig or an embedded API server with a backend command,
//! plus `contract` (prints CONTRACT.md) and `rules` (one line per rule).

use crate::level::ConformanceLevel;
use crate::rules::{Profile, RULES};
use crate::runner::{DEFAULT_CONCURRENCY, Selection};
use crate::timeouts::Timeouts;
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "conformance",
    version,
    about = "Certify a boot backend against the ServerBootConfiguration readiness contract"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the suite against a backend and write the report.
    Certify(Box<CertifyArgs>),
    /// Print CONTRACT.md (the rules, their levels, profiles and checks).
    Contract,
    /// List rule IDs with level, profile and tier.
    Rules,
    /// Run sim-boot, the reference backend, as a process (for `certify --embedded --backend-cmd` demos and tests):
    /// KUBECONFIG from the environment, images from `--registry`.
    ReferenceBackend(ReferenceBackendArgs),
}

#[derive(Debug, Args)]
pub struct ReferenceBackendArgs {
    /// Boot server listen address.
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// The registry images may come from (host:port; HTTPS, trusting SSL_CERT_FILE, unless also listed in
    /// --insecure-registries).
    #[arg(long)]
    pub registry: String,
    /// Registries reached over plain HTTP (host:port, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub insecure_registries: Vec<String>,
    /// A sim-boot misbehaviour mode (`none` for the honest backend).
    #[arg(long, default_value = "none")]
    pub misbehave: String,
    /// Boot modes served (and whose layers images must have): ipxe, http. The QEMU test OS has no UKI: `ipxe`.
    #[arg(long, value_delimiter = ',', default_value = "ipxe,http")]
    pub boot_modes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CertifyArgs {
    /// Run against the cluster in this kubeconfig (the backend must already be running there).
    #[arg(
        long,
        conflicts_with = "embedded",
        required_unless_present = "embedded"
    )]
    pub kubeconfig: Option<PathBuf>,
    /// Start the embedded API server with the metal CRDs and run `--backend-cmd` against it.
    #[arg(long, requires = "backend_cmd")]
    pub embedded: bool,
    /// The backend under test, run through `sh -c` with KUBECONFIG set (and, over HTTPS, SSL_CERT_FILE,
    /// REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE and NODE_EXTRA_CA_CERTS trusting the registries' CA). Substituted:
    /// `{kubeconfig}`, `{registry}` (host:port of the built-in OCI registry the backend must allow, no scheme),
    /// `{disallowed_registry}` (same images, a host it must refuse), `{registry_scheme}` (https or http),
    /// `{ca_file}` (PEM of the registries' per-run CA) and `{boot_addr}` (where its boot server must listen).
    #[arg(long)]
    pub backend_cmd: Option<String>,
    /// Embedded mode: how the built-in registries serve: https (a CA generated per run) or plain http.
    #[arg(long, value_enum, default_value = "https")]
    pub registry_scheme: testbed::registries::RegistryScheme,
    /// Embedded mode: `token` makes the built-in registries demand the bearer-token flow of public registries
    /// (anonymous pull tokens from their own /token endpoint).
    #[arg(long, value_enum, default_value = "none")]
    pub registry_auth: testbed::registries::RegistryAuthMode,
    /// Kubeconfig mode: a command that restarts the backend (enables `resilience.backend-restart`).
    #[arg(long, conflicts_with = "embedded")]
    pub backend_restart_cmd: Option<String>,
    /// Kubeconfig mode: the namespace the backend's pods run in (with `--backend-pod-selector`). The suite then
    /// observes their container restarts and terminations (SBC-RES-005); without it that rule is Skip.
    #[arg(long, conflicts_with = "embedded", requires = "backend_pod_selector")]
    pub backend_namespace: Option<String>,
    /// Kubeconfig mode: a label selector for the backend's pods, e.g. `app.kubernetes.io/name=boot-operator`.
    #[arg(long, conflicts_with = "embedded", requires = "backend_namespace")]
    pub backend_pod_selector: Option<String>,

    /// Name of the implementation under test, for the report.
    #[arg(long, default_value = "unnamed-backend")]
    pub implementation: String,
    /// Version of the implementation under test, for the report.
    #[arg(long, default_value = "unknown")]
    pub implementation_version: String,

    /// Profiles to run (comma-separated): core, boot, resilience, scale.
    #[arg(long, value_delimiter = ',', default_value = "core", value_parser = parse_profile)]
    pub profile: Vec<Profile>,
    /// The conformance level to certify: `baseline` (every requested baseline MUST rule passes) or `extended`
    /// (baseline plus every requested extension MUST rule). The exit code is 0 exactly when it is met.
    #[arg(long, default_value = "baseline", value_parser = parse_level)]
    pub level: ConformanceLevel,
    /// Only these rules (repeatable, e.g. `--rule SBC-IGN-001`); default: every rule of the profiles.
    #[arg(long = "rule", value_parser = parse_rule)]
    pub rules: Vec<String>,

    /// A bootable image (default in embedded mode: the built-in registry's `ironcore/os:1.0`).
    #[arg(long)]
    pub valid_image: Option<String>,
    /// A second bootable image with different artifacts (spec-change checks).
    #[arg(long)]
    pub valid_image_alt: Option<String>,
    /// A reference that does not resolve.
    #[arg(long)]
    pub unresolvable_image: Option<String>,
    /// An image without a kernel layer.
    #[arg(long)]
    pub missing_layer_image: Option<String>,
    /// An image in a registry the backend does not allow.
    #[arg(long)]
    pub disallowed_image: Option<String>,

    /// Boot profile: where a machine fetches its iPXE script; `{uuid}` is the machine's SMBIOS UUID
    /// (embedded default: `http://{boot_addr}/ipxe/{uuid}`).
    #[arg(long)]
    pub boot_url_template: Option<String>,
    /// Boot profile, embedded mode: `simulated` firmware, or `qemu` VMs that boot through real iPXE into a test
    /// OS built from this machine's kernel and busybox (the built-in OS images become that OS).
    #[arg(long, value_enum, default_value = "simulated", requires = "embedded")]
    pub machines: crate::boot_net::Machines,
    /// Boot profile, embedded mode: the loopback address the backend's boot server listens on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub boot_addr: String,

    /// Override a published timeout, `NAME=SECONDS` (repeatable); names as in CONTRACT.md.
    #[arg(long = "timeout", value_parser = parse_timeout)]
    pub timeouts: Vec<(String, Duration)>,
    /// Number of SBCs the scale profile creates at once.
    #[arg(long, default_value_t = 50)]
    pub scale: usize,
    /// Checks run at once in the core and boot phase.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Where report.yaml, report.json, junit.xml, summary.md (and backend.log) go.
    #[arg(long, default_value = "conformance-report")]
    pub report_dir: PathBuf,
    /// No live progress display.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    Profile::parse(s)
        .ok_or_else(|| format!("unknown profile {s:?}; known: core, boot, resilience, scale"))
}

fn parse_level(s: &str) -> Result<ConformanceLevel, String> {
    ConformanceLevel::parse(s)
        .ok_or_else(|| format!("unknown level {s:?}; known: baseline, extended"))
}

fn parse_rule(s: &str) -> Result<String, String> {
    let id = s.trim().to_ascii_uppercase();
    match RULES.iter().find(|r| r.id == id) {
        Some(r) => Ok(r.id.to_string()),
        None => Err(format!(
            "unknown rule {s:?}; `conformance rules` lists them"
        )),
    }
}

fn parse_timeout(s: &str) -> Result<(String, Duration), String> {
    let (name, secs) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=SECONDS, got {s:?}"))?;
    let secs: f64 = secs
        .parse()
        .map_err(|_| format!("{secs:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!(
            "timeout {name} must be a positive number of seconds"
        ));
    }
    // Validate the name now, so a typo fails before anything starts.
    Timeouts::default().set(name, Duration::from_secs_f64(secs))?;
    Ok((name.to_string(), Duration::from_secs_f64(secs)))
}

impl CertifyArgs {
    pub fn selection(&self) -> Selection {
        Selection {
            profiles: self.profile.iter().copied().collect(),
            rules: (!self.rules.is_empty())
                .then(|| self.rules.iter().cloned().collect::<BTreeSet<_>>()),
        }
    }

    pub fn timeouts(&self) -> Timeouts {
        let mut t = Timeouts::default();
        for (name, value) in &self.timeouts {
            // Names were validated while parsing.
            let _ = t.set(name, *value);
        }
        t
    }
}

/// The command line that reproduces a run, quoted for a POSIX shell.
pub fn reproduce_command(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("conformance").chain(args.iter().copied()))
    }

    #[test]
    fn certify_parses_profiles_rules_and_timeouts() {
        let cli = parse(&[
            "certify",
            "--kubeconfig",
            "/k",
            "--profile",
            "core,boot",
            "--rule",
            "sbc-ign-001",
            "--timeout",
            "time-to-ready=12.5",
        ])
        .unwrap();
        let Command::Certify(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.profile, vec![Profile::Core, Profile::Boot]);
        assert_eq!(a.rules, vec!["SBC-IGN-001"]);
        assert_eq!(a.timeouts().time_to_ready, Duration::from_millis(12_500));
    }

    #[test]
    fn bad_arguments_get_clear_errors() {
        let e = parse(&["certify", "--kubeconfig", "/k", "--profile", "speed"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown profile"), "{e}");
        let e = parse(&["certify", "--kubeconfig", "/k", "--rule", "SBC-NOPE-001"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown rule"), "{e}");
        let e = parse(&["certify", "--kubeconfig", "/k", "--timeout", "ready=3"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown timeout"), "{e}");
        let e = parse(&["certify", "--embedded"]).unwrap_err().to_string();
        assert!(e.contains("--backend-cmd"), "{e}");
    }

    #[test]
    fn reproduce_command_quotes_what_needs_it() {
        let cmd = reproduce_command(
            [
                "conformance",
                "--backend-cmd",
                "sim-boot --listen x",
                "it's",
            ]
            .map(String::from),
        );
        assert_eq!(
            cmd,
            r#"conformance --backend-cmd 'sim-boot --listen x' 'it'\''s'"#
        );
    }
}
