#!/usr/bin/env bash
# Meson's entry to the real-guest tests: builds the static guest programs and the test
# initramfs, then runs vmtest.py.
#   run.sh vhost-user NEEP_GPU BUILD_DIR [TEST...]    neep-gpu under QEMU's vhost-user-gpu-pci
#   run.sh rutabaga LIBRARY_DIR BUILD_DIR [TEST...]   QEMU's virtio-gpu-rutabaga on neep's library
#                                                     (QEMU itself is built once and cached)
set -euo pipefail
mode=$1
target=$2
build_dir=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)

if ! ls /boot/vmlinuz-* >/dev/null 2>&1; then
    echo "no guest kernel: run scripts/install-deps.sh"
    exit 1
fi
guest_dir="$build_dir/vm-guest"
mkdir -p "$guest_dir"
# Guest programs are built plainly (static, no sanitizers): they run inside the guest.
for program in kms_pattern cross_domain_test wl_hostile; do
    gcc -static -O2 -Wall -Wextra -Werror -o "$guest_dir/$program" "$here/guest/$program.c"
done
# Wayland passthrough: neep-wl, a command loop, and real clients from Debian packages.
wayland_clients=()
for client in wayland-info weston-simple-shm weston-simple-damage wev wl-copy wl-paste; do
    path=$(command -v "$client") || { echo "$client is missing: run scripts/install-deps.sh"; exit 1; }
    wayland_clients+=("$path")
done
"$here/build-initramfs.sh" "$guest_dir/initrd.cpio" "$guest_dir/kms_pattern" \
    "$guest_dir/cross_domain_test" "$guest_dir/wl_hostile" "$build_dir/guest/neep-wl" \
    "$here/guest/shell.sh" \
    "$build_dir/tests/wl_pattern" \
    "${wayland_clients[@]}" /usr/share/X11/xkb

case "$mode" in
vhost-user)
    qemu_major=$(qemu-system-x86_64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n 1)
    if [ "${qemu_major:-0}" -lt 10 ]; then
        echo "QEMU ${qemu_major:-?} cannot run vhost-user without KVM; QEMU 10 from backports can"
        exit 1
    fi
    exec python3 "$here/vmtest.py" --neep-gpu "$target" --initrd "$guest_dir/initrd.cpio" "$@"
    ;;
rutabaga)
    qemu=$("$here/../../scripts/build-qemu-rutabaga.sh" "$build_dir")
    exec python3 "$here/vmtest.py" --qemu-rutabaga "$qemu" --neep-library-dir "$target" \
        --initrd "$guest_dir/initrd.cpio" "$@"
    ;;
esac
echo "unknown mode $mode"
exit 1
