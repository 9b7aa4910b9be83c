#!/usr/bin/env bash
# The demo: sets everything up, then
#  1. boots a small Linux guest under QEMU with neep-gpu as its GPU (vhost-user-gpu-pci) and
#     writes a PNG of the guest's display; then a guest with Mesa's virgl driver renders a GL
#     frame on neep-gpu --virgl, and a PNG of that display follows;
#  2. boots a guest on QEMU's virtio-gpu-rutabaga running on neep, runs Wayland clients in it
#     through neep-wl, and writes a PNG of the host compositor (headless weston) showing
#     their windows. The first run builds QEMU with rutabaga support (about 7 minutes) and
#     caches it in ~/.cache/neep.
#   NEEP_SKIP_INSTALL=1  skip installing Debian packages
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${NEEP_SKIP_INSTALL:-0}" != 1 ]; then
    ./scripts/install-deps.sh
fi
if [ -d build/gcc/meson-private ]; then
    meson setup --reconfigure build/gcc >/dev/null
else
    CC=gcc meson setup build/gcc >/dev/null
fi
ninja -C build/gcc >/dev/null
tests/vm/build-test-initramfs.sh build/gcc build/demo/initrd.cpio
python3 tests/vm/vmtest.py --neep-gpu build/gcc/src/neep-gpu --initrd build/demo/initrd.cpio \
    --demo "$(pwd)/build/demo/neep-demo.png"
tests/vm/build-gl-initramfs.sh build/gcc build/demo/gl-initrd.cpio
python3 tests/vm/vmtest.py --neep-gpu build/gcc/src/neep-gpu --initrd build/demo/initrd.cpio \
    --gl-initrd build/demo/gl-initrd.cpio --demo-gl "$(pwd)/build/demo/neep-gl-demo.png"
qemu=$(scripts/build-qemu-rutabaga.sh build/gcc)
python3 tests/vm/vmtest.py --qemu-rutabaga "$qemu" --neep-library-dir build/gcc/src \
    --initrd build/demo/initrd.cpio --demo-wayland "$(pwd)/build/demo/neep-wayland-demo.png"
