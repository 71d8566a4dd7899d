#!/usr/bin/env bash
# Builds the image of the broker-neutral compatibility suite (docker/compat.Dockerfile):
#
#   scripts/compat-image.sh [TAG]        TAG defaults to sluice-compat
#   docker run --rm --network host sluice-compat --bootstrap 127.0.0.1:9092
#
# The runner is not compiled in the image: the host-built one goes in, from
# $SLUICE_COMPAT_SUITE_BIN (default build/compat_tests/suite/sluice-compat-suite, which
# `cmake --build build --target sluice-compat-suite` makes). It must be built on Debian bookworm,
# the image's base; the script checks that it runs in the image.
#
# The base image comes first (scripts/docker-base.sh: a few minutes once, then a second). The
# Docker daemon is found as docker-base.sh finds it: DOCKER_HOST, a daemon of scripts/dockerd.sh,
# the system's; if none answers, scripts/dockerd.sh's private one is started for the build and
# stopped again, and the image stays in its data root, so on a machine without a Docker service:
#
#   scripts/compat-image.sh && eval "$(scripts/dockerd.sh start)"
#   docker run --rm --network host sluice-compat --bootstrap 127.0.0.1:9092
#   scripts/dockerd.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

tag="${1:-sluice-compat}"
suite_bin="${SLUICE_COMPAT_SUITE_BIN:-$root/build/compat_tests/suite/sluice-compat-suite}"
log() { echo "compat-image.sh: $*" >&2; }

if [[ ! -x "$suite_bin" ]]; then
  log "no runner at $suite_bin: build it (cmake --build build --target sluice-compat-suite) or set SLUICE_COMPAT_SUITE_BIN"
  exit 1
fi
if [[ -z "${DOCKER:-}" ]]; then
  if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER

work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-compat-image-XXXXXX")"
started_dockerd=""
cleanup() {
  if [[ -n "$started_dockerd" ]]; then scripts/dockerd.sh stop || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The same daemon for the base and the build: settle on one here and pass it on.
if [[ -z "${DOCKER_HOST:-}" ]]; then
  if env="$(scripts/dockerd.sh host 2>/dev/null)"; then
    eval "$env"
  elif ! timeout 10 "$DOCKER" version >/dev/null 2>&1; then
    log "no Docker daemon answers; starting scripts/dockerd.sh's private one for the build"
    env="$(scripts/dockerd.sh start)"
    eval "$env"
    started_dockerd=1
  fi
fi

scripts/docker-base.sh

# The build context: only what the image holds, in the source tree's layout.
ctx="$work/context"
mkdir -p "$ctx/scripts" "$ctx/compat_tests/suite"
install -m 0755 "$suite_bin" "$ctx/sluice-compat-suite"
install -m 0755 scripts/compat.sh scripts/node-clients.sh "$ctx/scripts/"
install -m 0755 compat_tests/suite/kcat.sh "$ctx/compat_tests/suite/kcat.sh"
install -m 0644 compat_tests/suite/mock-allowlist.txt compat_tests/suite/README.md \
  "$ctx/compat_tests/suite/"

# The classic builder (DOCKER_BUILDKIT=0) takes FROM from the local images without asking a
# registry; --network none: the one RUN step needs no network, and the private daemon has no
# bridge.
log "building $tag from $suite_bin"
if ! DOCKER_BUILDKIT=0 timeout 600 "$DOCKER" build --network none --pull=false -q \
  -f docker/compat.Dockerfile -t "$tag" "$ctx" >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  log "docker build failed"
  exit 1
fi

# The runner's shared libraries must resolve in the image (a runner built on a newer system
# would not start).
if ! out="$(timeout 60 "$DOCKER" run --rm --network none --entrypoint sluice-compat-suite "$tag" \
  --list 2>&1)"; then
  printf '%s\n' "$out" | tail -n 20 >&2
  log "the runner does not start in the image"
  exit 1
fi
log "built $tag ($(printf '%s\n' "$out" | grep -c /) runner scenarios)"
