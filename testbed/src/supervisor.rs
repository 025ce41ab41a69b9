//! One supervisor for a backend run as a child process (scenarios' `backend: command`, conformance's
//! `--backend-cmd`): its own process group, so a restart kills wrappers like `cargo run` together with the real
//! backend; output to a log file (or inherited); every exit observed, told apart as deliberate or a crash.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a killed process group gets to disappear before `stop` returns anyway.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Clone, Debug)]
pub enum Program {
    /// A command line for `sh -c` (placeholders already filled in).
    Shell(String),
    /// A program and its arguments, run directly.
    Exec { command: String, args: Vec<String> },
}

impl Program {
    fn command(&self) -> Command {
        match self {
            Program::Shell(line) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(line);
                c
            }
            Program::Exec { command, args } => {
                let mut c = Command::new(command);
                c.args(args);
                c
            }
        }
    }

    /// How reports name it: the command line, or the program.
    pub fn name(&self) -> &str {
        match self {
            Program::Shell(line) => line,
            Program::Exec { command, .. } => command,
        }
    }
}

/// A child process to supervise.
#[derive(Clone, Debug)]
pub struct ChildSpec {
    pub program: Program,
    /// Added to the inherited environment (e.g. `KUBECONFIG`).
    pub env: Vec<(String, String)>,
    /// stdout and stderr are appended here; inherited when `None`.
    pub log: Option<PathBuf>,
}

/// One exit of the child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Since the supervisor started.
    pub after: Duration,
    /// Caused by `stop`/`restart` rather than by the process itself.
    pub expected: bool,
    /// The exit status (`exit status: 3`, `signal: 9 (SIGKILL)`) or why waiting failed.
    pub status: String,
}

/// Told of every exit as it happens (scenarios turn it into evidence).
pub type ExitObserver = Arc<dyn Fn(&Exit) + Send + Sync>;

struct State {
    /// Process group of the running instance.
    pgid: Option<i32>,
    /// Bumped on every deliberate stop, so the waiter can tell a crash from a restart.
    generation: u64,
    exits: Vec<Exit>,
    waiter: Option<JoinHandle<()>>,
}

/// A supervised child process.
pub struct Supervisor {
    spec: ChildSpec,
    observer: Option<ExitObserver>,
    state: Arc<Mutex<State>>,
    epoch: Instant,
}

impl Supervisor {
    /// Starts the child.
    pub fn start(spec: ChildSpec, observer: Option<ExitObserver>) -> anyhow::Result<Arc<Self>> {
        let supervisor = Arc::new(Supervisor {
            spec,
            observer,
            state: Arc::new(Mutex::new(State {
                pgid: None,
                generation: 0,
                exits: Vec::new(),
                waiter: None,
            })),
            epoch: Instant::now(),
        });
        supervisor.spawn()?;
        Ok(supervisor)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn spawn(&self) -> anyhow::Result<()> {
        let mut command = self.spec.program.command();
        command
            .envs(self.spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(path) = &self.spec.log {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening backend log {}", path.display()))?;
            command.stdout(log.try_clone()?).stderr(log);
        }
        let mut child: Child = command
            .spawn()
            .with_context(|| format!("starting backend {:?}", self.spec.program.name()))?;
        let pid = child.id().map(|p| p as i32);
        let mut state = self.lock();
        state.pgid = pid;
        let generation = state.generation;
        let (shared, epoch, observer) = (self.state.clone(), self.epoch, self.observer.clone());
        state.waiter = Some(tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            let exit = {
                let mut s = lock(&shared);
                let expected = s.generation != generation;
                if !expected {
                    s.pgid = None;
                }
                let exit = Exit {
                    after: epoch.elapsed(),
                    expected,
                    status,
                };
                s.exits.push(exit.clone());
                exit
            };
            if let Some(observer) = observer {
                observer(&exit);
            }
        }));
        Ok(())
    }

    /// Kills the whole process group and waits (bounded) until its exit is observed and the group is gone.
    pub async fn stop(&self) {
        let (pgid, waiter) = {
            let mut s = self.lock();
            s.generation += 1;
            (s.pgid.take(), s.waiter.take())
        };
        let until = Instant::now() + EXIT_TIMEOUT;
        if let Some(pgid) = pgid {
            let group = nix::unistd::Pid::from_raw(-pgid);
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            // Polling the group with signal 0 until ESRCH: the only portable "is the group gone" query.
            while nix::sys::signal::kill(group, None).is_ok() && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if let Some(waiter) = waiter {
            let _ = tokio::time::timeout_at(until, waiter).await;
        }
    }

    /// Stops the running instance and starts a new one.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.stop().await;
        self.spawn()
    }

    /// Every exit so far, deliberate or not.
    pub fn exits(&self) -> Vec<Exit> {
        self.lock().exits.clone()
    }

    /// Exits the supervisor did not cause, as `exited unexpectedly at 1.2s: exit status: 3`.
    pub fn crashes(&self) -> Vec<String> {
        self.lock()
            .exits
            .iter()
            .filter(|e| !e.expected)
            .map(|e| {
                format!(
                    "exited unexpectedly at {:.1}s: {}",
                    e.after.as_secs_f64(),
                    e.status
                )
            })
            .collect()
    }

    /// The last `lines` lines of the log (empty when output is inherited).
    pub fn log_tail(&self, lines: usize) -> Vec<String> {
        self.spec
            .log
            .as_deref()
            .map(|path| log_tail(path, lines))
            .unwrap_or_default()
    }

    /// The program, as reports name it.
    pub fn name(&self) -> &str {
        self.spec.program.name()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // Last resort when nobody called `stop`: the group must not outlive the run.
        let mut s = self.lock();
        s.generation += 1;
        if let Some(pgid) = s.pgid.take() {
            let group = nix::unistd::Pid::from_raw(-pgid);
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The last `lines` lines of a log file, reading at most its last 64 KiB.
pub fn log_tail(path: &Path, lines: usize) -> Vec<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    const MAX_TAIL: u64 = 64 << 10;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(MAX_TAIL)));
    let mut bytes = Vec::new();
    let _ = file.take(MAX_TAIL).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(line: &str, log: PathBuf) -> ChildSpec {
        ChildSpec {
            program: Program::Shell(line.into()),
            env: vec![],
            log: Some(log),
        }
    }

    async fn wait_until(what: &str, check: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < until, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn restart_is_not_a_crash_but_an_exit_is() {
        let dir = tempfile::tempdir().unwrap();
        let seen: Arc<Mutex<Vec<Exit>>> = Arc::default();
        let observer: ExitObserver = {
            let seen = seen.clone();
            Arc::new(move |e: &Exit| seen.lock().unwrap().push(e.clone()))
        };
        let b =
            Supervisor::start(shell("sleep 30", dir.path().join("log")), Some(observer)).unwrap();
        b.restart().await.unwrap();
        b.stop().await;
        assert!(b.crashes().is_empty());
        // `stop` returns only once the exit was observed, so both are reported, as deliberate.
        let exits = seen.lock().unwrap().clone();
        assert_eq!(exits.len(), 2, "{exits:?}");
        assert!(exits.iter().all(|e| e.expected), "{exits:?}");

        let crash = Supervisor::start(shell("echo started; exit 3", dir.path().join("log2")), None)
            .unwrap();
        wait_until("the crash is observed", || !crash.crashes().is_empty()).await;
        assert!(
            crash.crashes()[0].contains("exit status: 3"),
            "{:?}",
            crash.crashes()
        );
        assert_eq!(crash.log_tail(5), vec!["started".to_string()]);
    }

    #[tokio::test]
    async fn stop_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        // A wrapper (like `cargo run`) whose own child does the work.
        let line = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let b = Supervisor::start(shell(&line, dir.path().join("log")), None).unwrap();
        wait_until("the grandchild started", || {
            std::fs::read_to_string(&pidfile).is_ok_and(|p| !p.trim().is_empty())
        })
        .await;
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        b.stop().await;
        // Gone, or a zombie waiting for a reaper (PID 1 in a container may never reap it).
        wait_until("the grandchild is gone", || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
                stat.rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            })
        })
        .await;
        assert!(b.crashes().is_empty());
    }

    #[test]
    fn log_tail_reads_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(log_tail(&path, 2), vec!["b", "c"]);
        assert!(log_tail(&dir.path().join("missing"), 2).is_empty());
    }
}
