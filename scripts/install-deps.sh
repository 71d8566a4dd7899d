#!/usr/bin/env bash
# Installs the Debian packages Sluice needs, only those missing. Safe to re-run.
#
#   scripts/install-deps.sh            what the broker builds with (scripts/run.sh)
#   scripts/install-deps.sh test       and what the tests, benchmarks and fuzz targets need
#                                      (scripts/test.sh)
#   scripts/install-deps.sh cluster    and etcd and kcat (scripts/cluster.sh)
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config python3   # toolchain; python3 runs the protocol code generator
  libboost1.81-all-dev                       # Asio and Beast (header-only use)
)
if [ "${1:-}" = test ]; then
  packages+=(
    libgtest-dev                             # unit tests
    librdkafka-dev kcat                      # compat tests and benchmarks only
    clang libclang-rt-14-dev                 # fuzz targets (scripts/fuzz.sh): libFuzzer, sanitizers
    # compat.container_suite: the suite's image without a registry (scripts/docker-base.sh builds
    # the base with debootstrap; scripts/dockerd.sh runs a private daemon of docker.io)
    debootstrap docker.io
    # server/coordination's tests start a private etcd (etcd 3.4, v3 API over its HTTP gateway);
    # the package's own service, if the machine runs one, is left alone
    etcd-server
  )
fi

if [ "${1:-}" = cluster ]; then
  packages+=(etcd-server kcat)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
