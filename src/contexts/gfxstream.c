/*
 * The gfxstream context types: gfxstream-vulkan, gfxstream-gles and gfxstream-composer
 * (capsets 3, 8 and 9), through Google's gfxstream host backend, loaded at run time. Their
 * contexts share one ops table; the backend is gfxstream_instance.c's, its resources
 * gfxstream_resources.c's.
 *
 * The guest's Vulkan and GLES streams do not pass through here: the guest names a mappable
 * blob with CONTEXT_CREATE and the backend runs a render thread (an "ASG instance") reading
 * that shared memory. SUBMIT_3D carries only such control commands, one per submit, which the
 * backend copies by its own idea of their size: each is checked here first.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gfxstream_internal.h"
#include "gfxstream_protocol.h"

/* Host memory charged per context, for the backend's decoder state. */
#define GFXSTREAM_CONTEXT_CHARGE_BYTES (1u << 20)

/* ASG instances of the device (one renderer has the backend at a time): embedder thread. */
static uint32_t asg_total;
/* The least a blob must hold to carry an ASG's ring and buffer (from the capsets). */
static uint64_t asg_min_bytes = UINT64_MAX;

static struct gfxstream_context *from_base(struct neep_context *base)
{
    return (struct gfxstream_context *)base;
}

static uint32_t read_le32(const uint8_t *bytes)
{
    uint32_t value;
    memcpy(&value, bytes, sizeof(value));
    return value;
}

/* The size the backend copies for each command it knows; 0 for the others. */
static uint32_t command_bytes(uint32_t op)
{
    switch (op) {
    case GFXSTREAM_CMD_CONTEXT_CREATE:
    case GFXSTREAM_CMD_CONTEXT_PING:
    case GFXSTREAM_CMD_CONTEXT_PING_WITH_RESPONSE:
        return 8;
    case GFXSTREAM_CMD_CREATE_EXPORT_SYNC:
    case GFXSTREAM_CMD_CREATE_QSRI_EXPORT_VK:
    case GFXSTREAM_CMD_PLACEHOLDER_COMMAND_VK:
        return 12;
    case GFXSTREAM_CMD_ACQUIRE_SYNC:
        return 16;
    case GFXSTREAM_CMD_CREATE_EXPORT_SYNC_VK:
    case GFXSTREAM_CMD_CREATE_IMPORT_SYNC_VK:
        return 20;
    case GFXSTREAM_CMD_RESOURCE_CREATE_3D:
        return sizeof(struct gfxstream_cmd_resource_create_3d);
    }
    return 0;
}

static int find_asg(const struct gfxstream_context *ctx, uint32_t resource_id)
{
    for (uint32_t i = 0; i < ctx->asg_count; i++) {
        if (ctx->asg_resources[i] == resource_id) {
            return (int)i;
        }
    }
    return -1;
}

static void forget_asg(struct gfxstream_context *ctx, int index)
{
    ctx->asg_resources[index] = ctx->asg_resources[--ctx->asg_count];
    asg_total--;
}

/*
 * CONTEXT_CREATE starts a render thread on the blob's memory. The backend aborts the process
 * when the blob is smaller than its ring and buffer, would leave a thread running on freed
 * memory for a blob not attached to the context (only attached ones are detached, and their
 * thread stopped, when the blob goes), and leaks a thread for a second one on the same blob.
 */
static int check_context_create(struct gfxstream_context *ctx, uint32_t resource_id)
{
    struct neep_renderer *renderer = ctx->base.renderer;
    struct neep_resource *resource = id_table_get(&ctx->base.attached_resources, resource_id);
    if (!resource || resource->kind != NEEP_RESOURCE_PROVIDED ||
        resource->blob_mem != NEEP_BLOB_MEM_HOST3D ||
        !(resource->blob_flags & NEEP_BLOB_FLAG_USE_MAPPABLE)) {
        renderer_error(renderer,
                       "gfxstream: ctx %u: CONTEXT_CREATE on resource %u, which is not a "
                       "mappable host blob attached to the context",
                       ctx->base.id, resource_id);
        return -EINVAL;
    }
    /* A ring blob (id 0: host memory the backend made at the claimed size) of whole pages,
     * between what its ring and buffer need and its block size (the backend aborts on any
     * other). */
    if (resource->blob_id != 0 || resource->size_bytes < asg_min_bytes ||
        resource->size_bytes > GFXSTREAM_ASG_MAX_BYTES ||
        resource->size_bytes % GFXSTREAM_ASG_PAGE_BYTES != 0) {
        renderer_error(renderer,
                       "gfxstream: ctx %u: CONTEXT_CREATE on blob %u (id %llu) of %llu bytes; a "
                       "render thread needs a ring blob (id 0) of whole %u-byte pages, its ring "
                       "and buffer need %llu bytes, at most %u",
                       ctx->base.id, resource_id, (unsigned long long)resource->blob_id,
                       (unsigned long long)resource->size_bytes, GFXSTREAM_ASG_PAGE_BYTES,
                       (unsigned long long)asg_min_bytes, GFXSTREAM_ASG_MAX_BYTES);
        return -EINVAL;
    }
    if (find_asg(ctx, resource_id) >= 0) {
        renderer_error(renderer, "gfxstream: ctx %u: blob %u already carries a render thread",
                       ctx->base.id, resource_id);
        return -EEXIST;
    }
    if (ctx->asg_count >= GFXSTREAM_MAX_ASGS_PER_CONTEXT || asg_total >= GFXSTREAM_MAX_ASGS) {
        renderer_error(renderer,
                       "gfxstream: ctx %u: too many render threads (%u in the context, at most "
                       "%u; %u in the device, at most %u)",
                       ctx->base.id, ctx->asg_count, GFXSTREAM_MAX_ASGS_PER_CONTEXT, asg_total,
                       GFXSTREAM_MAX_ASGS);
        return -E2BIG;
    }
    return 0;
}

/* RESOURCE_CREATE_3D announces an image the next CREATE_BLOB of that id makes; recorded once
 * the backend took it (see record_announcement). */
static int check_announcement(struct gfxstream_context *ctx, const uint8_t *command,
                              uint64_t *bytes_out)
{
    struct gfxstream_cmd_resource_create_3d create;
    memcpy(&create, command, sizeof(create));
    struct neep_renderer *renderer = ctx->base.renderer;
    int64_t bytes = gfxstream_check_3d(renderer, create.target, create.format, create.bind,
                                       create.width, create.height, create.depth, create.array_size,
                                       create.last_level, create.nr_samples);
    if (bytes < 0) {
        return (int)bytes;
    }
    /* The backend keeps blob ids in 32 bits: a wider one would name another. */
    if (create.blob_id == 0 || create.blob_id > UINT32_MAX) {
        renderer_error(renderer, "gfxstream: ctx %u: RESOURCE_CREATE_3D with blob id %llu",
                       ctx->base.id, (unsigned long long)create.blob_id);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < ctx->announced_count; i++) {
        if (ctx->announced[i].blob_id == create.blob_id) {
            renderer_error(renderer, "gfxstream: ctx %u: blob id %llu is announced already",
                           ctx->base.id, (unsigned long long)create.blob_id);
            return -EEXIST; /* the backend keeps the first */
        }
    }
    if (ctx->announced_count >= GFXSTREAM_MAX_ANNOUNCED) {
        renderer_error(renderer,
                       "gfxstream: ctx %u: %u images announced and not made into blobs yet",
                       ctx->base.id, ctx->announced_count);
        return -E2BIG;
    }
    *bytes_out = (uint64_t)bytes;
    return 0;
}

static void record_announcement(struct gfxstream_context *ctx, const uint8_t *command,
                                uint64_t bytes)
{
    struct gfxstream_cmd_resource_create_3d create;
    memcpy(&create, command, sizeof(create));
    ctx->announced[ctx->announced_count].blob_id = create.blob_id;
    ctx->announced[ctx->announced_count].bytes = bytes;
    ctx->announced_count++;
}

int gfxstream_claim_announced(struct neep_renderer *renderer, uint32_t ctx_id,
                              struct neep_resource *resource)
{
    struct neep_context *base = neep_context_lookup(renderer, ctx_id);
    if (!base || !gfxstream_is_context(base) || resource->blob_id == 0) {
        return 0;
    }
    if (resource->blob_id > UINT32_MAX) {
        renderer_error(renderer, "gfxstream: blob %u: id %llu is wider than gfxstream's 32 bits",
                       resource->id, (unsigned long long)resource->blob_id);
        return -EINVAL;
    }
    struct gfxstream_context *ctx = from_base(base);
    for (uint32_t i = 0; i < ctx->announced_count; i++) {
        if (ctx->announced[i].blob_id != resource->blob_id) {
            continue;
        }
        uint64_t bytes = ctx->announced[i].bytes;
        ctx->announced[i] = ctx->announced[--ctx->announced_count];
        if (bytes <= resource->size_bytes + resource->extra_charged_bytes) {
            return 0;
        }
        uint64_t extra = bytes - resource->size_bytes - resource->extra_charged_bytes;
        int ret = neep_budget_charge(renderer, extra);
        if (ret == 0) {
            resource->charged_bytes += extra;
            resource->extra_charged_bytes += extra;
        }
        return ret;
    }
    return 0;
}

/* ---- contexts ------------------------------------------------------------------------------ */

static void gfxstream_context_destroy(struct neep_context *base)
{
    struct gfxstream_context *ctx = from_base(base);
    gfxstream_instance_remove_context(base->id);
    asg_total -= ctx->asg_count;
    /* Also ends the context's render threads (waiting for them). */
    gfxstream_api()->context_destroy(base->id);
    neep_budget_release(base->renderer, sizeof(*ctx) + GFXSTREAM_CONTEXT_CHARGE_BYTES);
    free(ctx);
}

static int gfxstream_context_submit(struct neep_context *base, const uint8_t *commands,
                                    size_t size_bytes)
{
    struct gfxstream_context *ctx = from_base(base);
    struct neep_renderer *renderer = base->renderer;
    if (gfxstream_remote_lost()) {
        renderer_error(renderer, "gfxstream: ctx %u: its server is lost; work is refused",
                       base->id);
        return -ENODEV;
    }
    if (size_bytes == 0) {
        return 0;
    }
    if (size_bytes % 4 != 0 || size_bytes < 4) {
        renderer_error(renderer, "gfxstream: ctx %u submitted %zu bytes, not whole dwords",
                       base->id, size_bytes);
        return -EINVAL;
    }
    uint32_t op = read_le32(commands);
    uint32_t needed = command_bytes(op);
    if (needed == 0 || size_bytes < needed) {
        renderer_error(renderer,
                       needed ? "gfxstream: ctx %u: command 0x%x cut short (%zu bytes)"
                              : "gfxstream: ctx %u: unknown command 0x%x (%zu bytes)",
                       base->id, op, size_bytes);
        return -EINVAL;
    }
    uint32_t resource_id = read_le32(commands + 4);
    uint64_t announced_bytes = 0;
    int ret = 0;
    if (op == GFXSTREAM_CMD_CREATE_EXPORT_SYNC && !gfxstream_instance_has_gles()) {
        /* A GLES sync without GLES never completes: the context's ring 0 would stall. */
        renderer_error(renderer, "gfxstream: ctx %u: a GLES sync, and this device has no GLES",
                       base->id);
        ret = -EINVAL;
    } else if (op == GFXSTREAM_CMD_CONTEXT_CREATE) {
        ret = check_context_create(ctx, resource_id);
    } else if ((op == GFXSTREAM_CMD_CONTEXT_PING ||
                op == GFXSTREAM_CMD_CONTEXT_PING_WITH_RESPONSE) &&
               find_asg(ctx, resource_id) < 0) {
        renderer_error(renderer, "gfxstream: ctx %u: ping of blob %u, which runs no render thread",
                       base->id, resource_id);
        ret = -EINVAL;
    } else if (op == GFXSTREAM_CMD_RESOURCE_CREATE_3D) {
        ret = check_announcement(ctx, commands, &announced_bytes);
    }
    if (ret < 0) {
        return ret;
    }
    /* The buffer is the renderer's private copy: the guest cannot change it meanwhile. */
    struct gfxstream_command command = {
        .ctx_id = base->id,
        .cmd_size = (uint32_t)size_bytes,
        .cmd = (uint8_t *)commands,
    };
    ret = gfxstream_api()->submit_cmd(&command);
    if (ret != 0) {
        renderer_error(renderer, "gfxstream: ctx %u: command 0x%x refused (%d)", base->id, op, ret);
        return -EINVAL;
    }
    if (op == GFXSTREAM_CMD_CONTEXT_CREATE) {
        ctx->asg_resources[ctx->asg_count++] = resource_id;
        asg_total++;
    } else if (op == GFXSTREAM_CMD_RESOURCE_CREATE_3D) {
        record_announcement(ctx, commands, announced_bytes);
    }
    return 0;
}

/* The backend finds resources by id; it must hear which ones a context uses. */
static int gfxstream_context_attach_resource(struct neep_context *base,
                                             struct neep_resource *resource)
{
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        gfxstream_api()->ctx_attach_resource((int)base->id, (int)resource->id);
    }
    return 0;
}

/* Detaching a blob ends the render thread on it (the backend keeps its memory until then). */
static void gfxstream_context_detach_resource(struct neep_context *base,
                                              struct neep_resource *resource)
{
    if (resource->kind != NEEP_RESOURCE_PROVIDED) {
        return;
    }
    gfxstream_api()->ctx_detach_resource((int)base->id, (int)resource->id);
    struct gfxstream_context *ctx = from_base(base);
    int index = find_asg(ctx, resource->id);
    if (index >= 0) {
        forget_asg(ctx, index);
    }
}

static int gfxstream_context_create_fence(struct neep_context *base, struct neep_timeline *timeline,
                                          uint64_t fence_id)
{
    struct gfxstream_context *ctx = from_base(base);
    gfxstream_instance_set_timeline(ctx, timeline);
    struct gfxstream_fence fence = {
        .flags = GFXSTREAM_FENCE_FLAG_FENCE | GFXSTREAM_FENCE_FLAG_RING_IDX,
        .fence_id = fence_id,
        .ctx_id = base->id,
        .ring_idx = (uint8_t)timeline->ring_idx,
    };
    /* The fence is pushed already: it may complete before the call returns. A lost server's
     * fences complete at once (no guest waits for work that will never finish). */
    int ret = gfxstream_remote_lost() ? -ENODEV : gfxstream_api()->create_fence(&fence);
    if (ret == -ENODEV) {
        neep_timeline_complete_all(timeline);
        return 0;
    }
    if (ret != 0) {
        renderer_error(base->renderer, "gfxstream: ctx %u: fence %llu on ring %u refused (%d)",
                       base->id, (unsigned long long)fence_id, timeline->ring_idx, ret);
        return -EINVAL;
    }
    return 0;
}

static const struct neep_context_ops gfxstream_context_ops = {
    .destroy = gfxstream_context_destroy,
    .submit = gfxstream_context_submit,
    .attach_resource = gfxstream_context_attach_resource,
    .detach_resource = gfxstream_context_detach_resource,
    .create_fence = gfxstream_context_create_fence,
};

bool gfxstream_is_context(const struct neep_context *ctx)
{
    return ctx->ops == &gfxstream_context_ops;
}

static int create_context(struct neep_renderer *renderer, uint32_t capset_id, uint32_t ctx_id,
                          const char *name, size_t name_len, struct neep_context **out)
{
    if (gfxstream_remote_lost()) {
        renderer_error(renderer, "gfxstream: context %u refused: gfxstream's server is lost",
                       ctx_id);
        return -ENODEV;
    }
    uint64_t charge = sizeof(struct gfxstream_context) + GFXSTREAM_CONTEXT_CHARGE_BYTES;
    int ret = neep_budget_charge(renderer, charge);
    if (ret < 0) {
        return ret;
    }
    struct gfxstream_context *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        neep_budget_release(renderer, charge);
        return -ENOMEM;
    }
    ret = gfxstream_instance_add_context(ctx_id, ctx);
    if (ret == 0) {
        /* The renderer passes at most the wire's 64 bytes of debug name; rutabaga's default
         * stands in for none. The backend stores the capset id it is given. */
        static const char default_name[] = "gpu_renderer";
        if (name_len == 0) {
            name = default_name;
            name_len = sizeof(default_name) - 1;
        }
        ret = gfxstream_api()->context_create(ctx_id, (uint32_t)name_len, name, capset_id);
        if (ret != 0) {
            renderer_error(renderer, "gfxstream: context %u refused by the backend (%d)", ctx_id,
                           ret);
            gfxstream_instance_remove_context(ctx_id);
            ret = -EINVAL;
        }
    }
    if (ret < 0) {
        free(ctx);
        neep_budget_release(renderer, charge);
        return ret;
    }
    ctx->base.ops = &gfxstream_context_ops;
    *out = &ctx->base;
    return 0;
}

/* ---- the capsets ----------------------------------------------------------------------- */

static int probe_capset(struct neep_renderer *renderer, uint32_t capset_id, uint32_t *max_version,
                        uint32_t *size_bytes, uint8_t **data)
{
    if (renderer->resource_provider && renderer->resource_provider != &gfxstream_provider_ops) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "gfxstream: cannot share a device with %s (each keeps the 3D resources)",
                      renderer->resource_provider->name);
        return -EBUSY;
    }
    int ret = gfxstream_instance_acquire(renderer);
    if (ret < 0) {
        return ret;
    }
    /* The backend writes only the size, and nothing for a capset it lacks. */
    uint32_t version = 0, size = 0;
    gfxstream_api()->get_cap_set(capset_id, &version, &size);
    uint8_t *caps = size > 0 && size <= GFXSTREAM_MAX_CAPSET_BYTES ? calloc(1, size) : NULL;
    if (!caps) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "gfxstream: the backend offers no capset %u (size %u)", capset_id, size);
        gfxstream_instance_release(renderer);
        return -ENODEV;
    }
    gfxstream_api()->fill_caps(capset_id, version, caps);
    /* Every gfxstream capset starts {protocol version, ring bytes, buffer bytes}. */
    if (size >= 12) {
        uint64_t ring_and_buffer = (uint64_t)read_le32(caps + 4) + read_le32(caps + 8);
        if (ring_and_buffer > 0 &&
            (asg_min_bytes == UINT64_MAX || ring_and_buffer > asg_min_bytes)) {
            asg_min_bytes = ring_and_buffer;
        }
    }
    renderer->resource_provider = &gfxstream_provider_ops;
    *max_version = version;
    *size_bytes = size;
    *data = caps;
    return 0;
}

static int probe_vulkan(struct neep_renderer *renderer, uint32_t *max_version, uint32_t *size_bytes,
                        uint8_t **data)
{
    return probe_capset(renderer, NEEP_CAPSET_GFXSTREAM_VULKAN, max_version, size_bytes, data);
}

static int probe_gles(struct neep_renderer *renderer, uint32_t *max_version, uint32_t *size_bytes,
                      uint8_t **data)
{
    return probe_capset(renderer, NEEP_CAPSET_GFXSTREAM_GLES, max_version, size_bytes, data);
}

static int probe_composer(struct neep_renderer *renderer, uint32_t *max_version,
                          uint32_t *size_bytes, uint8_t **data)
{
    return probe_capset(renderer, NEEP_CAPSET_GFXSTREAM_COMPOSER, max_version, size_bytes, data);
}

static int create_vulkan(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t context_init,
                         const char *name, size_t name_len, struct neep_context **out)
{
    return create_context(renderer, NEEP_CAPSET_GFXSTREAM_VULKAN, ctx_id, name, name_len, out);
}

static int create_gles(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t context_init,
                       const char *name, size_t name_len, struct neep_context **out)
{
    return create_context(renderer, NEEP_CAPSET_GFXSTREAM_GLES, ctx_id, name, name_len, out);
}

static int create_composer(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t context_init,
                           const char *name, size_t name_len, struct neep_context **out)
{
    return create_context(renderer, NEEP_CAPSET_GFXSTREAM_COMPOSER, ctx_id, name, name_len, out);
}

const struct neep_context_type neep_gfxstream_vulkan_type = {
    .capset_id = NEEP_CAPSET_GFXSTREAM_VULKAN,
    .name = "gfxstream-vulkan",
    .probe = probe_vulkan,
    .create = create_vulkan,
    .release = gfxstream_instance_release,
};

const struct neep_context_type neep_gfxstream_gles_type = {
    .capset_id = NEEP_CAPSET_GFXSTREAM_GLES,
    .name = "gfxstream-gles",
    .probe = probe_gles,
    .create = create_gles,
    .release = gfxstream_instance_release,
};

const struct neep_context_type neep_gfxstream_composer_type = {
    .capset_id = NEEP_CAPSET_GFXSTREAM_COMPOSER,
    .name = "gfxstream-composer",
    .probe = probe_composer,
    .create = create_composer,
    .release = gfxstream_instance_release,
};
