//! Label selector matching (matchLabels + matchExpressions), as apimachinery defines it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `labels` satisfy `selector`. An empty selector matches everything; an unknown
/// operator matches nothing (fail closed).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .as_ref()
        .is_none_or(|wanted| wanted.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let expressions_ok = selector.match_expressions.as_ref().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
    });
    labels_ok && expressions_ok
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
    }
}
