/*
 * The rutabaga_gfx C ABI on top of the neep renderer: one function each, translating
 * arguments and nothing more. The layout asserts below pin the ABI.
 */
#define RUTABAGA_GFX_FFI_UNSTABLE
#include <rutabaga_gfx/rutabaga_gfx_ffi.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <neep/renderer.h>

#include "util/checked.h"

#define RUTABAGA_EXPORT __attribute__((visibility("default")))

#define ASSERT_LAYOUT(type, size) _Static_assert(sizeof(struct type) == (size), #type " size")
ASSERT_LAYOUT(rutabaga_create_blob, 24);
ASSERT_LAYOUT(rutabaga_create_3d, 40);
ASSERT_LAYOUT(rutabaga_transfer, 48);
ASSERT_LAYOUT(rutabaga_iovecs, 16);
ASSERT_LAYOUT(rutabaga_handle, 16);
ASSERT_LAYOUT(rutabaga_mapping, 16);
ASSERT_LAYOUT(rutabaga_command, 32);
ASSERT_LAYOUT(rutabaga_channel, 16);
ASSERT_LAYOUT(rutabaga_channels, 16);
ASSERT_LAYOUT(rutabaga_fence, 24);
ASSERT_LAYOUT(rutabaga_debug, 16);
ASSERT_LAYOUT(rutabaga_builder, 56);
ASSERT_LAYOUT(rutabaga_import_data, 64);
_Static_assert(offsetof(struct rutabaga_transfer, offset) == 40, "transfer.offset");
_Static_assert(offsetof(struct rutabaga_fence, fence_id) == 8, "fence.fence_id");
_Static_assert(offsetof(struct rutabaga_fence, ring_idx) == 20, "fence.ring_idx");
_Static_assert(offsetof(struct rutabaga_command, fence_ids) == 24, "command.fence_ids");
_Static_assert(offsetof(struct rutabaga_builder, fence_cb) == 24, "builder.fence_cb");
_Static_assert(offsetof(struct rutabaga_builder, renderer_features) == 48, "builder.features");
_Static_assert(offsetof(struct rutabaga_import_data, info_3d.modifier) == 56, "import.modifier");

/* The neep and rutabaga constants are the virtio-gpu ones; pin that too. */
_Static_assert(RUTABAGA_FLAG_FENCE == NEEP_FENCE_FLAG_FENCE, "fence flag");
_Static_assert(RUTABAGA_FLAG_INFO_RING_IDX == NEEP_FENCE_FLAG_RING_IDX, "ring flag");
_Static_assert(RUTABAGA_BLOB_MEM_HOST3D == NEEP_BLOB_MEM_HOST3D, "blob mem");
_Static_assert(RUTABAGA_HANDLE_TYPE_MEM_SHM == NEEP_HANDLE_MEM_SHM, "shm handle");
_Static_assert(RUTABAGA_IMPORT_FLAG_RESOURCE_EXISTS == NEEP_IMPORT_RESOURCE_EXISTS, "import");
_Static_assert(RUTABAGA_IMPORT_FLAG_PRESERVE_CONTENT == NEEP_IMPORT_PRESERVE_CONTENT, "import");

struct rutabaga {
    struct neep_renderer *renderer;
    uint64_t user_data;
    rutabaga_fence_callback fence_cb;
    rutabaga_debug_callback debug_cb;
    /* Context types complete fences on their own threads; this one delivers those. */
    pthread_t fence_thread;
    bool fence_thread_running;
    int stop_fd;
    /* Set by rutabaga_finish: a context's thread may still complete a fence while the
     * renderer is torn down, and the VMM no longer waits for any. */
    atomic_bool finishing;
};

static void forward_log(void *user_data, enum neep_log_level level, const char *message)
{
    struct rutabaga *rutabaga = user_data;
    if (!rutabaga->debug_cb) {
        if (level <= NEEP_LOG_WARN) {
            fprintf(stderr, "rutabaga_gfx_ffi (neep): %s\n", message);
        }
        return;
    }
    uint32_t debug_type = level == NEEP_LOG_ERROR  ? RUTABAGA_DEBUG_ERROR
                          : level == NEEP_LOG_WARN ? RUTABAGA_DEBUG_WARN
                                                   : RUTABAGA_DEBUG_INFO;
    struct rutabaga_debug debug = {.debug_type = debug_type, .message = message};
    rutabaga->debug_cb(rutabaga->user_data, &debug);
}

/* Reports an argument problem the renderer never saw (NULL pointers and the like). */
static int32_t reject(const struct rutabaga *rutabaga, const char *message)
{
    if (rutabaga && rutabaga->debug_cb) {
        struct rutabaga_debug debug = {.debug_type = RUTABAGA_DEBUG_ERROR, .message = message};
        rutabaga->debug_cb(rutabaga->user_data, &debug);
    } else {
        fprintf(stderr, "rutabaga_gfx_ffi (neep): %s\n", message);
    }
    return -EINVAL;
}

static const char *const capset_names[] = {
    [RUTABAGA_CAPSET_VIRGL] = "virgl",
    [RUTABAGA_CAPSET_VIRGL2] = "virgl2",
    [RUTABAGA_CAPSET_GFXSTREAM_VULKAN] = "gfxstream-vulkan",
    [RUTABAGA_CAPSET_VENUS] = "venus",
    [RUTABAGA_CAPSET_CROSS_DOMAIN] = "cross-domain",
    [RUTABAGA_CAPSET_DRM] = "drm",
    [RUTABAGA_CAPSET_GFXSTREAM_MAGMA] = "magma",
    [RUTABAGA_CAPSET_GFXSTREAM_GLES] = "gfxstream-gles",
    [RUTABAGA_CAPSET_GFXSTREAM_COMPOSER] = "gfxstream-composer",
};

/* The mask of the capsets named in `list`, names split at any of `separators`. Returns how
 * many non-empty names matched no capset. */
static uint32_t mask_from_names(const char *list, const char *separators, uint64_t *mask)
{
    uint32_t unknown_count = 0;
    *mask = 0;
    for (const char *name = list;;) {
        size_t length = strcspn(name, separators);
        bool known = false;
        for (uint32_t id = 1; id < sizeof(capset_names) / sizeof(capset_names[0]); id++) {
            if (strlen(capset_names[id]) == length &&
                strncmp(name, capset_names[id], length) == 0) {
                *mask |= 1ull << id;
                known = true;
            }
        }
        unknown_count += !known && length > 0;
        if (name[length] == '\0') {
            break;
        }
        name += length + 1;
    }
    return unknown_count;
}

RUTABAGA_EXPORT int32_t rutabaga_calculate_capset_mask(const char *capset_names_list,
                                                       uint64_t *capset_mask)
{
    if (!capset_names_list || !capset_mask) {
        return reject(NULL, "calculate_capset_mask: NULL argument");
    }
    mask_from_names(capset_names_list, ":", capset_mask); /* rutabaga ignores unknown names */
    return 0;
}

/*
 * QEMU's virtio-gpu-rutabaga has properties for cross-domain and gfxstream only, so context
 * types it cannot name come from NEEP_CONTEXT_TYPES (e.g. "virgl2,cross-domain"), added to
 * what QEMU asked for. A name neep does not know is an error: a typo must not pass silently.
 */
static int capsets_from_environment(struct rutabaga *rutabaga, uint64_t *mask)
{
    const char *list = getenv("NEEP_CONTEXT_TYPES");
    if (!list || !*list) {
        return 0;
    }
    uint64_t extra;
    if (mask_from_names(list, ",:", &extra) > 0) {
        char message[512];
        snprintf(message, sizeof(message),
                 "init: NEEP_CONTEXT_TYPES=\"%.200s\" names a context type neep does not know "
                 "(known: virgl, virgl2, venus, cross-domain, drm, gfxstream-vulkan, "
                 "gfxstream-gles, gfxstream-composer, magma)",
                 list);
        return reject(rutabaga, message);
    }
    *mask |= extra;
    return 0;
}

/* "memory_budget_mib=N" in a comma-separated list; other keys are left for context types. */
static int parse_features(struct rutabaga *rutabaga, const char *features,
                          uint64_t *memory_budget_bytes)
{
    const char *key = "memory_budget_mib=";
    const char *found = features ? strstr(features, key) : NULL;
    if (!found) {
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long mib = strtoull(found + strlen(key), &end, 10);
    if (errno || mib == 0 || (*end != '\0' && *end != ',') ||
        !checked_mul_u64(mib, 1ull << 20, memory_budget_bytes)) {
        return reject(rutabaga, "renderer_features: memory_budget_mib needs a positive number");
    }
    return 0;
}

static void deliver_fence(void *user_data, const struct neep_fence *fence);

static void *fence_thread_main(void *arg)
{
    struct rutabaga *rutabaga = arg;
    struct pollfd fds[2] = {
        {.fd = neep_renderer_fence_fd(rutabaga->renderer), .events = POLLIN},
        {.fd = rutabaga->stop_fd, .events = POLLIN},
    };
    for (;;) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR) {
            break;
        }
        if (fds[1].revents) {
            break;
        }
        if (fds[0].revents) {
            neep_renderer_dispatch_fences(rutabaga->renderer, deliver_fence, rutabaga);
        }
    }
    return NULL;
}

static int start_fence_thread(struct rutabaga *rutabaga)
{
    rutabaga->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (rutabaga->stop_fd < 0) {
        return -errno;
    }
    if (pthread_create(&rutabaga->fence_thread, NULL, fence_thread_main, rutabaga) != 0) {
        return -EAGAIN;
    }
    rutabaga->fence_thread_running = true;
    return 0;
}

static void stop_fence_thread(struct rutabaga *rutabaga)
{
    if (rutabaga->fence_thread_running) {
        uint64_t one = 1;
        ssize_t ignored = write(rutabaga->stop_fd, &one, sizeof(one));
        (void)ignored;
        pthread_join(rutabaga->fence_thread, NULL);
        rutabaga->fence_thread_running = false;
    }
    if (rutabaga->stop_fd >= 0) {
        close(rutabaga->stop_fd);
        rutabaga->stop_fd = -1;
    }
}

/* A context type's worker completed a fence: deliver it from that thread, no hop. */
static void notify_fences(void *user_data)
{
    struct rutabaga *rutabaga = user_data;
    neep_renderer_dispatch_fences(rutabaga->renderer, deliver_fence, rutabaga);
}

RUTABAGA_EXPORT int32_t rutabaga_init(const struct rutabaga_builder *builder, struct rutabaga **ptr)
{
    if (!builder || !ptr) {
        return reject(NULL, "init: NULL argument");
    }
    *ptr = NULL;
    struct rutabaga *rutabaga = calloc(1, sizeof(*rutabaga));
    if (!rutabaga) {
        return -ENOMEM;
    }
    rutabaga->user_data = builder->user_data;
    rutabaga->fence_cb = builder->fence_cb;
    rutabaga->debug_cb = builder->debug_cb;
    rutabaga->stop_fd = -1;

    int ret = 0;
    if (!builder->fence_cb) {
        ret = reject(rutabaga, "init: a fence callback is required");
    } else if (builder->wsi != RUTABAGA_WSI_SURFACELESS) {
        ret = reject(rutabaga, "init: only RUTABAGA_WSI_SURFACELESS is supported");
    }

    struct neep_renderer_config config = {
        .capset_mask = builder->capset_mask,
        .log_fn = forward_log,
        .log_user_data = rutabaga,
    };
    struct neep_channel *channels = NULL;
    if (ret == 0 && builder->channels && builder->channels->num_channels > 0) {
        const struct rutabaga_channels *list = builder->channels;
        if (!list->channels || list->num_channels > 64) {
            ret = reject(rutabaga, "init: channel list is missing or too long");
        } else if (!(channels = calloc(list->num_channels, sizeof(*channels)))) {
            ret = -ENOMEM;
        } else {
            for (size_t i = 0; i < list->num_channels; i++) {
                channels[i].path = list->channels[i].channel_name;
                channels[i].type = list->channels[i].channel_type;
            }
            config.channels = channels;
            config.channel_count = list->num_channels;
        }
    }
    if (ret == 0) {
        ret = parse_features(rutabaga, builder->renderer_features, &config.memory_budget_bytes);
    }
    if (ret == 0) {
        ret = capsets_from_environment(rutabaga, &config.capset_mask);
    }
    if (ret == 0) {
        ret = neep_renderer_create(&config, &rutabaga->renderer);
    }
    free(channels);
    /* Context types complete fences on their own threads: deliver from there (QEMU takes
     * fence callbacks on any thread). The fence thread is the backstop for a completion whose
     * notification found another delivery in progress. */
    if (ret == 0 && config.capset_mask != 0) {
        neep_renderer_set_fence_notify(rutabaga->renderer, notify_fences, rutabaga);
        ret = start_fence_thread(rutabaga);
        if (ret < 0) {
            neep_renderer_destroy(rutabaga->renderer);
        }
    }
    if (ret < 0) {
        if (rutabaga->stop_fd >= 0) {
            close(rutabaga->stop_fd);
        }
        free(rutabaga);
        return ret;
    }
    *ptr = rutabaga;
    return 0;
}

RUTABAGA_EXPORT int32_t rutabaga_finish(struct rutabaga **ptr)
{
    if (!ptr || !*ptr) {
        return reject(NULL, "finish: NULL instance");
    }
    /* The fence thread first, while the fd it polls is still open; fences that complete
     * during teardown are not delivered (QEMU no longer waits for any). */
    struct rutabaga *rutabaga = *ptr;
    atomic_store(&rutabaga->finishing, true);
    stop_fence_thread(rutabaga);
    neep_renderer_destroy(rutabaga->renderer);
    free(rutabaga);
    *ptr = NULL;
    return 0;
}

RUTABAGA_EXPORT int32_t rutabaga_get_num_capsets(struct rutabaga *ptr, uint32_t *num_capsets)
{
    if (!ptr || !num_capsets) {
        return reject(ptr, "get_num_capsets: NULL argument");
    }
    *num_capsets = neep_capset_count(ptr->renderer);
    return 0;
}

RUTABAGA_EXPORT int32_t rutabaga_get_capset_info(struct rutabaga *ptr, uint32_t capset_index,
                                                 uint32_t *capset_id, uint32_t *capset_version,
                                                 uint32_t *capset_size)
{
    if (!ptr || !capset_id || !capset_version || !capset_size) {
        return reject(ptr, "get_capset_info: NULL argument");
    }
    return neep_capset_info(ptr->renderer, capset_index, capset_id, capset_version, capset_size);
}

RUTABAGA_EXPORT int32_t rutabaga_get_capset(struct rutabaga *ptr, uint32_t capset_id,
                                            uint32_t version, uint8_t *capset, uint32_t capset_size)
{
    if (!ptr || (!capset && capset_size > 0)) {
        return reject(ptr, "get_capset: NULL argument");
    }
    return neep_capset_get(ptr->renderer, capset_id, version, capset, capset_size);
}

RUTABAGA_EXPORT int32_t rutabaga_context_create(struct rutabaga *ptr, uint32_t ctx_id,
                                                uint32_t context_init, const char *context_name,
                                                uint32_t context_name_len)
{
    if (!ptr) {
        return reject(ptr, "context_create: NULL instance");
    }
    size_t name_len = context_name ? context_name_len : 0;
    return neep_context_create(ptr->renderer, ctx_id, context_init, context_name, name_len);
}

RUTABAGA_EXPORT int32_t rutabaga_context_destroy(struct rutabaga *ptr, uint32_t ctx_id)
{
    if (!ptr) {
        return reject(ptr, "context_destroy: NULL instance");
    }
    return neep_context_destroy(ptr->renderer, ctx_id);
}

RUTABAGA_EXPORT int32_t rutabaga_context_attach_resource(struct rutabaga *ptr, uint32_t ctx_id,
                                                         uint32_t resource_id)
{
    if (!ptr) {
        return reject(ptr, "context_attach_resource: NULL instance");
    }
    return neep_context_attach_resource(ptr->renderer, ctx_id, resource_id);
}

RUTABAGA_EXPORT int32_t rutabaga_context_detach_resource(struct rutabaga *ptr, uint32_t ctx_id,
                                                         uint32_t resource_id)
{
    if (!ptr) {
        return reject(ptr, "context_detach_resource: NULL instance");
    }
    return neep_context_detach_resource(ptr->renderer, ctx_id, resource_id);
}

RUTABAGA_EXPORT int32_t rutabaga_resource_create_3d(struct rutabaga *ptr, uint32_t resource_id,
                                                    const struct rutabaga_create_3d *create_3d)
{
    if (!ptr || !create_3d) {
        return reject(ptr, "resource_create_3d: NULL argument");
    }
    struct neep_resource_create_3d create = {
        .target = create_3d->target,
        .format = create_3d->format,
        .bind = create_3d->bind,
        .width = create_3d->width,
        .height = create_3d->height,
        .depth = create_3d->depth,
        .array_size = create_3d->array_size,
        .last_level = create_3d->last_level,
        .nr_samples = create_3d->nr_samples,
        .flags = create_3d->flags,
    };
    return neep_resource_create_3d(ptr->renderer, resource_id, &create);
}

RUTABAGA_EXPORT int32_t rutabaga_resource_attach_backing(struct rutabaga *ptr, uint32_t resource_id,
                                                         const struct rutabaga_iovecs *iovecs)
{
    if (!ptr || !iovecs) {
        return reject(ptr, "resource_attach_backing: NULL argument");
    }
    return neep_resource_attach_backing(ptr->renderer, resource_id, iovecs->iovecs,
                                        iovecs->num_iovecs);
}

RUTABAGA_EXPORT int32_t rutabaga_resource_detach_backing(struct rutabaga *ptr, uint32_t resource_id)
{
    if (!ptr) {
        return reject(ptr, "resource_detach_backing: NULL instance");
    }
    return neep_resource_detach_backing(ptr->renderer, resource_id);
}

/*
 * rutabaga's 2D component places the box at offset + z * layer_stride + y * stride + x * 4 in
 * linear memory; neep's transfer names the box origin directly, as virglrenderer does (and
 * rutabaga passes the offset to it unchanged).
 */
static int32_t convert_transfer(struct rutabaga *ptr, uint32_t resource_id,
                                const struct rutabaga_transfer *in, struct neep_transfer *out)
{
    struct neep_resource_info info;
    if (neep_resource_get_info(ptr->renderer, resource_id, &info) < 0) {
        char message[64];
        snprintf(message, sizeof(message), "transfer: no resource %u", resource_id);
        reject(ptr, message);
        return -ENOENT;
    }
    uint64_t stride = in->stride ? in->stride : (uint64_t)info.width * 4;
    uint64_t layer_stride = in->layer_stride ? in->layer_stride : stride * in->h;
    uint64_t origin = in->offset;
    if (info.is_3d_provided) {
        /* as given */
    } else if (!checked_mul_add_u64(in->z, layer_stride, in->offset, &origin) ||
               !checked_mul_add_u64(in->y, stride, origin, &origin) ||
               !checked_mul_add_u64(in->x, 4, origin, &origin)) {
        return reject(ptr, "transfer: box position overflows 64 bits");
    }
    *out = (struct neep_transfer){
        .x = in->x,
        .y = in->y,
        .z = in->z,
        .width = in->w,
        .height = in->h,
        .depth = in->d,
        .level = in->level,
        .stride_bytes = in->stride,
        .layer_stride_bytes = in->layer_stride,
        .offset_bytes = origin,
    };
    return 0;
}

RUTABAGA_EXPORT int32_t rutabaga_resource_transfer_read(struct rutabaga *ptr, uint32_t ctx_id,
                                                        uint32_t resource_id,
                                                        const struct rutabaga_transfer *transfer,
                                                        const struct iovec *iovec)
{
    if (!ptr || !transfer) {
        return reject(ptr, "resource_transfer_read: NULL argument");
    }
    struct neep_transfer converted;
    int32_t ret = convert_transfer(ptr, resource_id, transfer, &converted);
    if (ret < 0) {
        return ret;
    }
    return neep_resource_transfer_read(ptr->renderer, ctx_id, resource_id, &converted, iovec,
                                       iovec ? 1 : 0);
}

RUTABAGA_EXPORT int32_t rutabaga_resource_transfer_write(struct rutabaga *ptr, uint32_t ctx_id,
                                                         uint32_t resource_id,
                                                         const struct rutabaga_transfer *transfer)
{
    if (!ptr || !transfer) {
        return reject(ptr, "resource_transfer_write: NULL argument");
    }
    struct neep_transfer converted;
    int32_t ret = convert_transfer(ptr, resource_id, transfer, &converted);
    if (ret < 0) {
        return ret;
    }
    return neep_resource_transfer_write(ptr->renderer, ctx_id, resource_id, &converted);
}

RUTABAGA_EXPORT int32_t rutabaga_resource_create_blob(
    struct rutabaga *ptr, uint32_t ctx_id, uint32_t resource_id,
    const struct rutabaga_create_blob *rutabaga_create_blob, const struct rutabaga_iovecs *iovecs,
    const struct rutabaga_handle *handle)
{
    if (handle && handle->os_handle >= 0) {
        /* The handle is ours whatever happens; neep has no external-memory blobs yet. */
        close((int)handle->os_handle);
        if (!ptr) {
            return -EINVAL;
        }
        reject(ptr, "resource_create_blob: external handles are not supported");
        return -EOPNOTSUPP;
    }
    if (!ptr || !rutabaga_create_blob) {
        return reject(ptr, "resource_create_blob: NULL argument");
    }
    struct neep_blob_create create = {
        .blob_mem = rutabaga_create_blob->blob_mem,
        .blob_flags = rutabaga_create_blob->blob_flags,
        .blob_id = rutabaga_create_blob->blob_id,
        .size_bytes = rutabaga_create_blob->size,
    };
    const struct iovec *backing = iovecs ? iovecs->iovecs : NULL;
    size_t backing_count = iovecs ? iovecs->num_iovecs : 0;
    return neep_resource_create_blob(ptr->renderer, ctx_id, resource_id, &create, backing,
                                     backing_count);
}

RUTABAGA_EXPORT int32_t rutabaga_resource_unref(struct rutabaga *ptr, uint32_t resource_id)
{
    if (!ptr) {
        return reject(ptr, "resource_unref: NULL instance");
    }
    return neep_resource_unref(ptr->renderer, resource_id);
}

RUTABAGA_EXPORT int32_t rutabaga_resource_export_blob(struct rutabaga *ptr, uint32_t resource_id,
                                                      struct rutabaga_handle *handle)
{
    if (!ptr || !handle) {
        return reject(ptr, "resource_export_blob: NULL argument");
    }
    int fd;
    uint32_t handle_type;
    int ret = neep_resource_export(ptr->renderer, resource_id, &fd, &handle_type);
    if (ret < 0) {
        return ret;
    }
    handle->os_handle = fd;
    handle->handle_type = handle_type;
    return 0;
}

RUTABAGA_EXPORT int32_t rutabaga_resource_map(struct rutabaga *ptr, uint32_t resource_id,
                                              struct rutabaga_mapping *mapping)
{
    if (!ptr || !mapping) {
        return reject(ptr, "resource_map: NULL argument");
    }
    return neep_resource_map(ptr->renderer, resource_id, &mapping->ptr, &mapping->size);
}

RUTABAGA_EXPORT int32_t rutabaga_resource_unmap(struct rutabaga *ptr, uint32_t resource_id)
{
    if (!ptr) {
        return reject(ptr, "resource_unmap: NULL instance");
    }
    return neep_resource_unmap(ptr->renderer, resource_id);
}

RUTABAGA_EXPORT int32_t rutabaga_resource_map_info(struct rutabaga *ptr, uint32_t resource_id,
                                                   uint32_t *map_info)
{
    if (!ptr || !map_info) {
        return reject(ptr, "resource_map_info: NULL argument");
    }
    return neep_resource_map_info(ptr->renderer, resource_id, map_info);
}

RUTABAGA_EXPORT int32_t rutabaga_submit_command(struct rutabaga *ptr, struct rutabaga_command *cmd)
{
    if (!ptr || !cmd || (!cmd->cmd && cmd->cmd_size > 0)) {
        return reject(ptr, "submit_command: NULL argument");
    }
    if (cmd->num_in_fences != 0) {
        reject(ptr, "submit_command: waiting on in-fences is not supported");
        return -EOPNOTSUPP;
    }
    return neep_context_submit(ptr->renderer, cmd->ctx_id, cmd->cmd, cmd->cmd_size);
}

/* On the thread that created the fence, or on the fence thread. */
static void deliver_fence(void *user_data, const struct neep_fence *fence)
{
    struct rutabaga *rutabaga = user_data;
    if (atomic_load(&rutabaga->finishing)) {
        return;
    }
    struct rutabaga_fence out = {
        .flags = fence->flags,
        .fence_id = fence->fence_id,
        .ctx_id = fence->ctx_id,
        .ring_idx = fence->ring_idx,
    };
    rutabaga->fence_cb(rutabaga->user_data, &out);
}

RUTABAGA_EXPORT int32_t rutabaga_create_fence(struct rutabaga *ptr,
                                              const struct rutabaga_fence *fence)
{
    if (!ptr || !fence) {
        return reject(ptr, "create_fence: NULL argument");
    }
    struct neep_fence neep_fence = {
        .flags = fence->flags,
        .fence_id = fence->fence_id,
        .ctx_id = fence->ctx_id,
        .ring_idx = fence->ring_idx,
    };
    int ret = neep_fence_create(ptr->renderer, &neep_fence);
    /* Fences that are already complete are delivered right here, as rutabaga does. */
    neep_renderer_dispatch_fences(ptr->renderer, deliver_fence, ptr);
    return ret;
}

RUTABAGA_EXPORT int32_t rutabaga_snapshot(struct rutabaga *ptr, const char *dir)
{
    if (!ptr || !dir) {
        return reject(ptr, "snapshot: NULL argument");
    }
    return neep_renderer_snapshot(ptr->renderer, dir);
}

RUTABAGA_EXPORT int32_t rutabaga_restore(struct rutabaga *ptr, const char *dir)
{
    if (!ptr || !dir) {
        return reject(ptr, "restore: NULL argument");
    }
    return neep_renderer_restore(ptr->renderer, dir);
}

RUTABAGA_EXPORT int32_t rutabaga_resource_import(struct rutabaga *ptr, uint32_t resource_id,
                                                 const struct rutabaga_handle *import_handle,
                                                 const struct rutabaga_import_data *import_data)
{
    if (!import_handle) {
        return reject(ptr, "resource_import: NULL handle");
    }
    int fd = (int)import_handle->os_handle;
    int ret = 0;
    if (!ptr || !import_data) {
        ret = reject(ptr, "resource_import: NULL argument");
    } else if (import_handle->handle_type != RUTABAGA_HANDLE_TYPE_MEM_SHM &&
               import_handle->handle_type != RUTABAGA_HANDLE_TYPE_MEM_OPAQUE_FD &&
               import_handle->handle_type != RUTABAGA_HANDLE_TYPE_MEM_DMABUF) {
        ret = reject(ptr, "resource_import: only memory handles can be imported");
    } else if (!(import_data->flags & RUTABAGA_IMPORT_FLAG_3D_INFO)) {
        ret = reject(ptr, "resource_import: the image layout (3D info) is required");
    } else if (import_data->info_3d.modifier != 0) {
        ret = reject(ptr, "resource_import: only linear images can be imported");
    }
    if (ret < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return ret;
    }
    struct neep_import import = {
        .flags = import_data->flags &
                 (RUTABAGA_IMPORT_FLAG_RESOURCE_EXISTS | RUTABAGA_IMPORT_FLAG_PRESERVE_CONTENT),
        .width = import_data->info_3d.width,
        .height = import_data->info_3d.height,
        .drm_fourcc = import_data->info_3d.drm_fourcc,
        .stride_bytes = import_data->info_3d.strides[0],
        .offset_bytes = import_data->info_3d.offsets[0],
    };
    return neep_resource_import(ptr->renderer, resource_id, fd, &import);
}
