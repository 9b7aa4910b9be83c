#!/usr/bin/env bash
# Meson's entry to the real-guest tests: builds the test initramfs, then runs vmtest.py.
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
"$here/build-test-initramfs.sh" "$build_dir" "$guest_dir/initrd.cpio"
gl_args=()
if [ "${NEEP_VM_GL:-0}" = 1 ]; then
    # Builds with virgl also run GL in a guest with Mesa's userland.
    "$here/build-gl-initramfs.sh" "$build_dir" "$build_dir/vm-gl/initrd.cpio"
    gl_args=(--gl-initrd "$build_dir/vm-gl/initrd.cpio")
    # venus runs on virglrenderer 1.2.0 (Debian's 0.10.4 is too old for guest drivers).
    gl_args+=(--virglrenderer-lib "$("$here/../../scripts/build-virglrenderer.sh")")
    # gfxstream's backend, where its source snapshot is here (else its test says skipped).
    if [ "$mode" = rutabaga ]; then
        status=0
        gfxstream=$("$here/../../scripts/build-gfxstream.sh") || status=$?
        if [ "$status" = 0 ]; then
            gl_args+=(--gfxstream-library "$gfxstream")
        elif [ "$status" != 2 ]; then
            exit "$status"
        fi
    fi
fi

case "$mode" in
vhost-user)
    qemu_major=$(qemu-system-x86_64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n 1)
    if [ "${qemu_major:-0}" -lt 10 ]; then
        echo "QEMU ${qemu_major:-?} cannot run vhost-user without KVM; QEMU 10 from backports can"
        exit 1
    fi
    exec python3 "$here/vmtest.py" --neep-gpu "$target" --initrd "$guest_dir/initrd.cpio" \
        "${gl_args[@]}" "$@"
    ;;
rutabaga)
    qemu=$("$here/../../scripts/build-qemu-rutabaga.sh" "$build_dir")
    exec python3 "$here/vmtest.py" --qemu-rutabaga "$qemu" --neep-library-dir "$target" \
        --initrd "$guest_dir/initrd.cpio" "${gl_args[@]}" "$@"
    ;;
esac
echo "unknown mode $mode"
exit 1
