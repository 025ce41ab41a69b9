# shellcheck shell=bash
# Shared by hack/kind-*.sh: tool checks with clear messages, and the kind cluster's kubectl context.

CLUSTER_NAME=${CLUSTER_NAME:-metal-harness}
KUBE_CONTEXT="kind-${CLUSTER_NAME}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT KUBE_CONTEXT

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "$*"; exit 2; }

# Checks docker (with a daemon that answers), kind and kubectl; names everything that is missing at once.
require_container_tools() {
  local missing=()
  command -v docker >/dev/null 2>&1 || missing+=("docker: install Docker Engine (https://docs.docker.com/engine/install/)")
  command -v kind >/dev/null 2>&1 || missing+=("kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation (or: go install sigs.k8s.io/kind@latest)")
  command -v kubectl >/dev/null 2>&1 || missing+=("kubectl: https://kubernetes.io/docs/tasks/tools/")
  if [ "${#missing[@]}" -gt 0 ]; then
    log "cannot continue, missing tools:"
    printf '  - %s\n' "${missing[@]}" >&2
    exit 2
  fi
  if ! docker info >/dev/null 2>&1; then
    die "the docker CLI is installed but no Docker daemon answers ('docker info' failed): start Docker, or point DOCKER_HOST at a running daemon"
  fi
}

kube() { kubectl --context "${KUBE_CONTEXT}" "$@"; }

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; }

# Prints the script's header comment (everything after the shebang and shellcheck lines).
usage() { awk 'NR > 1 && /^# shellcheck/ {next} NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }
