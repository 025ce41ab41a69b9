//! The live progress display: one line per running check showing what it waits for, elapsed time and deadline.
//! `--quiet` (or a non-terminal stderr) turns every call into a no-op.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// The whole run's display.
#[derive(Clone)]
pub struct Display {
    multi: Option<MultiProgress>,
}

impl Display {
    pub fn new(quiet: bool) -> Self {
        if quiet {
            return Display { multi: None };
        }
        Display {
            multi: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    pub fn hidden() -> Self {
        Display { multi: None }
    }

    /// A line for one check; dropped (cleared) when the check ends.
    pub fn check(&self, check: &str, rules: &[&str]) -> Progress {
        let Some(multi) = &self.multi else {
            return Progress { bar: None };
        };
        let bar = multi.add(ProgressBar::new_spinner());
        let style =
            ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed:>4}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(format!("{check} [{}]", rules.join(" ")));
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar: Some(bar) }
    }

    /// Prints a line above the progress bars (or plainly when there are none).
    pub fn println(&self, line: &str) {
        if let Some(m) = &self.multi {
            let _ = m.println(line);
        }
    }
}

/// One check's line.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn hidden() -> Self {
        Progress { bar: None }
    }

    /// What the check is doing now and how long it may take.
    pub fn phase(&self, what: &str, deadline: Duration) {
        if let Some(bar) = &self.bar {
            bar.reset_elapsed();
            bar.set_message(format!("{what} (deadline {:.0}s)", deadline.as_secs_f64()));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
