#!/usr/bin/env bash
# @platformatic/kafka (pure JavaScript, pinned in node/package.json) produces and consumes through
# the broker: node/platformatic_roundtrip.mjs. That client only implements Fetch v12-17 and uses the
# highest version advertised, so it fetches by topic id (v13+, KIP-516); the script checks the
# version it really sent.
#
# Dependencies: `npm ci` from the committed lock file into a copy of node/ inside the work
# directory (the source tree is not written to; node_modules is never committed). The npm cache
# makes reruns quick. Skips (exit 77, SKIP_RETURN_CODE in CTest) when node or npm is missing or too
# old; a failing `npm ci` (no registry) is a failure, not a skip.
# shellcheck source=compat_tests/kcat_lib.sh
source "$(dirname "$0")/kcat_lib.sh"

SKIP=77
NODE="${NODE:-node}"
NPM="${NPM:-npm}"
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v "$NODE" >/dev/null 2>&1 || ! command -v "$NPM" >/dev/null 2>&1; then
  echo "SKIP: node or npm not found (NODE=$NODE, NPM=$NPM); install Node.js >= 20.19.4 to run this test"
  exit "$SKIP"
fi
node_version="$("$NODE" -p 'process.versions.node')"
# @platformatic/kafka 1.35.0 declares node >= 20.19.4.
if ! "$NODE" -e 'const [a,b,c]=process.versions.node.split(".").map(Number);
  process.exit(a > 20 || (a === 20 && (b > 19 || (b === 19 && c >= 4))) ? 0 : 1)'; then
  echo "SKIP: node $node_version is older than 20.19.4, which @platformatic/kafka 1.35.0 needs"
  exit "$SKIP"
fi

app="$WORK/node"
mkdir -p "$app"
cp "$here/node/package.json" "$here/node/package-lock.json" "$here/node/platformatic_roundtrip.mjs" "$app/"
# Bounded: the registry answers in seconds or the test fails here. engine-strict off: two of the
# client's own dependencies (@platformatic/dynamic-buffer 0.3.1, wasm-utils 0.2.1) declare
# node >= 22.19.0 but run on the Node 20 this test passes with; a user npmrc must not turn that
# warning into an error.
if ! (cd "$app" && timeout 60 "$NPM" ci --no-audit --no-fund --engine-strict=false --loglevel=error) >"$WORK/npm.log" 2>&1; then
  cat "$WORK/npm.log" >&2
  fail "npm ci failed (node $node_version)"
fi
installed="$("$NODE" -p "require('$app/node_modules/@platformatic/kafka/package.json').version")"
expect_eq "installed @platformatic/kafka version" "1.35.0" "$installed"

# Auto-create off: the topic must come from the admin client's CreateTopics. No initial rebalance
# delay: the group has one member.
start_broker auto.create.topics.enable=false group.initial.rebalance.delay.ms=0
echo "broker at $BOOTSTRAP, node $node_version, @platformatic/kafka $installed"

rc=0
(cd "$app" && timeout 50 "$NODE" platformatic_roundtrip.mjs "$BOOTSTRAP") || rc=$?
[[ $rc -eq 124 ]] && fail "the node script was killed after 50 s"
[[ $rc -eq 0 ]] || fail "node platformatic_roundtrip.mjs exited with status $rc"

stop_broker
echo PASS
