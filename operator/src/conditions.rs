//! metav1.Condition helpers: set with transition-time semantics, find, compare.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// A condition to write; `lastTransitionTime` is kept when the status does not change.
pub struct NewCondition<'a> {
    pub type_: &'a str,
    pub status: bool,
    pub reason: &'a str,
    pub message: String,
    pub observed_generation: Option<i64>,
}

/// Sets a condition; returns whether anything changed.
pub fn set(conditions: &mut Vec<Condition>, new: NewCondition<'_>, now: Timestamp) -> bool {
    let status = if new.status { "True" } else { "False" };
    let reason = if new.reason.is_empty() {
        "Unknown"
    } else {
        new.reason
    };
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            let transition = existing.status != status;
            let changed = transition
                || existing.reason != reason
                || existing.message != new.message
                || existing.observed_generation != new.observed_generation;
            if changed {
                if transition {
                    existing.last_transition_time = Time(now);
                }
                existing.status = status.into();
                existing.reason = reason.into();
                existing.message = new.message;
                existing.observed_generation = new.observed_generation;
            }
            changed
        }
        None => {
            conditions.push(Condition {
                type_: new.type_.into(),
                status: status.into(),
                reason: reason.into(),
                message: new.message,
                observed_generation: new.observed_generation,
                last_transition_time: Time(now),
            });
            true
        }
    }
}

pub fn remove(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    before != conditions.len()
}

/// Time since the condition last changed status.
pub fn age(condition: &Condition, now: Timestamp) -> std::time::Duration {
    clock::elapsed(condition.last_transition_time.0, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let mut conds = Vec::new();
        let c = |status, reason: &'static str| NewCondition {
            type_: "X",
            status,
            reason,
            message: String::new(),
            observed_generation: None,
        };
        assert!(set(&mut conds, c(true, "A"), t0));
        assert!(!set(&mut conds, c(true, "A"), t1));
        assert!(set(&mut conds, c(true, "B"), t1));
        assert_eq!(conds[0].last_transition_time.0, t0);
        assert!(set(&mut conds, c(false, "B"), t1));
        assert_eq!(conds[0].last_transition_time.0, t1);
    }
}
