//! Label selector matching (matchLabels + matchExpressions) by kube's `Selector`, failing closed.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt as _};

/// Whether `labels` satisfy `selector`. An empty selector matches everything; one kube cannot read
/// (an unknown operator, `In`/`NotIn` without values) matches nothing.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn labels_and_expressions() {
        let labels = BTreeMap::from([("rack".to_owned(), "a".to_owned())]);
        let mut selector = LabelSelector::default();
        assert!(matches(&selector, &labels));
        selector.match_labels = Some(BTreeMap::from([("rack".to_owned(), "a".to_owned())]));
        assert!(matches(&selector, &labels));
        selector.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "zone".into(),
            operator: "Exists".into(),
            values: None,
        }]);
        assert!(!matches(&selector, &labels));
        selector.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "rack".into(),
            operator: "Near".into(),
            values: None,
        }]);
        assert!(
            !matches(&selector, &labels),
            "an unknown operator matches nothing"
        );
    }
}
