//! Manifests and the kind path: checks that the shipped kustomize bases, RBAC and images match what
//! the binaries do — `kubectl kustomize` builds, server-side dry runs, a recording proxy that compares
//! the API calls each component makes with its Role, and each workload run as a container (`pods`).

pub mod manifests;
pub mod pods;
pub mod rbac;
pub mod recorder;
pub mod tools;
