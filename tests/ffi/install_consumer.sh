#!/usr/bin/env bash
# Installs the build into a scratch directory, builds qemu_2d_sequence.c against the installed
# header, library and pkg-config file (as a QEMU build would find them), and runs it.
set -euo pipefail
build_dir=$1
source_file=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

meson install -C "$build_dir" --no-rebuild --quiet --destdir "$scratch/root" >/dev/null
pc_file=$(find "$scratch/root" -name rutabaga_gfx_ffi.pc | head -n 1)
[ -n "$pc_file" ] || { echo "no rutabaga_gfx_ffi.pc was installed"; exit 1; }
header=$(find "$scratch/root" -path '*/rutabaga_gfx/rutabaga_gfx_ffi.h' | head -n 1)
[ -n "$header" ] || { echo "no rutabaga_gfx/rutabaga_gfx_ffi.h was installed"; exit 1; }

export PKG_CONFIG_PATH=$(dirname "$pc_file")
export PKG_CONFIG_SYSROOT_DIR="$scratch/root"
echo "pkg-config: rutabaga_gfx_ffi $(pkg-config --modversion rutabaga_gfx_ffi)"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror -o "$scratch/consumer" "$source_file" \
    $(pkg-config --cflags --libs rutabaga_gfx_ffi)

lib=$(find "$scratch/root" -name 'librutabaga_gfx_ffi.so.0' | head -n 1)
[ -n "$lib" ] || { echo "librutabaga_gfx_ffi.so.0 (the SONAME link) was not installed"; exit 1; }
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = "librutabaga_gfx_ffi.so.0" ] || { echo "SONAME is '$soname'"; exit 1; }
needed=$(objdump -p "$scratch/consumer" | awk '/NEEDED/ {print $2}' | grep rutabaga)
[ "$needed" = "librutabaga_gfx_ffi.so.0" ] || { echo "consumer needs '$needed'"; exit 1; }

LD_LIBRARY_PATH=$(dirname "$lib") "$scratch/consumer"
