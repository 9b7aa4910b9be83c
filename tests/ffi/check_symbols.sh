#!/usr/bin/env bash
# The FFI library exports exactly the rutabaga 0.1.6 functions (stable and unstable), nothing
# of neep's internals, under rutabaga's SONAME.
set -euo pipefail
lib=$1
expected="rutabaga_calculate_capset_mask rutabaga_context_attach_resource
rutabaga_context_create rutabaga_context_destroy rutabaga_context_detach_resource
rutabaga_create_fence rutabaga_finish rutabaga_get_capset rutabaga_get_capset_info
rutabaga_get_num_capsets rutabaga_init rutabaga_resource_attach_backing
rutabaga_resource_create_3d rutabaga_resource_create_blob rutabaga_resource_detach_backing
rutabaga_resource_export_blob rutabaga_resource_import rutabaga_resource_map
rutabaga_resource_map_info rutabaga_resource_transfer_read rutabaga_resource_transfer_write
rutabaga_resource_unmap rutabaga_resource_unref rutabaga_restore rutabaga_snapshot
rutabaga_submit_command"
want=$(echo $expected | tr ' ' '\n' | sort)
have=$(nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' | sort)
if [ "$want" != "$have" ]; then
    echo "exported functions differ from the rutabaga ABI:"
    diff <(echo "$want") <(echo "$have") || true
    exit 1
fi
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = "librutabaga_gfx_ffi.so.0" ] || { echo "SONAME is '$soname'"; exit 1; }
echo "$(echo "$have" | wc -l) rutabaga functions exported, SONAME $soname"
