//! An embedded, in-process Kubernetes-API-compatible server (REST + watch) over real HTTP.
//! It lets kube-rs, kube-runtime and kubectl run against a real API on one machine with no cluster,
//! so the operator, backends and conformance suite run unchanged here and on a real cluster.
