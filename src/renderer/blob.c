/* Blob resources, and export and mapping of host memory (blobs' and the provider's). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "contexts/context_type.h"
#include "renderer_internal.h"

#define KNOWN_BLOB_FLAGS                                                                           \
    (NEEP_BLOB_FLAG_USE_MAPPABLE | NEEP_BLOB_FLAG_USE_SHAREABLE | NEEP_BLOB_FLAG_USE_CROSS_DEVICE)

static int create_host_blob(struct neep_renderer *renderer, uint32_t ctx_id,
                            struct neep_resource *resource, const struct neep_blob_create *create)
{
    if (ctx_id == 0) {
        renderer_error(renderer, "blob %u: host blobs need a context", resource->id);
        return -EINVAL;
    }
    struct neep_context *ctx = neep_context_lookup(renderer, ctx_id);
    if (!ctx) {
        renderer_error(renderer, "blob %u: no context %u", resource->id, ctx_id);
        return -ESRCH;
    }
    if (!ctx->ops->create_blob) {
        renderer_error(renderer, "blob %u: context %u cannot create host blobs", resource->id,
                       ctx_id);
        return -EOPNOTSUPP;
    }
    int ret = neep_budget_charge(renderer, create->size_bytes);
    if (ret < 0) {
        return ret;
    }
    resource->charged_bytes += create->size_bytes;

    struct neep_blob_storage blob = {.fd = -1};
    ret = ctx->ops->create_blob(ctx, resource->id, create, &blob);
    if (ret < 0) {
        return ret;
    }
    resource->storage.fd = blob.fd;
    resource->storage.handle_type = blob.handle_type;
    if (blob.size_bytes < create->size_bytes) {
        renderer_error(renderer, "blob %u: context gave %llu bytes, %llu asked", resource->id,
                       (unsigned long long)blob.size_bytes, (unsigned long long)create->size_bytes);
        return -EIO;
    }
    resource->map_info = blob.map_info;
    return 0;
}

int neep_resource_create_blob(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t resource_id,
                              const struct neep_blob_create *create, const struct iovec *backing,
                              size_t backing_count)
{
    if (!create) {
        return -EINVAL;
    }
    int ret = neep_resource_check_new_id(renderer, resource_id, "create_blob");
    if (ret < 0) {
        return ret;
    }
    if (create->blob_mem < NEEP_BLOB_MEM_GUEST || create->blob_mem > NEEP_BLOB_MEM_HOST3D_GUEST) {
        renderer_error(renderer, "create_blob %u: unknown blob_mem %u", resource_id,
                       create->blob_mem);
        return -EINVAL;
    }
    if (create->blob_flags & ~KNOWN_BLOB_FLAGS) {
        renderer_error(renderer, "create_blob %u: unknown flags 0x%x", resource_id,
                       create->blob_flags);
        return -EINVAL;
    }
    if (create->size_bytes == 0) {
        renderer_error(renderer, "create_blob %u: size is zero", resource_id);
        return -EINVAL;
    }
    if (create->blob_mem == NEEP_BLOB_MEM_HOST3D && backing_count > 0) {
        renderer_error(renderer, "create_blob %u: host-only blob given guest memory", resource_id);
        return -EINVAL;
    }

    const struct neep_resource_provider_ops *provider = renderer->resource_provider;
    struct neep_context *ctx = ctx_id ? neep_context_lookup(renderer, ctx_id) : NULL;
    bool provided = provider && ctx && provider->serves_context(ctx);

    struct neep_resource *resource = neep_resource_alloc(renderer, resource_id, NEEP_RESOURCE_BLOB);
    if (!resource) {
        return -ENOMEM;
    }
    resource->blob_mem = create->blob_mem;
    resource->blob_flags = create->blob_flags;
    resource->blob_id = create->blob_id;
    resource->size_bytes = create->size_bytes;

    if (backing_count > 0) {
        ret = neep_resource_take_backing(renderer, resource, backing, backing_count);
        if (ret == 0 && resource->backing_bytes < create->size_bytes) {
            renderer_error(renderer, "create_blob %u: %llu bytes of backing for a %llu-byte blob",
                           resource_id, (unsigned long long)resource->backing_bytes,
                           (unsigned long long)create->size_bytes);
            ret = -EINVAL;
        }
    }
    if (ret == 0 && provided) {
        /* Host memory the provider allocates for the blob is charged as it is asked for. */
        if (create->blob_mem != NEEP_BLOB_MEM_GUEST) {
            ret = neep_budget_charge(renderer, create->size_bytes);
            resource->charged_bytes += ret == 0 ? create->size_bytes : 0;
        }
        if (ret == 0) {
            ret = provider->create_blob(renderer, resource, ctx_id);
        }
        if (ret == 0) {
            resource->kind = NEEP_RESOURCE_PROVIDED; /* freeing it tells the provider */
        }
    } else if (ret == 0 && create->blob_mem != NEEP_BLOB_MEM_GUEST) {
        ret = create_host_blob(renderer, ctx_id, resource, create);
    }
    if (ret == 0) {
        ret = neep_resource_insert(renderer, resource);
    }
    if (ret < 0) {
        neep_resource_free(renderer, resource);
    }
    return ret;
}

/* A blob kept by the renderer's provider. */
static bool is_provided_blob(const struct neep_resource *resource)
{
    return resource->kind == NEEP_RESOURCE_PROVIDED && resource->blob_mem != 0;
}

int neep_resource_export(struct neep_renderer *renderer, uint32_t resource_id, int *fd,
                         uint32_t *handle_type)
{
    struct neep_resource *resource = neep_resource_find(renderer, resource_id, "export");
    if (!resource) {
        return -ENOENT;
    }
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        if (!is_provided_blob(resource) ||
            !(resource->blob_flags &
              (NEEP_BLOB_FLAG_USE_SHAREABLE | NEEP_BLOB_FLAG_USE_CROSS_DEVICE))) {
            renderer_error(renderer, "export: resource %u was not created as a shareable blob",
                           resource_id);
            return -EOPNOTSUPP;
        }
        return renderer->resource_provider->export_blob(renderer, resource, fd, handle_type);
    }
    if (resource->storage.fd < 0) {
        renderer_error(renderer, "export: resource %u has no host memory to share", resource_id);
        return -EOPNOTSUPP;
    }
    const uint32_t share_flags = NEEP_BLOB_FLAG_USE_SHAREABLE | NEEP_BLOB_FLAG_USE_CROSS_DEVICE;
    if (resource->kind == NEEP_RESOURCE_BLOB && !(resource->blob_flags & share_flags)) {
        renderer_error(renderer, "export: blob %u was not created shareable", resource_id);
        return -EOPNOTSUPP;
    }
    int copy = fcntl(resource->storage.fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR, "export: dup failed: %s", strerror(errno));
        return -EIO;
    }
    *fd = copy;
    *handle_type = resource->storage.handle_type;
    return 0;
}

static int find_mappable(struct neep_renderer *renderer, uint32_t resource_id, const char *what,
                         struct neep_resource **out)
{
    struct neep_resource *resource = neep_resource_find(renderer, resource_id, what);
    if (!resource) {
        return -ENOENT;
    }
    bool has_memory = resource->kind == NEEP_RESOURCE_BLOB ? resource->storage.fd >= 0
                                                           : is_provided_blob(resource);
    if (!has_memory || !(resource->blob_flags & NEEP_BLOB_FLAG_USE_MAPPABLE)) {
        renderer_error(renderer, "%s: resource %u is not a mappable host blob", what, resource_id);
        return -EOPNOTSUPP;
    }
    *out = resource;
    return 0;
}

int neep_resource_map(struct neep_renderer *renderer, uint32_t resource_id, void **ptr,
                      uint64_t *size_bytes)
{
    struct neep_resource *resource;
    int ret = find_mappable(renderer, resource_id, "map", &resource);
    if (ret < 0) {
        return ret;
    }
    if (resource->host_map) {
        renderer_error(renderer, "map: resource %u is already mapped", resource_id);
        return -EEXIST;
    }
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        ret = renderer->resource_provider->map(renderer, resource, ptr, size_bytes);
        if (ret < 0) {
            return ret;
        }
        /* The object behind a blob was made by the context's command stream; what the guest
         * claimed at CREATE_BLOB was charged then. Charge the rest before handing it out. */
        uint64_t charged_blob_bytes = resource->blob_mem == NEEP_BLOB_MEM_GUEST
                                          ? 0
                                          : resource->size_bytes + resource->extra_charged_bytes;
        if (*size_bytes > charged_blob_bytes) {
            uint64_t extra = *size_bytes - charged_blob_bytes;
            ret = neep_budget_charge(renderer, extra);
            if (ret < 0) {
                renderer_error(renderer,
                               "map: blob %u is %llu bytes behind the %llu the guest claimed, "
                               "over the budget",
                               resource_id, (unsigned long long)*size_bytes,
                               (unsigned long long)resource->size_bytes);
                renderer->resource_provider->unmap(renderer, resource);
                return ret;
            }
            resource->charged_bytes += extra;
            resource->extra_charged_bytes += extra;
        }
        resource->host_map = *ptr;
        resource->host_map_bytes = *size_bytes;
        return 0;
    }
    int prot = 0;
    uint32_t access = resource->map_info & 0xf0u;
    prot |= (access & 0x10u) ? PROT_READ : 0;
    prot |= (access & 0x20u) ? PROT_WRITE : 0;
    if (prot == 0) {
        prot = PROT_READ | PROT_WRITE;
    }
    void *mapping = mmap(NULL, resource->size_bytes, prot, MAP_SHARED, resource->storage.fd, 0);
    if (mapping == MAP_FAILED) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR, "map: resource %u: %s", resource_id,
                      strerror(errno));
        return -EIO;
    }
    resource->host_map = mapping;
    resource->host_map_bytes = resource->size_bytes;
    *ptr = mapping;
    *size_bytes = resource->size_bytes;
    return 0;
}

int neep_resource_unmap(struct neep_renderer *renderer, uint32_t resource_id)
{
    struct neep_resource *resource;
    int ret = find_mappable(renderer, resource_id, "unmap", &resource);
    if (ret < 0) {
        return ret;
    }
    if (!resource->host_map) {
        renderer_error(renderer, "unmap: resource %u is not mapped", resource_id);
        return -EINVAL;
    }
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        ret = renderer->resource_provider->unmap(renderer, resource);
    } else {
        munmap(resource->host_map, resource->host_map_bytes);
    }
    resource->host_map = NULL;
    resource->host_map_bytes = 0;
    return ret;
}

int neep_resource_map_info(const struct neep_renderer *renderer, uint32_t resource_id,
                           uint32_t *map_info)
{
    struct neep_resource *resource;
    int ret = find_mappable((struct neep_renderer *)renderer, resource_id, "map_info", &resource);
    if (ret < 0) {
        return ret;
    }
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        return renderer->resource_provider->map_info((struct neep_renderer *)renderer, resource,
                                                     map_info);
    }
    *map_info = resource->map_info;
    return 0;
}
