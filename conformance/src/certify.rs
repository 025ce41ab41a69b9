//! `conformance certify`: assembles the target (kubeconfig or embedded), runs the suite, writes the reports, and
//! decides the exit code. Ctrl-C cancels the run; every check still deletes what it created.

use crate::cli::{CertifyArgs, reproduce_command};
use crate::progress::Display;
use crate::report::{Implementation, Report};
use crate::runner::{RunResult, run};
use crate::supervisor::ClusterBackend;
use crate::target::{ImageSet, Target};
use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Exit codes: 0 the requested level was met; 1 it was not; 2 the suite could not run (usage, harness);
/// 3 the backend under test was not running (it exited, or never wrote any SBC status), so nothing was certified.
pub const EXIT_CONFORMANT: i32 = 0;
pub const EXIT_NOT_CONFORMANT: i32 = 1;
pub const EXIT_USAGE_OR_HARNESS: i32 = 2;
pub const EXIT_BACKEND_NOT_RUNNING: i32 = 3;

pub async fn client_from_kubeconfig(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    Ok(kube::Client::try_from(config)?)
}

/// Images from the command line; `valid` is required outside embedded mode.
pub fn images_from_args(
    args: &CertifyArgs,
    defaults: Option<ImageSet>,
) -> anyhow::Result<ImageSet> {
    let d = defaults.unwrap_or_default();
    let valid = args
        .valid_image
        .clone()
        .or((!d.valid.is_empty()).then_some(d.valid));
    Ok(ImageSet {
        valid: valid
            .context("--valid-image is required: a boot image the backend can resolve and serve")?,
        valid_alt: args.valid_image_alt.clone().or(d.valid_alt),
        unresolvable: args.unresolvable_image.clone().or(d.unresolvable),
        missing_layer: args.missing_layer_image.clone().or(d.missing_layer),
        disallowed_registry: args.disallowed_image.clone().or(d.disallowed_registry),
    })
}

/// The backend under test could not be brought up (it exited before it listened): nothing was certified.
#[derive(Debug)]
pub struct BackendNotRunning {
    pub reason: String,
    pub log_tail: Vec<String>,
}

impl std::fmt::Display for BackendNotRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for BackendNotRunning {}

/// Runs the suite on an assembled target and writes every report. Returns the report and the run.
pub async fn run_and_report(
    target: Arc<Target>,
    args: &CertifyArgs,
    command: String,
) -> anyhow::Result<(Report, RunResult)> {
    let display = if args.quiet {
        Display::hidden()
    } else {
        Display::new(false)
    };
    let result = run(
        target.clone(),
        &args.selection(),
        &display,
        args.concurrency,
    )
    .await;
    let implementation = Implementation {
        name: args.implementation.clone(),
        version: args.implementation_version.clone(),
    };
    let report = Report::new(
        &result,
        implementation,
        command,
        &target.timeouts,
        args.level,
    );
    report
        .write(&args.report_dir)
        .with_context(|| format!("writing reports to {}", args.report_dir.display()))?;
    Ok((report, result))
}

/// Kubeconfig mode: the backend already runs in the cluster.
pub async fn kubeconfig_target(
    args: &CertifyArgs,
    cancel: CancellationToken,
) -> anyhow::Result<Target> {
    let path = args
        .kubeconfig
        .as_ref()
        .context("--kubeconfig is required without --embedded")?;
    let client = client_from_kubeconfig(path).await?;
    let pods = match (&args.backend_namespace, &args.backend_pod_selector) {
        (Some(namespace), Some(selector)) => {
            Some(crate::pods::PodObserver::start(client.clone(), namespace, selector).await?)
        }
        _ => None,
    };
    let backend = (args.backend_restart_cmd.is_some() || pods.is_some()).then(|| {
        Arc::new(ClusterBackend {
            restart_command: args.backend_restart_cmd.clone(),
            pods,
        }) as Arc<dyn crate::target::BackendControl>
    });
    let boot = match &args.boot_url_template {
        Some(template) => Some(crate::boot_net::network_boot(template, None)?),
        None => None,
    };
    Ok(Target {
        client,
        images: images_from_args(args, None)?,
        timeouts: args.timeouts(),
        backend,
        api: None,
        boot,
        scale_count: args.scale,
        run_id: uuid::Uuid::new_v4().to_string(),
        epoch: tokio::time::Instant::now(),
        cancel,
        activity: Default::default(),
    })
}

/// The whole `certify` command; returns the process exit code.
pub async fn certify(args: &CertifyArgs, argv: Vec<String>) -> i32 {
    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: cleaning up what the suite created");
            on_interrupt.cancel();
        }
    });
    let command = reproduce_command(argv);
    let outcome = if args.embedded {
        crate::embedded::certify_embedded(args, cancel, command).await
    } else {
        match kubeconfig_target(args, cancel).await {
            Ok(target) => run_and_report(Arc::new(target), args, command).await,
            Err(e) => Err(e),
        }
    };
    match outcome {
        Ok((report, result)) => {
            println!("{}", report.to_markdown());
            println!("Reports written to {}", args.report_dir.display());
            if let Some(stop) = &result.backend_stopped {
                eprintln!(
                    "error: {} (exit code {EXIT_BACKEND_NOT_RUNNING}; see {})",
                    stop.reason,
                    args.report_dir.join("backend.log").display()
                );
                EXIT_BACKEND_NOT_RUNNING
            } else if report.certification.conformant {
                EXIT_CONFORMANT
            } else {
                EXIT_NOT_CONFORMANT
            }
        }
        Err(e) => match e.downcast_ref::<BackendNotRunning>() {
            Some(not_running) => {
                eprintln!("BACKEND NOT RUNNING: {}", not_running.reason);
                if !not_running.log_tail.is_empty() {
                    eprintln!("last lines of backend.log:");
                    for line in &not_running.log_tail {
                        eprintln!("  {line}");
                    }
                }
                EXIT_BACKEND_NOT_RUNNING
            }
            None => {
                eprintln!("error: {e:#}");
                EXIT_USAGE_OR_HARNESS
            }
        },
    }
}
