//! The recorded status history of one ServerBootConfiguration and the oracles evaluated over it.
//! Pure data and functions: the watch that fills it lives in `recorder`, so flap and staleness detection
//! can be tested on synthetic event streams.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

pub const READY: &str = "Ready";
pub const PENDING: &str = "Pending";
pub const ERROR: &str = "Error";

/// The state values a consumer understands (the empty state is `None`).
pub const STATE_VOCABULARY: [&str; 3] = [PENDING, READY, ERROR];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One condition as observed, reduced to what the oracles read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionSnapshot {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub observed_generation: Option<i64>,
}

/// One watch event for one SBC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    /// Time since the start of the run.
    pub at: Duration,
    pub kind: EventKind,
    pub resource_version: String,
    pub generation: i64,
    pub state: Option<String>,
    pub conditions: Vec<ConditionSnapshot>,
    #[serde(skip)]
    pub spec: Value,
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
    #[serde(skip)]
    pub annotations: BTreeMap<String, String>,
    pub deleting: bool,
}

impl Observation {
    pub fn is_ready(&self) -> bool {
        self.state.as_deref() == Some(READY) && self.kind != EventKind::Deleted
    }

    pub fn state_str(&self) -> &str {
        self.state.as_deref().unwrap_or("")
    }

    /// `Error` plus a False condition with a reason and a message: the SHOULD-level "actionable error".
    pub fn is_error_with_reason(&self) -> bool {
        self.state.as_deref() == Some(ERROR)
            && self
                .conditions
                .iter()
                .any(|c| c.status == "False" && !c.reason.is_empty() && !c.message.is_empty())
    }

    /// Ready stamped with the current generation (SBC-GEN-003): a True condition at this generation,
    /// and no condition stamped with any other generation.
    pub fn ready_stamp_problem(&self) -> Option<String> {
        let current = self
            .conditions
            .iter()
            .any(|c| c.status == "True" && c.observed_generation == Some(self.generation));
        if !current {
            return Some(format!(
                "Ready at generation {} without a True condition whose observedGeneration is {}",
                self.generation, self.generation
            ));
        }
        self.conditions
            .iter()
            .find(|c| c.observed_generation.is_some_and(|g| g != self.generation))
            .map(|c| {
                format!(
                    "Ready at generation {} with condition {} stamped observedGeneration {}",
                    self.generation,
                    c.type_,
                    c.observed_generation.unwrap_or_default()
                )
            })
    }
}

/// Something the harness changed that the SBC's status may legitimately react to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputChange {
    pub at: Duration,
    pub what: String,
}

/// A Ready → non-Ready transition that no input change explains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flap {
    pub ready_since: Duration,
    pub left_at: Duration,
    pub to_state: String,
    pub resource_version: String,
}

/// Everything observed about one SBC, from before its creation to its deletion.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    pub namespace: String,
    pub name: String,
    pub observations: Vec<Observation>,
    pub inputs: Vec<InputChange>,
    /// Spec the harness wrote, per generation the API server assigned to it.
    #[serde(skip)]
    pub written_specs: BTreeMap<i64, Value>,
    #[serde(skip)]
    pub written_labels: BTreeMap<String, String>,
    #[serde(skip)]
    pub written_annotations: BTreeMap<String, String>,
    /// The watch was re-listed (410 Gone or disconnect): events between may be missing.
    pub gaps: Vec<Duration>,
}

impl History {
    pub fn new(namespace: &str, name: &str) -> Self {
        History {
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn last(&self) -> Option<&Observation> {
        self.observations.last()
    }

    fn live(&self) -> impl Iterator<Item = &Observation> {
        self.observations
            .iter()
            .filter(|o| o.kind != EventKind::Deleted)
    }

    /// First observation with state Ready at or after `from`.
    pub fn first_ready_since(&self, from: Duration) -> Option<&Observation> {
        self.live().find(|o| o.at >= from && o.is_ready())
    }

    pub fn first_ready(&self) -> Option<&Observation> {
        self.first_ready_since(Duration::ZERO)
    }

    /// Every Ready observation in `[from, to]`: a non-empty result breaks a "never Ready" rule.
    pub fn ready_between(&self, from: Duration, to: Duration) -> Vec<&Observation> {
        self.live()
            .filter(|o| o.at >= from && o.at <= to && o.is_ready())
            .collect()
    }

    pub fn first_error_with_reason_since(&self, from: Duration) -> Option<&Observation> {
        self.live()
            .find(|o| o.at >= from && o.is_error_with_reason())
    }

    /// States outside the vocabulary consumers understand (SBC-CORE-003).
    pub fn unknown_states(&self) -> Vec<&Observation> {
        self.live()
            .filter(|o| {
                o.state
                    .as_deref()
                    .is_some_and(|s| !STATE_VOCABULARY.contains(&s))
            })
            .collect()
    }

    /// Ready → non-Ready transitions without an input change since Ready began (SBC-FLAP-001).
    /// Deletion and observations of an object being deleted are not transitions.
    pub fn flaps(&self) -> Vec<Flap> {
        let mut flaps = Vec::new();
        let mut ready_since: Option<Duration> = None;
        for o in self.live().filter(|o| !o.deleting) {
            match (ready_since, o.is_ready()) {
                (None, true) => ready_since = Some(o.at),
                (Some(since), false) => {
                    let explained = self.inputs.iter().any(|i| i.at >= since && i.at <= o.at)
                        || self.gaps.iter().any(|g| *g >= since && *g <= o.at);
                    if !explained {
                        flaps.push(Flap {
                            ready_since: since,
                            left_at: o.at,
                            to_state: o.state_str().to_string(),
                            resource_version: o.resource_version.clone(),
                        });
                    }
                    ready_since = None;
                }
                _ => {}
            }
        }
        flaps
    }

    /// Writes to spec, labels or annotations that the harness did not make (SBC-CORE-002).
    pub fn foreign_writes(&self) -> Vec<String> {
        let mut found = Vec::new();
        for o in self.live() {
            match self.written_specs.get(&o.generation) {
                None if !self.written_specs.is_empty() => found.push(format!(
                    "resourceVersion {}: generation {} was not produced by the harness (spec written by someone else)",
                    o.resource_version, o.generation
                )),
                Some(spec) if *spec != o.spec => found.push(format!(
                    "resourceVersion {}: spec differs from what the harness wrote",
                    o.resource_version
                )),
                _ => {}
            }
            if o.labels != self.written_labels {
                found.push(format!(
                    "resourceVersion {}: labels changed to {:?}",
                    o.resource_version, o.labels
                ));
            }
            if o.annotations != self.written_annotations {
                found.push(format!(
                    "resourceVersion {}: annotations changed to {:?}",
                    o.resource_version, o.annotations
                ));
            }
        }
        found.dedup();
        found
    }

    /// SBC-GEN-002 over the observations after the harness bumped the generation to `generation`:
    /// the status must pass through a non-Ready state before it is Ready again.
    /// Returns the offending observation when Ready was carried across the generation.
    /// Whether the backend claims Ready for `generation`: honestly (Ready after a non-Ready seen at that
    /// generation or later) or by a condition stamped with it.
    pub fn claims_ready_for(&self, generation: i64) -> bool {
        let mut seen_not_ready = false;
        self.observations
            .iter()
            .filter(|o| o.generation >= generation)
            .any(|o| {
                seen_not_ready |= !o.is_ready();
                o.is_ready()
                    && (seen_not_ready
                        || o.conditions
                            .iter()
                            .any(|c| c.observed_generation >= Some(generation)))
            })
    }

    pub fn ready_carried_across(&self, generation: i64) -> Option<&Observation> {
        let mut after = self.live().filter(|o| o.generation >= generation);
        let first = after.next()?;
        if !first.is_ready() {
            return None;
        }
        // The first observation at the new generation is the harness's own write and still shows the old status;
        // from there, the backend must report something other than Ready before the object is Ready "again".
        let mut last_ready = first;
        for o in after {
            if !o.is_ready() {
                return None;
            }
            last_ready = o;
        }
        Some(last_ready)
    }

    /// Human-readable timeline, for failure reasons.
    pub fn timeline(&self) -> String {
        let mut out = Vec::new();
        for o in &self.observations {
            let conds: Vec<String> = o
                .conditions
                .iter()
                .map(|c| {
                    let og = c
                        .observed_generation
                        .map(|g| format!("@{g}"))
                        .unwrap_or_default();
                    format!("{}={}{}({})", c.type_, c.status, og, c.reason)
                })
                .collect();
            out.push(format!(
                "{:>8.3}s {:?} gen={} state={:?} [{}]",
                o.at.as_secs_f64(),
                o.kind,
                o.generation,
                o.state_str(),
                conds.join(", ")
            ));
        }
        for i in &self.inputs {
            out.push(format!("{:>8.3}s input: {}", i.at.as_secs_f64(), i.what));
        }
        out.sort();
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn cond(t: &str, status: &str, og: i64) -> ConditionSnapshot {
        ConditionSnapshot {
            type_: t.into(),
            status: status.into(),
            reason: "Because".into(),
            message: "details".into(),
            observed_generation: Some(og),
        }
    }

    fn obs(
        at: u64,
        generation: i64,
        state: Option<&str>,
        conditions: Vec<ConditionSnapshot>,
    ) -> Observation {
        Observation {
            at: ms(at),
            kind: EventKind::Modified,
            resource_version: at.to_string(),
            generation,
            state: state.map(String::from),
            conditions,
            spec: json!({"image": format!("img:{generation}")}),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            deleting: false,
        }
    }

    fn history(observations: Vec<Observation>) -> History {
        let mut h = History::new("ns", "sbc");
        for g in 1..=3 {
            h.written_specs
                .insert(g, json!({"image": format!("img:{g}")}));
        }
        h.observations = observations;
        h
    }

    #[test]
    fn a_100ms_ready_flicker_is_a_flap_and_is_seen_as_ready() {
        let h = history(vec![
            obs(0, 1, None, vec![]),
            obs(50, 1, Some(PENDING), vec![]),
            obs(1000, 1, Some(READY), vec![cond("Ready", "True", 1)]),
            obs(1100, 1, Some(PENDING), vec![]),
            obs(1200, 1, Some(READY), vec![cond("Ready", "True", 1)]),
        ]);
        let flaps = h.flaps();
        assert_eq!(flaps.len(), 1);
        assert_eq!(flaps[0].ready_since, ms(1000));
        assert_eq!(flaps[0].left_at, ms(1100));
        assert_eq!(h.ready_between(ms(0), ms(1050)).len(), 1);
        assert_eq!(h.first_ready().map(|o| o.at), Some(ms(1000)));
    }

    #[test]
    fn leaving_ready_after_an_input_change_is_not_a_flap() {
        let mut h = history(vec![
            obs(1000, 1, Some(READY), vec![]),
            obs(1500, 2, Some(PENDING), vec![]),
            obs(1600, 2, Some(READY), vec![]),
        ]);
        h.inputs.push(InputChange {
            at: ms(1400),
            what: "image changed".into(),
        });
        assert!(h.flaps().is_empty());
    }

    #[test]
    fn deletion_is_not_a_flap() {
        let mut deleting = obs(1500, 1, Some(READY), vec![]);
        deleting.deleting = true;
        let mut gone = obs(1600, 1, Some(READY), vec![]);
        gone.kind = EventKind::Deleted;
        let h = history(vec![obs(1000, 1, Some(READY), vec![]), deleting, gone]);
        assert!(h.flaps().is_empty());
    }

    #[test]
    fn unknown_states_are_reported() {
        let h = history(vec![
            obs(0, 1, Some("ready"), vec![]),
            obs(1, 1, Some(READY), vec![]),
        ]);
        assert_eq!(h.unknown_states().len(), 1);
    }

    #[test]
    fn error_needs_a_false_condition_with_reason_and_message() {
        let mut bare = obs(0, 1, Some(ERROR), vec![]);
        assert!(!bare.is_error_with_reason());
        bare.conditions.push(cond("ImageResolved", "False", 1));
        assert!(bare.is_error_with_reason());
        bare.conditions[0].message.clear();
        assert!(!bare.is_error_with_reason());
    }

    #[test]
    fn ready_stamp_requires_current_generation() {
        assert!(
            obs(0, 2, Some(READY), vec![cond("Ready", "True", 2)])
                .ready_stamp_problem()
                .is_none()
        );
        assert!(
            obs(0, 2, Some(READY), vec![cond("Ready", "True", 1)])
                .ready_stamp_problem()
                .is_some()
        );
        assert!(
            obs(0, 2, Some(READY), vec![])
                .ready_stamp_problem()
                .is_some()
        );
        let mixed = obs(
            0,
            2,
            Some(READY),
            vec![cond("Ready", "True", 2), cond("Image", "True", 1)],
        );
        assert!(mixed.ready_stamp_problem().unwrap().contains("Image"));
    }

    #[test]
    fn ready_carried_across_a_generation_is_detected() {
        // Honest: harness write (still Ready from gen 1), then Pending, then Ready.
        let honest = history(vec![
            obs(0, 1, Some(READY), vec![]),
            obs(10, 2, Some(READY), vec![]),
            obs(20, 2, Some(PENDING), vec![]),
            obs(30, 2, Some(READY), vec![]),
        ]);
        assert!(honest.ready_carried_across(2).is_none());
        // Stale: the backend re-stamps Ready without ever leaving it.
        let stale = history(vec![
            obs(0, 1, Some(READY), vec![]),
            obs(10, 2, Some(READY), vec![cond("Ready", "True", 1)]),
            obs(20, 2, Some(READY), vec![cond("Ready", "True", 2)]),
        ]);
        assert_eq!(stale.ready_carried_across(2).map(|o| o.at), Some(ms(20)));
        // Nothing at all after the bump except the harness's write is still a carried Ready.
        let silent = history(vec![
            obs(0, 1, Some(READY), vec![]),
            obs(10, 2, Some(READY), vec![]),
        ]);
        assert!(silent.ready_carried_across(2).is_some());
    }

    #[test]
    fn foreign_spec_and_metadata_writes_are_detected() {
        let clean = history(vec![
            obs(0, 1, None, vec![]),
            obs(5, 2, Some(READY), vec![]),
        ]);
        assert!(clean.foreign_writes().is_empty());
        let mut touched = obs(10, 1, Some(READY), vec![]);
        touched.spec = json!({"image": "img:1", "extra": true});
        touched
            .annotations
            .insert("backend/seen".into(), "yes".into());
        let h = history(vec![
            obs(0, 1, None, vec![]),
            touched,
            obs(20, 7, Some(READY), vec![]),
        ]);
        let found = h.foreign_writes();
        assert_eq!(found.len(), 3, "{found:#?}");
    }
}
