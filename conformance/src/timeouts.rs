//! Deadlines and observation windows, with their published conformance limits.
//! A run may use other values, but one that exceeds a maximum (or shortens a window below its minimum)
//! is reported as non-certifying.

use serde::Serialize;
use std::time::Duration;

/// One configurable duration with its default and the limit a certifying run must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limit {
    pub name: &'static str,
    pub default: Duration,
    /// Deadlines have a maximum, observation windows a minimum.
    pub bound: Bound,
    pub meaning: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Bound {
    AtMost(Duration),
    AtLeast(Duration),
}

const fn s(v: u64) -> Duration {
    Duration::from_secs(v)
}

pub const TIME_TO_READY: Limit = Limit {
    name: "time-to-ready",
    default: s(30),
    bound: Bound::AtMost(s(30)),
    meaning: "from the creation (or fix) of a valid SBC until Ready is observed",
};
pub const ERROR_DEADLINE: Limit = Limit {
    name: "error-deadline",
    default: s(10),
    bound: Bound::AtMost(s(30)),
    meaning: "from a bad input until Error (SHOULD rules) or leaving Ready (SBC-GEN-001) is observed",
};
pub const NEVER_READY_WINDOW: Limit = Limit {
    name: "never-ready-window",
    default: s(3),
    bound: Bound::AtLeast(s(3)),
    meaning: "how long a bad SBC is watched for any Ready before the input is fixed",
};
pub const STABILITY_WINDOW: Limit = Limit {
    name: "stability-window",
    default: s(2),
    bound: Bound::AtLeast(s(2)),
    meaning: "how long a Ready SBC is watched for flaps after it became Ready",
};
pub const DELETION: Limit = Limit {
    name: "deletion",
    default: s(30),
    bound: Bound::AtMost(s(30)),
    meaning: "from the delete request until the SBC is gone",
};
pub const SCALE_READY: Limit = Limit {
    name: "scale-ready",
    default: s(60),
    bound: Bound::AtMost(s(120)),
    meaning: "from creating the N scale SBCs until all of them are Ready",
};

pub const FIRST_STATUS: Limit = Limit {
    name: "first-status",
    default: s(30),
    bound: Bound::AtLeast(s(30)),
    meaning: "from the suite's first SBC until the backend writes any SBC status; a backend silent for longer is reported as not running and the run stops",
};

pub const ALL_LIMITS: [Limit; 7] = [
    TIME_TO_READY,
    ERROR_DEADLINE,
    NEVER_READY_WINDOW,
    STABILITY_WINDOW,
    DELETION,
    SCALE_READY,
    FIRST_STATUS,
];

/// The values in force for one run (reported in seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Timeouts {
    #[serde(serialize_with = "seconds")]
    pub time_to_ready: Duration,
    #[serde(serialize_with = "seconds")]
    pub error_deadline: Duration,
    #[serde(serialize_with = "seconds")]
    pub never_ready_window: Duration,
    #[serde(serialize_with = "seconds")]
    pub stability_window: Duration,
    #[serde(serialize_with = "seconds")]
    pub deletion: Duration,
    #[serde(serialize_with = "seconds")]
    pub scale_ready: Duration,
    #[serde(serialize_with = "seconds")]
    pub first_status: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            time_to_ready: TIME_TO_READY.default,
            error_deadline: ERROR_DEADLINE.default,
            never_ready_window: NEVER_READY_WINDOW.default,
            stability_window: STABILITY_WINDOW.default,
            deletion: DELETION.default,
            scale_ready: SCALE_READY.default,
            first_status: FIRST_STATUS.default,
        }
    }
}

impl Timeouts {
    fn pairs(&self) -> [(Limit, Duration); 7] {
        [
            (TIME_TO_READY, self.time_to_ready),
            (ERROR_DEADLINE, self.error_deadline),
            (NEVER_READY_WINDOW, self.never_ready_window),
            (STABILITY_WINDOW, self.stability_window),
            (DELETION, self.deletion),
            (SCALE_READY, self.scale_ready),
            (FIRST_STATUS, self.first_status),
        ]
    }

    /// Values outside their published limit; a non-empty list makes the run non-certifying.
    pub fn violations(&self) -> Vec<String> {
        self.pairs()
            .into_iter()
            .filter_map(|(limit, value)| match limit.bound {
                Bound::AtMost(max) if value > max => Some(format!(
                    "{} = {:?} exceeds the conformance maximum {:?}",
                    limit.name, value, max
                )),
                Bound::AtLeast(min) if value < min => Some(format!(
                    "{} = {:?} is below the conformance minimum {:?}",
                    limit.name, value, min
                )),
                _ => None,
            })
            .collect()
    }

    /// Sets one value by its published name (CLI `--timeout name=secs`).
    pub fn set(&mut self, name: &str, value: Duration) -> Result<(), String> {
        let slot = match name {
            "time-to-ready" => &mut self.time_to_ready,
            "error-deadline" => &mut self.error_deadline,
            "never-ready-window" => &mut self.never_ready_window,
            "stability-window" => &mut self.stability_window,
            "deletion" => &mut self.deletion,
            "scale-ready" => &mut self.scale_ready,
            "first-status" => &mut self.first_status,
            _ => {
                let names: Vec<&str> = ALL_LIMITS.iter().map(|l| l.name).collect();
                return Err(format!(
                    "unknown timeout {name:?}; known: {}",
                    names.join(", ")
                ));
            }
        };
        *slot = value;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_certifying_and_limits_are_enforced() {
        let mut t = Timeouts::default();
        assert!(t.violations().is_empty());
        t.set("time-to-ready", s(31)).unwrap();
        t.set("never-ready-window", s(1)).unwrap();
        assert_eq!(t.violations().len(), 2);
        assert!(t.set("bogus", s(1)).unwrap_err().contains("time-to-ready"));
    }
}
