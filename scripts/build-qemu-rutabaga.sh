#!/usr/bin/env bash
# Builds qemu-system-x86_64 10.0.2 (source from bookworm-backports) with --enable-rutabaga-gfx
# against neep's rutabaga_gfx_ffi, and caches it outside the work tree. QEMU links
# librutabaga_gfx_ffi.so.0 dynamically, so the cached binary keeps working as neep changes;
# run it with LD_LIBRARY_PATH pointing at neep's library.
#
#   build-qemu-rutabaga.sh NEEP_BUILD_DIR    prints the path of the cached qemu-system-x86_64
#
# The cache key is the QEMU version and this script's hash; a changed key rebuilds (about 7
# minutes on 2 cores). Needs the packages scripts/install-deps.sh installs.
set -euo pipefail
neep_build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
version=10.0.2
script_hash=$(sha256sum "$here/build-qemu-rutabaga.sh" | cut -c1-12)
cache_root=${NEEP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/neep}
cache="$cache_root/qemu-$version-rutabaga-$script_hash"
if [ -x "$cache/qemu-system-x86_64" ]; then
    echo "$cache/qemu-system-x86_64"
    exit 0
fi

if [ "${2:-}" != --inner ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # The build runs as a child so that `set -e` holds inside it and its output goes to a log.
    if ! NEEP_QEMU_WORK="$work" NEEP_QEMU_CACHE="$cache" "$0" "$neep_build" --inner \
        >"$work/build.log" 2>&1; then
        echo "building QEMU failed; the end of the log:" >&2
        tail -n 40 "$work/build.log" >&2
        exit 1
    fi
    echo "$cache/qemu-system-x86_64"
    exit 0
fi

work=$NEEP_QEMU_WORK
cache=$NEEP_QEMU_CACHE
# QEMU's configure only needs the header and a pkg-config file that finds the library.
stage="$work/neep"
mkdir -p "$stage/include/rutabaga_gfx" "$stage/pkgconfig"
cp "$here/../include/rutabaga_gfx/rutabaga_gfx_ffi.h" "$stage/include/rutabaga_gfx/"
cat >"$stage/pkgconfig/rutabaga_gfx_ffi.pc" <<PC
Name: rutabaga_gfx_ffi
Description: rutabaga_gfx C ABI, implemented by neep
Version: 0.1.6
Cflags: -I$stage/include
Libs: -L$neep_build/src -lrutabaga_gfx_ffi
PC

cd "$work"
# The upstream tarball arrives; the Debian packaging part is not served, so apt reports an
# error after the download: the tarball is all that is needed.
apt-get source --download-only -t bookworm-backports qemu || true
tarball=$(ls "$work"/qemu_"$version"*.orig.tar.* | head -n 1)
tar xf "$tarball"
src="$work/qemu-$version"
# The +ds tarball lacks the edk2 firmware; x86 guests here boot with SeaBIOS, so empty
# placeholders let the build go on.
for blob in $(sed -n "s/^ *'\(edk2-[a-z0-9_-]*\.fd\)',$/\1/p" "$src/pc-bios/meson.build"); do
    [ -f "$src/pc-bios/$blob.bz2" ] || bzip2 -c </dev/null >"$src/pc-bios/$blob.bz2"
done
mkdir "$src/build"
cd "$src/build"
../configure --python=/usr/bin/python3 --target-list=x86_64-softmmu \
    --without-default-features --enable-pixman --enable-vhost-user \
    --disable-docs --disable-install-blobs --disable-download --enable-rutabaga-gfx \
    -Dpkg_config_path="$stage/pkgconfig"
ninja qemu-system-x86_64
mkdir -p "$cache.tmp"
cp qemu-system-x86_64 "$cache.tmp/"
rm -rf "$cache"
mv "$cache.tmp" "$cache"
