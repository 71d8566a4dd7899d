#!/usr/bin/env bash
# Builds the local base image `sluice-base:bookworm` that the Sluice images start FROM, without any
# image registry: debootstrap (--variant=minbase) makes a Debian bookworm root filesystem from the
# Debian mirror, with bookworm-updates and the security updates and the runtime packages below,
# and `docker import` loads it.
#
#   scripts/docker-base.sh
#
# Both steps happen once. The root filesystem is cached as a tarball in
# ${XDG_CACHE_HOME:-$HOME/.cache}/sluice/docker-base/, named by a key over everything that goes
# into it (the package list, the suites, this recipe's version), and the image is tagged
# sluice-base:bookworm-KEY as well as sluice-base:bookworm: a second run with the same key only
# checks that the image is there (a second or so). A new package below makes a new key, so a new
# tarball and image. The first build needs root (debootstrap, chroot) and takes a few minutes.
#
# The Docker daemon: the one DOCKER_HOST names, else one already running from scripts/dockerd.sh,
# else the system's default socket; if none answers, this script starts scripts/dockerd.sh's
# private daemon for the import and stops it again (the image stays in that daemon's data root).
#
# Environment: SLUICE_DEBIAN_MIRROR (default http://deb.debian.org/debian) and
# SLUICE_DEBIAN_SECURITY (default http://deb.debian.org/debian-security).
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$PATH:/usr/sbin:/sbin" # debootstrap, chroot

IMAGE=sluice-base
SUITE=bookworm
RECIPE=1 # bump when the steps below change what the tarball holds
# The runtime packages of the images, beyond minbase (which has bash, coreutils, grep, sed, mawk,
# passwd, libc6, libgcc-s1). `ldd` on the host-built binaries names what they link:
#   build/sluice                                libstdc++6
#   build/sluice-mockbroker, sluice-compat-suite librdkafka1 (and through it libssl3, libsasl2-2,
#                                               libzstd1, liblz4-1, zlib1g: its dependencies)
packages=(
  libstdc++6
  librdkafka1
  kcat # compat_tests/suite/kcat.sh
  bash # scripts/compat.sh (in minbase already; named so that it stays)
  tini # PID 1 of the images: forwards signals (Ctrl-C, docker stop) and reaps children
)
mirror="${SLUICE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${SLUICE_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"

key="$(printf '%s\n' "$RECIPE" "$SUITE" minbase "${packages[@]}" | sha256sum | cut -c1-12)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/docker-base"
tarball="$cache/$SUITE-$key.tar"
tag="$IMAGE:$SUITE-$key"

if [[ -z "${DOCKER:-}" ]]; then
  if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER

log() { echo "docker-base.sh: $*" >&2; }

# ---- the daemon -------------------------------------------------------------------------------
started_dockerd=""
stop_started_dockerd() {
  if [[ -n "$started_dockerd" ]]; then
    scripts/dockerd.sh stop || true
    started_dockerd=""
  fi
}
trap stop_started_dockerd EXIT

daemon_answers() { timeout 10 "$DOCKER" version >/dev/null 2>&1; }

use_a_daemon() {
  if [[ -n "${DOCKER_HOST:-}" ]]; then
    daemon_answers && return 0
    log "the Docker daemon at DOCKER_HOST=$DOCKER_HOST does not answer"
    exit 1
  fi
  local env
  if env="$(scripts/dockerd.sh host 2>/dev/null)"; then
    eval "$env"
    return 0
  fi
  daemon_answers && return 0
  log "no Docker daemon answers; starting scripts/dockerd.sh's private one for the import"
  env="$(scripts/dockerd.sh start)"
  eval "$env"
  started_dockerd=1
}

# Older recipes: their tarballs go, and their images unless an image still uses them.
prune_old() {
  local old
  for old in "$cache/$SUITE"-*.tar; do
    [[ "$old" == "$tarball" || ! -f "$old" ]] || rm -f "$old"
  done
  timeout 30 "$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}' "$IMAGE" 2>/dev/null |
    grep -E "^$IMAGE:$SUITE-[0-9a-f]{12}\$" | grep -vxF "$tag" |
    while read -r old; do timeout 30 "$DOCKER" rmi "$old" >/dev/null 2>&1 || true; done || true
}

# ---- already there? ---------------------------------------------------------------------------
use_a_daemon
if timeout 30 "$DOCKER" image inspect "$tag" >/dev/null 2>&1; then
  timeout 30 "$DOCKER" tag "$tag" "$IMAGE:$SUITE"
  prune_old
  log "$IMAGE:$SUITE is $tag (up to date)"
  exit 0
fi

# ---- the root filesystem (cached) -------------------------------------------------------------
remove_work() {
  local m
  awk -v w="$1/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$1"
}

build_rootfs() {
  if [[ "$(id -u)" -ne 0 ]]; then
    log "building the root filesystem needs root (debootstrap, chroot)"
    exit 1
  fi
  command -v debootstrap >/dev/null ||
    { log "debootstrap missing (Debian package debootstrap: scripts/install-deps.sh test)"; exit 1; }

  local work root
  work="$(mktemp -d "$cache/build.XXXXXX")"
  root="$work/rootfs"
  # Anything mounted under the new root (debootstrap mounts proc and sys, and binds /dev where it
  # cannot make device nodes) is unmounted before the half-built tree is removed, however this
  # ends; rm stays on this file system in any case.
  # shellcheck disable=SC2064
  trap "remove_work '$work'; stop_started_dockerd" EXIT

  log "debootstrap --variant=minbase $SUITE from $mirror (a few minutes, once)"
  local include
  include="$(IFS=,; echo "${packages[*]}")"
  if ! timeout 900 debootstrap --variant=minbase --include="$include" \
    "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    [[ -f "$root/debootstrap/debootstrap.log" ]] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
    log "debootstrap failed"
    exit 1
  fi

  # What debian:bookworm-slim does: no documentation, man pages or translations; no services
  # started by package scripts; apt keeps no package lists or downloaded packages.
  cat >"$root/etc/dpkg/dpkg.cfg.d/sluice-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
EOF
  cat >"$root/etc/apt/apt.conf.d/sluice-slim" <<'EOF'
APT::Install-Recommends "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  log "applying $SUITE-updates and $SUITE-security"
  if ! { timeout 300 chroot "$root" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive timeout 600 chroot "$root" apt-get -y -qq dist-upgrade; } \
    >"$work/upgrade.log" 2>&1; then
    tail -n 30 "$work/upgrade.log" >&2
    log "apt-get update/dist-upgrade in the new root failed"
    exit 1
  fi
  chroot "$root" apt-get clean
  umount "$root/proc"
  rm -f "$root/usr/sbin/policy-rc.d"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/usr/share/lintian/* "$root/debootstrap"
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  # Docker provides these at run time.
  rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
  : >"$root/etc/hostname"

  # /dev, /proc and /sys stay empty directories: the runtime mounts its own.
  tar --numeric-owner --xattrs -C "$root" \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$work/rootfs.tar" .
  mv "$work/rootfs.tar" "$tarball"
  remove_work "$work"
  trap stop_started_dockerd EXIT
}

mkdir -p "$cache"
# One build at a time; a second caller waits for the first one's tarball.
exec 8>"$cache/lock"
flock -w 1800 8 || { log "$cache/lock held for 30 min"; exit 1; }
if [[ -f "$tarball" ]]; then
  log "using the cached root filesystem $tarball"
else
  start=$SECONDS
  build_rootfs
  log "built $tarball ($(du -h "$tarball" | cut -f1)) in $((SECONDS - start)) s"
fi
exec 8>&-

# ---- the image --------------------------------------------------------------------------------
timeout 300 "$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  --message "debootstrap --variant=minbase $SUITE + ${packages[*]} (scripts/docker-base.sh, key $key)" \
  "$tarball" "$tag" >/dev/null
timeout 30 "$DOCKER" tag "$tag" "$IMAGE:$SUITE"
log "imported $tag, tagged $IMAGE:$SUITE"
prune_old
