/*
 * gfxstream's backend as the renderer's resource provider (see neep_resource_provider_ops): it
 * keeps every 3D resource, its contexts' blobs and the global fences. The renderer checked
 * ids, boxes against the guest's memory and backing lists; what the backend would take on
 * trust beyond that is checked here: formats and shapes it can hold, the host copy of the
 * guest's backing it makes (charged), blobs it silently failed to make, and an exported fd it
 * hands over only once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gfxstream_internal.h"
#include "util/checked.h"

#define PIPE_BUFFER       0u
#define PIPE_TEXTURE_2D   2u
#define PIPE_TEXTURE_RECT 5u
/* A PIPE_BUFFER with this bind is a host "pipe" of Android's emulator, not used here. */
#define PIPE_BIND_CUSTOM (1u << 17)
#define PIPE_BIND_LINEAR (1u << 22)
/* Render target, sampler view, cursor, scanout: uses that make the backend make an image. */
#define IMAGE_BINDS           ((1u << 1) | (1u << 3) | (1u << 16) | (1u << 18))
#define VIRGL_FORMAT_R8_UNORM 64u
#define VIRGL_FORMAT_P010     314u

/* What the provider keeps per resource beside the renderer's fields. */
struct provided {
    /* What the backend copies through its host copy of the backing on every transfer: the
     * whole object, however small the box. */
    uint64_t object_bytes;
    uint64_t linear_charged_bytes; /* the backend's host copy of the backing, and the staging */
    int export_fd;                 /* the one fd the backend hands over, or -1 */
    uint32_t export_type;
};

/* Resource id -> struct provided (embedder thread only). */
static struct id_table provided_table;

static struct provided *provided_for(uint32_t resource_id, bool create)
{
    if (!create) {
        return id_table_get(&provided_table, resource_id);
    }
    bool created;
    struct provided *p = id_table_get_or_add(&provided_table, resource_id, sizeof(*p), &created);
    if (created) {
        p->export_fd = -1;
    }
    return p;
}

int64_t gfxstream_check_3d(struct neep_renderer *renderer, uint32_t target, uint32_t format,
                           uint32_t bind, uint32_t width_px, uint32_t height_px, uint32_t depth,
                           uint32_t array_size, uint32_t last_level, uint32_t nr_samples)
{
    uint32_t bytes_per_pixel = 0;
    bool known = false, usable = false;
    for (uint32_t i = 0; i < gfxstream_format_count; i++) {
        if (gfxstream_formats[i].format == format) {
            bytes_per_pixel =
                gfxstream_formats[i].bytes_per_pixel ? gfxstream_formats[i].bytes_per_pixel : 2;
            known = true;
            usable = gfxstream_instance_format_usable(i);
        }
    }
    /* The backend makes a plain buffer only of R8 with linear binding and no image use;
     * anything else becomes an image ("color buffer") of the format, whatever the target. */
    bool buffer = target == PIPE_BUFFER;
    bool image =
        format != VIRGL_FORMAT_R8_UNORM || (bind & IMAGE_BINDS) || !(bind & PIPE_BIND_LINEAR);
    if (known && !usable && image) {
        renderer_error(renderer,
                       "gfxstream: the host's driver cannot make images of format %u (found out "
                       "when the backend started)",
                       format);
        return -EOPNOTSUPP;
    }
    if (!known || (buffer && (bind & PIPE_BIND_CUSTOM)) ||
        (!buffer && target != PIPE_TEXTURE_2D && target != PIPE_TEXTURE_RECT) || depth > 1 ||
        array_size > 1 || last_level != 0 || nr_samples > 1 || width_px == 0 || height_px == 0 ||
        width_px > NEEP_MAX_DIMENSION_PX || height_px > NEEP_MAX_DIMENSION_PX) {
        renderer_error(renderer,
                       "gfxstream: a %ux%u image of format %u, target %u, bind 0x%x, depth %u, "
                       "%u layers, %u levels, %u samples is not one gfxstream holds (single-level "
                       "2D images and buffers of its formats, at most %u a side)",
                       width_px, height_px, format, target, bind, depth, array_size, last_level + 1,
                       nr_samples, NEEP_MAX_DIMENSION_PX);
        return -EOPNOTSUPP;
    }
    /* At most 2^14 * 2^14 * 8 bytes. */
    return (int64_t)width_px * height_px * bytes_per_pixel;
}

/* The bytes the backend moves between an object and its host copy of the backing: width x
 * height for a buffer, the image's pixels (its YUV layout at most twice the luma plane with
 * rows aligned to 32) for an image. */
static uint64_t object_bytes(const struct neep_resource_create_3d *create)
{
    bool image = create->format != VIRGL_FORMAT_R8_UNORM || (create->bind & IMAGE_BINDS) ||
                 !(create->bind & PIPE_BIND_LINEAR);
    uint64_t pixels = (uint64_t)create->width * create->height;
    if (!image) {
        return pixels;
    }
    for (uint32_t i = 0; i < gfxstream_format_count; i++) {
        if (gfxstream_formats[i].format == create->format && gfxstream_formats[i].bytes_per_pixel) {
            return pixels * gfxstream_formats[i].bytes_per_pixel;
        }
    }
    uint64_t aligned_width = ((uint64_t)create->width + 31) & ~31ull;
    return aligned_width * create->height * 2 * (create->format == VIRGL_FORMAT_P010 ? 2 : 1);
}

static int provider_create_3d(struct neep_renderer *renderer, struct neep_resource *resource)
{
    const struct neep_resource_create_3d *create = &resource->create_3d;
    int64_t bytes = gfxstream_check_3d(renderer, create->target, create->format, create->bind,
                                       create->width, create->height, create->depth,
                                       create->array_size, create->last_level, create->nr_samples);
    if (bytes < 0) {
        return (int)bytes;
    }

    /* The renderer charged 4 bytes a texel; wider formats cost more. */
    if ((uint64_t)bytes > resource->size_bytes) {
        uint64_t extra = (uint64_t)bytes - resource->size_bytes;
        int ret = neep_budget_charge(renderer, extra);
        if (ret < 0) {
            return ret;
        }
        resource->charged_bytes += extra;
    }
    struct gfxstream_resource_create_args args = {
        .handle = resource->id,
        .target = create->target,
        .format = create->format,
        .bind = create->bind,
        .width = create->width,
        .height = create->height,
        .depth = create->depth,
        .array_size = create->array_size,
        .last_level = create->last_level,
        .nr_samples = create->nr_samples,
        .flags = create->flags,
    };
    struct provided *p = provided_for(resource->id, true);
    if (!p) {
        return -ENOMEM;
    }
    p->object_bytes = object_bytes(create);
    int ret = gfxstream_api()->resource_create(&args, NULL, 0);
    if (ret != 0) {
        renderer_error(renderer, "gfxstream: resource %u (%ux%u, format %u) refused (%d)",
                       resource->id, create->width, create->height, create->format, ret);
        id_table_remove(&provided_table, resource->id);
        free(p);
        return -EINVAL;
    }
    return 0;
}

static void release_linear(struct neep_renderer *renderer, uint32_t resource_id)
{
    struct provided *p = provided_for(resource_id, false);
    if (p && p->linear_charged_bytes) {
        neep_budget_release(renderer, p->linear_charged_bytes);
        p->linear_charged_bytes = 0;
    }
}

static void provider_detach_backing(struct neep_renderer *renderer, struct neep_resource *resource)
{
    struct iovec *list = NULL;
    int count = 0;
    /* The backend forgets the list (the renderer's copy) and its host copy of the memory. */
    gfxstream_api()->resource_detach_iov((int)resource->id, &list, &count);
    release_linear(renderer, resource->id);
}

static int provider_attach_backing(struct neep_renderer *renderer, struct neep_resource *resource)
{
    /* The backend keeps a host copy as large as the whole backing, and neep a staging copy it
     * shares with the backend's server: both charged. */
    struct provided *p = provided_for(resource->id, true);
    if (!p) {
        return -ENOMEM;
    }
    release_linear(renderer, resource->id);
    uint64_t bytes = 0;
    if (!checked_mul_u64(resource->backing_bytes, 2, &bytes)) {
        return -E2BIG;
    }
    int ret = neep_budget_charge(renderer, bytes);
    if (ret < 0) {
        return ret;
    }
    p->linear_charged_bytes = bytes;
    /* The renderer caps entries at NEEP_MAX_BACKING_ENTRIES, well inside an int. */
    ret = gfxstream_api()->resource_attach_iov((int)resource->id, resource->backing,
                                               (int)resource->backing_count);
    if (ret != 0) {
        renderer_error(renderer, "gfxstream: attaching backing to resource %u failed (%d)",
                       resource->id, ret);
        release_linear(renderer, resource->id);
        return -EINVAL;
    }
    return 0;
}

static void provider_destroy(struct neep_renderer *renderer, struct neep_resource *resource)
{
    if (resource->host_map) {
        gfxstream_api()->resource_unmap(resource->id);
        resource->host_map = NULL; /* the backend's mapping, not the renderer's to munmap */
        resource->host_map_bytes = 0;
    }
    if (resource->backing) {
        provider_detach_backing(renderer, resource);
    }
    struct provided *p = provided_for(resource->id, false);
    if (p) {
        release_linear(renderer, resource->id);
        if (p->export_fd >= 0) {
            close(p->export_fd);
        }
        id_table_remove(&provided_table, resource->id);
        free(p);
    }
    /* Detaches it from the contexts it is attached to (ending an ASG on it) and frees it. */
    gfxstream_api()->resource_unref(resource->id);
}

static int provider_transfer(struct neep_renderer *renderer, struct neep_resource *resource,
                             uint32_t ctx_id, const struct neep_transfer *transfer,
                             const struct iovec *buffer, size_t buffer_count, bool to_host)
{
    /* The backend copies the whole object through its host copy of the backing, sized as the
     * backing: a backing smaller than the object (or none) would be overrun. */
    struct provided *p = provided_for(resource->id, false);
    if (!p || !resource->backing || resource->backing_bytes < p->object_bytes) {
        renderer_error(renderer,
                       "gfxstream: transfer of resource %u needs backing of at least %llu bytes "
                       "(it has %llu): gfxstream moves the whole object through it",
                       resource->id, (unsigned long long)(p ? p->object_bytes : 0),
                       (unsigned long long)(resource->backing ? resource->backing_bytes : 0));
        return -EINVAL;
    }
    /* The backend ignores level, depth and layers: refuse what it would put elsewhere. The
     * box must lie within the image (the renderer checks only its own formats' boxes): the
     * rows neep copies for it are the image's. */
    const struct neep_resource_create_3d *create = &resource->create_3d;
    uint32_t height_px = create->target == PIPE_BUFFER ? 1 : create->height;
    if (transfer->level != 0 || transfer->z != 0 || transfer->depth != 1 ||
        (uint64_t)transfer->x + transfer->width > create->width ||
        (uint64_t)transfer->y + transfer->height > height_px) {
        renderer_error(renderer,
                       "gfxstream: transfer of resource %u (%ux%u) of a %ux%u box at (%u,%u), "
                       "level %u, z %u, depth %u: only boxes within level 0 of 2D images",
                       resource->id, create->width, height_px, transfer->width, transfer->height,
                       transfer->x, transfer->y, transfer->level, transfer->z, transfer->depth);
        return -EINVAL;
    }
    struct gfxstream_box box = {
        .x = transfer->x,
        .y = transfer->y,
        .z = 0,
        .w = transfer->width,
        .h = transfer->height,
        .d = 1,
    };
    /* With the backing, the backend uses its own record of it; otherwise the caller's memory.
     * Either way it bounds the copy by its host copy of the backing and by each iovec. */
    struct iovec *list = buffer == resource->backing ? NULL : (struct iovec *)buffer;
    unsigned count = list ? (unsigned)buffer_count : 0;
    const struct gfxstream_api *api = gfxstream_api();
    int ret = to_host ? api->transfer_write_iov(resource->id, ctx_id, 0, 0, 0, &box,
                                                transfer->offset_bytes, list, count)
                      : api->transfer_read_iov(resource->id, ctx_id, 0, 0, 0, &box,
                                               transfer->offset_bytes, list, (int)count);
    if (ret != 0) {
        renderer_error(renderer, "gfxstream: %s of resource %u (ctx %u) refused (%d)",
                       to_host ? "transfer to host" : "transfer from host", resource->id, ctx_id,
                       ret);
        return -EINVAL;
    }
    return 0;
}

static int provider_create_global_fence(struct neep_renderer *renderer,
                                        const struct neep_fence *fence, uint32_t seq)
{
    /* The backend gets the renderer's own number (see on_fence), which a reset does not
     * start over as the guest's ids do. */
    struct gfxstream_fence request = {.flags = GFXSTREAM_FENCE_FLAG_FENCE, .fence_id = seq};
    int ret = gfxstream_remote_lost() ? -ENODEV : gfxstream_api()->create_fence(&request);
    if (ret == -ENODEV) {
        neep_timeline_signal_seq(&renderer->global_timeline, seq); /* lost: done at once */
        return 0;
    }
    if (ret != 0) {
        renderer_error(renderer, "gfxstream: fence %llu refused (%d)",
                       (unsigned long long)fence->fence_id, ret);
        return -EINVAL;
    }
    return 0;
}

static bool provider_serves_context(const struct neep_context *ctx)
{
    return gfxstream_is_context(ctx);
}

static int provider_create_blob(struct neep_renderer *renderer, struct neep_resource *resource,
                                uint32_t ctx_id)
{
    if (resource->blob_mem == NEEP_BLOB_MEM_GUEST) {
        /* The backend ignores the guest memory it is given for a blob. */
        renderer_error(renderer, "gfxstream: blob %u: guest-memory blobs are not gfxstream's",
                       resource->id);
        return -EOPNOTSUPP;
    }
    struct gfxstream_create_blob create = {
        .blob_mem = resource->blob_mem,
        .blob_flags = resource->blob_flags,
        .blob_id = resource->blob_id,
        .size = resource->size_bytes,
    };
    const struct gfxstream_api *api = gfxstream_api();
    /* Ids announced by the context's RESOURCE_CREATE_3D cost what the image takes. */
    int ret = gfxstream_claim_announced(renderer, ctx_id, resource);
    if (ret < 0) {
        return ret;
    }
    api->create_blob(ctx_id, resource->id, &create, NULL, 0, NULL); /* reports nothing */
    /* It made nothing if the blob id named nothing: a mappable blob then has no map info. */
    uint32_t map_info = 0;
    if ((resource->blob_flags & NEEP_BLOB_FLAG_USE_MAPPABLE) &&
        api->resource_map_info(resource->id, &map_info) != 0) {
        renderer_error(renderer,
                       "gfxstream: blob %u (ctx %u, id %llu, %llu bytes) was not made: the "
                       "context has no object of that id",
                       resource->id, ctx_id, (unsigned long long)resource->blob_id,
                       (unsigned long long)resource->size_bytes);
        api->resource_unref(resource->id);
        return -EINVAL;
    }
    return 0;
}

static int provider_map(struct neep_renderer *renderer, struct neep_resource *resource, void **ptr,
                        uint64_t *size_bytes)
{
    void *hva = NULL;
    uint64_t size = 0;
    int ret = gfxstream_api()->resource_map(resource->id, &hva, &size);
    if (ret != 0 || !hva || size == 0) {
        renderer_error(renderer, "gfxstream: mapping blob %u failed (%d)", resource->id, ret);
        return -EINVAL;
    }
    *ptr = hva;
    *size_bytes = size;
    return 0;
}

static int provider_unmap(struct neep_renderer *renderer, struct neep_resource *resource)
{
    int ret = gfxstream_api()->resource_unmap(resource->id);
    if (ret != 0) {
        renderer_error(renderer, "gfxstream: unmapping blob %u failed (%d)", resource->id, ret);
        return -EINVAL;
    }
    return 0;
}

static int provider_map_info(struct neep_renderer *renderer, struct neep_resource *resource,
                             uint32_t *map_info)
{
    uint32_t info = 0;
    int ret = gfxstream_api()->resource_map_info(resource->id, &info);
    if (ret != 0) {
        renderer_error(renderer, "gfxstream: blob %u has no map info (%d)", resource->id, ret);
        return -EINVAL;
    }
    *map_info = info & GFXSTREAM_MAP_CACHE_MASK;
    return 0;
}

static int provider_export_blob(struct neep_renderer *renderer, struct neep_resource *resource,
                                int *fd, uint32_t *handle_type)
{
    struct provided *p = provided_for(resource->id, true);
    if (!p) {
        return -ENOMEM;
    }
    if (p->export_fd < 0) {
        /* The backend gives its fd away once: keep it, and hand out copies. */
        struct gfxstream_handle handle = {.os_handle = -1};
        int ret = gfxstream_api()->export_blob(resource->id, &handle);
        if (ret != 0 || handle.os_handle < 0 || handle.os_handle > INT32_MAX) {
            renderer_error(renderer, "gfxstream: blob %u cannot be exported (%d)", resource->id,
                           ret);
            return -EINVAL;
        }
        if (handle.handle_type != NEEP_HANDLE_MEM_OPAQUE_FD &&
            handle.handle_type != NEEP_HANDLE_MEM_DMABUF &&
            handle.handle_type != NEEP_HANDLE_MEM_SHM) {
            close((int)handle.os_handle);
            renderer_error(renderer, "gfxstream: blob %u exported as unknown handle type 0x%x",
                           resource->id, handle.handle_type);
            return -EIO;
        }
        p->export_fd = (int)handle.os_handle;
        p->export_type = handle.handle_type;
    }
    int copy = fcntl(p->export_fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
        return -errno;
    }
    *fd = copy;
    *handle_type = p->export_type;
    return 0;
}

void gfxstream_resources_begin(void)
{
    id_table_init(&provided_table);
}

void gfxstream_resources_end(void)
{
    id_table_finish(&provided_table);
}

const struct neep_resource_provider_ops gfxstream_provider_ops = {
    .name = "gfxstream",
    .create_3d = provider_create_3d,
    .destroy = provider_destroy,
    .attach_backing = provider_attach_backing,
    .detach_backing = provider_detach_backing,
    .transfer = provider_transfer,
    .create_global_fence = provider_create_global_fence,
    .serves_context = provider_serves_context,
    .create_blob = provider_create_blob,
    .map = provider_map,
    .unmap = provider_unmap,
    .map_info = provider_map_info,
    .export_blob = provider_export_blob,
};
