/*
 * The virgl context types (capsets 1 and 2): OpenGL for the guest through libvirglrenderer.
 *
 * virglrenderer is one instance per process (its state is global), so it serves one renderer
 * at a time: the first renderer that enables a virgl capset initialises it, the last of its
 * capsets to be released cleans it up, and another renderer asking meanwhile gets -EBUSY.
 * While enabled it is the renderer's resource provider: RESOURCE_CREATE_3D resources live in
 * virglrenderer under the guest's ids, with backing lists and boxes the renderer checked.
 *
 * Fences are event-driven: virglrenderer waits for GL fences on its own sync thread and, with
 * ASYNC_FENCE_CB, calls back on that thread; the callbacks complete neep timelines, which wake
 * the embedder. Nothing polls on a timer. The callbacks find contexts through a table of their
 * own under `callback_lock`, which the embedder thread holds only to change that table, never
 * across a call into virglrenderer (whose sync thread may be waiting to call us).
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

#include "context_type.h"

/* Host memory charged per virgl context, for its GL context and decoder state. */
#define VIRGL_CONTEXT_CHARGE_BYTES (1u << 20)

struct virgl_context {
    struct neep_context base;
    /* The timelines the sync thread completes; set under callback_lock by create_fence. */
    struct neep_timeline *timelines[NEEP_MAX_RINGS];
};

/* The process's one virglrenderer, and whom it serves. */
static struct {
    pthread_mutex_t lock;          /* owner and probes: embedder threads */
    struct neep_renderer *owner;   /* NULL while virglrenderer is not initialised */
    uint32_t probes;               /* capsets of `owner` that probed successfully */
    pthread_mutex_t callback_lock; /* contexts, and owner as the callbacks see it */
    struct id_table contexts;      /* ctx_id -> struct virgl_context */
    struct neep_renderer *callback_owner;
    const char *owner_render_node; /* owner's, during virgl_renderer_init */
    bool has_gl;                   /* vrend (OpenGL) was asked for and started */
    bool has_venus;                /* venus and its render server started */
} instance = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .callback_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* virglrenderer returns positive or negative errnos, depending on the call. */
static int as_errno(int ret)
{
    return ret > 0 ? -ret : ret;
}

static struct virgl_context *from_base(struct neep_context *base)
{
    return (struct virgl_context *)base;
}

/* ---- callbacks, on virglrenderer's sync thread (or, for the log, any thread) ------------- */

static void on_write_fence(void *cookie, uint32_t seq)
{
    (void)cookie;
    pthread_mutex_lock(&instance.callback_lock);
    if (instance.callback_owner) {
        neep_timeline_signal_seq(&instance.callback_owner->global_timeline, seq);
    }
    pthread_mutex_unlock(&instance.callback_lock);
}

static void on_write_context_fence(void *cookie, uint32_t ctx_id, uint32_t ring_idx,
                                   uint64_t fence_id)
{
    (void)cookie;
    pthread_mutex_lock(&instance.callback_lock);
    struct virgl_context *ctx = id_table_get(&instance.contexts, ctx_id);
    struct neep_timeline *timeline =
        ctx && ring_idx < NEEP_MAX_RINGS ? ctx->timelines[ring_idx] : NULL;
    if (timeline) {
        neep_timeline_signal(timeline, fence_id);
    }
    pthread_mutex_unlock(&instance.callback_lock);
}

/* virglrenderer's own messages, informational or about a guest's bad command stream (so
 * rate-limited); its errors reach the guest too, as failed commands. */
__attribute__((format(printf, 1, 0))) static void on_debug_message(const char *fmt, va_list args)
{
    char line[256];
    vsnprintf(line, sizeof(line), fmt, args);
    size_t length = strlen(line);
    while (length > 0 && line[length - 1] == '\n') {
        line[--length] = '\0';
    }
    pthread_mutex_lock(&instance.callback_lock);
    if (instance.callback_owner && length > 0) {
        renderer_log(instance.callback_owner, NEEP_LOG_INFO, "virglrenderer: %s", line);
    }
    pthread_mutex_unlock(&instance.callback_lock);
}

/* The render node the embedder named, for virglrenderer's GBM; it owns what we return. */
static int on_get_drm_fd(void *cookie)
{
    (void)cookie;
    const char *path = instance.owner_render_node;
    return path ? open(path, O_RDWR | O_CLOEXEC) : -1;
}

static struct virgl_renderer_callbacks callbacks = {
    .version = 3,
    .write_fence = on_write_fence,
    .get_drm_fd = on_get_drm_fd,
    .write_context_fence = on_write_context_fence,
};

/* ---- the instance -------------------------------------------------------------------------- */

/* Starts virglrenderer with what the renderer's capsets need: OpenGL (vrend) for virgl and
 * virgl2, venus and its render server (a process of its own) for venus. A library that cannot
 * start venus (no render server installed) still gives OpenGL. */
static int start_virglrenderer(struct neep_renderer *renderer)
{
    const uint64_t gl_mask = (1ull << NEEP_CAPSET_VIRGL) | (1ull << NEEP_CAPSET_VIRGL2);
    bool want_gl = renderer->capset_mask & gl_mask;
    bool want_venus = renderer->capset_mask & (1ull << NEEP_CAPSET_VENUS);
    /* Without a render node, EGL renders surfaceless (llvmpipe where there is no GPU); with
     * one, virglrenderer's GBM opens it through on_get_drm_fd. */
    int flags = VIRGL_RENDERER_THREAD_SYNC | VIRGL_RENDERER_ASYNC_FENCE_CB;
    if (want_gl) {
        flags |= VIRGL_RENDERER_USE_EGL;
        if (!renderer->render_node_path) {
            flags |= VIRGL_RENDERER_USE_SURFACELESS;
        }
    } else {
        flags |= VIRGL_RENDERER_NO_VIRGL;
    }
    instance.owner_render_node = renderer->render_node_path;
    int ret = -ENODEV;
    if (want_venus) {
        /* The cookie is not used (callbacks find their renderer above), but must be set. */
        ret = as_errno(virgl_renderer_init(
            &instance, flags | VIRGL_RENDERER_VENUS | VIRGL_RENDERER_RENDER_SERVER, &callbacks));
        if (ret < 0) {
            neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                          "venus: virglrenderer did not start venus and its render server (%s)",
                          strerror(-ret));
        }
        instance.has_venus = ret == 0;
    }
    if (ret < 0 && want_gl) {
        ret = as_errno(virgl_renderer_init(&instance, flags, &callbacks));
        if (ret < 0) {
            neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                          "virgl: virglrenderer did not start (%s) %s %s", strerror(-ret),
                          renderer->render_node_path ? "on render node" : "with surfaceless EGL",
                          renderer->render_node_path ? renderer->render_node_path : "");
        }
    }
    instance.owner_render_node = NULL;
    instance.has_gl = ret == 0 && want_gl;
    /* virglrenderer's own codes (-1 among them) say little: the host cannot run it. */
    return ret < 0 ? -ENODEV : 0;
}

/* Takes virglrenderer for `renderer`, initialising it on the first of its probes. */
static int instance_acquire(struct neep_renderer *renderer)
{
    pthread_mutex_lock(&instance.lock);
    int ret = 0;
    if (instance.owner && instance.owner != renderer) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "virgl: virglrenderer already serves another renderer in this process "
                      "(it has one instance per process)");
        ret = -EBUSY;
    } else if (!instance.owner) {
        id_table_init(&instance.contexts);
        pthread_mutex_lock(&instance.callback_lock);
        instance.callback_owner = renderer;
        pthread_mutex_unlock(&instance.callback_lock);
        virgl_set_debug_callback(on_debug_message);
        ret = start_virglrenderer(renderer); /* says why it failed */
        if (ret < 0) {
            pthread_mutex_lock(&instance.callback_lock);
            instance.callback_owner = NULL;
            pthread_mutex_unlock(&instance.callback_lock);
            id_table_finish(&instance.contexts);
        } else {
            instance.owner = renderer;
        }
    }
    if (ret == 0) {
        instance.probes++;
    }
    pthread_mutex_unlock(&instance.lock);
    return ret;
}

static void virgl_release(struct neep_renderer *renderer)
{
    pthread_mutex_lock(&instance.lock);
    if (instance.owner == renderer && --instance.probes == 0) {
        renderer->resource_provider = NULL;
        virgl_renderer_cleanup(&instance); /* joins the sync thread: no callback after this */
        pthread_mutex_lock(&instance.callback_lock);
        instance.callback_owner = NULL;
        id_table_finish(&instance.contexts);
        pthread_mutex_unlock(&instance.callback_lock);
        instance.owner = NULL;
        instance.has_gl = instance.has_venus = false;
    }
    pthread_mutex_unlock(&instance.lock);
}

/* ---- resources (the renderer's provider) ------------------------------------------------ */

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
    int ret = as_errno(virgl_renderer_resource_create(&args, NULL, 0));
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
    virgl_renderer_resource_unref(resource->id);
}

static int provider_attach_backing(struct neep_renderer *renderer, struct neep_resource *resource)
{
    /* The renderer caps entries at NEEP_MAX_BACKING_ENTRIES, well inside an int. */
    int ret = as_errno(virgl_renderer_resource_attach_iov((int)resource->id, resource->backing,
                                                          (int)resource->backing_count));
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
    int ret;
    if (to_host) {
        ret = virgl_renderer_transfer_write_iov(
            resource->id, ctx_id, (int)transfer->level, transfer->stride_bytes,
            transfer->layer_stride_bytes, (struct virgl_box *)&box, transfer->offset_bytes, list,
            (unsigned)count);
    } else {
        ret = virgl_renderer_transfer_read_iov(resource->id, ctx_id, transfer->level,
                                               transfer->stride_bytes, transfer->layer_stride_bytes,
                                               (struct virgl_box *)&box, transfer->offset_bytes,
                                               list, count);
    }
    ret = as_errno(ret);
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
    int ret = as_errno(virgl_renderer_create_fence((int)seq, fence->ctx_id));
    if (ret < 0) {
        renderer_error(renderer, "virgl: fence %llu refused: %s",
                       (unsigned long long)fence->fence_id, strerror(-ret));
    }
    return ret;
}

static const struct neep_context_ops virgl_context_ops;

static bool provider_serves_context(const struct neep_context *ctx)
{
    return ctx->ops == &virgl_context_ops;
}

static int provider_create_blob(struct neep_renderer *renderer, struct neep_resource *resource,
                                uint32_t ctx_id)
{
    /* neep's blob_mem and flag values are virtio-gpu's, as virglrenderer's are. */
    struct virgl_renderer_resource_create_blob_args args = {
        .res_handle = resource->id,
        .ctx_id = ctx_id,
        .blob_mem = resource->blob_mem,
        .blob_flags = resource->blob_flags,
        .blob_id = resource->blob_id,
        .size = resource->size_bytes,
        .iovecs = resource->backing,
        .num_iovs = (uint32_t)resource->backing_count,
    };
    int ret = as_errno(virgl_renderer_resource_create_blob(&args));
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
    int ret = as_errno(virgl_renderer_resource_map(resource->id, ptr, size_bytes));
    if (ret < 0) {
        renderer_error(renderer, "virgl: mapping blob %u failed: %s", resource->id, strerror(-ret));
    }
    return ret;
}

static int provider_unmap(struct neep_renderer *renderer, struct neep_resource *resource)
{
    int ret = as_errno(virgl_renderer_resource_unmap(resource->id));
    if (ret < 0) {
        renderer_error(renderer, "virgl: unmapping blob %u failed: %s", resource->id,
                       strerror(-ret));
    }
    return ret;
}

static int provider_map_info(struct neep_renderer *renderer, struct neep_resource *resource,
                             uint32_t *map_info)
{
    int ret = as_errno(virgl_renderer_resource_get_map_info(resource->id, map_info));
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
    int ret = as_errno(virgl_renderer_resource_export_blob(resource->id, &fd_type, fd));
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
static const struct neep_resource_provider_ops provider_ops = {
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
static const struct neep_resource_provider_ops venus_provider_ops = {
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

/* ---- contexts ------------------------------------------------------------------------------ */

static void virgl_context_destroy(struct neep_context *base)
{
    struct virgl_context *ctx = from_base(base);
    pthread_mutex_lock(&instance.callback_lock);
    id_table_remove(&instance.contexts, base->id);
    pthread_mutex_unlock(&instance.callback_lock);
    virgl_renderer_context_destroy(base->id);
    neep_budget_release(base->renderer, sizeof(*ctx) + VIRGL_CONTEXT_CHARGE_BYTES);
    free(ctx);
}

static int virgl_context_submit(struct neep_context *base, const uint8_t *commands,
                                size_t size_bytes)
{
    if (size_bytes % 4 != 0) {
        context_log(base, NEEP_LOG_ERROR, "virgl: ctx %u submitted %zu bytes, not whole dwords",
                    base->id, size_bytes);
        return -EINVAL;
    }
    if (size_bytes == 0) {
        return 0;
    }
    /* At most NEEP_MAX_SUBMIT_BYTES: the dword count fits an int. The buffer is the renderer's
     * private copy, so the guest cannot change it while virglrenderer decodes. */
    int ret =
        as_errno(virgl_renderer_submit_cmd((void *)commands, (int)base->id, (int)(size_bytes / 4)));
    if (ret < 0) {
        context_log(base, NEEP_LOG_ERROR, "virgl: ctx %u: command stream refused: %s", base->id,
                    strerror(-ret));
    }
    return ret;
}

/* Blobs of other context types are not virglrenderer's to know. */
static int virgl_context_attach_resource(struct neep_context *base, struct neep_resource *resource)
{
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        virgl_renderer_ctx_attach_resource((int)base->id, (int)resource->id);
    }
    return 0;
}

static void virgl_context_detach_resource(struct neep_context *base, struct neep_resource *resource)
{
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        virgl_renderer_ctx_detach_resource((int)base->id, (int)resource->id);
    }
}

static int virgl_context_create_fence(struct neep_context *base, struct neep_timeline *timeline,
                                      uint64_t fence_id)
{
    struct virgl_context *ctx = from_base(base);
    pthread_mutex_lock(&instance.callback_lock);
    ctx->timelines[timeline->ring_idx] = timeline;
    pthread_mutex_unlock(&instance.callback_lock);
    int ret = as_errno(virgl_renderer_context_create_fence(
        base->id, VIRGL_RENDERER_FENCE_FLAG_MERGEABLE, timeline->ring_idx, fence_id));
    if (ret < 0) {
        context_log(base, NEEP_LOG_ERROR, "virgl: ctx %u: fence %llu on ring %u refused: %s",
                    base->id, (unsigned long long)fence_id, timeline->ring_idx, strerror(-ret));
    }
    return ret;
}

static const struct neep_context_ops virgl_context_ops = {
    .destroy = virgl_context_destroy,
    .submit = virgl_context_submit,
    .attach_resource = virgl_context_attach_resource,
    .detach_resource = virgl_context_detach_resource,
    .create_fence = virgl_context_create_fence,
};

static int create_context(struct neep_renderer *renderer, uint32_t capset_id, uint32_t ctx_id,
                          const char *name, size_t name_len, struct neep_context **out)
{
    uint64_t charge = sizeof(struct virgl_context) + VIRGL_CONTEXT_CHARGE_BYTES;
    int ret = neep_budget_charge(renderer, charge);
    if (ret < 0) {
        return ret;
    }
    struct virgl_context *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        neep_budget_release(renderer, charge);
        return -ENOMEM;
    }
    pthread_mutex_lock(&instance.callback_lock);
    ret = id_table_insert(&instance.contexts, ctx_id, ctx);
    pthread_mutex_unlock(&instance.callback_lock);
    if (ret == 0) {
        /* The renderer passes at most the 64 bytes of the wire's debug name. */
        ret = as_errno(
            virgl_renderer_context_create_with_flags(ctx_id, capset_id, (uint32_t)name_len, name));
        if (ret < 0) {
            renderer_error(renderer, "virgl: context %u refused by virglrenderer: %s", ctx_id,
                           strerror(-ret));
            pthread_mutex_lock(&instance.callback_lock);
            id_table_remove(&instance.contexts, ctx_id);
            pthread_mutex_unlock(&instance.callback_lock);
        }
    }
    if (ret < 0) {
        free(ctx);
        neep_budget_release(renderer, charge);
        return ret;
    }
    ctx->base.ops = &virgl_context_ops;
    *out = &ctx->base;
    return 0;
}

/* ---- the two capsets ----------------------------------------------------------------------- */

/* Venus drivers in guests since Mesa 23 speak wire format 1; virglrenderer before 1.0
 * (Debian 12's 0.10.4) speaks 0, and the guest driver then finds no device. */
#define VENUS_MIN_WIRE_FORMAT 1u

static int check_venus_caps(struct neep_renderer *renderer, const uint8_t *caps, uint32_t size)
{
    uint32_t wire_format = 0;
    if (size >= sizeof(wire_format)) {
        memcpy(&wire_format, caps, sizeof(wire_format));
    }
    if (wire_format < VENUS_MIN_WIRE_FORMAT) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "venus: this libvirglrenderer speaks venus wire format %u; guest venus "
                      "drivers need %u or later (virglrenderer 1.0 or later)",
                      wire_format, VENUS_MIN_WIRE_FORMAT);
        return -EOPNOTSUPP;
    }
    return 0;
}

static int probe_capset(struct neep_renderer *renderer, uint32_t capset_id, uint32_t *max_version,
                        uint32_t *size_bytes, uint8_t **data)
{
    int ret = instance_acquire(renderer);
    if (ret < 0) {
        return ret;
    }
    bool started = capset_id == NEEP_CAPSET_VENUS ? instance.has_venus : instance.has_gl;
    uint32_t version = 0, size = 0;
    if (started) {
        virgl_renderer_get_cap_set(capset_id, &version, &size);
    }
    /* A capset's size says it is there; venus's max version is 0. */
    uint8_t *caps = size > 0 ? calloc(1, size) : NULL;
    if (!caps) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "virgl: virglrenderer offers no capset %u here", capset_id);
        virgl_release(renderer);
        return size > 0 ? -ENOMEM : -ENODEV;
    }
    virgl_renderer_fill_caps(capset_id, version, caps);
    if (capset_id == NEEP_CAPSET_VENUS && (ret = check_venus_caps(renderer, caps, size)) < 0) {
        free(caps);
        virgl_release(renderer);
        return ret;
    }
    renderer->resource_provider = instance.has_gl ? &provider_ops : &venus_provider_ops;
    *max_version = version;
    *size_bytes = size;
    *data = caps;
    return 0;
}

static int probe_virgl(struct neep_renderer *renderer, uint32_t *max_version, uint32_t *size_bytes,
                       uint8_t **data)
{
    return probe_capset(renderer, NEEP_CAPSET_VIRGL, max_version, size_bytes, data);
}

static int probe_virgl2(struct neep_renderer *renderer, uint32_t *max_version, uint32_t *size_bytes,
                        uint8_t **data)
{
    return probe_capset(renderer, NEEP_CAPSET_VIRGL2, max_version, size_bytes, data);
}

static int create_virgl(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t context_init,
                        const char *name, size_t name_len, struct neep_context **out)
{
    return create_context(renderer, NEEP_CAPSET_VIRGL, ctx_id, name, name_len, out);
}

static int create_virgl2(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t context_init,
                         const char *name, size_t name_len, struct neep_context **out)
{
    return create_context(renderer, NEEP_CAPSET_VIRGL2, ctx_id, name, name_len, out);
}

static int probe_venus(struct neep_renderer *renderer, uint32_t *max_version, uint32_t *size_bytes,
                       uint8_t **data)
{
    return probe_capset(renderer, NEEP_CAPSET_VENUS, max_version, size_bytes, data);
}

/* Venus contexts are made with CONTEXT_INIT naming capset 4; they share everything else. */
static int create_venus(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t context_init,
                        const char *name, size_t name_len, struct neep_context **out)
{
    return create_context(renderer, NEEP_CAPSET_VENUS, ctx_id, name, name_len, out);
}

const struct neep_context_type neep_venus_type = {
    .capset_id = NEEP_CAPSET_VENUS,
    .name = "venus",
    .probe = probe_venus,
    .create = create_venus,
    .release = virgl_release,
};

const struct neep_context_type neep_virgl_type = {
    .capset_id = NEEP_CAPSET_VIRGL,
    .name = "virgl",
    .probe = probe_virgl,
    .create = create_virgl,
    .release = virgl_release,
};

const struct neep_context_type neep_virgl2_type = {
    .capset_id = NEEP_CAPSET_VIRGL2,
    .name = "virgl2",
    .probe = probe_virgl2,
    .create = create_virgl2,
    .release = virgl_release,
};
