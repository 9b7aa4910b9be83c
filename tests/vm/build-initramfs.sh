#!/usr/bin/env bash
# Builds the test guest's initramfs: busybox, the virtio-gpu modules of Debian's kernel, an
# /init that runs the test named on the kernel command line, and any extra programs given.
#
#   build-initramfs.sh OUTPUT [EXTRA_FILE...]
#
# The base (busybox + modules) is cached outside the work tree, keyed by kernel and busybox
# versions; extra files are appended on each call (cpio archives concatenate). Extra programs
# go to /bin; dynamically linked ones bring their shared libraries (guest and host are the
# same Debian, so the host's copies run there). Extra directories keep their paths.
set -euo pipefail
output=$1
shift
here=$(cd "$(dirname "$0")" && pwd)

kernel_version=$(ls /lib/modules | sort -V | tail -n 1)
busybox_version=$(dpkg-query -W -f='${Version}' busybox-static)
init_hash=$(sha256sum "$here/guest-init.sh" | cut -c1-12)
cache_dir=${NEEP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/neep}
base="$cache_dir/initramfs-base-$kernel_version-$busybox_version-$init_hash.cpio"

if [ ! -f "$base" ]; then
    mkdir -p "$cache_dir"
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,run,modules,lib64}
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
        # Linking busybox over itself breaks /init (seen on these machines).
        [ "$applet" = busybox ] && continue
        ln -sf busybox "$root/bin/$applet"
    done
    for module in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
        drm drm_kms_helper drm_shmem_helper virtio_dma_buf virtio-gpu; do
        file=$(find "/lib/modules/$kernel_version" -name "$module.ko*" | head -n 1)
        [ -n "$file" ] || { echo "module $module not found" >&2; exit 1; }
        case "$file" in
        *.ko.xz) xz -dc "$file" >"$root/modules/$module.ko" ;;
        *.ko.zst) zstd -qdc "$file" >"$root/modules/$module.ko" ;;
        *) cp "$file" "$root/modules/$module.ko" ;;
        esac
    done
    cp "$here/guest-init.sh" "$root/init"
    chmod +x "$root/init"
    (cd "$root" && find . | cpio -o -H newc --quiet) >"$base.tmp"
    mv "$base.tmp" "$base"
    rm -rf "$root"
    trap - EXIT
fi

cp "$base" "$output"
if [ $# -gt 0 ]; then
    extra=$(mktemp -d)
    mkdir -p "$extra/bin"
    for file in "$@"; do
        if [ -d "$file" ]; then
            # A data directory (xkb's keymap includes): same path in the guest.
            mkdir -p "$extra$(dirname "$file")"
            cp -rL "$file" "$extra$file"
            continue
        fi
        cp "$file" "$extra/bin/"
        # ldd lists "name => /path (addr)" and the loader as "/path (addr)".
        for library in $(ldd "$file" 2>/dev/null | grep -o '/[^ ]*' || true); do
            mkdir -p "$extra$(dirname "$library")"
            cp -L "$library" "$extra$library"
        done
    done
    (cd "$extra" && find . | cpio -o -H newc --quiet) >>"$output"
    rm -rf "$extra"
fi
