#!/usr/bin/env bash
# Benchmarks (not part of the test command): neep-gpu against Debian's vhost-user-gpu with
# the same vhost-user command stream, and the full-frame copy path against memcpy.
#   bench/run.sh [SECONDS_PER_CASE]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-3}
if [ -d build/bench/meson-private ]; then
    meson setup --reconfigure build/bench --buildtype=release >/dev/null
else
    CC=gcc meson setup build/bench --buildtype=release >/dev/null
fi
ninja -C build/bench >/dev/null
echo "== neep-gpu vs Debian's vhost-user-gpu (1920x1080, B8G8R8X8)"
./build/bench/bench/vhost_user_bench --seconds "$seconds" \
    "neep-gpu=$(pwd)/build/bench/src/neep-gpu" "debian=/usr/lib/qemu/vhost-user-gpu"
echo "== full-frame copy path"
./build/bench/bench/transfer_bench
