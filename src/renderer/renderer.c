/* Renderer lifetime, the memory budget and capsets. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "contexts/context_type.h"
#include "renderer_internal.h"

int neep_budget_charge(struct neep_renderer *renderer, uint64_t bytes)
{
    uint64_t used = atomic_load(&renderer->memory_used_bytes);
    uint64_t wanted;
    do {
        if (__builtin_add_overflow(used, bytes, &wanted) ||
            wanted > renderer->memory_budget_bytes) {
            renderer_error(renderer,
                           "memory budget exceeded: %llu bytes requested, %llu of %llu in use",
                           (unsigned long long)bytes, (unsigned long long)used,
                           (unsigned long long)renderer->memory_budget_bytes);
            return -ENOMEM;
        }
    } while (!atomic_compare_exchange_weak(&renderer->memory_used_bytes, &used, wanted));
    return 0;
}

void neep_budget_release(struct neep_renderer *renderer, uint64_t bytes)
{
    atomic_fetch_sub(&renderer->memory_used_bytes, bytes);
}

uint64_t neep_renderer_memory_used_bytes(const struct neep_renderer *renderer)
{
    return atomic_load(&((struct neep_renderer *)renderer)->memory_used_bytes);
}

uint64_t neep_renderer_memory_budget_bytes(const struct neep_renderer *renderer)
{
    return renderer->memory_budget_bytes;
}

static const char *const capset_names[NEEP_CAPSET_ID_MAX + 1] = {
    [NEEP_CAPSET_VIRGL] = "virgl",
    [NEEP_CAPSET_VIRGL2] = "virgl2",
    [NEEP_CAPSET_GFXSTREAM_VULKAN] = "gfxstream-vulkan",
    [NEEP_CAPSET_VENUS] = "venus",
    [NEEP_CAPSET_CROSS_DOMAIN] = "cross-domain",
    [NEEP_CAPSET_DRM] = "drm",
    [NEEP_CAPSET_GFXSTREAM_MAGMA] = "magma",
    [NEEP_CAPSET_GFXSTREAM_GLES] = "gfxstream-gles",
    [NEEP_CAPSET_GFXSTREAM_COMPOSER] = "gfxstream-composer",
};

static const struct neep_context_type *find_type(const struct neep_context_type *const *types,
                                                 size_t type_count, uint32_t capset_id)
{
    for (size_t i = 0; i < type_count; i++) {
        if (types[i]->capset_id == capset_id) {
            return types[i];
        }
    }
    return NULL;
}

/* Probes each requested capset in id order; every requested one must be available. */
static int setup_capsets(struct neep_renderer *renderer,
                         const struct neep_context_type *const *types, size_t type_count)
{
    const uint64_t valid_bits = ((2ull << NEEP_CAPSET_ID_MAX) - 1) & ~1ull;
    if (renderer->capset_mask & ~valid_bits) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "capset mask 0x%llx names capsets that do not exist",
                      (unsigned long long)renderer->capset_mask);
        return -EINVAL;
    }
    for (uint32_t id = 1; id <= NEEP_CAPSET_ID_MAX; id++) {
        if (!(renderer->capset_mask & (1ull << id))) {
            continue;
        }
        const struct neep_context_type *type = find_type(types, type_count, id);
        if (!type) {
            neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                          "capset %u (%s) was requested but this build has no such context type",
                          id, capset_names[id]);
            return -EOPNOTSUPP;
        }
        struct neep_capset *capset = &renderer->capsets[renderer->capset_count];
        capset->type = type;
        capset->capset_id = id;
        int ret = type->probe(renderer, &capset->max_version, &capset->size_bytes, &capset->data);
        if (ret == -ELIBACC) {
            /* A context type whose library is not installed (gfxstream's backend, loaded at
             * run time) is absent, not an error: its probe said why. */
            continue;
        }
        if (ret < 0) {
            neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                          "context type %s cannot run on this host (%s)", type->name,
                          strerror(-ret));
            return ret;
        }
        renderer->capset_count++;
    }
    return 0;
}

static int copy_channels(struct neep_renderer *renderer, const struct neep_channel *channels,
                         size_t count)
{
    if (count == 0) {
        return 0;
    }
    if (!channels) {
        return -EINVAL;
    }
    renderer->channels = calloc(count, sizeof(*channels));
    if (!renderer->channels) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        if (!channels[i].path) {
            return -EINVAL;
        }
        renderer->channels[i].path = strdup(channels[i].path);
        if (!renderer->channels[i].path) {
            return -ENOMEM;
        }
        renderer->channels[i].type = channels[i].type;
        renderer->channel_count = i + 1;
    }
    return 0;
}

int neep_renderer_create_with_types(const struct neep_renderer_config *config,
                                    const struct neep_context_type *const *types, size_t type_count,
                                    struct neep_renderer **out)
{
    if (!config || !out) {
        return -EINVAL;
    }
    *out = NULL;
    struct neep_renderer *renderer = calloc(1, sizeof(*renderer));
    if (!renderer) {
        return -ENOMEM;
    }
    neep_logger_init(&renderer->logger, config->log_fn, config->log_user_data, config->log_level);
    renderer->capset_mask = config->capset_mask;
    renderer->memory_budget_bytes = config->memory_budget_bytes ? config->memory_budget_bytes
                                                                : NEEP_DEFAULT_MEMORY_BUDGET_BYTES;
    atomic_init(&renderer->memory_used_bytes, 0);
    id_table_init(&renderer->resources);
    id_table_init(&renderer->contexts);
    renderer->fence_event_fd = -1;

    int ret = neep_fences_init(renderer);
    if (ret == 0) {
        ret = copy_channels(renderer, config->channels, config->channel_count);
    }
    if (ret == 0 && config->render_node_path &&
        !(renderer->render_node_path = strdup(config->render_node_path))) {
        ret = -ENOMEM;
    }
    if (ret == 0) {
        ret = setup_capsets(renderer, types, type_count);
    }
    if (ret < 0) {
        neep_renderer_destroy(renderer);
        return ret;
    }
    *out = renderer;
    return 0;
}

int neep_renderer_create(const struct neep_renderer_config *config, struct neep_renderer **out)
{
    size_t type_count = 0;
    while (neep_builtin_context_types[type_count]) {
        type_count++;
    }
    return neep_renderer_create_with_types(config, neep_builtin_context_types, type_count, out);
}

void neep_renderer_destroy(struct neep_renderer *renderer)
{
    if (!renderer) {
        return;
    }
    neep_contexts_destroy_all(renderer);
    neep_resources_destroy_all(renderer);
    /* Context types may signal fences from their threads until they are released. */
    for (uint32_t i = renderer->capset_count; i-- > 0;) {
        if (renderer->capsets[i].type->release) {
            renderer->capsets[i].type->release(renderer);
        }
    }
    id_table_finish(&renderer->contexts);
    id_table_finish(&renderer->resources);
    neep_fences_finish(renderer);
    for (uint32_t i = 0; i < renderer->capset_count; i++) {
        free(renderer->capsets[i].data);
    }
    for (size_t i = 0; i < renderer->channel_count; i++) {
        free((char *)renderer->channels[i].path);
    }
    free(renderer->channels);
    free(renderer->render_node_path);
    neep_logger_finish(&renderer->logger);
    free(renderer);
}

uint32_t neep_capset_count(const struct neep_renderer *renderer)
{
    return renderer->capset_count;
}

int neep_capset_info(const struct neep_renderer *renderer, uint32_t index, uint32_t *capset_id,
                     uint32_t *max_version, uint32_t *size_bytes)
{
    if (index >= renderer->capset_count) {
        renderer_error((struct neep_renderer *)renderer,
                       "capset index %u out of range (%u capsets)", index, renderer->capset_count);
        return -EINVAL;
    }
    const struct neep_capset *capset = &renderer->capsets[index];
    *capset_id = capset->capset_id;
    *max_version = capset->max_version;
    *size_bytes = capset->size_bytes;
    return 0;
}

int neep_capset_get(const struct neep_renderer *renderer, uint32_t capset_id, uint32_t version,
                    void *buf, size_t buf_size_bytes)
{
    struct neep_renderer *mutable_renderer = (struct neep_renderer *)renderer;
    for (uint32_t i = 0; i < renderer->capset_count; i++) {
        const struct neep_capset *capset = &renderer->capsets[i];
        if (capset->capset_id != capset_id) {
            continue;
        }
        if (version > capset->max_version) {
            renderer_error(mutable_renderer, "capset %u has no version %u (max %u)", capset_id,
                           version, capset->max_version);
            return -EINVAL;
        }
        if (buf_size_bytes != capset->size_bytes || (!buf && buf_size_bytes)) {
            renderer_error(mutable_renderer, "capset %u is %u bytes, caller gave %zu", capset_id,
                           capset->size_bytes, buf_size_bytes);
            return -EINVAL;
        }
        if (buf_size_bytes > 0) {
            memcpy(buf, capset->data, buf_size_bytes);
        }
        return 0;
    }
    renderer_error(mutable_renderer, "capset %u is not enabled", capset_id);
    return -EINVAL;
}
