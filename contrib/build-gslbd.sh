#!/usr/bin/env bash
# Build gslbd and print the path of the binary as cargo reports it, wherever CARGO_TARGET_DIR
# (or build.target-dir) puts it. Every script that builds gslbd and then runs it uses this, so
# none of them assumes target/release. Compiler errors still reach stderr.
# Usage: contrib/build-gslbd.sh [PROFILE]   (default: release; dev for a debug build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=$(cargo build --profile "${1:-release}" --quiet --bin gslbd --message-format=json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*\/gslbd\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "build-gslbd: cargo reported no gslbd binary" >&2; exit 1; }
echo "$bin"
