#!/usr/bin/env bash
# The compatibility suite as a container, end to end: a private Docker daemon
# (scripts/dockerd.sh, its state in this test's work directory), the base image
# (scripts/docker-base.sh: debootstrap once, cached in ~/.cache/sluice), the image
# `sluice-compat` built from the prebuilt runner (scripts/compat-image.sh), and
#
#   docker run --rm --network host sluice-compat --bootstrap 127.0.0.1:PORT
#
# against a Sluice broker on the host. It must exit 0 and end with "N passed, 0 failed, K
# skipped", N >= 1. Then the daemon is stopped and its state removed.
#
# Environment (CTest sets both): SLUICE_BIN, the broker; SLUICE_COMPAT_SUITE_BIN, the runner.
# Exit 77 (skipped) only when no Docker daemon can be started here (not root, no dockerd, no
# privileges for one); a missing package or a failing build is a failure.
#
# Time: the first run on a machine builds the base root filesystem (about two minutes, network
# bound); later runs take about half a minute.
# shellcheck source=compat_tests/kcat_lib.sh
source "$(dirname "$0")/kcat_lib.sh"
root="$(cd "$(dirname "$0")/.." && pwd)"
SKIP=77
: "${SLUICE_COMPAT_SUITE_BIN:?SLUICE_COMPAT_SUITE_BIN must point at sluice-compat-suite}"
[[ -x "$SLUICE_COMPAT_SUITE_BIN" ]] || fail "SLUICE_COMPAT_SUITE_BIN=$SLUICE_COMPAT_SUITE_BIN is not executable"
if [[ "$(id -u)" -ne 0 ]]; then
  echo "SKIP: a private Docker daemon and debootstrap need root; rootless Docker is not set up"
  exit "$SKIP"
fi
PATH="$PATH:/usr/sbin:/sbin"
command -v debootstrap >/dev/null || fail "debootstrap is not installed (scripts/install-deps.sh test)"
command -v dockerd >/dev/null ||
  fail "dockerd is not installed (Debian package docker.io: scripts/install-deps.sh test)"

if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
export DOCKER
dockerd_dir="$WORK/dockerd"
dockerd_started=""
container="sluice-compat-test-$$"
image=sluice-compat # the daemon and its images are this test's own

# Before kcat_lib.sh's cleanup (which stops the broker and removes $WORK): the daemon stops, and
# with it any container of this test.
stop_everything() {
  local rc=$?
  if [[ -n "$dockerd_started" ]]; then
    timeout 60 "$root/scripts/dockerd.sh" stop "$dockerd_dir" || true
    dockerd_started=""
  fi
  # Never remove a tree with something still mounted in it.
  if awk -v w="$WORK/" 'index($2, w) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
    echo "container_test.sh: mounts left under $WORK; not removing it" >&2
    SLUICE_COMPAT_KEEP=1
  fi
  cleanup
  exit "$rc"
}
trap stop_everything EXIT

start=$SECONDS
rc=0
env="$(timeout 90 "$root/scripts/dockerd.sh" start "$dockerd_dir")" || rc=$?
if [[ $rc -eq $SKIP ]]; then
  echo "SKIP: no Docker daemon can be started here (see above)"
  exit "$SKIP"
fi
[[ $rc -eq 0 ]] || fail "scripts/dockerd.sh start failed ($rc); $dockerd_dir/dockerd.log has the daemon's log"
dockerd_started=1
eval "$env"
echo "private dockerd: $DOCKER_HOST"

# Every step is bounded, so that the script, not CTest's TIMEOUT (which would leave the daemon
# running), ends a run that hangs.
timeout 1800 "$root/scripts/docker-base.sh" || fail "scripts/docker-base.sh failed"
echo "base image ready after $((SECONDS - start)) s"
# A daemon can start where containers still cannot (no privileges for namespaces, say).
if ! out="$(timeout 120 "$DOCKER" run --rm --network none sluice-base:bookworm true 2>&1)"; then
  printf '%s\n' "$out" >&2
  if grep -qiE 'operation not permitted|permission denied' <<<"$out"; then
    echo "SKIP: the Docker daemon starts but cannot run a container here (see above)"
    exit "$SKIP"
  fi
  fail "a container of sluice-base:bookworm does not run"
fi
timeout 900 "$root/scripts/compat-image.sh" "$image" || fail "scripts/compat-image.sh failed"
echo "image $image built after $((SECONDS - start)) s"

start_broker
echo "broker at $BOOTSTRAP"
set +e
# `timeout` ends the client; the daemon's stop at exit ends the container if it still runs.
timeout 600 "$DOCKER" run --rm --name "$container" --network host "$image" \
  --bootstrap "$BOOTSTRAP" >"$WORK/out" 2>"$WORK/err"
status=$?
set -e
cat "$WORK/out"
if [[ $status -ne 0 ]]; then
  tail -n 60 "$WORK/err" >&2
  [[ $status -eq 124 ]] && fail "docker run did not finish within 600 s"
  fail "docker run ... sluice-compat exited with $status"
fi
summary="$(tail -n 1 "$WORK/out")"
[[ "$summary" =~ ^([0-9]+)\ passed,\ 0\ failed,\ ([0-9]+)\ skipped$ ]] || fail "summary line: $summary"
((BASH_REMATCH[1] >= 1)) || fail "no scenario passed"
grep -q '^PASS kcat/' "$WORK/out" || fail "no kcat scenario passed in the image"
grep -q '^SKIP platformatic/' "$WORK/out" ||
  fail "the image should report the platformatic scenarios as skipped (no node in it)"
stop_broker
echo "container suite: $summary (in $((SECONDS - start)) s)"
