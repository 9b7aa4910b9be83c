#!/usr/bin/env bash
# The GPU guest's initramfs: the test initramfs, plus Mesa's guest GL userland (the virgl
# driver virtio_gpu_dri.so, EGL, GBM, GLES and their libraries, about 200 MB, mostly LLVM),
# kmscube, eglinfo and the GL test program gl_pattern; and for Vulkan, the venus and gfxstream
# drivers libvulkan_virtio.so and libvulkan_gfxstream.so from bookworm-backports' Mesa (with
# backports' libdrm, unpacked into the image, never installed on the host), the Vulkan loader,
# vulkaninfo and vk_pattern.
#   build-gl-initramfs.sh BUILD_DIR OUTPUT
#
# The userland part is cached outside the work tree, keyed by the Debian versions it comes
# from; the rest is appended on each call (cpio archives concatenate).
set -euo pipefail
build_dir=$1
output=$2
here=$(cd "$(dirname "$0")" && pwd)
guest_dir=$(dirname "$output")
mkdir -p "$guest_dir"

versions=""
for package in libgl1-mesa-dri libegl-mesa0 libgbm1 libglapi-mesa libegl1 libgles2 kmscube \
    mesa-utils libvulkan1 vulkan-tools; do
    version=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null) ||
        { echo "$package is missing: run scripts/install-deps.sh" >&2; exit 1; }
    versions+="$package=$version "
done
# The guest's venus driver and the libdrm it needs, from bookworm-backports.
backports_packages=(mesa-vulkan-drivers libdrm2)
for package in "${backports_packages[@]}"; do
    version=$(apt-cache madison "$package" | awk '/bookworm-backports/ {print $3; exit}')
    [ -n "$version" ] || { echo "no $package in bookworm-backports: run scripts/install-deps.sh" >&2; exit 1; }
    versions+="$package=$version(backports) "
done
# What the image holds beside the versions: bump when it changes.
versions+="contents=2(venus and gfxstream Vulkan drivers) "
key=$(echo "$versions" | sha256sum | cut -c1-12)
cache_dir=${NEEP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/neep}
userland="$cache_dir/gl-userland-$key.cpio"

# Copies a file and its shared libraries (ldd's closure) under $root, at the same paths.
copy_with_libraries() {
    local root=$1 file=$2
    mkdir -p "$root$(dirname "$file")"
    cp -L "$file" "$root$file"
    for library in $(ldd "$file" 2>/dev/null | grep -o '/[^ ]*' || true); do
        if [ ! -e "$root$library" ]; then
            mkdir -p "$root$(dirname "$library")"
            cp -L "$library" "$root$library"
        fi
    done
}

if [ ! -f "$userland" ]; then
    mkdir -p "$cache_dir"
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    multiarch=/usr/lib/x86_64-linux-gnu
    for file in "$multiarch/dri/virtio_gpu_dri.so" "$multiarch/libEGL_mesa.so.0" \
        "$multiarch/libgbm.so.1" "$multiarch/libglapi.so.0" "$multiarch/libEGL.so.1" \
        "$multiarch/libGLESv2.so.2" "$(command -v kmscube)" "$(command -v eglinfo)"; do
        copy_with_libraries "$root" "$file"
    done
    # Vulkan: the loader and vulkaninfo from bookworm, the venus driver from backports.
    for file in "$multiarch/libvulkan.so.1" "$(command -v vulkaninfo)"; do
        copy_with_libraries "$root" "$file"
    done
    debs=$(mktemp -d)
    (cd "$debs" && apt-get download -q "${backports_packages[@]/%//bookworm-backports}" \
        >/dev/null 2>&1) || { echo "downloading ${backports_packages[*]} failed" >&2; exit 1; }
    for deb in "$debs"/*.deb; do
        dpkg -x "$deb" "$debs/root"
    done
    cp -L "$debs/root$multiarch/libdrm.so.2" "$root$multiarch/" # newer than bookworm's
    mkdir -p "$root/usr/share/vulkan/icd.d"
    # venus's driver and gfxstream's (selected with VK_ICD_FILENAMES in the gfxstream test).
    for driver in virtio gfxstream; do
        cp -L "$debs/root$multiarch/libvulkan_$driver.so" "$root$multiarch/"
        cp "$debs/root/usr/share/vulkan/icd.d/${driver}_icd.json" \
            "$root/usr/share/vulkan/icd.d/" 2>/dev/null ||
            cp "$debs/root/usr/share/vulkan/icd.d/${driver}_vk_icd.json" \
                "$root/usr/share/vulkan/icd.d/"
        for library in $(ldd "$debs/root$multiarch/libvulkan_$driver.so" | grep -o '/[^ ]*' || true); do
            if [ ! -e "$root$library" ]; then
                mkdir -p "$root$(dirname "$library")"
                cp -L "$library" "$root$library"
            fi
        done
    done
    rm -rf "$debs"
    # glvnd finds Mesa's EGL through its vendor file.
    mkdir -p "$root/usr/share/glvnd/egl_vendor.d"
    cp /usr/share/glvnd/egl_vendor.d/50_mesa.json "$root/usr/share/glvnd/egl_vendor.d/"
    # Programs run from /bin in the guest.
    mkdir -p "$root/bin"
    mv "$root$(command -v kmscube)" "$root/bin/kmscube"
    mv "$root$(command -v eglinfo)" "$root/bin/eglinfo"
    mv "$root$(command -v vulkaninfo)" "$root/bin/vulkaninfo"
    (cd "$root" && find . | cpio -o -H newc --quiet) >"$userland.tmp"
    mv "$userland.tmp" "$userland"
    rm -rf "$root"
    trap - EXIT
fi

# The test programs are built against the host's headers and run on the libraries above;
# vk_pattern's shaders become SPIR-V here.
gcc -O2 -Wall -Wextra -Werror -I/usr/include/libdrm -o "$guest_dir/gl_pattern" \
    "$here/guest/gl_pattern.c" -lEGL -lGLESv2 -lgbm -ldrm
for stage in comp vert frag; do
    glslangValidator -V --quiet --vn "vk_pattern_$stage" -o "$guest_dir/vk_pattern_$stage.h" \
        "$here/guest/shaders/vk_pattern.$stage" >/dev/null
done
gcc -O2 -Wall -Wextra -Werror -I"$guest_dir" -o "$guest_dir/vk_pattern" \
    "$here/guest/vk_pattern.c" -lvulkan
"$here/build-test-initramfs.sh" "$build_dir" "$output.base"
cat "$output.base" "$userland" >"$output"
rm -f "$output.base"
extra=$(mktemp -d)
mkdir -p "$extra/bin"
cp "$guest_dir/gl_pattern" "$guest_dir/vk_pattern" "$extra/bin/"
(cd "$extra" && find . | cpio -o -H newc --quiet) >>"$output"
rm -rf "$extra"
