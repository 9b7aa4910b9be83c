#!/usr/bin/env bash
# The demo: sets everything up, boots a small Linux guest under QEMU with neep-gpu as its GPU
# (vhost-user-gpu-pci), and writes a PNG of the guest's display.
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
mkdir -p build/demo
gcc -static -O2 -o build/demo/kms_pattern tests/vm/guest/kms_pattern.c
tests/vm/build-initramfs.sh build/demo/initrd.cpio build/demo/kms_pattern
python3 tests/vm/vmtest.py --neep-gpu build/gcc/src/neep-gpu --initrd build/demo/initrd.cpio \
    --demo "$(pwd)/build/demo/neep-demo.png"
