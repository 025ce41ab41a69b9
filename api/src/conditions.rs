//! `metav1.Condition` list helpers with upstream's `meta.SetStatusCondition` semantics.
//!
//! Callers supply `lastTransitionTime` in the condition they set (from their own clock), so these
//! functions never read the wall clock.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// The condition of type `type_` in `conditions`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|condition| condition.type_ == type_)
}

/// Whether the condition of type `type_` is present with status `"True"`.
pub fn is_condition_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|condition| condition.status == "True")
}

/// Adds `new` or updates the condition of the same type; returns whether anything changed.
///
/// As in Kubernetes' `meta.SetStatusCondition`: an existing condition keeps its
/// `lastTransitionTime` unless its status changes; reason, message and observedGeneration are
/// always taken from `new`. Other conditions (written by other controllers) are left untouched.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) -> bool {
    let Some(existing) = conditions
        .iter_mut()
        .find(|condition| condition.type_ == new.type_)
    else {
        conditions.push(new);
        return true;
    };
    let mut changed = false;
    if existing.status != new.status {
        existing.status = new.status;
        existing.last_transition_time = new.last_transition_time;
        changed = true;
    }
    if existing.reason != new.reason {
        existing.reason = new.reason;
        changed = true;
    }
    if existing.message != new.message {
        existing.message = new.message;
        changed = true;
    }
    if existing.observed_generation != new.observed_generation {
        existing.observed_generation = new.observed_generation;
        changed = true;
    }
    changed
}

/// Removes the condition of type `type_`; returns whether it was present.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|condition| condition.type_ != type_);
    conditions.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn condition(type_: &str, status: &str, reason: &str, at_second: i64) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time(Timestamp::from_second(at_second).expect("valid timestamp")),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn adds_then_updates_in_place_keeping_transition_time_when_status_is_unchanged() {
        let mut conditions = vec![condition("Other", "True", "Theirs", 1)];
        assert!(set_condition(
            &mut conditions,
            condition("Ready", "False", "Waiting", 10)
        ));
        assert_eq!(conditions.len(), 2);

        assert!(set_condition(
            &mut conditions,
            condition("Ready", "False", "StillWaiting", 20)
        ));
        let ready = find_condition(&conditions, "Ready").expect("present");
        assert_eq!(ready.reason, "StillWaiting");
        assert_eq!(ready.last_transition_time.0.as_second(), 10);

        assert!(set_condition(
            &mut conditions,
            condition("Ready", "True", "Done", 30)
        ));
        let ready = find_condition(&conditions, "Ready").expect("present");
        assert_eq!(ready.last_transition_time.0.as_second(), 30);
        assert!(is_condition_true(&conditions, "Ready"));

        assert!(!set_condition(
            &mut conditions,
            condition("Ready", "True", "Done", 40)
        ));
        assert_eq!(
            find_condition(&conditions, "Other").expect("kept").reason,
            "Theirs"
        );
    }

    #[test]
    fn removes_only_the_named_type() {
        let mut conditions = vec![
            condition("A", "True", "R", 1),
            condition("B", "True", "R", 1),
        ];
        assert!(remove_condition(&mut conditions, "A"));
        assert!(!remove_condition(&mut conditions, "A"));
        assert_eq!(conditions.len(), 1);
        assert!(!is_condition_true(&conditions, "A"));
    }
}
