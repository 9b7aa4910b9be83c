#!/usr/bin/env bash
# Meson's entry to the real-guest tests: builds the static guest programs and the test
# initramfs, then runs vmtest.py against the given neep-gpu.
#   run.sh NEEP_GPU BUILD_DIR [TEST...]
set -euo pipefail
neep_gpu=$1
build_dir=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v qemu-system-x86_64 >/dev/null || ! ls /boot/vmlinuz-* >/dev/null 2>&1; then
    echo "QEMU or a guest kernel is missing: run scripts/install-deps.sh"
    exit 1
fi
qemu_major=$(qemu-system-x86_64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n 1)
if [ "${qemu_major:-0}" -lt 10 ]; then
    echo "QEMU $qemu_major cannot run vhost-user without KVM; QEMU 10 from bookworm-backports can"
    exit 1
fi

guest_dir="$build_dir/vm-guest"
mkdir -p "$guest_dir"
# Guest programs are built plainly (static, no sanitizers): they run inside the guest.
gcc -static -O2 -Wall -Wextra -Werror -o "$guest_dir/kms_pattern" "$here/guest/kms_pattern.c"
"$here/build-initramfs.sh" "$guest_dir/initrd.cpio" "$guest_dir/kms_pattern"
exec python3 "$here/vmtest.py" --neep-gpu "$neep_gpu" --initrd "$guest_dir/initrd.cpio" "$@"
