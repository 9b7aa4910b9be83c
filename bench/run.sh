#!/usr/bin/env bash
# Benchmarks (not part of the test command): neep-gpu against Debian's vhost-user-gpu with
# the same vhost-user command stream, and the full-frame copy path against memcpy. With
# --guest, also real guests (QEMU TCG): page flips on both back-ends, wl_display.sync
# round trips through cross-domain against the host's own, wl_shm frames through neep-wl
# against the same client on the host, kmscube on virgl against QEMU's own GL device, and
# venus's submit round trip and mapped-memory writes.
#   bench/run.sh [SECONDS_PER_CASE] [--guest]
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
echo "== cross-domain SEND to a compositor socket vs sendmsg directly (256-byte messages)"
./build/bench/bench/cross_domain_send_bench

if [ "${2:-}" = --guest ]; then
    guest=build/bench/vm-guest
    tests/vm/build-test-initramfs.sh build/bench "$guest/initrd.cpio"
    echo "== page flips in a real guest (1280x800): in-process virtio-gpu-pci, neep-gpu, Debian"
    python3 bench/guest_flip_bench.py --neep-gpu build/bench/src/neep-gpu \
        --initrd "$guest/initrd.cpio" --flips 2000 --rounds 3
    echo "== wl_display.sync through cross-domain vs on the host"
    qemu=$(scripts/build-qemu-rutabaga.sh build/bench)
    python3 bench/cross_domain_bench.py --qemu-rutabaga "$qemu" \
        --neep-library-dir build/bench/src --initrd "$guest/initrd.cpio" \
        --host-client build/bench/bench/wayland_sync_bench --rounds 300
    echo "== wl_shm frames through neep-wl vs on the host (1920x1080)"
    python3 bench/neep_wl_bench.py --qemu-rutabaga "$qemu" \
        --neep-library-dir build/bench/src --initrd "$guest/initrd.cpio" \
        --client build/bench/tests/wl_pattern --frames 60
    echo "== kmscube (virgl) on neep-gpu, on QEMU's rutabaga device on neep, on QEMU's own GL device"
    tests/vm/build-gl-initramfs.sh build/bench build/bench/vm-gl/initrd.cpio
    python3 bench/gl_bench.py --neep-gpu build/bench/src/neep-gpu --qemu-rutabaga "$qemu" \
        --neep-library-dir build/bench/src --gl-initrd build/bench/vm-gl/initrd.cpio
    echo "== venus: empty submit round trip against lavapipe on the host; mapped-memory writes"
    python3 bench/vulkan_bench.py --context-type venus --qemu-rutabaga "$qemu" \
        --neep-library-dir build/bench/src --gl-initrd build/bench/vm-gl/initrd.cpio \
        --virglrenderer-lib "$(scripts/build-virglrenderer.sh)" \
        --host-vk-pattern build/bench/vm-gl/vk_pattern
    if gfxstream=$(scripts/build-gfxstream.sh); then
        echo "== gfxstream: empty submit round trip against lavapipe on the host; mapped-memory writes"
        python3 bench/vulkan_bench.py --context-type gfxstream --qemu-rutabaga "$qemu" \
            --neep-library-dir build/bench/src --gl-initrd build/bench/vm-gl/initrd.cpio \
            --gfxstream-library "$gfxstream" --host-vk-pattern build/bench/vm-gl/vk_pattern
    fi
fi
