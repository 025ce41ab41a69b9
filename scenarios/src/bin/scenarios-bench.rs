//! Scale benchmark: a scenario (`fleet-1000.yaml` by default) resized to N servers, one process per size and clock
//! (so peak RSS is per run). Prints wall time to all claims booted, API requests (all verbs, operator + backend) and
//! writes and reconciles per server, peak RSS, CPU time, and where the time goes, as ratios against the first
//! size; on the simulated clock also simulated time, its ratio to wall time and CPU per simulated server-hour,
//! and (with `--compare-wall`) the same run on the wall clock beside it.

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use scenarios::evidence::{Event, HarnessEvent};
use scenarios::runner::{RunOptions, run};
use scenarios::spec::{self, Action, BmcSet, Dur};

#[derive(Parser)]
#[command(about = "Provision N servers end to end and report where the time goes")]
struct Args {
    /// Fleet sizes; the first is the baseline for ratios.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    sizes: Vec<u32>,
    /// The scenario to resize.
    #[arg(long, default_value = "scenarios/fleet-1000.yaml")]
    file: PathBuf,
    /// The clock every run lives on (default: the file's).
    #[arg(long, value_enum)]
    clock: Option<spec::ClockMode>,
    /// Real machines' times instead of the file's: 90 s POST, 5 s power on and off, 1 min graceful shutdown, and
    /// the operator on upstream's default intervals (for the simulated clock).
    #[arg(long)]
    realistic: bool,
    /// Also run each size on the wall clock, as the baseline of the simulated runs.
    #[arg(long)]
    compare_wall: bool,
    /// Internal: run exactly one size in this process and print one JSON line.
    #[arg(long, hide = true)]
    one: Option<u32>,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct Figures {
    servers: u32,
    passed: bool,
    clock: String,
    wall_s: f64,
    /// The run's length on its clock (equal to `wall_s` on the wall clock).
    simulated_s: f64,
    discovery_s: f64,
    claims_to_all_booted_s: f64,
    api_requests_per_server: f64,
    /// Operator + backend requests per verb, divided by servers.
    api_verbs_per_server: Vec<(String, f64)>,
    /// Operator + backend requests per `verb resource`, divided by servers, most first.
    #[serde(default)]
    api_resources_per_server: Vec<(String, f64)>,
    api_writes_per_server: f64,
    reconciles_per_server: f64,
    peak_rss_mib: f64,
    cpu_s: f64,
    phases: Vec<(String, scenarios::report::Stats)>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(n) = args.one {
        let figures = measure(&args, n)?;
        println!("{}", serde_json::to_string(&figures)?);
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let mut all: Vec<Figures> = Vec::new();
    let file_clock = spec::load_file(&args.file)?.clock;
    let clock = args.clock.unwrap_or(file_clock);
    let mut runs: Vec<(u32, spec::ClockMode)> = Vec::new();
    for n in &args.sizes {
        if args.compare_wall && clock == spec::ClockMode::Simulated {
            runs.push((*n, spec::ClockMode::Wall));
        }
        runs.push((*n, clock));
    }
    for (n, clock) in runs {
        eprintln!("running {n} servers on the {} clock…", clock.as_str());
        let mut command = Command::new(&exe);
        command
            .arg("--file")
            .arg(&args.file)
            .arg("--clock")
            .arg(clock.as_str())
            .arg("--one")
            .arg(n.to_string());
        if args.realistic {
            command.arg("--realistic");
        }
        let out = command.output()?;
        let line = String::from_utf8_lossy(&out.stdout);
        match line
            .lines()
            .last()
            .and_then(|l| serde_json::from_str::<Figures>(l).ok())
        {
            Some(f) => all.push(f),
            None => eprintln!(
                "{n} servers: no result\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    print_table(&all);
    Ok(())
}

/// The scenario with `n` servers: BMCs, claim counts and expected numbers scaled by `n` over the file's servers.
fn resize(s: &mut spec::Scenario, n: u32) {
    let declared = s.fleet.server_names().len().max(1) as u64;
    let scale = |v: u32| (u64::from(v) * u64::from(n) / declared) as u32;
    s.name = format!("{}-{n}", s.name);
    s.fleet.bmcs = BmcSet::Count(n.div_ceil(s.fleet.systems_per_bmc.max(1)));
    for step in &mut s.workload.steps {
        match &mut step.action {
            Action::CreateClaims { count, .. } | Action::DeleteClaims { count, .. } => {
                *count = count.map(scale);
            }
            _ => {}
        }
    }
    s.expect.claims_bound = s.expect.claims_bound.map(scale);
    s.expect.claims_booted = s.expect.claims_booted.map(scale);
    for v in s.expect.servers.values_mut() {
        *v = scale(*v);
    }
}

/// Real machines' times and upstream's default operator intervals.
fn make_realistic(s: &mut spec::Scenario) {
    s.fleet.latencies = Some(spec::Latencies {
        power_on: Dur::from_secs(5),
        power_off: Dur::from_secs(5),
        graceful_shutdown: Dur::from_secs(60),
        post: Dur::from_secs(90),
    });
    s.operator.args.extend(
        [
            "--power-polling-interval=5s",
            "--resource-polling-interval=5s",
            "--server-resync-interval=2m",
            "--registry-resync-interval=10s",
            "--server-max-concurrent-reconciles=5",
            "--server-claim-max-concurrent-reconciles=5",
        ]
        .map(String::from),
    );
    s.expect.within = Dur::from_secs(4 * 3600);
}

fn measure(args: &Args, n: u32) -> anyhow::Result<Figures> {
    let mut s = spec::load_file(&args.file)?;
    if let Some(clock) = args.clock {
        s.clock = clock;
    }
    resize(&mut s, n);
    if args.realistic {
        make_realistic(&mut s);
    } else if s.clock == spec::ClockMode::Wall {
        s.expect.within = s.expect.within.max(Dur::from_secs(15 * 60));
    }
    let runtime = scenarios::runner::runtime(s.clock, 1)?;
    let outcome = runtime.block_on(run(
        &s,
        RunOptions {
            seed: 1,
            kubeconfig: None,
            progress: false,
            // 10,000 loopback listeners plus their connections exceed a 20,000-descriptor limit.
            bmcs_in_process: true,
            clock: s.clock,
        },
    ))?;
    let r = &outcome.report;
    let discovery_ms = outcome
        .evidence
        .iter()
        .find(|e| matches!(&e.event, Event::Harness(HarnessEvent::StepDone { label }) if label == "discovery complete"))
        .map(|e| e.at_ms)
        .unwrap_or(0);
    let booted_ms = r
        .phases
        .iter()
        .find(|(p, _)| p == "claim → booted")
        .map(|(_, s)| s.max)
        .unwrap_or(0);
    let reconciles: f64 = r
        .figures
        .iter()
        .filter(|(k, _)| k.starts_with("reconciles."))
        .map(|(_, v)| v)
        .sum();
    let per = |v: f64| v / f64::from(n.max(1));
    let mut verbs: std::collections::BTreeMap<String, f64> = Default::default();
    let mut resources: std::collections::BTreeMap<String, f64> = Default::default();
    for c in ["operator", "backend"] {
        if let Some(counts) = r.api_requests.by_component.get(c) {
            for (verb, count) in &counts.by_verb {
                *verbs.entry(verb.clone()).or_default() += per(*count as f64);
            }
            for (key, count) in &counts.by_resource {
                *resources.entry(format!("{c}: {key}")).or_default() += per(*count as f64);
            }
        }
    }
    let mut resources: Vec<(String, f64)> = resources.into_iter().collect();
    resources.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(Figures {
        servers: n,
        passed: r.passed,
        clock: r.clock.clone(),
        wall_s: r.wall_ms as f64 / 1000.0,
        simulated_s: r.duration_ms as f64 / 1000.0,
        discovery_s: discovery_ms as f64 / 1000.0,
        claims_to_all_booted_s: booted_ms as f64 / 1000.0,
        api_requests_per_server: r.api_requests.per_server,
        api_verbs_per_server: verbs.into_iter().collect(),
        api_resources_per_server: resources,
        api_writes_per_server: per(r.figures.get("apiWrites").copied().unwrap_or(0.0)),
        reconciles_per_server: per(reconciles),
        peak_rss_mib: proc_status_kib("VmHWM:") / 1024.0,
        cpu_s: cpu_seconds(),
        phases: r.phases.clone(),
    })
}

fn proc_status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// User + system CPU time of this process (from /proc/self/stat, clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn print_table(all: &[Figures]) {
    let Some(base) = all.first() else { return };
    println!(
        "\n{:>7} {:>9} {:>6} {:>8} {:>9} {:>8} {:>10} {:>14} {:>12} {:>12} {:>12} {:>9} {:>7} {:>11} {:>14}",
        "servers",
        "clock",
        "ok",
        "wall s",
        "clock s",
        "clock/wall",
        "discovery",
        "claims→booted",
        "requests/srv",
        "writes/srv",
        "reconc/srv",
        "RSS MiB",
        "CPU s",
        "CPU ms/srv-h",
        "wall/srv ×base"
    );
    for f in all {
        let per_server = f.wall_s / f64::from(f.servers);
        let base_per_server = base.wall_s / f64::from(base.servers);
        // CPU per server-hour on the run's own clock: what an hour of one server's life costs to simulate.
        let server_hours = f64::from(f.servers) * f.simulated_s / 3600.0;
        println!(
            "{:>7} {:>9} {:>6} {:>8.1} {:>9.1} {:>10.1} {:>10.1} {:>14.1} {:>12.1} {:>12.1} {:>12.1} {:>9.0} {:>7.1} {:>11.1} {:>14.2}",
            f.servers,
            f.clock,
            f.passed,
            f.wall_s,
            f.simulated_s,
            f.simulated_s / f.wall_s.max(0.001),
            f.discovery_s,
            f.claims_to_all_booted_s,
            f.api_requests_per_server,
            f.api_writes_per_server,
            f.reconciles_per_server,
            f.peak_rss_mib,
            f.cpu_s,
            f.cpu_s * 1000.0 / server_hours.max(1e-9),
            per_server / base_per_server
        );
    }
    for f in all {
        let verbs: Vec<String> = f
            .api_verbs_per_server
            .iter()
            .map(|(v, n)| format!("{v} {n:.1}"))
            .collect();
        println!(
            "\nAPI requests per server by verb, {} servers: {}",
            f.servers,
            verbs.join(", ")
        );
    }
    for f in all {
        let top: Vec<String> = f
            .api_resources_per_server
            .iter()
            .take(12)
            .map(|(k, n)| format!("{k} {n:.1}"))
            .collect();
        println!(
            "\nmost API requests per server, {} servers: {}",
            f.servers,
            top.join(", ")
        );
    }
    for f in all {
        println!("\nwhere the time goes, {} servers (claims):", f.servers);
        for (phase, s) in &f.phases {
            println!(
                "  {phase:<24} p50 {:>7}ms  p99 {:>7}ms  max {:>7}ms",
                s.p50, s.p99, s.max
            );
        }
    }
}
