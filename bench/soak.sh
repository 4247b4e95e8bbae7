#!/usr/bin/env bash
# The long soak test (tests/soak.rs, soak_long): queries without pause while backends flap, the
# config is reloaded every second (every other file broken) and overrides come and go; then a
# kill -9 and a restart. Usage: bench/soak.sh [SECONDS]   (default 600)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GSLBD_SOAK_SECS=${1:-600} exec cargo test --release --test soak soak_long -- --ignored --nocapture
