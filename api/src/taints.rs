//! Taint/toleration matching: may a ServerClaim bind to a Server?

use crate::common::{Taint, TaintEffect, Toleration, TolerationOperator};

/// The effect a taint has: `NoBind` when unset (the CRD default).
pub fn taint_effect(taint: &Taint) -> TaintEffect {
    taint.effect.clone().unwrap_or(TaintEffect::NoBind)
}

/// Whether `toleration` matches `taint`, with Kubernetes semantics:
/// - an empty key with operator `Exists` matches every taint;
/// - otherwise the keys must be equal;
/// - a set effect must equal the taint's effect (unset matches all effects);
/// - `Exists` ignores the value; `Equal` (or unset operator) requires equal values, unset = "".
///
/// An operator this crate does not know matches nothing.
pub fn toleration_matches(toleration: &Toleration, taint: &Taint) -> bool {
    let operator = toleration
        .operator
        .clone()
        .unwrap_or(TolerationOperator::Equal);
    if let Some(effect) = &toleration.effect
        && *effect != taint_effect(taint)
    {
        return false;
    }
    if toleration.key.is_empty() {
        return operator == TolerationOperator::Exists;
    }
    if toleration.key != taint.key {
        return false;
    }
    match operator {
        TolerationOperator::Exists => true,
        TolerationOperator::Equal => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        TolerationOperator::Other(_) => false,
    }
}

/// Whether a claim with `tolerations` may bind to a server with `taints`: every `NoBind` taint is
/// matched by some toleration. Other effects (`Evict`, unknown) do not block binding.
pub fn tolerates_all_nobind(tolerations: &[Toleration], taints: &[Taint]) -> bool {
    taints
        .iter()
        .filter(|taint| taint_effect(taint) == TaintEffect::NoBind)
        .all(|taint| {
            tolerations
                .iter()
                .any(|toleration| toleration_matches(toleration, taint))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: Option<TaintEffect>) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect,
        }
    }

    fn toleration(
        key: &str,
        operator: Option<TolerationOperator>,
        value: Option<&str>,
        effect: Option<TaintEffect>,
    ) -> Toleration {
        Toleration {
            key: key.into(),
            operator,
            value: value.map(Into::into),
            effect,
        }
    }

    #[test]
    fn no_taints_are_always_tolerated() {
        assert!(tolerates_all_nobind(&[], &[]));
    }

    #[test]
    fn untolerated_nobind_taint_blocks_and_unset_effect_means_nobind() {
        assert!(!tolerates_all_nobind(
            &[],
            &[taint("k", None, Some(TaintEffect::NoBind))]
        ));
        assert!(!tolerates_all_nobind(&[], &[taint("k", None, None)]));
    }

    #[test]
    fn evict_taints_do_not_block_binding() {
        assert!(tolerates_all_nobind(
            &[],
            &[taint("k", Some("v"), Some(TaintEffect::Evict))]
        ));
    }

    #[test]
    fn equal_requires_same_key_and_value() {
        let taints = [taint("maintenance", Some("bios"), None)];
        let equal = toleration(
            "maintenance",
            Some(TolerationOperator::Equal),
            Some("bios"),
            None,
        );
        let other_value = toleration(
            "maintenance",
            Some(TolerationOperator::Equal),
            Some("fw"),
            None,
        );
        let other_key = toleration("other", Some(TolerationOperator::Equal), Some("bios"), None);
        assert!(tolerates_all_nobind(&[equal], &taints));
        assert!(!tolerates_all_nobind(&[other_value], &taints));
        assert!(!tolerates_all_nobind(&[other_key], &taints));
    }

    #[test]
    fn unset_operator_means_equal_and_unset_values_are_empty() {
        let taints = [taint("k", None, None)];
        assert!(tolerates_all_nobind(
            &[toleration("k", None, None, None)],
            &taints
        ));
        assert!(tolerates_all_nobind(
            &[toleration("k", None, Some(""), None)],
            &taints
        ));
        assert!(!tolerates_all_nobind(
            &[toleration("k", None, Some("v"), None)],
            &taints
        ));
    }

    #[test]
    fn exists_ignores_value() {
        let taints = [taint("k", Some("anything"), None)];
        let exists = toleration("k", Some(TolerationOperator::Exists), Some("ignored"), None);
        assert!(tolerates_all_nobind(&[exists], &taints));
    }

    #[test]
    fn empty_key_with_exists_matches_every_taint() {
        let taints = [
            taint("a", Some("1"), None),
            taint("b", None, Some(TaintEffect::NoBind)),
        ];
        let wildcard = toleration("", Some(TolerationOperator::Exists), None, None);
        assert!(tolerates_all_nobind(
            std::slice::from_ref(&wildcard),
            &taints
        ));
        let empty_key_equal = toleration("", Some(TolerationOperator::Equal), None, None);
        assert!(!tolerates_all_nobind(&[empty_key_equal], &taints));
    }

    #[test]
    fn effect_must_match_when_set() {
        let taints = [taint("k", None, Some(TaintEffect::NoBind))];
        let evict_only = toleration(
            "k",
            Some(TolerationOperator::Exists),
            None,
            Some(TaintEffect::Evict),
        );
        let nobind = toleration(
            "k",
            Some(TolerationOperator::Exists),
            None,
            Some(TaintEffect::NoBind),
        );
        assert!(!tolerates_all_nobind(&[evict_only], &taints));
        assert!(tolerates_all_nobind(&[nobind], &taints));
        // A toleration with effect NoBind matches a taint whose effect is unset (defaults to NoBind).
        let unset_effect_taint = [taint("k", None, None)];
        let nobind = toleration(
            "k",
            Some(TolerationOperator::Exists),
            None,
            Some(TaintEffect::NoBind),
        );
        assert!(tolerates_all_nobind(&[nobind], &unset_effect_taint));
    }

    #[test]
    fn every_nobind_taint_needs_a_match() {
        let taints = [taint("a", None, None), taint("b", None, None)];
        let only_a = toleration("a", Some(TolerationOperator::Exists), None, None);
        let only_b = toleration("b", Some(TolerationOperator::Exists), None, None);
        assert!(!tolerates_all_nobind(
            std::slice::from_ref(&only_a),
            &taints
        ));
        assert!(tolerates_all_nobind(&[only_a, only_b], &taints));
    }

    #[test]
    fn unknown_operator_matches_nothing() {
        let taints = [taint("k", None, None)];
        let weird = toleration(
            "k",
            Some(TolerationOperator::Other("Gt".into())),
            None,
            None,
        );
        assert!(!tolerates_all_nobind(&[weird], &taints));
    }
}
