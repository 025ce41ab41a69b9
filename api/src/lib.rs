//! The `metal.ironcore.dev/v1alpha1` API as Rust types, wire-compatible with upstream metal-operator.
//! Every other crate in metal-harness reads and writes these objects, so they live at the bottom of the graph.
//! Also: well-known constants (finalizers, annotations, labels) and small typed helpers over them.
