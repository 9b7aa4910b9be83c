#!/usr/bin/env bash
# The initramfs every real-guest test, benchmark and demo boots: the static test programs,
# neep-wl and wl_pattern from BUILD_DIR, a command loop, and real Wayland clients from Debian
# packages (with their libraries and xkb's data).
#   build-test-initramfs.sh BUILD_DIR OUTPUT
set -euo pipefail
build_dir=$1
output=$2
here=$(cd "$(dirname "$0")" && pwd)
guest_dir=$(dirname "$output")
mkdir -p "$guest_dir"
# Guest programs are built plainly (static, no sanitizers): they run inside the guest.
for program in kms_pattern cross_domain_test wl_hostile fence_rtt; do
    gcc -static -O2 -Wall -Wextra -Werror -o "$guest_dir/$program" "$here/guest/$program.c"
done
wayland_clients=()
for client in wayland-info weston-simple-shm wev wl-copy wl-paste; do
    path=$(command -v "$client") || { echo "$client is missing: run scripts/install-deps.sh"; exit 1; }
    wayland_clients+=("$path")
done
"$here/build-initramfs.sh" "$output" "$guest_dir/kms_pattern" "$guest_dir/cross_domain_test" \
    "$guest_dir/fence_rtt" \
    "$guest_dir/wl_hostile" "$build_dir/guest/neep-wl" "$here/guest/shell.sh" \
    "$build_dir/tests/wl_pattern" "${wayland_clients[@]}" /usr/share/X11/xkb
