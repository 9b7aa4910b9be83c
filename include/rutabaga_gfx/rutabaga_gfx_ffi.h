/*
 * The rutabaga_gfx C ABI, version 0.1.6, as implemented by neep.
 *
 * Written for neep from the published ABI: names, values, struct layouts and signatures match
 * rutabaga_gfx_ffi 0.1.6 so that programs built against either library run on the other
 * (QEMU's virtio-gpu-rutabaga among them). The parts behind RUTABAGA_GFX_FFI_UNSTABLE are
 * implemented too: snapshot/restore of 2D state and resource import.
 *
 * Every function returns 0 on success or a negative errno: -EINVAL (malformed argument),
 * -ENOENT (unknown resource), -ESRCH (unknown context), -EEXIST (id in use), -ENOMEM (memory
 * budget), -E2BIG (over a fixed limit), -EOPNOTSUPP (not applicable). The reason goes to the
 * builder's debug callback as one line.
 */
#ifndef RUTABAGA_GFX_FFI_H
#define RUTABAGA_GFX_FFI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RUTABAGA_VERSION_MAJOR 0
#define RUTABAGA_VERSION_MINOR 1
#define RUTABAGA_VERSION_PATCH 6

/* Capset ids; bit (1 << id) of rutabaga_builder.capset_mask enables one. */
#define RUTABAGA_CAPSET_VIRGL              1
#define RUTABAGA_CAPSET_VIRGL2             2
#define RUTABAGA_CAPSET_GFXSTREAM_VULKAN   3
#define RUTABAGA_CAPSET_VENUS              4
#define RUTABAGA_CAPSET_CROSS_DOMAIN       5
#define RUTABAGA_CAPSET_DRM                6
#define RUTABAGA_CAPSET_GFXSTREAM_MAGMA    7
#define RUTABAGA_CAPSET_GFXSTREAM_GLES     8
#define RUTABAGA_CAPSET_GFXSTREAM_COMPOSER 9

/* Blob memory kinds and use flags (same values as virtio-gpu). */
#define RUTABAGA_BLOB_MEM_GUEST        1
#define RUTABAGA_BLOB_MEM_HOST3D       2
#define RUTABAGA_BLOB_MEM_HOST3D_GUEST 3

#define RUTABAGA_BLOB_FLAG_USE_MAPPABLE     1
#define RUTABAGA_BLOB_FLAG_USE_SHAREABLE    2
#define RUTABAGA_BLOB_FLAG_USE_CROSS_DEVICE 4

/* map_info: cache type in the low nibble (virtio-gpu values), access in the next. */
#define RUTABAGA_MAP_CACHE_MASK     0x0f
#define RUTABAGA_MAP_CACHE_CACHED   0x01
#define RUTABAGA_MAP_CACHE_UNCACHED 0x02
#define RUTABAGA_MAP_CACHE_WC       0x03

#define RUTABAGA_MAP_ACCESS_MASK  0xf0
#define RUTABAGA_MAP_ACCESS_READ  0x10
#define RUTABAGA_MAP_ACCESS_WRITE 0x20
#define RUTABAGA_MAP_ACCESS_RW    0x30

/* Handle types: memory, then synchronisation objects, then platform buffers. */
#define RUTABAGA_HANDLE_TYPE_MEM_OPAQUE_FD    0x1
#define RUTABAGA_HANDLE_TYPE_MEM_DMABUF       0x2
#define RUTABAGA_HANDLE_TYPE_MEM_OPAQUE_WIN32 0x3
#define RUTABAGA_HANDLE_TYPE_MEM_SHM          0x4
#define RUTABAGA_HANDLE_TYPE_MEM_ZIRCON       0x5

#define RUTABAGA_HANDLE_TYPE_SIGNAL_OPAQUE_FD    0x10
#define RUTABAGA_HANDLE_TYPE_SIGNAL_SYNC_FD      0x20
#define RUTABAGA_HANDLE_TYPE_SIGNAL_OPAQUE_WIN32 0x30
#define RUTABAGA_HANDLE_TYPE_SIGNAL_ZIRCON       0x40
#define RUTABAGA_HANDLE_TYPE_SIGNAL_EVENT_FD     0x50

#define RUTABAGA_HANDLE_TYPE_PLATFORM_SCREEN_BUFFER_QNX 0x01000000
#define RUTABAGA_HANDLE_TYPE_PLATFORM_EGL_NATIVE_PIXMAP 0x02000000
#define RUTABAGA_HANDLE_TYPE_PLATFORM_AHB               0x03000000

/* Channels a cross-domain context can reach on the host. */
#define RUTABAGA_CHANNEL_TYPE_WAYLAND      1
#define RUTABAGA_CHANNEL_TYPE_PW           0x10
#define RUTABAGA_CHANNEL_TYPE_X11          0x11
#define RUTABAGA_CHANNEL_TYPE_DBUS_SESSION 0x12
#define RUTABAGA_CHANNEL_TYPE_DBUS_SYSTEM  0x13

/* The only window-system integration rutabaga_init accepts. */
#define RUTABAGA_WSI_SURFACELESS 0x1

/* rutabaga_fence.flags (bits 0 and 1 are the virtio-gpu header flags). */
#define RUTABAGA_FLAG_FENCE           (1 << 0)
#define RUTABAGA_FLAG_INFO_RING_IDX   (1 << 1)
#define RUTABAGA_FLAG_FENCE_SHAREABLE (1 << 2)

/* rutabaga_debug.debug_type */
#define RUTABAGA_DEBUG_ERROR 0x1
#define RUTABAGA_DEBUG_WARN  0x2
#define RUTABAGA_DEBUG_INFO  0x3

#ifdef RUTABAGA_GFX_FFI_UNSTABLE
/* rutabaga_import_data.flags */
#define RUTABAGA_IMPORT_FLAG_3D_INFO          (1 << 0)
#define RUTABAGA_IMPORT_FLAG_VULKAN_INFO      (1 << 1)
#define RUTABAGA_IMPORT_FLAG_RESOURCE_EXISTS  (1 << 30)
#define RUTABAGA_IMPORT_FLAG_PRESERVE_CONTENT (1u << 31)
#endif

/* Opaque instance. */
struct rutabaga;

struct rutabaga_create_blob {
    uint32_t blob_mem;
    uint32_t blob_flags;
    uint64_t blob_id;
    uint64_t size;
};

/* The fields of virtio-gpu RESOURCE_CREATE_3D; QEMU creates 2D resources as target 2. */
struct rutabaga_create_3d {
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

#ifdef RUTABAGA_GFX_FFI_UNSTABLE
struct rutabaga_import_data {
    uint32_t flags;
    struct {
        uint32_t width;
        uint32_t height;
        uint32_t drm_fourcc;
        uint32_t strides[4];
        uint32_t offsets[4];
        uint64_t modifier;
    } info_3d;
};
#endif

/*
 * A box and its place in linear memory: the box's first pixel sits at
 * offset + z * layer_stride + y * stride + x * 4. A zero stride means width * 4.
 */
struct rutabaga_transfer {
    uint32_t x;
    uint32_t y;
    uint32_t z;
    uint32_t w;
    uint32_t h;
    uint32_t d;
    uint32_t level;
    uint32_t stride;
    uint32_t layer_stride;
    uint64_t offset;
};

struct rutabaga_iovecs {
    struct iovec *iovecs;
    size_t num_iovecs;
};

struct rutabaga_handle {
    int64_t os_handle;
    uint32_t handle_type;
};

struct rutabaga_mapping {
    void *ptr;
    uint64_t size;
};

struct rutabaga_command {
    uint32_t ctx_id;
    uint32_t cmd_size;
    uint8_t *cmd;
#ifdef RUTABAGA_GFX_FFI_UNSTABLE
    uint32_t num_in_fences;
    uint64_t *fence_ids;
#else
    /* Must be zero. */
    uint32_t _reserved_1;
    uint64_t *_reserved_2;
#endif
};

/* channel_name is a NUL-terminated path. */
struct rutabaga_channel {
    const char *channel_name;
    uint32_t channel_type;
};

struct rutabaga_channels {
    struct rutabaga_channel *channels;
    size_t num_channels;
};

struct rutabaga_fence {
    uint32_t flags;
    uint64_t fence_id;
    uint32_t ctx_id;
    uint32_t ring_idx;
};

struct rutabaga_debug {
    uint32_t debug_type;
    const char *message; /* valid only during the callback */
};

/*
 * Called once per completed fence, in creation order per timeline. neep calls it on the
 * thread that created the fence, on the thread of the context that completed it, or on its
 * own fence thread; it must not call back into the library.
 */
typedef void (*rutabaga_fence_callback)(uint64_t user_data, const struct rutabaga_fence *fence);

typedef void (*rutabaga_debug_callback)(uint64_t user_data, const struct rutabaga_debug *debug);

struct rutabaga_builder {
    uint64_t user_data;
    uint64_t capset_mask;
    uint64_t wsi;
    rutabaga_fence_callback fence_cb;
    rutabaga_debug_callback debug_cb;   /* optional */
    struct rutabaga_channels *channels; /* optional */
    const char *renderer_features;      /* optional, NUL-terminated */
};

/* Parses colon-separated capset names ("cross-domain:venus"); unknown names are ignored. */
int32_t rutabaga_calculate_capset_mask(const char *capset_names, uint64_t *capset_mask);

int32_t rutabaga_init(const struct rutabaga_builder *builder, struct rutabaga **ptr);

/* Destroys the instance and sets *ptr to NULL. */
int32_t rutabaga_finish(struct rutabaga **ptr);

int32_t rutabaga_get_num_capsets(struct rutabaga *ptr, uint32_t *num_capsets);

int32_t rutabaga_get_capset_info(struct rutabaga *ptr, uint32_t capset_index, uint32_t *capset_id,
                                 uint32_t *capset_version, uint32_t *capset_size);

/* `capset_size` must be the size rutabaga_get_capset_info reported. */
int32_t rutabaga_get_capset(struct rutabaga *ptr, uint32_t capset_id, uint32_t version,
                            uint8_t *capset, uint32_t capset_size);

int32_t rutabaga_context_create(struct rutabaga *ptr, uint32_t ctx_id, uint32_t context_init,
                                const char *context_name, uint32_t context_name_len);

int32_t rutabaga_context_destroy(struct rutabaga *ptr, uint32_t ctx_id);

int32_t rutabaga_context_attach_resource(struct rutabaga *ptr, uint32_t ctx_id,
                                         uint32_t resource_id);

int32_t rutabaga_context_detach_resource(struct rutabaga *ptr, uint32_t ctx_id,
                                         uint32_t resource_id);

int32_t rutabaga_resource_create_3d(struct rutabaga *ptr, uint32_t resource_id,
                                    const struct rutabaga_create_3d *create_3d);

/* The memory the iovecs point to must stay valid until detach or unref. */
int32_t rutabaga_resource_attach_backing(struct rutabaga *ptr, uint32_t resource_id,
                                         const struct rutabaga_iovecs *iovecs);

int32_t rutabaga_resource_detach_backing(struct rutabaga *ptr, uint32_t resource_id);

/* Into `iovec` when given, otherwise into the attached backing. */
int32_t rutabaga_resource_transfer_read(struct rutabaga *ptr, uint32_t ctx_id, uint32_t resource_id,
                                        const struct rutabaga_transfer *transfer,
                                        const struct iovec *iovec);

int32_t rutabaga_resource_transfer_write(struct rutabaga *ptr, uint32_t ctx_id,
                                         uint32_t resource_id,
                                         const struct rutabaga_transfer *transfer);

/* A passed `handle` is owned by the library afterwards. */
int32_t rutabaga_resource_create_blob(struct rutabaga *ptr, uint32_t ctx_id, uint32_t resource_id,
                                      const struct rutabaga_create_blob *rutabaga_create_blob,
                                      const struct rutabaga_iovecs *iovecs,
                                      const struct rutabaga_handle *handle);

int32_t rutabaga_resource_unref(struct rutabaga *ptr, uint32_t resource_id);

/* The caller owns and closes the returned descriptor. */
int32_t rutabaga_resource_export_blob(struct rutabaga *ptr, uint32_t resource_id,
                                      struct rutabaga_handle *handle);

int32_t rutabaga_resource_map(struct rutabaga *ptr, uint32_t resource_id,
                              struct rutabaga_mapping *mapping);

int32_t rutabaga_resource_unmap(struct rutabaga *ptr, uint32_t resource_id);

int32_t rutabaga_resource_map_info(struct rutabaga *ptr, uint32_t resource_id, uint32_t *map_info);

int32_t rutabaga_submit_command(struct rutabaga *ptr, struct rutabaga_command *cmd);

int32_t rutabaga_create_fence(struct rutabaga *ptr, const struct rutabaga_fence *fence);

#ifdef RUTABAGA_GFX_FFI_UNSTABLE
/* `dir` must exist and be empty. */
int32_t rutabaga_snapshot(struct rutabaga *ptr, const char *dir);

int32_t rutabaga_restore(struct rutabaga *ptr, const char *dir);

/* The handle is owned by the library afterwards. */
int32_t rutabaga_resource_import(struct rutabaga *ptr, uint32_t resource_id,
                                 const struct rutabaga_handle *import_handle,
                                 const struct rutabaga_import_data *import_data);
#endif

#ifdef __cplusplus
}
#endif

#endif
