#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Runs `conformance certify --kubeconfig` against the boot backend in the kind cluster (sim-boot from
# hack/kind-up.sh, or your own backend deployed there). By default the suite runs in the cluster as the
# Job in config/conformance/job, with the least-privilege ServiceAccount from config/conformance;
# --from-host runs the binary on this machine with the kind kubeconfig instead (core profile only:
# the boot profile needs the cluster's network).
#
# Usage: hack/kind-conformance.sh [--from-host]
# Environment: CLUSTER_NAME (metal-harness), PROFILE (core; in-cluster also core,boot),
#              REPORT_DIR (conformance-report, --from-host), TIMEOUT_SECONDS (900),
#              CONFORMANCE (the conformance binary for --from-host; default: cargo run -p conformance --)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROFILE=${PROFILE:-core}
REPORT_DIR=${REPORT_DIR:-conformance-report}
TIMEOUT_SECONDS=${TIMEOUT_SECONDS:-900}
MODE=in-cluster
REGISTRY=sim-boot-registry.metal-harness-system.svc.cluster.local:5000

for arg in "$@"; do
  case "$arg" in
    --from-host) MODE=from-host ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$arg' (try --help)" ;;
  esac
done

require_container_tools
cluster_exists || die "no kind cluster '${CLUSTER_NAME}': run hack/kind-up.sh first"
kube -n metal-harness-system get serviceaccount conformance >/dev/null 2>&1 \
  || die "config/overlays/kind is not applied in '${CLUSTER_NAME}' (no conformance ServiceAccount): run hack/kind-up.sh"

run_in_cluster() {
  kube -n metal-harness-system delete job conformance --ignore-not-found --wait=true
  kubectl kustomize "${ROOT}/config/conformance/job" \
    | sed "s|--profile=core,boot|--profile=${PROFILE}|; s|--profile=core$|--profile=${PROFILE}|" \
    | kube apply -f -
  log "conformance Job started (profile ${PROFILE}); waiting up to ${TIMEOUT_SECONDS}s"
  local deadline=$((SECONDS + TIMEOUT_SECONDS)) succeeded failed
  while :; do
    succeeded=$(kube -n metal-harness-system get job conformance -o jsonpath='{.status.succeeded}')
    failed=$(kube -n metal-harness-system get job conformance -o jsonpath='{.status.failed}')
    if [ "${succeeded:-0}" -ge 1 ] || [ "${failed:-0}" -ge 1 ]; then break; fi
    if [ "${SECONDS}" -ge "${deadline}" ]; then
      kube -n metal-harness-system logs job/conformance --tail=50 >&2 || true
      die "the conformance Job did not finish within ${TIMEOUT_SECONDS}s"
    fi
    sleep 2
  done
  kube -n metal-harness-system logs job/conformance
  if [ "${succeeded:-0}" -ge 1 ]; then
    log "conformant: every requested MUST rule passed"
  else
    die "not conformant (or the suite could not run): see the summary above"
  fi
}

run_from_host() {
  local kubeconfig
  kubeconfig=$(mktemp)
  trap 'rm -f "${kubeconfig}"' EXIT
  kind get kubeconfig --name "${CLUSTER_NAME}" >"${kubeconfig}"
  local conformance=(cargo run --quiet -p conformance --)
  if [ -n "${CONFORMANCE:-}" ]; then conformance=("${CONFORMANCE}"); fi
  "${conformance[@]}" certify --kubeconfig "${kubeconfig}" \
    --implementation sim-boot --profile "${PROFILE}" \
    --valid-image "${REGISTRY}/ironcore/os:1.0" \
    --valid-image-alt "${REGISTRY}/ironcore/os:2.0" \
    --unresolvable-image "${REGISTRY}/ironcore/os:0.0-does-not-exist" \
    --missing-layer-image "${REGISTRY}/broken/no-kernel:1.0" \
    --disallowed-image "sim-boot-registry-disallowed.metal-harness-system.svc.cluster.local:5000/ironcore/os:1.0" \
    --report-dir "${REPORT_DIR}"
}

case "${MODE}" in
  in-cluster) run_in_cluster ;;
  from-host) run_from_host ;;
esac
