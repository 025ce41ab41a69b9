//! Shared by the deploy tests: where the manifests are and how to build them.
#![allow(dead_code)]

use std::path::PathBuf;

use deploy::manifests::Manifests;
use deploy::tools::repo_root;

pub fn config(rel: &str) -> PathBuf {
    repo_root().join("config").join(rel)
}

/// `kubectl kustomize config/<rel>`, panicking with kubectl's message when the build fails.
pub fn build(rel: &str) -> Manifests {
    Manifests::build(&config(rel)).unwrap_or_else(|e| panic!("kubectl kustomize config/{rel}: {e}"))
}

/// Every kustomization a user applies: the CRD base, both overlays, the kind fleet and the conformance Job.
pub const KUSTOMIZATIONS: &[&str] = &[
    "",
    "overlays/kind",
    "overlays/operator-only",
    "overlays/kind/fleet",
    "conformance/job",
];
