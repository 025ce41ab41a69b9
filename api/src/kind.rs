//! The header every `metal.ironcore.dev/v1alpha1` kind's spec struct shares, written once: the derives, the
//! group and version, camelCase fields, schemas without schemars' null arms, and upstream's trailing `Age`
//! column. A kind applies it with `#[apply(metal_kind!)]` and adds only its own `#[kube(...)]` keys.

/// The shared header without the `Age` column (ServerReadinessRule has no columns upstream).
macro_rules! metal_kind_without_age {
    ($(#[$attr:meta])* $vis:vis struct $($rest:tt)*) => {
        #[derive(
            kube::CustomResource,
            serde::Serialize,
            serde::Deserialize,
            Clone,
            Debug,
            PartialEq,
            schemars::JsonSchema,
        )]
        #[kube(group = "metal.ironcore.dev", version = "v1alpha1", derive = "PartialEq")]
        #[serde(rename_all = "camelCase")]
        #[schemars(transform = $crate::schema::strip_null)]
        $(#[$attr])*
        $vis struct $($rest)*
    };
}

/// The shared header, the kind's own attributes, then the `Age` column that ends upstream's tables.
macro_rules! metal_kind {
    ($(#[$attr:meta])* $vis:vis struct $($rest:tt)*) => {
        $crate::kind::metal_kind_without_age! {
            $(#[$attr])*
            #[kube(printcolumn(
                name = "Age",
                type_ = "date",
                json_path = ".metadata.creationTimestamp"
            ))]
            $vis struct $($rest)*
        }
    };
}

pub(crate) use {metal_kind, metal_kind_without_age};
