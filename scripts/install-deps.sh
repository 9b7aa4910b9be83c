#!/usr/bin/env bash
# Installs every Debian package that building and testing neep needs.
# Safe to run again: apt skips what is already there.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    exec sudo -E "$0" "$@"
fi

export DEBIAN_FRONTEND=noninteractive

# bookworm-backports: meson >= 1.5 and a linux-libc-dev (>= 6.12) with drm/virtgpu_drm.h and
# Landlock's scopes.
# deb-src too: the QEMU build for the rutabaga tests takes QEMU's source from there.
backports=/etc/apt/sources.list.d/neep-bookworm-backports.sources
if [ -f "$backports" ] || ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # Reuse the mirror and keyring of the machine's own bookworm entry.
    main_entry=$(grep -rls -E '^Suites:.*\bbookworm( |$)' --exclude=neep-bookworm-backports.sources /etc/apt/sources.list.d/ | head -n 1)
    uri=$(awk '/^URIs:/ {print $2; exit}' "$main_entry")
    keyring=$(awk '/^Signed-By:/ {print $2; exit}' "$main_entry")
    if [ -z "$uri" ]; then
        echo "install-deps: cannot find the bookworm apt entry to copy" >&2
        exit 1
    fi
    printf 'Types: deb deb-src\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
        "$uri" "${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}" >"$backports"
fi

apt-get update -qq

apt-get install -y -qq --no-install-recommends \
    build-essential pkg-config ninja-build clang libclang-rt-14-dev llvm \
    clang-format libpixman-1-dev python3 >/dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports \
    meson linux-libc-dev qemu-system-x86 qemu-system-gui python3-pycotap \
    libwayland-dev wayland-protocols >/dev/null
# The test guest: Debian's kernel and busybox in an initramfs.
apt-get install -y -qq --no-install-recommends \
    linux-image-amd64 busybox-static cpio kmod xz-utils zstd >/dev/null
# Building QEMU with --enable-rutabaga-gfx (scripts/build-qemu-rutabaga.sh).
apt-get install -y -qq --no-install-recommends \
    dpkg-dev xz-utils bzip2 python3-venv libglib2.0-dev zlib1g-dev flex bison >/dev/null
# virgl: libvirglrenderer, and Mesa's EGL with llvmpipe to run it without a GPU; venus: the
# host's Vulkan driver (lavapipe) for the render server, and what building virglrenderer 1.2.0
# (scripts/build-virglrenderer.sh, a test dependency) needs.
apt-get install -y -qq --no-install-recommends \
    libvirglrenderer-dev libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 mesa-vulkan-drivers \
    libvulkan1 libepoxy-dev libdrm-dev libgbm-dev libvulkan-dev python3-yaml >/dev/null
# The GPU guest's userland and test programs (tests/vm/build-gl-initramfs.sh): Mesa's GL
# driver, kmscube, eglinfo, the Vulkan loader and vulkaninfo from bookworm, headers to build
# gl_pattern and vk_pattern, glslang for vk_pattern's shaders. (The guest's venus driver is
# unpacked from bookworm-backports' mesa-vulkan-drivers into the image, not installed.)
apt-get install -y -qq --no-install-recommends \
    kmscube mesa-utils vulkan-tools libegl-dev libgles-dev glslang-tools >/dev/null
# The host compositor of the cross-domain tests.
apt-get install -y -qq --no-install-recommends weston >/dev/null
# Wayland passthrough end to end: sway (headless, pixman) is a host compositor with a seat;
# wtype types into it, grim takes screenshots, wl-clipboard copies and pastes; the guest runs
# real clients from weston, wayland-utils, wev and wl-clipboard.
apt-get install -y -qq --no-install-recommends \
    sway wtype grim wl-clipboard wev wayland-utils xkb-data >/dev/null

# Checking what gets installed: systemd-analyze and systemd-socket-activate for neep-wl's user
# units, man for the man pages; building the Debian packages and checking them with lintian;
# libvirt from bookworm-backports (11.x, to match QEMU 10) for the libvirt test.
apt-get install -y -qq --no-install-recommends systemd man-db debhelper lintian >/dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports \
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients >/dev/null

echo "install-deps: done (meson $(meson --version))"
