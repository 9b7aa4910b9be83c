/*
 * virglrenderer as the renderer's resource provider (see neep_resource_provider_ops): with
 * OpenGL it keeps every 3D resource, its contexts' blobs and the global fences; for venus alone
 * it keeps only venus's blobs. The renderer checked every id, box and backing list first.
 */
#define VIRGL_RENDERER_UNSTABLE_APIS 1
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_gpu.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <virgl/virglrenderer.h>

#include "virgl_internal.h"

static int provider_create_3d(struct neep_renderer *renderer, struct neep_resource *resource)
{
    const struct neep_resource_create_3d *create = &resource->create_3d;
    struct virgl_renderer_resource_create_args args = {
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
    int ret = virgl_as_errno(virgl_renderer_resource_create(&args, NULL, 0));
    if (ret < 0) {
        renderer_error(renderer,
                       "virgl: resource %u (target %u format %u bind 0x%x %ux%ux%u) refused: %s",
                       resource->id, create->target, create->format, create->bind, create->width,
                       create->height, create->depth, strerror(-ret));
    }
    return ret;
}

static void provider_detach_backing(struct neep_renderer *renderer, struct neep_resource *resource)
{
    (void)renderer;
    struct iovec *list = NULL;
    int count = 0;
    /* The list is the renderer's copy; virglrenderer just forgets it. */
    virgl_renderer_resource_detach_iov((int)resource->id, &list, &count);
}

static void provider_destroy(struct neep_renderer *renderer, struct neep_resource *resource)
{
    if (resource->host_map) {
        virgl_renderer_resource_unmap(resource->id);
        resource->host_map = NULL; /* virglrenderer's mapping, not the renderer's to munmap */
        resource->host_map_bytes = 0;
    }
    if (resource->backing) {
        provider_detach_backing(renderer, resource);
    }
    /* Contexts it is attached to hear of it: venus's through the render server. */
    virgl_instance_reap_lost_venus();
    bool venus = resource->provider_flags & VIRGL_RESOURCE_KNOWN_TO_VENUS;
    if (venus) {
        virgl_server_call_begin();
    }
    virgl_renderer_resource_unref(resource->id);
    if (venus) {
        virgl_server_call_end();
    }
}

static int provider_attach_backing(struct neep_renderer *renderer, struct neep_resource *resource)
{
    /* The renderer caps entries at NEEP_MAX_BACKING_ENTRIES, well inside an int. */
    int ret = virgl_as_errno(virgl_renderer_resource_attach_iov(
        (int)resource->id, resource->backing, (int)resource->backing_count));
    if (ret < 0) {
        renderer_error(renderer, "virgl: attaching backing to resource %u failed: %s", resource->id,
                       strerror(-ret));
    }
    return ret;
}

static int provider_transfer(struct neep_renderer *renderer, struct neep_resource *resource,
                             uint32_t ctx_id, const struct neep_transfer *transfer,
                             const struct iovec *buffer, size_t buffer_count, bool to_host)
{
    /* virglrenderer leaves struct virgl_box opaque in its header; it is the wire's box. */
    struct virtio_gpu_box box = {
        .x = transfer->x,
        .y = transfer->y,
        .z = transfer->z,
        .w = transfer->width,
        .h = transfer->height,
        .d = transfer->depth,
    };
    /* The backing is attached already: virglrenderer uses its own reference to it. */
    struct iovec *list = buffer == resource->backing ? NULL : (struct iovec *)buffer;
    int count = list ? (int)buffer_count : 0;
    uint32_t virgl_ctx_id;
    int ret = virgl_context_id_for(renderer, ctx_id, &virgl_ctx_id);
    if (ret < 0) {
        renderer_error(renderer, "virgl: %s of resource %u: ctx %u is no virgl context",
                       to_host ? "transfer to host" : "transfer from host", resource->id, ctx_id);
        return ret;
    }
    if (to_host) {
        ret = virgl_renderer_transfer_write_iov(
            resource->id, virgl_ctx_id, (int)transfer->level, transfer->stride_bytes,
            transfer->layer_stride_bytes, (struct virgl_box *)&box, transfer->offset_bytes, list,
            (unsigned)count);
    } else {
        ret = virgl_renderer_transfer_read_iov(resource->id, virgl_ctx_id, transfer->level,
                                               transfer->stride_bytes, transfer->layer_stride_bytes,
                                               (struct virgl_box *)&box, transfer->offset_bytes,
                                               list, count);
    }
    ret = virgl_as_errno(ret);
    if (ret < 0) {
        renderer_error(renderer, "virgl: %s of resource %u (ctx %u) refused: %s",
                       to_host ? "transfer to host" : "transfer from host", resource->id, ctx_id,
                       strerror(-ret));
    }
    return ret;
}

static int provider_create_global_fence(struct neep_renderer *renderer,
                                        const struct neep_fence *fence, uint32_t seq)
{
    /* virglrenderer keeps 32 bits of a global fence id: it gets the renderer's number, which
     * a reset does not start over as the guest's ids do. */
    uint32_t virgl_ctx_id = 0;
    /* virglrenderer fences on its own context 0; the guest's is only named (or is another
     * type's, as a guest may send a global fence with any context). */
    (void)virgl_context_id_for(renderer, fence->ctx_id, &virgl_ctx_id);
    virgl_instance_count_gl_fence();
    int ret = virgl_as_errno(virgl_renderer_create_fence((int)seq, virgl_ctx_id));
    if (ret < 0) {
        virgl_instance_uncount_gl_fence();
    }
    if (ret < 0) {
        renderer_error(renderer, "virgl: fence %llu refused: %s",
                       (unsigned long long)fence->fence_id, strerror(-ret));
    }
    return ret;
}

static bool provider_serves_context(const struct neep_context *ctx)
{
    return virgl_is_context(ctx);
}

static int provider_create_blob(struct neep_renderer *renderer, struct neep_resource *resource,
                                uint32_t ctx_id)
{
    virgl_instance_reap_lost_venus();
    struct virgl_context *ctx = ctx_id ? virgl_context_lookup(renderer, ctx_id) : NULL;
    if (ctx_id && !ctx) {
        renderer_error(renderer, "virgl: blob %u: ctx %u is no virgl context", resource->id,
                       ctx_id);
        return -EINVAL;
    }
    /* neep's blob_mem and flag values are virtio-gpu's, as virglrenderer's are. */
    struct virgl_renderer_resource_create_blob_args args = {
        .res_handle = resource->id,
        .ctx_id = ctx ? ctx->virgl_id : 0,
        .blob_mem = resource->blob_mem,
        .blob_flags = resource->blob_flags,
        .blob_id = resource->blob_id,
        .size = resource->size_bytes,
        .iovecs = resource->backing,
        .num_iovs = (uint32_t)resource->backing_count,
    };
    bool venus = ctx && ctx->capset_id == NEEP_CAPSET_VENUS;
    if (venus) {
        /* A venus context's blob comes from its worker. */
        resource->provider_flags |= VIRGL_RESOURCE_KNOWN_TO_VENUS;
        virgl_server_call_begin();
    }
    int ret = virgl_as_errno(virgl_renderer_resource_create_blob(&args));
    if (venus) {
        virgl_server_call_end();
    }
    if (ret < 0) {
        renderer_error(
            renderer, "virgl: blob %u (ctx %u, blob_mem %u, id %llu, %llu bytes) refused: %s",
            resource->id, ctx_id, resource->blob_mem, (unsigned long long)resource->blob_id,
            (unsigned long long)resource->size_bytes, strerror(-ret));
    }
    return ret;
}

static int provider_map(struct neep_renderer *renderer, struct neep_resource *resource, void **ptr,
                        uint64_t *size_bytes)
{
    int ret = virgl_as_errno(virgl_renderer_resource_map(resource->id, ptr, size_bytes));
    if (ret < 0) {
        renderer_error(renderer, "virgl: mapping blob %u failed: %s", resource->id, strerror(-ret));
    }
    return ret;
}

static int provider_unmap(struct neep_renderer *renderer, struct neep_resource *resource)
{
    int ret = virgl_as_errno(virgl_renderer_resource_unmap(resource->id));
    if (ret < 0) {
        renderer_error(renderer, "virgl: unmapping blob %u failed: %s", resource->id,
                       strerror(-ret));
    }
    return ret;
}

static int provider_map_info(struct neep_renderer *renderer, struct neep_resource *resource,
                             uint32_t *map_info)
{
    int ret = virgl_as_errno(virgl_renderer_resource_get_map_info(resource->id, map_info));
    if (ret < 0) {
        renderer_error(renderer, "virgl: blob %u has no map info: %s", resource->id,
                       strerror(-ret));
    }
    return ret;
}

static int provider_export_blob(struct neep_renderer *renderer, struct neep_resource *resource,
                                int *fd, uint32_t *handle_type)
{
    uint32_t fd_type = 0;
    int ret = virgl_as_errno(virgl_renderer_resource_export_blob(resource->id, &fd_type, fd));
    if (ret < 0) {
        renderer_error(renderer, "virgl: blob %u cannot be exported: %s", resource->id,
                       strerror(-ret));
        return ret;
    }
    switch (fd_type) {
    case VIRGL_RENDERER_BLOB_FD_TYPE_DMABUF:
        *handle_type = NEEP_HANDLE_MEM_DMABUF;
        return 0;
    case VIRGL_RENDERER_BLOB_FD_TYPE_OPAQUE:
        *handle_type = NEEP_HANDLE_MEM_OPAQUE_FD;
        return 0;
    case VIRGL_RENDERER_BLOB_FD_TYPE_SHM:
        *handle_type = NEEP_HANDLE_MEM_SHM;
        return 0;
    }
    close(*fd);
    *fd = -1;
    renderer_error(renderer, "virgl: blob %u exported as unknown fd type %u", resource->id,
                   fd_type);
    return -EIO;
}

/* With OpenGL, virglrenderer keeps every 3D resource and the global fences. */
const struct neep_resource_provider_ops virgl_provider_ops = {
    .name = "virglrenderer",
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

/* Venus alone keeps only its contexts' blobs: 3D resources (the console's dumb buffers) stay
 * the renderer's, and global fences complete at once as without a provider. */
const struct neep_resource_provider_ops virgl_venus_provider_ops = {
    .name = "virglrenderer (venus)",
    .destroy = provider_destroy,
    .attach_backing = provider_attach_backing,
    .detach_backing = provider_detach_backing,
    .transfer = provider_transfer,
    .serves_context = provider_serves_context,
    .create_blob = provider_create_blob,
    .map = provider_map,
    .unmap = provider_unmap,
    .map_info = provider_map_info,
    .export_blob = provider_export_blob,
};
