#!/usr/bin/env bash
# Installs the pinned Node.js clients of compat_tests/node (@platformatic/kafka, KafkaJS) once per
# lock file into the user's cache, and prints that directory. The source tree is never written
# to; npm's own cache makes a reinstall quick. Exits 77 when node or npm is missing or too old
# (@platformatic/kafka 1.35.0 needs Node >= 20.19.4), 1 when `npm ci` fails.
set -euo pipefail
node_dir="${SLUICE_COMPAT_NODE_DIR:-$(cd "$(dirname "$0")/../compat_tests/node" && pwd)}"
node="${NODE:-node}"
npm="${NPM:-npm}"

if ! command -v "$node" >/dev/null 2>&1 || ! command -v "$npm" >/dev/null 2>&1; then
  echo "node and npm are not installed" >&2
  exit 77
fi
if ! "$node" -e 'const [a,b,c]=process.versions.node.split(".").map(Number);
    process.exit(a > 20 || (a === 20 && (b > 19 || (b === 19 && c >= 4))) ? 0 : 1)'; then
  echo "@platformatic/kafka 1.35.0 needs Node >= 20.19.4, this is $("$node" --version)" >&2
  exit 77
fi
lock_sum="$(cat "$node_dir/package.json" "$node_dir/package-lock.json" | sha256sum | cut -c1-16)"
app="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/compat-node-$lock_sum"
if [ ! -f "$app/.installed" ]; then
  mkdir -p "$app"
  cp "$node_dir/package.json" "$node_dir/package-lock.json" "$app/"
  # engine-strict off: two of @platformatic/kafka's own dependencies declare node >= 22.19.0 but
  # run on Node 20; a user npmrc must not turn that warning into an error. Bounded: the registry
  # answers in seconds or this fails.
  if ! (cd "$app" && timeout 120 "$npm" ci --no-audit --no-fund --engine-strict=false \
        --loglevel=error) >&2; then
    rm -rf "$app/node_modules"
    echo "npm ci of compat_tests/node failed" >&2
    exit 1
  fi
  touch "$app/.installed"
fi
echo "$app"
