#!/usr/bin/env bash
# Builds Sluice (Release) and starts one broker on localhost:9092 with its data under ./data.
# Extra arguments go to the broker, e.g. --override num.partitions=3.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_TESTS=OFF >/dev/null
cmake --build build --target sluice
exec build/sluice --override listeners=PLAINTEXT://:9092 --override log.dirs=./data "$@"
