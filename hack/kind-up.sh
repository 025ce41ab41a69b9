#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Creates (or reuses) a kind cluster and runs metal-harness in it: builds the container images, loads
# them into the cluster, installs the CRDs and the config/overlays/kind overlay (operator, sim-boot,
# sim-bmc fleet, conformance RBAC, ServiceMonitor), registers the simulated BMC, and waits until the
# Deployments are available and the operator has connected to the BMC.
#
# Usage: hack/kind-up.sh [--no-build]
# Environment: CLUSTER_NAME (metal-harness), KIND_NODE_IMAGE (kind's default), WAIT_TIMEOUT (300s),
#              PROMETHEUS_OPERATOR_VERSION (v0.86.0: source of the ServiceMonitor CRD if it is missing).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WAIT_TIMEOUT=${WAIT_TIMEOUT:-300s}
PROMETHEUS_OPERATOR_VERSION=${PROMETHEUS_OPERATOR_VERSION:-v0.86.0}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-}
IMAGES=(metal-operator sim-boot sim-bmc conformance)
BUILD=1

for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$arg' (try --help)" ;;
  esac
done

require_container_tools

if cluster_exists; then
  log "reusing kind cluster '${CLUSTER_NAME}'"
else
  log "creating kind cluster '${CLUSTER_NAME}'"
  create=(kind create cluster --name "${CLUSTER_NAME}" --wait 120s)
  if [ -n "${KIND_NODE_IMAGE}" ]; then create+=(--image "${KIND_NODE_IMAGE}"); fi
  "${create[@]}"
fi

for image in "${IMAGES[@]}"; do
  ref="metal-harness/${image}:dev"
  if [ "${BUILD}" = 1 ]; then
    log "building ${ref}"
    DOCKER_BUILDKIT=1 docker build --target "${image}" --tag "${ref}" "${ROOT}"
  fi
  log "loading ${ref} into the cluster"
  kind load docker-image "${ref}" --name "${CLUSTER_NAME}"
done

if ! kube get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1; then
  log "installing the ServiceMonitor CRD (prometheus-operator ${PROMETHEUS_OPERATOR_VERSION})"
  kube apply --server-side -f "https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/${PROMETHEUS_OPERATOR_VERSION}/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
fi

log "installing the metal.ironcore.dev CRDs"
kube apply --server-side -k "${ROOT}/config"
kube wait --for=condition=Established --timeout=60s crd --all

log "applying config/overlays/kind"
kube apply --server-side -k "${ROOT}/config/overlays/kind"
for deployment in metal-operator-system/metal-operator metal-harness-system/sim-boot metal-harness-system/sim-bmc; do
  kube -n "${deployment%%/*}" rollout status "deployment/${deployment##*/}" --timeout="${WAIT_TIMEOUT}"
done

log "registering the simulated BMC"
kube apply --server-side -k "${ROOT}/config/overlays/kind/fleet"
kube wait --for=jsonpath='{.status.state}'=Enabled bmc/sim-bmc-0 --timeout="${WAIT_TIMEOUT}"

cat >&2 <<DONE
kind-up: ready. Try:
  kubectl --context ${KUBE_CONTEXT} get bmcs,servers
  kubectl --context ${KUBE_CONTEXT} -n metal-operator-system logs deploy/metal-operator
  hack/kind-conformance.sh
DONE
