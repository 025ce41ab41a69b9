//! Command-line flags (upstream names and defaults) and the resolved runtime configuration.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use metal_api::duration::parse as parse_duration;

/// How strictly power-on waits for the ServerBootConfiguration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ReadinessGate {
    /// Ready only when `status.state == Ready` and no condition stamped with `observedGeneration`
    /// lags `metadata.generation`; SBC errors are surfaced. Default.
    #[default]
    Strict,
    /// Upstream behaviour: `status.state == Ready`, nothing more.
    Upstream,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Flags of the `metal-operator` binary. Names and defaults follow upstream's `cmd/main.go`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "metal-operator",
    version,
    about = "Bare-metal server lifecycle operator (metal.ironcore.dev)"
)]
pub struct Flags {
    /// Path to a kubeconfig; in-cluster configuration (or $KUBECONFIG) when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Address the metrics endpoint binds to ("0" disables it).
    #[arg(long, default_value = ":8080")]
    pub metrics_bind_address: String,
    /// Address the health probe endpoint binds to.
    #[arg(long, default_value = ":8081")]
    pub health_probe_bind_address: String,
    /// Enable leader election (a coordination.k8s.io Lease) so only one instance is active.
    #[arg(long, default_value_t = false)]
    pub leader_elect: bool,
    /// Lease name used for leader election.
    #[arg(long, default_value = "f26702e4.ironcore.dev")]
    pub leader_election_id: String,
    /// Namespace of the leader election Lease (defaults to --manager-namespace).
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    /// Location of the MAC prefix database file (Endpoint controller).
    #[arg(long, default_value = "")]
    pub mac_prefixes_file: String,
    /// Image of the probe agent started by the discovery ignition.
    #[arg(long, default_value = "")]
    pub probe_image: String,
    /// OS image booted for discovery (the discovery SBC's `spec.image`).
    #[arg(long, default_value = "")]
    pub probe_os_image: String,
    /// Port of the embedded registry server.
    #[arg(long, default_value_t = 10000)]
    pub registry_port: u16,
    /// Protocol of the registry URL handed to the probe.
    #[arg(long, default_value = "http")]
    pub registry_protocol: String,
    /// Registry URL handed to the probe and used by the operator; else REGISTRY_ADDRESS + port.
    #[arg(long, default_value = "")]
    pub registry_url: String,
    /// Per-request timeout of the registry client.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub registry_client_timeout: Duration,
    /// Declared upstream, unused there too.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub registry_resync_interval: Duration,
    /// Maximum age of registry data accepted to finish discovery.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub registry_data_max_age: Duration,
    /// Port of the Redfish event receiver.
    #[arg(long, default_value_t = 10001)]
    pub event_port: u16,
    /// Base URL the BMCs push events to; else `<event-protocol>://$EVENT_ADDRESS:<event-port>`.
    /// Subscriptions and the receiver exist only when one of them is set.
    #[arg(long, default_value = "")]
    pub event_url: String,
    /// Protocol of the event URL built from EVENT_ADDRESS.
    #[arg(long, default_value = "http")]
    pub event_protocol: String,
    /// Namespace of the discovery ServerBootConfigurations and their Secrets.
    #[arg(long, default_value = "default")]
    pub manager_namespace: String,
    /// Default BMC scheme (http|https) when BMC.spec.protocol.scheme is unset.
    #[arg(long, default_value = "")]
    pub protocol: String,
    /// Deprecated: use --protocol. true means http.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub insecure: bool,
    /// Skip TLS certificate validation towards BMCs.
    #[arg(long, default_value_t = false)]
    pub skip_cert_validation: bool,
    /// Path of the Butane ignition template for discovery.
    #[arg(long, default_value = "/etc/metal-operator/ignition-template.yaml")]
    pub discovery_ignition_path: String,
    /// Path of a Go-template file rendered per BMC into a Kubernetes object (e.g. a DNSRecord).
    #[arg(long, default_value = "")]
    pub dns_record_template_path: String,
    /// Periodic requeue of every Server.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub server_resync_interval: Duration,
    /// Time in Discovery without progress before the Server returns to Initial.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub discovery_timeout: Duration,
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub power_polling_interval: Duration,
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub power_polling_timeout: Duration,
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub resource_polling_interval: Duration,
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub resource_polling_timeout: Duration,
    /// Power a server off before its first discovery boot.
    #[arg(long, default_value_t = false)]
    pub enforce_first_boot: bool,
    /// Force the power off when a graceful shutdown does not finish within the polling timeout.
    #[arg(long, default_value_t = false)]
    pub enforce_power_off: bool,
    #[arg(long, default_value_t = 5)]
    pub server_max_concurrent_reconciles: u16,
    #[arg(long, default_value_t = 5)]
    pub server_claim_max_concurrent_reconciles: u16,
    /// Auto-reset a BMC after this long unreachable (0 = off).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub bmc_failure_reset_delay: Duration,
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub bmc_reset_resync_interval: Duration,
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub bmc_reset_waiting_interval: Duration,
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub ssh_reset_timeout: Duration,
    /// Vestigial upstream (maintenance was removed); accepted for compatibility.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub maintenance_resync_interval: Duration,
    /// Vestigial upstream; accepted for compatibility.
    #[arg(long, default_value_t = 3)]
    pub default_failed_auto_retry_count: i32,
    /// Webhook port (webhooks are not served by this implementation).
    #[arg(long, default_value_t = 9443)]
    pub webhook_port: u16,
    /// Readiness gate in front of every power-on: strict (default) or upstream.
    #[arg(long, value_enum, default_value_t = ReadinessGate::Strict)]
    pub readiness_gate: ReadinessGate,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Everything the controllers need, independent of how it was obtained (flags or a test).
#[derive(Clone, Debug)]
pub struct Config {
    pub manager_namespace: String,
    pub probe_image: String,
    pub probe_os_image: String,
    /// Base URL of the registry as the probe and the operator reach it.
    pub registry_url: String,
    pub registry_client_timeout: Duration,
    pub registry_data_max_age: Duration,
    pub event_url: String,
    /// Scheme used when BMC.spec.protocol.scheme is unset.
    pub default_bmc_scheme: String,
    pub skip_cert_validation: bool,
    /// Rendered ignition template text (Go template syntax).
    pub discovery_ignition_template: String,
    pub server_resync_interval: Duration,
    pub discovery_timeout: Duration,
    pub power_polling_interval: Duration,
    pub power_polling_timeout: Duration,
    pub resource_polling_interval: Duration,
    pub resource_polling_timeout: Duration,
    pub enforce_first_boot: bool,
    pub enforce_power_off: bool,
    pub server_max_concurrent_reconciles: u16,
    pub server_claim_max_concurrent_reconciles: u16,
    pub bmc_failure_reset_delay: Duration,
    pub bmc_reset_waiting_interval: Duration,
    pub mac_prefixes_file: Option<PathBuf>,
    pub readiness_gate: ReadinessGate,
    /// DNS record template text (`--dns-record-template-path`), rendered per BMC.
    pub dns_record_template: Option<String>,
    /// Bounded backoff for failed reconciles.
    pub error_backoff: Duration,
    pub redfish_request_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            manager_namespace: "default".into(),
            probe_image: String::new(),
            probe_os_image: String::new(),
            registry_url: "http://127.0.0.1:10000".into(),
            registry_client_timeout: Duration::from_secs(5),
            registry_data_max_age: Duration::from_secs(120),
            event_url: String::new(),
            default_bmc_scheme: "http".into(),
            skip_cert_validation: false,
            discovery_ignition_template: crate::discovery::DEFAULT_IGNITION_TEMPLATE.into(),
            server_resync_interval: Duration::from_secs(120),
            discovery_timeout: Duration::from_secs(30 * 60),
            power_polling_interval: Duration::from_secs(5),
            power_polling_timeout: Duration::from_secs(120),
            resource_polling_interval: Duration::from_secs(5),
            resource_polling_timeout: Duration::from_secs(120),
            enforce_first_boot: false,
            enforce_power_off: false,
            server_max_concurrent_reconciles: 5,
            server_claim_max_concurrent_reconciles: 5,
            bmc_failure_reset_delay: Duration::ZERO,
            bmc_reset_waiting_interval: Duration::from_secs(120),
            mac_prefixes_file: None,
            readiness_gate: ReadinessGate::Strict,
            dns_record_template: None,
            error_backoff: Duration::from_secs(5),
            redfish_request_timeout: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Short intervals for an in-process stack (tests, demos): every flow completes in seconds.
    pub fn fast_polling() -> Self {
        Self {
            server_resync_interval: Duration::from_secs(3),
            power_polling_interval: Duration::from_millis(100),
            power_polling_timeout: Duration::from_secs(5),
            resource_polling_interval: Duration::from_millis(100),
            resource_polling_timeout: Duration::from_secs(5),
            error_backoff: Duration::from_millis(300),
            redfish_request_timeout: Duration::from_secs(2),
            ..Self::default()
        }
    }
}

impl Flags {
    /// The DNS record template, as upstream: unreadable or empty is a startup error.
    fn dns_record_template(&self) -> anyhow::Result<Option<String>> {
        let path = &self.dns_record_template_path;
        if path.is_empty() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading --dns-record-template-path {path}: {e}"))?;
        if text.trim().is_empty() {
            anyhow::bail!("--dns-record-template-path {path} is empty");
        }
        crate::dns::validate(&text)
            .map_err(|e| anyhow::anyhow!("--dns-record-template-path {path}: {e}"))?;
        Ok(Some(text))
    }

    /// `--event-url`, else built from the `EVENT_ADDRESS` host as upstream; empty when neither is set.
    fn resolved_event_url(&self) -> String {
        if !self.event_url.is_empty() {
            return self.event_url.clone();
        }
        match std::env::var("EVENT_ADDRESS") {
            Ok(host) if !host.is_empty() => {
                format!("{}://{}:{}", self.event_protocol, host, self.event_port)
            }
            _ => String::new(),
        }
    }

    /// Resolves flags into a [`Config`], reading the ignition template file. Errors are user-facing.
    pub fn to_config(&self) -> anyhow::Result<Config> {
        let registry_url = if !self.registry_url.is_empty() {
            self.registry_url.clone()
        } else {
            let host = std::env::var("REGISTRY_ADDRESS").unwrap_or_else(|_| "127.0.0.1".into());
            format!(
                "{}://{}:{}",
                self.registry_protocol, host, self.registry_port
            )
        };
        let default_bmc_scheme = match self.protocol.as_str() {
            "" if self.insecure => "http",
            "" => "https",
            "http" => "http",
            "https" => "https",
            other => anyhow::bail!("--protocol must be http or https, got {other:?}"),
        };
        let template = match std::fs::read_to_string(&self.discovery_ignition_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %self.discovery_ignition_path, "ignition template not found, using the built-in one");
                crate::discovery::DEFAULT_IGNITION_TEMPLATE.into()
            }
            Err(e) => anyhow::bail!(
                "reading --discovery-ignition-path {}: {e}",
                self.discovery_ignition_path
            ),
        };
        crate::template::validate(&template, "the discovery ignition template").map_err(|e| {
            anyhow::anyhow!(
                "--discovery-ignition-path {}: {e}",
                self.discovery_ignition_path
            )
        })?;
        Ok(Config {
            manager_namespace: self.manager_namespace.clone(),
            probe_image: self.probe_image.clone(),
            probe_os_image: self.probe_os_image.clone(),
            registry_url,
            registry_client_timeout: self.registry_client_timeout,
            registry_data_max_age: self.registry_data_max_age,
            event_url: self.resolved_event_url(),
            default_bmc_scheme: default_bmc_scheme.into(),
            skip_cert_validation: self.skip_cert_validation,
            discovery_ignition_template: template,
            server_resync_interval: self.server_resync_interval,
            discovery_timeout: self.discovery_timeout,
            power_polling_interval: self.power_polling_interval,
            power_polling_timeout: self.power_polling_timeout,
            resource_polling_interval: self.resource_polling_interval,
            resource_polling_timeout: self.resource_polling_timeout,
            enforce_first_boot: self.enforce_first_boot,
            enforce_power_off: self.enforce_power_off,
            server_max_concurrent_reconciles: self.server_max_concurrent_reconciles.max(1),
            server_claim_max_concurrent_reconciles: self
                .server_claim_max_concurrent_reconciles
                .max(1),
            bmc_failure_reset_delay: self.bmc_failure_reset_delay,
            bmc_reset_waiting_interval: self.bmc_reset_waiting_interval,
            mac_prefixes_file: (!self.mac_prefixes_file.is_empty())
                .then(|| PathBuf::from(&self.mac_prefixes_file)),
            readiness_gate: self.readiness_gate,
            dns_record_template: self.dns_record_template()?,
            ..Config::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Go syntax itself is `metal_api::duration`'s to test; this checks the flags go through it.
    #[test]
    fn go_durations_parse() {
        let flags = Flags::parse_from([
            "metal-operator",
            "--server-resync-interval=1h30m",
            "--power-polling-interval=500ms",
            "--bmc-failure-reset-delay=0",
        ]);
        assert_eq!(flags.server_resync_interval, Duration::from_secs(5400));
        assert_eq!(flags.power_polling_interval, Duration::from_millis(500));
        assert_eq!(flags.bmc_failure_reset_delay, Duration::ZERO);
        for bad in ["5 minutes", "m"] {
            let flag = format!("--discovery-timeout={bad}");
            assert!(
                Flags::try_parse_from(["metal-operator", &flag]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn upstream_defaults() {
        let flags = Flags::parse_from(["metal-operator"]);
        assert_eq!(flags.server_resync_interval, Duration::from_secs(120));
        assert_eq!(flags.discovery_timeout, Duration::from_secs(1800));
        assert_eq!(flags.registry_port, 10000);
        assert_eq!(flags.manager_namespace, "default");
        assert_eq!(flags.readiness_gate, ReadinessGate::Strict);
        let config = Flags::parse_from([
            "metal-operator",
            "--readiness-gate=upstream",
            "--insecure=false",
        ])
        .to_config()
        .unwrap();
        assert_eq!(config.readiness_gate, ReadinessGate::Upstream);
        assert_eq!(config.default_bmc_scheme, "https");
    }
}
