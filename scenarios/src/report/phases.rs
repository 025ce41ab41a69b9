//! Per-claim phase timings reconstructed from the evidence log: claim → bound → SBC Ready →
//! powered on → booted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::evidence::{Event, Evidence, HarnessEvent, Key, MachineObs, Snapshot};
use crate::invariants::same_image;

/// When each phase of one claim was first seen (ms since start).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimTimes {
    pub created: Option<u64>,
    pub bound: Option<u64>,
    pub sbc_ready: Option<u64>,
    pub powered_on: Option<u64>,
    pub booted: Option<u64>,
    pub server: Option<String>,
}

/// Percentiles of one phase, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub count: usize,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Stats {
    pub fn of(mut samples: Vec<u64>) -> Stats {
        if samples.is_empty() {
            return Stats::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            samples[(((samples.len() as f64) * q).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Stats {
            count: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: *samples.last().unwrap_or(&0),
        }
    }
}

/// Phase names in order, as the report prints them.
pub const PHASES: [&str; 5] = [
    "claim → bound",
    "bound → SBC Ready",
    "SBC Ready → powered on",
    "powered on → booted",
    "claim → booted",
];

/// Reconstructs every claim's phase times from the evidence.
pub fn claim_times(evidence: &[Evidence]) -> BTreeMap<Key, ClaimTimes> {
    let mut claims: BTreeMap<Key, ClaimTimes> = BTreeMap::new();
    let mut images: BTreeMap<Key, String> = BTreeMap::new();
    let mut uuid_of: BTreeMap<String, String> = BTreeMap::new();
    let mut claim_of_uuid: BTreeMap<String, Key> = BTreeMap::new();
    for ev in evidence {
        let at = ev.at_ms;
        match &ev.event {
            Event::Harness(HarnessEvent::ClaimCreated { key }) => {
                claims.insert(
                    key.clone(),
                    ClaimTimes {
                        created: Some(at),
                        ..Default::default()
                    },
                );
            }
            Event::Api {
                object: Snapshot::Server(s),
                deleted: false,
            } => {
                if let Some(u) = &s.uuid {
                    uuid_of.insert(s.name.clone(), u.clone());
                }
            }
            Event::Api {
                object: Snapshot::ServerClaim(c),
                deleted: false,
            } => {
                images.insert(c.key.clone(), c.image.clone());
                let Some(t) = claims.get_mut(&c.key) else {
                    continue;
                };
                if c.bound && t.bound.is_none() {
                    t.bound = Some(at);
                    t.server = c.server_ref.clone();
                    if let Some(u) = c.server_ref.as_ref().and_then(|s| uuid_of.get(s)) {
                        claim_of_uuid.insert(u.clone(), c.key.clone());
                    }
                }
            }
            Event::Api {
                object: Snapshot::ServerBootConfiguration(b),
                deleted: false,
            } => {
                if let Some(t) = claims.get_mut(&b.key)
                    && b.ready_current
                    && t.sbc_ready.is_none()
                {
                    t.sbc_ready = Some(at);
                }
            }
            Event::Machine { uuid, what } => {
                let Some(key) = claim_of_uuid.get(uuid) else {
                    continue;
                };
                let Some(t) = claims.get_mut(key) else {
                    continue;
                };
                match what {
                    MachineObs::PowerChanged { to } if to == "On" && t.powered_on.is_none() => {
                        t.powered_on = Some(at)
                    }
                    MachineObs::BootSucceeded { image, .. }
                        if t.booted.is_none()
                            && images.get(key).is_some_and(|i| same_image(i, image)) =>
                    {
                        t.booted = Some(at)
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    claims
}

/// Stats for each of [`PHASES`].
pub fn phase_stats(times: &BTreeMap<Key, ClaimTimes>) -> Vec<(String, Stats)> {
    let span = |from: fn(&ClaimTimes) -> Option<u64>, to: fn(&ClaimTimes) -> Option<u64>| {
        Stats::of(
            times
                .values()
                .filter_map(|t| Some(to(t)?.saturating_sub(from(t)?)))
                .collect(),
        )
    };
    let stats = [
        span(|t| t.created, |t| t.bound),
        span(|t| t.bound, |t| t.sbc_ready),
        span(|t| t.sbc_ready, |t| t.powered_on),
        span(|t| t.powered_on, |t| t.booted),
        span(|t| t.created, |t| t.booted),
    ];
    PHASES.iter().map(|p| p.to_string()).zip(stats).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = Stats::of((1..=100).collect());
        assert_eq!(
            (s.p50, s.p90, s.p99, s.max, s.count),
            (50, 90, 99, 100, 100)
        );
        assert_eq!(Stats::of(vec![7]).p99, 7);
        assert_eq!(Stats::of(vec![]).count, 0);
    }
}
