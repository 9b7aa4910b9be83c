/*
 * The virgl-family context types: virgl and virgl2 (capsets 1 and 2, OpenGL) and venus
 * (capset 4, Vulkan, through virglrenderer's render server). Their contexts share one ops
 * table; virglrenderer itself is virgl_instance.c's, its resources virgl_resources.c's.
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

/* The largest venus submit: under the render server socket's default buffer (208 KiB).
 * venus's guest drivers put their command streams in shared rings; submits are small. */
#define VENUS_MAX_SUBMIT_BYTES (128u << 10)

/* virglrenderer 1.x runs each venus context in a worker process of its own (with its own
 * Vulkan instance): a guest may not have more than this many at once. */
#define VENUS_MAX_CONTEXTS 16u

/* Live venus contexts (embedder thread only; virglrenderer is one per process). */
static uint32_t venus_context_count;

/* Host memory charged per virgl context, for its GL context and decoder state. */
#define VIRGL_CONTEXT_CHARGE_BYTES (1u << 20)

static struct virgl_context *from_base(struct neep_context *base)
{
    return (struct virgl_context *)base;
}

/* ---- contexts ------------------------------------------------------------------------------ */

/* A venus context's calls may wait on the render server: the server's watcher times them. */
static void venus_call_begin(uint32_t capset_id)
{
    if (capset_id == NEEP_CAPSET_VENUS) {
        virgl_server_call_begin();
    }
}

static void venus_call_end(uint32_t capset_id)
{
    if (capset_id == NEEP_CAPSET_VENUS) {
        virgl_server_call_end();
    }
}

void virgl_context_free(struct virgl_context *ctx)
{
    neep_budget_release(ctx->base.renderer, sizeof(*ctx) + VIRGL_CONTEXT_CHARGE_BYTES);
    free(ctx);
}

/* virglrenderer's side of a context no longer found by the callbacks, then the rest. */
static void destroy_in_virglrenderer(struct virgl_context *ctx)
{
    if (!ctx->reaped) {
        venus_call_begin(ctx->capset_id);
        virgl_renderer_context_destroy(ctx->virgl_id);
        venus_call_end(ctx->capset_id);
    }
    virgl_context_free(ctx);
}

void virgl_reap_retired_contexts(void)
{
    struct virgl_context *retired[16];
    size_t count;
    while ((count = virgl_instance_take_retired(retired, sizeof(retired) / sizeof(retired[0])))) {
        for (size_t i = 0; i < count; i++) {
            destroy_in_virglrenderer(retired[i]);
        }
    }
}

/* Until their reaping, retiring contexts keep their charge (a guest cannot pile them up past
 * its budget) and their virglrenderer id (a new context gets another). */
static void virgl_context_destroy(struct neep_context *base)
{
    struct virgl_context *ctx = from_base(base);
    if (ctx->capset_id == NEEP_CAPSET_VENUS) {
        venus_context_count--;
    }
    virgl_instance_reap_lost_venus();
    if (virgl_instance_retire_context(ctx)) {
        destroy_in_virglrenderer(ctx);
    }
    virgl_instance_poll();
    virgl_reap_retired_contexts();
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
    virgl_instance_reap_lost_venus();
    virgl_instance_poll();
    virgl_reap_retired_contexts();
    if (from_base(base)->capset_id == NEEP_CAPSET_VENUS && virgl_instance_venus_lost()) {
        context_log(base, NEEP_LOG_ERROR, "venus: ctx %u: the render server is gone", base->id);
        return -EIO;
    }
    if (from_base(base)->capset_id == NEEP_CAPSET_VENUS && size_bytes > VENUS_MAX_SUBMIT_BYTES) {
        /* virglrenderer sends a submit to the render server as one socket message: past the
         * socket buffer it fails half sent and the server drops the context. */
        context_log(base, NEEP_LOG_ERROR, "venus: ctx %u submitted %zu bytes, limit %u", base->id,
                    size_bytes, VENUS_MAX_SUBMIT_BYTES);
        return -E2BIG;
    }
    /* At most NEEP_MAX_SUBMIT_BYTES: the dword count fits an int. The buffer is the renderer's
     * private copy, so the guest cannot change it while virglrenderer decodes. */
    venus_call_begin(from_base(base)->capset_id);
    int ret = virgl_as_errno(virgl_renderer_submit_cmd(
        (void *)commands, (int)from_base(base)->virgl_id, (int)(size_bytes / 4)));
    venus_call_end(from_base(base)->capset_id);
    if (ret < 0) {
        context_log(base, NEEP_LOG_ERROR, "virgl: ctx %u: command stream refused: %s", base->id,
                    strerror(-ret));
    }
    return ret;
}

/* Blobs of other context types are not virglrenderer's to know. */
static int virgl_context_attach_resource(struct neep_context *base, struct neep_resource *resource)
{
    virgl_instance_reap_lost_venus();
    if (resource->kind == NEEP_RESOURCE_PROVIDED && !from_base(base)->reaped) {
        if (from_base(base)->capset_id == NEEP_CAPSET_VENUS) {
            resource->provider_flags |= VIRGL_RESOURCE_KNOWN_TO_VENUS;
        }
        venus_call_begin(from_base(base)->capset_id);
        virgl_renderer_ctx_attach_resource((int)from_base(base)->virgl_id, (int)resource->id);
        venus_call_end(from_base(base)->capset_id);
    }
    return 0;
}

static void virgl_context_detach_resource(struct neep_context *base, struct neep_resource *resource)
{
    if (resource->kind == NEEP_RESOURCE_PROVIDED && !from_base(base)->reaped) {
        venus_call_begin(from_base(base)->capset_id);
        virgl_renderer_ctx_detach_resource((int)from_base(base)->virgl_id, (int)resource->id);
        venus_call_end(from_base(base)->capset_id);
    }
}

static int virgl_context_create_fence(struct neep_context *base, struct neep_timeline *timeline,
                                      uint64_t fence_id)
{
    struct virgl_context *ctx = from_base(base);
    virgl_instance_reap_lost_venus();
    virgl_instance_poll();
    if (ctx->reaped) {
        context_log(base, NEEP_LOG_ERROR, "venus: ctx %u: the render server is gone", base->id);
        return -EIO;
    }
    virgl_instance_set_timeline(ctx, timeline);
    /* venus's fences are its worker's, which its context's end waits for. Not mergeable:
     * virglrenderer may drop a mergeable fence followed by another without calling back, and
     * the count needs one completion per fence (neep's timelines complete in order anyway). */
    bool gl = ctx->capset_id != NEEP_CAPSET_VENUS;
    if (gl) {
        virgl_instance_count_gl_fence();
    }
    venus_call_begin(ctx->capset_id);
    uint32_t flags = gl ? 0 : VIRGL_RENDERER_FENCE_FLAG_MERGEABLE;
    int ret = virgl_as_errno(
        virgl_renderer_context_create_fence(ctx->virgl_id, flags, timeline->ring_idx, fence_id));
    venus_call_end(ctx->capset_id);
    if (ret < 0 && gl) {
        virgl_instance_uncount_gl_fence();
    }
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
    virgl_instance_reap_lost_venus();
    virgl_instance_poll();
    virgl_reap_retired_contexts();
    if (capset_id == NEEP_CAPSET_VENUS && virgl_instance_venus_lost()) {
        renderer_error(renderer, "venus: context %u: the render server is gone", ctx_id);
        return -EIO;
    }
    if (capset_id == NEEP_CAPSET_VENUS && venus_context_count >= VENUS_MAX_CONTEXTS) {
        renderer_error(renderer, "venus: context %u: the guest already has %u venus contexts",
                       ctx_id, VENUS_MAX_CONTEXTS);
        return -E2BIG;
    }
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
    ctx->capset_id = capset_id;
    ret = virgl_instance_add_context(ctx_id, ctx);
    if (ret == 0) {
        /* The renderer passes at most the 64 bytes of the wire's debug name. */
        venus_call_begin(capset_id);
        ret = virgl_as_errno(virgl_renderer_context_create_with_flags(ctx->virgl_id, capset_id,
                                                                      (uint32_t)name_len, name));
        venus_call_end(capset_id);
        if (ret < 0) {
            renderer_error(renderer, "virgl: context %u refused by virglrenderer: %s", ctx_id,
                           strerror(-ret));
            virgl_instance_remove_context(ctx);
        }
    }
    if (ret < 0) {
        free(ctx);
        neep_budget_release(renderer, charge);
        return ret;
    }
    ctx->base.ops = &virgl_context_ops;
    venus_context_count += capset_id == NEEP_CAPSET_VENUS;
    *out = &ctx->base;
    return 0;
}

bool virgl_is_context(const struct neep_context *ctx)
{
    return ctx->ops == &virgl_context_ops;
}

struct virgl_context *virgl_context_lookup(const struct neep_renderer *renderer, uint32_t ctx_id)
{
    struct neep_context *ctx = neep_context_lookup(renderer, ctx_id);
    return ctx && virgl_is_context(ctx) ? from_base(ctx) : NULL;
}

int virgl_context_id_for(const struct neep_renderer *renderer, uint32_t ctx_id, uint32_t *virgl_id)
{
    struct virgl_context *ctx = ctx_id ? virgl_context_lookup(renderer, ctx_id) : NULL;
    if (ctx_id && !ctx) {
        return -EINVAL;
    }
    *virgl_id = ctx ? ctx->virgl_id : 0;
    return 0;
}

/* ---- the capsets ----------------------------------------------------------------------- */

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
    if (renderer->resource_provider && renderer->resource_provider != &virgl_provider_ops &&
        renderer->resource_provider != &virgl_venus_provider_ops) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "virgl: cannot share a device with %s (each keeps the 3D resources)",
                      renderer->resource_provider->name);
        return -EBUSY;
    }
    int ret = virgl_instance_acquire(renderer);
    if (ret < 0) {
        return ret;
    }
    bool started = virgl_instance_started(capset_id);
    uint32_t version = 0, size = 0;
    if (started) {
        virgl_renderer_get_cap_set(capset_id, &version, &size);
    }
    /* A capset's size says it is there; venus's max version is 0. */
    uint8_t *caps = size > 0 ? calloc(1, size) : NULL;
    if (!caps) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "virgl: virglrenderer offers no capset %u here", capset_id);
        virgl_instance_release(renderer);
        return size > 0 ? -ENOMEM : -ENODEV;
    }
    virgl_renderer_fill_caps(capset_id, version, caps);
    if (capset_id == NEEP_CAPSET_VENUS && (ret = check_venus_caps(renderer, caps, size)) < 0) {
        free(caps);
        virgl_instance_release(renderer);
        return ret;
    }
    renderer->resource_provider = virgl_instance_started(NEEP_CAPSET_VIRGL2)
                                      ? &virgl_provider_ops
                                      : &virgl_venus_provider_ops;
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
    .release = virgl_instance_release,
};

const struct neep_context_type neep_virgl_type = {
    .capset_id = NEEP_CAPSET_VIRGL,
    .name = "virgl",
    .probe = probe_virgl,
    .create = create_virgl,
    .release = virgl_instance_release,
};

const struct neep_context_type neep_virgl2_type = {
    .capset_id = NEEP_CAPSET_VIRGL2,
    .name = "virgl2",
    .probe = probe_virgl2,
    .create = create_virgl2,
    .release = virgl_instance_release,
};
