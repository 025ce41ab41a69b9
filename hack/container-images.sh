#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds the runtime images without any container registry: makes a distroless-like base image from
# Debian packages (debootstrap --variant=minbase, then only glibc, libgcc, the CA bundle and a nonroot
# user 65532 are kept), caches it, and builds the Dockerfile's runtime stages on it from binaries built
# on the host. The images are the ones `docker build --target NAME .` makes where registries answer.
#
# Usage: hack/container-images.sh [--bin-dir DIR] [--images a,b,...] [--tag TAG] [--base-only] [--rebuild-base]
#   --bin-dir DIR   take the binaries from DIR (e.g. target/debug) instead of `cargo build --release`
#   --images LIST   only these images (default: all six Dockerfile targets)
#   --tag TAG       image tag (default: dev, the tag hack/kind-up.sh and the kind overlay use)
#   --base-only     only make (or load from the cache) the base image
#   --rebuild-base  ignore the cached base and run debootstrap again
# Environment: BASE_IMAGE (metal-harness/base:local), METAL_HARNESS_CACHE (/var/cache/metal-harness),
#              DEBIAN_MIRROR (http://deb.debian.org/debian), DEBIAN_SUITE (bookworm),
#              DEBOOTSTRAP_ROOT (an existing debootstrap tree to take the base from instead of running it).
# Exit codes: 0 built, 2 a missing tool or a bad argument, 1 a failed step.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BASE_IMAGE=${BASE_IMAGE:-metal-harness/base:local}
CACHE_DIR=${METAL_HARNESS_CACHE:-/var/cache/metal-harness}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
ALL_IMAGES=(metal-operator sim-boot sim-bmc conformance apiserver metal-harness)
# What the binaries link against (`ldd`: libc, libm, libgcc_s, the loader), as Debian packages.
BASE_PACKAGES=(libc6 libgcc-s1)
# Bump when the base recipe below changes, so a stale cached tarball is not reused.
BASE_RECIPE=1

BIN_DIR=""
TAG=dev
BASE_ONLY=0
REBUILD_BASE=0
IMAGES=("${ALL_IMAGES[@]}")

while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a directory"; BIN_DIR=$2; shift ;;
    --images) [ $# -ge 2 ] || die "--images needs a list"; IFS=, read -r -a IMAGES <<<"$2"; shift ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; TAG=$2; shift ;;
    --base-only) BASE_ONLY=1 ;;
    --rebuild-base) REBUILD_BASE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done
for image in "${IMAGES[@]}"; do
  printf '%s\n' "${ALL_IMAGES[@]}" | grep -qx "$image" || die "unknown image '$image' (one of: ${ALL_IMAGES[*]})"
done

command -v docker >/dev/null 2>&1 || die "missing tool: docker (apt-get install docker.io)"
docker info >/dev/null 2>&1 || die "no Docker daemon answers ('docker info' failed): start dockerd"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# The kept files of one installed package, as paths under the real (merged-/usr) directories.
package_files() {
  local root=$1 pkg=$2 list=""
  for candidate in "$root/var/lib/dpkg/info/$pkg.list" "$root/var/lib/dpkg/info/$pkg":*.list; do
    if [ -f "$candidate" ]; then list=$candidate; break; fi
  done
  [ -n "$list" ] || die "package $pkg is not installed in the debootstrap root"
  while IFS= read -r path; do
    case "$path" in /usr/share/doc/*|/usr/share/lintian/*|/usr/share/locale/*|/usr/share/man/*|/usr/share/info/*) continue ;; esac
    if [ -L "$root$path" ] || [ -f "$root$path" ]; then
      printf '%s/%s\n' "$(realpath --relative-to="$root" "$root$(dirname "$path")")" "$(basename "$path")"
    fi
  done <"$list"
}

# debootstrap, then a root holding only what a statically-unaware Rust binary needs at run time.
make_base_tarball() {
  local out=$1 debroot=${DEBOOTSTRAP_ROOT:-$scratch/debootstrap} root=$scratch/base
  if [ -n "${DEBOOTSTRAP_ROOT:-}" ]; then
    log "using the debootstrap tree ${DEBOOTSTRAP_ROOT}"
  else
    command -v debootstrap >/dev/null 2>&1 || die "missing tool: debootstrap (apt-get install debootstrap)"
    [ "$(id -u)" = 0 ] || die "debootstrap needs root"
    log "debootstrap ${DEBIAN_SUITE} (minbase) from ${DEBIAN_MIRROR}"
    debootstrap --variant=minbase --include=ca-certificates "$DEBIAN_SUITE" "$debroot" "$DEBIAN_MIRROR" \
      >"$scratch/debootstrap.log" 2>&1 || { tail -20 "$scratch/debootstrap.log" >&2; die "debootstrap failed"; }
  fi
  mkdir -p "$root"/{etc/ssl/certs,usr/lib,usr/lib64,usr/local/bin,tmp,root,home/nonroot}
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  for pkg in "${BASE_PACKAGES[@]}"; do
    package_files "$debroot" "$pkg" >"$scratch/$pkg.files"
    [ -s "$scratch/$pkg.files" ] || die "package $pkg installed no files in the debootstrap root"
    (cd "$debroot" && xargs -r -a "$scratch/$pkg.files" cp -a --parents -t "$root")
  done
  cp "$debroot/etc/ssl/certs/ca-certificates.crt" "$root/etc/ssl/certs/"
  cp "$debroot/etc/nsswitch.conf" "$root/etc/"
  cp -L "$debroot/etc/os-release" "$root/etc/os-release"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  chmod 700 "$root/root" "$root/home/nonroot"
  chown 65532:65532 "$root/home/nonroot"
  mkdir -p "$(dirname "$out")"
  tar --numeric-owner --sort=name --mtime=@0 -C "$root" -cf "$out.partial" .
  mv "$out.partial" "$out"
}

make_base() {
  local tarball
  tarball="$CACHE_DIR/base-${DEBIAN_SUITE}-r${BASE_RECIPE}-$(echo "${BASE_PACKAGES[*]}" | sha256sum | cut -c1-12).tar"
  if [ "$REBUILD_BASE" = 0 ] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 &&
     [ "$(docker image inspect --format '{{index .Config.Labels "metal-harness.base"}}' "$BASE_IMAGE" 2>/dev/null)" = "$(basename "$tarball")" ]; then
    log "base image ${BASE_IMAGE} is present"
    return
  fi
  if [ "$REBUILD_BASE" = 1 ] || [ ! -s "$tarball" ]; then
    make_base_tarball "$tarball"
  else
    log "using the cached base ${tarball}"
  fi
  # A Dockerfile cannot start from a tarball without a registry image, so the base is imported.
  docker import \
    --change 'USER 65532:65532' \
    --change 'WORKDIR /' \
    --change 'ENV PATH=/usr/local/bin:/usr/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL metal-harness.base=$(basename "$tarball")" \
    "$tarball" "$BASE_IMAGE" >/dev/null
  log "base image ${BASE_IMAGE}: $(docker image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes"
}

# The Dockerfile's runtime stage and the stage of one image, copying the binary from the build context
# instead of the builder stage. Only these two: the classic builder would build every earlier stage too.
runtime_dockerfile() {
  echo "ARG BASE_IMAGE"
  awk -v target="FROM runtime AS $1" '/^# ---- runtime images/ {base = 1} base && /^FROM runtime AS / {base = 0}
    $0 == target {stage = 1} stage && /^FROM / && $0 != target {stage = 0} base || stage' "$ROOT/Dockerfile" |
    sed -E 's#^COPY --from=builder /out/#COPY #'
}

# The binary an image's stage copies (`COPY --from=builder /out/NAME ...`), e.g. sim-bmc -> sim-bmc-netboot.
image_binary() {
  awk -v target="FROM runtime AS $1" '$0 == target {on = 1; next} /^FROM / {on = 0}
    on && /^COPY --from=builder \/out\// {sub("/out/", "", $3); print $3; exit}' "$ROOT/Dockerfile"
}

build_images() {
  local context=$scratch/context bins=() image bin
  mkdir -p "$context"
  for image in "${IMAGES[@]}"; do
    bin=$(image_binary "$image")
    [ -n "$bin" ] || die "the Dockerfile has no stage 'FROM runtime AS $image' copying a binary from /out/"
    bins+=("$bin")
  done
  if [ -z "$BIN_DIR" ]; then
    log "building release binaries: ${bins[*]}"
    local flags=()
    for bin in "${bins[@]}"; do flags+=(--bin "$bin"); done
    (cd "$ROOT" && cargo build --release --locked "${flags[@]}")
    BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
  fi
  for bin in "${bins[@]}"; do
    [ -x "$BIN_DIR/$bin" ] || die "no binary $BIN_DIR/$bin (build it first: cargo build --bin $bin)"
    # Debug info is for debuggers, not for the image: the symbols (for backtraces) are kept.
    if command -v strip >/dev/null 2>&1; then
      strip --strip-debug -o "$context/$bin" "$BIN_DIR/$bin"
    else
      cp "$BIN_DIR/$bin" "$context/$bin"
    fi
  done
  for image in "${IMAGES[@]}"; do
    runtime_dockerfile "$image" >"$scratch/Dockerfile"
    grep -qxF "FROM \${BASE_IMAGE} AS runtime" "$scratch/Dockerfile" ||
      die "the Dockerfile has no '# ---- runtime images' section starting FROM \${BASE_IMAGE} AS runtime"
    log "building metal-harness/${image}:${TAG}"
    # The default builder: no registry frontend image is needed (BuildKit's would be pulled for `# syntax`).
    if ! docker build --build-arg "BASE_IMAGE=${BASE_IMAGE}" --target "$image" \
      --tag "metal-harness/${image}:${TAG}" --file "$scratch/Dockerfile" "$context" >"$scratch/build.log" 2>&1; then
      cat "$scratch/build.log" >&2
      die "docker build of ${image} failed"
    fi
  done
}

make_base
if [ "$BASE_ONLY" = 0 ]; then
  build_images
fi
