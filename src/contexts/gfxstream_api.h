/*
 * The C API of gfxstream's host backend (libgfxstream_backend.so.0, "stream_renderer_*",
 * version 0.1.2 plus the unstable additions), declared here from its published facts: no
 * package provides the header, and neep loads the library at run time. Sizes and offsets are
 * those of the library's x86_64 build; the asserts below keep them so.
 */
#ifndef NEEP_CONTEXTS_GFXSTREAM_API_H
#define NEEP_CONTEXTS_GFXSTREAM_API_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* stream_renderer_init's parameters: key, then an integer or a pointer. */
struct gfxstream_param {
    uint64_t key;
    uint64_t value;
};
#define GFXSTREAM_PARAM_USER_DATA      1u /* required */
#define GFXSTREAM_PARAM_RENDERER_FLAGS 2u /* required */
#define GFXSTREAM_PARAM_FENCE_CALLBACK 3u /* required */
#define GFXSTREAM_PARAM_WIN0_WIDTH     4u
#define GFXSTREAM_PARAM_WIN0_HEIGHT    5u
#define GFXSTREAM_PARAM_DEBUG_CALLBACK 6u

/* Renderer flags (the library reads USE_EGL, USE_GLES, USE_VK and the blob ones). */
#define GFXSTREAM_FLAG_USE_EGL  (1u << 0)
#define GFXSTREAM_FLAG_USE_GLES (1u << 4)
#define GFXSTREAM_FLAG_USE_VK   (1u << 5)

struct gfxstream_fence {
    uint32_t flags;
    uint64_t fence_id;
    uint32_t ctx_id;
    uint8_t ring_idx;
};
#define GFXSTREAM_FENCE_FLAG_FENCE    (1u << 0)
#define GFXSTREAM_FENCE_FLAG_RING_IDX (1u << 1)

struct gfxstream_debug {
    uint32_t debug_type; /* GFXSTREAM_DEBUG_* */
    const char *message; /* valid during the callback only */
};
#define GFXSTREAM_DEBUG_ERROR 1u
#define GFXSTREAM_DEBUG_WARN  2u
#define GFXSTREAM_DEBUG_INFO  3u
#define GFXSTREAM_DEBUG_DEBUG 4u

typedef void (*gfxstream_fence_callback)(void *user_data, struct gfxstream_fence *fence);
typedef void (*gfxstream_debug_callback)(void *user_data, struct gfxstream_debug *debug);

struct gfxstream_box {
    uint32_t x, y, z;
    uint32_t w, h, d;
};

/* RESOURCE_CREATE_3D's fields, as virglrenderer's create args. */
struct gfxstream_resource_create_args {
    uint32_t handle;
    uint32_t target;
    uint32_t format;
    uint32_t bind;
    uint32_t width;
    uint32_t height;
    uint32_t depth;
    uint32_t array_size;
    uint32_t last_level;
    uint32_t nr_samples;
    uint32_t flags;
};

struct gfxstream_handle {
    int64_t os_handle;
    uint32_t handle_type; /* GFXSTREAM_HANDLE_MEM_* */
};
#define GFXSTREAM_HANDLE_MEM_OPAQUE_FD 0x1u
#define GFXSTREAM_HANDLE_MEM_DMABUF    0x2u
#define GFXSTREAM_HANDLE_MEM_SHM       0x4u

struct gfxstream_create_blob {
    uint32_t blob_mem;
    uint32_t blob_flags;
    uint64_t blob_id;
    uint64_t size;
};

struct gfxstream_command {
    uint32_t ctx_id;
    uint32_t cmd_size;
    uint8_t *cmd;
    uint32_t num_in_fences;          /* unstable: always 0 */
    struct gfxstream_handle *fences; /* unstable: always NULL */
};

_Static_assert(sizeof(struct gfxstream_param) == 16, "stream_renderer_param");
_Static_assert(sizeof(struct gfxstream_fence) == 24 &&
                   offsetof(struct gfxstream_fence, fence_id) == 8 &&
                   offsetof(struct gfxstream_fence, ctx_id) == 16 &&
                   offsetof(struct gfxstream_fence, ring_idx) == 20,
               "stream_renderer_fence");
_Static_assert(sizeof(struct gfxstream_debug) == 16, "stream_renderer_debug");
_Static_assert(sizeof(struct gfxstream_box) == 24, "stream_renderer_box");
_Static_assert(sizeof(struct gfxstream_resource_create_args) == 44,
               "stream_renderer_resource_create_args");
_Static_assert(sizeof(struct gfxstream_handle) == 16, "stream_renderer_handle");
_Static_assert(sizeof(struct gfxstream_create_blob) == 24, "stream_renderer_create_blob");
_Static_assert(sizeof(struct gfxstream_command) == 32 &&
                   offsetof(struct gfxstream_command, cmd) == 8 &&
                   offsetof(struct gfxstream_command, fences) == 24,
               "stream_renderer_command");

/* Map info's cache types (the low nibble). */
#define GFXSTREAM_MAP_CACHE_MASK 0x0fu

/* The gfxstream commands SUBMIT_3D carries (one per submit; the streams themselves run in
 * shared-memory rings the guest names with CONTEXT_CREATE). Each is little-endian dwords,
 * the first the opcode; the sizes are what the library copies for each. */
#define GFXSTREAM_CMD_CONTEXT_CREATE             0x1001u /* {op, resource id} */
#define GFXSTREAM_CMD_CONTEXT_PING               0x1002u /* {op, resource id} */
#define GFXSTREAM_CMD_CONTEXT_PING_WITH_RESPONSE 0x1003u /* {op, resource id} */
#define GFXSTREAM_CMD_CREATE_EXPORT_SYNC         0x9000u /* {op, sync lo, hi} */
#define GFXSTREAM_CMD_CREATE_EXPORT_SYNC_VK      0xa000u /* {op, device lo, hi, fence lo, hi} */
#define GFXSTREAM_CMD_CREATE_IMPORT_SYNC_VK      0xa001u /* same */
#define GFXSTREAM_CMD_CREATE_QSRI_EXPORT_VK      0xa002u /* {op, image lo, hi} */
#define GFXSTREAM_CMD_RESOURCE_CREATE_3D         0xa003u /* {op, 11 fields, u64 blob id} */
#define GFXSTREAM_CMD_ACQUIRE_SYNC               0xa004u /* {op, pad, u64 sync id} */
#define GFXSTREAM_CMD_PLACEHOLDER_COMMAND_VK     0xf002u /* {op, pad, pad} */

/* RESOURCE_CREATE_3D's payload after the opcode (56 bytes in all). */
struct gfxstream_cmd_resource_create_3d {
    uint32_t op;
    uint32_t target;
    uint32_t format;
    uint32_t bind;
    uint32_t width;
    uint32_t height;
    uint32_t depth;
    uint32_t array_size;
    uint32_t last_level;
    uint32_t nr_samples;
    uint32_t flags;
    uint32_t pad;
    uint64_t blob_id;
};
_Static_assert(sizeof(struct gfxstream_cmd_resource_create_3d) == 56, "RESOURCE_CREATE_3D");

/* The entry points neep uses, resolved with dlsym. */
struct gfxstream_api {
    int (*init)(struct gfxstream_param *params, uint64_t count);
    void (*get_cap_set)(uint32_t set, uint32_t *max_version, uint32_t *max_size);
    void (*fill_caps)(uint32_t set, uint32_t version, void *caps);
    int (*context_create)(uint32_t ctx_id, uint32_t name_length, const char *name,
                          uint32_t context_init);
    void (*context_destroy)(uint32_t ctx_id);
    void (*ctx_attach_resource)(int ctx_id, int resource_id);
    void (*ctx_detach_resource)(int ctx_id, int resource_id);
    int (*submit_cmd)(struct gfxstream_command *command);
    int (*create_fence)(const struct gfxstream_fence *fence);
    int (*resource_create)(struct gfxstream_resource_create_args *args, struct iovec *iov,
                           uint32_t iov_count);
    void (*resource_unref)(uint32_t resource_id);
    int (*resource_attach_iov)(int resource_id, struct iovec *iov, int iov_count);
    void (*resource_detach_iov)(int resource_id, struct iovec **iov, int *iov_count);
    int (*transfer_write_iov)(uint32_t resource_id, uint32_t ctx_id, int level, uint32_t stride,
                              uint32_t layer_stride, struct gfxstream_box *box, uint64_t offset,
                              struct iovec *iov, unsigned int iov_count);
    int (*transfer_read_iov)(uint32_t resource_id, uint32_t ctx_id, uint32_t level, uint32_t stride,
                             uint32_t layer_stride, struct gfxstream_box *box, uint64_t offset,
                             struct iovec *iov, int iov_count);
    int (*create_blob)(uint32_t ctx_id, uint32_t resource_id,
                       const struct gfxstream_create_blob *create, const struct iovec *iov,
                       uint32_t iov_count, const struct gfxstream_handle *handle);
    int (*export_blob)(uint32_t resource_id, struct gfxstream_handle *handle);
    int (*resource_map)(uint32_t resource_id, void **hva, uint64_t *size);
    int (*resource_unmap)(uint32_t resource_id);
    int (*resource_map_info)(uint32_t resource_id, uint32_t *map_info);
};

#endif
