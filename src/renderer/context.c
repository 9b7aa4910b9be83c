/* The context table: creation through the context-type registry, resources, submission. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "contexts/context_type.h"
#include "renderer_internal.h"

#define CONTEXT_INIT_CAPSET_ID_MASK 0xffu

struct neep_context *neep_context_lookup(const struct neep_renderer *renderer, uint32_t ctx_id)
{
    return id_table_get(&renderer->contexts, ctx_id);
}

static struct neep_context *find_context(struct neep_renderer *renderer, uint32_t ctx_id,
                                         const char *what)
{
    struct neep_context *ctx = neep_context_lookup(renderer, ctx_id);
    if (!ctx) {
        renderer_error(renderer, "%s: no context %u", what, ctx_id);
    }
    return ctx;
}

static const struct neep_capset *capset_for_init(const struct neep_renderer *renderer,
                                                 uint32_t context_init)
{
    uint32_t capset_id = context_init & CONTEXT_INIT_CAPSET_ID_MASK;
    if (capset_id == 0) {
        /* Guests without CONTEXT_INIT get the first enabled type, as rutabaga does. */
        return renderer->capset_count > 0 ? &renderer->capsets[0] : NULL;
    }
    for (uint32_t i = 0; i < renderer->capset_count; i++) {
        if (renderer->capsets[i].capset_id == capset_id) {
            return &renderer->capsets[i];
        }
    }
    return NULL;
}

int neep_context_create(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t context_init,
                        const char *name, size_t name_len)
{
    if (ctx_id == 0) {
        renderer_error(renderer, "context id 0 is reserved");
        return -EINVAL;
    }
    if (neep_context_lookup(renderer, ctx_id)) {
        renderer_error(renderer, "context id %u is already in use", ctx_id);
        return -EEXIST;
    }
    if (renderer->contexts.count >= NEEP_MAX_CONTEXTS) {
        renderer_error(renderer, "context %u: the guest already has %u contexts", ctx_id,
                       NEEP_MAX_CONTEXTS);
        return -E2BIG;
    }
    const struct neep_capset *capset = capset_for_init(renderer, context_init);
    if (!capset) {
        renderer_error(renderer, "context %u: capset %u is not enabled (context_init 0x%x)", ctx_id,
                       context_init & CONTEXT_INIT_CAPSET_ID_MASK, context_init);
        return -EINVAL;
    }
    int ret = neep_budget_charge(renderer, NEEP_OBJECT_OVERHEAD_BYTES);
    if (ret < 0) {
        return ret;
    }
    struct neep_context *ctx = NULL;
    ret = capset->type->create(renderer, ctx_id, context_init, name, name ? name_len : 0, &ctx);
    if (ret < 0) {
        neep_budget_release(renderer, NEEP_OBJECT_OVERHEAD_BYTES);
        return ret;
    }
    ctx->renderer = renderer;
    ctx->id = ctx_id;
    ctx->capset_id = capset->capset_id;
    id_table_init(&ctx->attached_resources);
    memset(ctx->rings, 0, sizeof(ctx->rings));
    memset(ctx->debug_name, 0, sizeof(ctx->debug_name));
    if (name && name_len > 0) {
        size_t copy =
            name_len < sizeof(ctx->debug_name) - 1 ? name_len : sizeof(ctx->debug_name) - 1;
        memcpy(ctx->debug_name, name, copy);
    }
    ret = id_table_insert(&renderer->contexts, ctx_id, ctx);
    if (ret < 0) {
        id_table_finish(&ctx->attached_resources);
        ctx->ops->destroy(ctx);
        neep_budget_release(renderer, NEEP_OBJECT_OVERHEAD_BYTES);
    }
    return ret;
}

static void context_free(struct neep_renderer *renderer, struct neep_context *ctx)
{
    struct id_table *attached = &ctx->attached_resources;
    renderer->borrowed_memory_releases++; /* its copies of guest backing go with it */
    /* Stop the context's work first, so no worker signals a timeline we are about to free. */
    if (ctx->ops->detach_resource) {
        for (size_t i = 0; i < attached->capacity; i++) {
            if (attached->keys[i]) {
                ctx->ops->detach_resource(ctx, attached->values[i]);
            }
        }
    }
    id_table_finish(attached);
    struct neep_timeline *rings[NEEP_MAX_RINGS];
    memcpy(rings, ctx->rings, sizeof(rings));
    ctx->ops->destroy(ctx);
    for (uint32_t i = 0; i < NEEP_MAX_RINGS; i++) {
        if (rings[i]) {
            neep_timeline_finish(rings[i]);
            free(rings[i]);
        }
    }
    neep_budget_release(renderer, NEEP_OBJECT_OVERHEAD_BYTES);
}

int neep_context_destroy(struct neep_renderer *renderer, uint32_t ctx_id)
{
    struct neep_context *ctx = find_context(renderer, ctx_id, "context_destroy");
    if (!ctx) {
        return -ESRCH;
    }
    id_table_remove(&renderer->contexts, ctx_id);
    context_free(renderer, ctx);
    return 0;
}

void neep_contexts_destroy_all(struct neep_renderer *renderer)
{
    struct id_table *table = &renderer->contexts;
    for (size_t i = 0; i < table->capacity; i++) {
        if (table->keys[i]) {
            context_free(renderer, table->values[i]);
        }
    }
    id_table_finish(table);
    id_table_init(table);
}

int neep_context_attach_resource(struct neep_renderer *renderer, uint32_t ctx_id,
                                 uint32_t resource_id)
{
    struct neep_context *ctx = find_context(renderer, ctx_id, "attach_resource");
    if (!ctx) {
        return -ESRCH;
    }
    struct neep_resource *resource = neep_resource_lookup(renderer, resource_id);
    if (!resource) {
        renderer_error(renderer, "attach_resource: no resource %u", resource_id);
        return -ENOENT;
    }
    if (id_table_get(&ctx->attached_resources, resource_id)) {
        return 0; /* attaching twice is harmless; Linux does it for shared buffers */
    }
    int ret = id_table_insert(&ctx->attached_resources, resource_id, resource);
    if (ret < 0) {
        return ret;
    }
    if (ctx->ops->attach_resource) {
        ret = ctx->ops->attach_resource(ctx, resource);
        if (ret < 0) {
            id_table_remove(&ctx->attached_resources, resource_id);
        }
    }
    return ret;
}

int neep_context_detach_resource(struct neep_renderer *renderer, uint32_t ctx_id,
                                 uint32_t resource_id)
{
    struct neep_context *ctx = find_context(renderer, ctx_id, "detach_resource");
    if (!ctx) {
        return -ESRCH;
    }
    struct neep_resource *resource = id_table_remove(&ctx->attached_resources, resource_id);
    if (!resource) {
        renderer_error(renderer, "detach_resource: resource %u is not attached to context %u",
                       resource_id, ctx_id);
        return -ENOENT;
    }
    if (ctx->ops->detach_resource) {
        ctx->ops->detach_resource(ctx, resource);
        renderer->borrowed_memory_releases++; /* it may have dropped a copy of the backing */
    }
    return 0;
}

void neep_contexts_detach_resource_everywhere(struct neep_renderer *renderer,
                                              struct neep_resource *resource)
{
    struct id_table *table = &renderer->contexts;
    for (size_t i = 0; i < table->capacity; i++) {
        if (!table->keys[i]) {
            continue;
        }
        struct neep_context *ctx = table->values[i];
        if (id_table_remove(&ctx->attached_resources, resource->id) && ctx->ops->detach_resource) {
            ctx->ops->detach_resource(ctx, resource);
            renderer->borrowed_memory_releases++;
        }
    }
}

void neep_contexts_release_backing(struct neep_renderer *renderer, struct neep_resource *resource)
{
    struct id_table *table = &renderer->contexts;
    for (size_t i = 0; i < table->capacity; i++) {
        if (!table->keys[i]) {
            continue;
        }
        struct neep_context *ctx = table->values[i];
        if (ctx->ops->release_backing && id_table_get(&ctx->attached_resources, resource->id)) {
            ctx->ops->release_backing(ctx, resource);
            renderer->borrowed_memory_releases++; /* it may have dropped a copy */
        }
    }
}

int neep_context_submit(struct neep_renderer *renderer, uint32_t ctx_id, const void *commands,
                        size_t size_bytes)
{
    struct neep_context *ctx = find_context(renderer, ctx_id, "submit");
    if (!ctx) {
        return -ESRCH;
    }
    if (size_bytes > NEEP_MAX_SUBMIT_BYTES) {
        renderer_error(renderer, "submit: %zu bytes to context %u, limit %u", size_bytes, ctx_id,
                       NEEP_MAX_SUBMIT_BYTES);
        return -E2BIG;
    }
    if (size_bytes > 0 && !commands) {
        return -EINVAL;
    }
    /* The context gets a private copy: the caller's buffer may be guest-writable. */
    int ret = neep_budget_charge(renderer, size_bytes);
    if (ret < 0) {
        return ret;
    }
    uint8_t *copy = malloc(size_bytes ? size_bytes : 1);
    if (!copy) {
        neep_budget_release(renderer, size_bytes);
        return -ENOMEM;
    }
    if (size_bytes > 0) {
        memcpy(copy, commands, size_bytes);
    }
    ret = ctx->ops->submit(ctx, copy, size_bytes);
    free(copy);
    neep_budget_release(renderer, size_bytes);
    return ret;
}
