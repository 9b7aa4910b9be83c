/* The resource table: creation of 2D and 3D resources, backing, borrowed memory. Blobs,
 * export and mapping are in blob.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "contexts/context_type.h"
#include "renderer_internal.h"
#include "util/checked.h"
#include "util/iov.h"

struct neep_resource *neep_resource_lookup(const struct neep_renderer *renderer, uint32_t id)
{
    return id_table_get(&renderer->resources, id);
}

/* Looks a resource up and logs the miss; `what` names the operation for the log line. */
struct neep_resource *neep_resource_find(struct neep_renderer *renderer, uint32_t id,
                                         const char *what)
{
    struct neep_resource *resource = neep_resource_lookup(renderer, id);
    if (!resource) {
        renderer_error(renderer, "%s: no resource %u", what, id);
    }
    return resource;
}

int neep_resource_insert(struct neep_renderer *renderer, struct neep_resource *resource)
{
    int ret = id_table_insert(&renderer->resources, resource->id, resource);
    if (ret == -EEXIST) {
        renderer_error(renderer, "resource id %u is already in use", resource->id);
    }
    return ret;
}

void neep_host_storage_release(struct neep_host_storage *storage)
{
    if (storage->mapping) {
        munmap(storage->mapping, storage->mapping_bytes);
        storage->mapping = NULL;
    }
    if (storage->fd >= 0) {
        close(storage->fd);
        storage->fd = -1;
    }
}

static void drop_backing(struct neep_renderer *renderer, struct neep_resource *resource)
{
    if (resource->backing) {
        renderer->borrowed_memory_releases++;
    }
    free(resource->backing);
    resource->backing = NULL;
    resource->backing_count = 0;
    resource->backing_bytes = 0;
    neep_budget_release(renderer, resource->backing_charged_bytes);
    resource->backing_charged_bytes = 0;
}

void neep_resource_free(struct neep_renderer *renderer, struct neep_resource *resource)
{
    if (!resource) {
        return;
    }
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        renderer->resource_provider->destroy(renderer, resource);
    }
    if (resource->host_map) {
        munmap(resource->host_map, resource->host_map_bytes);
    }
    neep_host_storage_release(&resource->storage);
    drop_backing(renderer, resource);
    neep_budget_release(renderer, resource->charged_bytes);
    free(resource);
}

void neep_resources_destroy_all(struct neep_renderer *renderer)
{
    struct id_table *table = &renderer->resources;
    for (size_t i = 0; i < table->capacity; i++) {
        if (table->keys[i]) {
            neep_resource_free(renderer, table->values[i]);
        }
    }
    id_table_finish(table);
    id_table_init(table);
}

struct neep_resource *neep_resource_alloc(struct neep_renderer *renderer, uint32_t id,
                                          enum neep_resource_kind kind)
{
    if (neep_budget_charge(renderer, NEEP_OBJECT_OVERHEAD_BYTES) < 0) {
        return NULL;
    }
    struct neep_resource *resource = calloc(1, sizeof(*resource));
    if (!resource) {
        neep_budget_release(renderer, NEEP_OBJECT_OVERHEAD_BYTES);
        return NULL;
    }
    resource->id = id;
    resource->kind = kind;
    resource->storage.fd = -1;
    resource->charged_bytes = NEEP_OBJECT_OVERHEAD_BYTES;
    return resource;
}

/* A sealed memfd of `size_bytes`, mapped read-write. Zero-filled by the kernel. */
static int create_memfd_storage(struct neep_renderer *renderer, uint64_t size_bytes,
                                struct neep_host_storage *storage)
{
    int fd = memfd_create("neep-resource", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR, "memfd_create failed: %s",
                      strerror(errno));
        return -ENOMEM;
    }
    if (ftruncate(fd, (off_t)size_bytes) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR, "sizing a %llu-byte memfd failed: %s",
                      (unsigned long long)size_bytes, strerror(errno));
        close(fd);
        return -ENOMEM;
    }
    void *mapping = mmap(NULL, size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapping == MAP_FAILED) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR, "mapping a %llu-byte memfd failed: %s",
                      (unsigned long long)size_bytes, strerror(errno));
        close(fd);
        return -ENOMEM;
    }
    storage->fd = fd;
    storage->handle_type = NEEP_HANDLE_MEM_SHM;
    storage->mapping = mapping;
    storage->mapping_bytes = size_bytes;
    return 0;
}

/* A new resource's id must be neither 0 nor taken; `what` names the operation for the log. */
int neep_resource_check_new_id(struct neep_renderer *renderer, uint32_t id, const char *what)
{
    if (id == 0) {
        renderer_error(renderer, "%s: resource id 0 is reserved", what);
        return -EINVAL;
    }
    if (neep_resource_lookup(renderer, id)) {
        renderer_error(renderer, "%s: resource id %u is already in use", what, id);
        return -EEXIST;
    }
    return 0;
}

/* A resource whose storage of `size_bytes` is charged to the budget (and freed with it). */
static int alloc_charged(struct neep_renderer *renderer, uint32_t id, uint64_t size_bytes,
                         struct neep_resource **out)
{
    struct neep_resource *resource = neep_resource_alloc(renderer, id, NEEP_RESOURCE_2D);
    if (!resource) {
        return -ENOMEM;
    }
    int ret = neep_budget_charge(renderer, size_bytes);
    if (ret < 0) {
        neep_resource_free(renderer, resource);
        return ret;
    }
    resource->charged_bytes += size_bytes;
    *out = resource;
    return 0;
}

static int check_dimensions(struct neep_renderer *renderer, uint32_t width_px, uint32_t height_px)
{
    if (width_px == 0 || height_px == 0) {
        renderer_error(renderer, "resource size %ux%u is empty", width_px, height_px);
        return -EINVAL;
    }
    if (width_px > NEEP_MAX_DIMENSION_PX || height_px > NEEP_MAX_DIMENSION_PX) {
        renderer_error(renderer, "resource size %ux%u is over the limit of %u", width_px, height_px,
                       NEEP_MAX_DIMENSION_PX);
        return -E2BIG;
    }
    return 0;
}

int neep_resource_create_2d_storage(struct neep_renderer *renderer, uint32_t id, uint32_t format,
                                    uint32_t width_px, uint32_t height_px,
                                    struct neep_resource **out)
{
    int ret = neep_resource_check_new_id(renderer, id, "create");
    if (ret < 0) {
        return ret;
    }
    if (!neep_format_is_valid(format)) {
        renderer_error(renderer, "resource %u: unknown format %u", id, format);
        return -EINVAL;
    }
    ret = check_dimensions(renderer, width_px, height_px);
    if (ret < 0) {
        return ret;
    }
    /* Both dimensions are at most 2^14, so these products cannot overflow. */
    uint32_t stride_bytes = width_px * NEEP_BYTES_PER_PIXEL;
    uint64_t size_bytes = (uint64_t)stride_bytes * height_px;

    struct neep_resource *resource;
    ret = alloc_charged(renderer, id, size_bytes, &resource);
    if (ret < 0) {
        return ret;
    }
    ret = create_memfd_storage(renderer, size_bytes, &resource->storage);
    if (ret < 0) {
        neep_resource_free(renderer, resource);
        return ret;
    }
    resource->format = format;
    resource->width_px = width_px;
    resource->height_px = height_px;
    resource->stride_bytes = stride_bytes;
    resource->size_bytes = size_bytes;
    resource->pixels = resource->storage.mapping;
    *out = resource;
    return 0;
}

/* Limits on what a provided resource may ask for, past the 2D dimension limit. */
#define MAX_PROVIDED_DEPTH       2048u
#define MAX_PROVIDED_LAYERS      2048u
#define MAX_PROVIDED_LEVELS      15u
#define MAX_PROVIDED_SAMPLES     32u
#define PIPE_BUFFER_TARGET       0u
#define PROVIDED_BYTES_PER_TEXEL 4u

/*
 * What a provided resource costs the host, as the guest described it: texels times 4 bytes
 * (the provider's formats vary; this is what most of them take), a third more with mip
 * levels, samples counted. Buffers are `width` bytes.
 */
static int provided_resource_bytes(struct neep_renderer *renderer, uint32_t id,
                                   const struct neep_resource_create_3d *create, uint64_t *out)
{
    uint32_t layers = create->array_size ? create->array_size : 1;
    uint32_t samples = create->nr_samples ? create->nr_samples : 1;
    uint32_t depth = create->depth ? create->depth : 1;
    if (create->width == 0 || create->height == 0) {
        renderer_error(renderer, "resource %u: size %ux%u is empty", id, create->width,
                       create->height);
        return -EINVAL;
    }
    bool is_buffer = create->target == PIPE_BUFFER_TARGET;
    if ((!is_buffer && create->width > NEEP_MAX_DIMENSION_PX) ||
        create->height > NEEP_MAX_DIMENSION_PX || depth > MAX_PROVIDED_DEPTH ||
        layers > MAX_PROVIDED_LAYERS || create->last_level >= MAX_PROVIDED_LEVELS ||
        samples > MAX_PROVIDED_SAMPLES) {
        renderer_error(renderer,
                       "resource %u: %ux%ux%u, %u layers, %u levels, %u samples is over the "
                       "limits (%u a side, depth and layers %u, %u levels, %u samples)",
                       id, create->width, create->height, depth, layers, create->last_level + 1,
                       samples, NEEP_MAX_DIMENSION_PX, MAX_PROVIDED_LAYERS, MAX_PROVIDED_LEVELS,
                       MAX_PROVIDED_SAMPLES);
        return -E2BIG;
    }
    uint64_t bytes = is_buffer
                         ? create->width
                         : (uint64_t)create->width * create->height * PROVIDED_BYTES_PER_TEXEL;
    /* At most 2^14 * 2^14 * 4 * 2^11 * 2^11 * 2^5: the products below fit in 64 bits. */
    bytes *= (uint64_t)depth * layers * samples;
    if (create->last_level > 0) {
        bytes += bytes / 3;
    }
    *out = bytes;
    return 0;
}

static int create_provided(struct neep_renderer *renderer, uint32_t resource_id,
                           const struct neep_resource_create_3d *create)
{
    int ret = neep_resource_check_new_id(renderer, resource_id, "create_3d");
    if (ret < 0) {
        return ret;
    }
    uint64_t size_bytes;
    ret = provided_resource_bytes(renderer, resource_id, create, &size_bytes);
    if (ret < 0) {
        return ret;
    }
    struct neep_resource *resource;
    ret = alloc_charged(renderer, resource_id, size_bytes, &resource);
    if (ret < 0) {
        return ret;
    }
    resource->create_3d = *create;
    resource->format = create->format;
    resource->width_px = create->width;
    resource->height_px = create->height;
    resource->size_bytes = size_bytes;
    ret = renderer->resource_provider->create_3d(renderer, resource);
    if (ret < 0) {
        neep_resource_free(renderer, resource);
        return ret;
    }
    resource->kind = NEEP_RESOURCE_PROVIDED; /* from here on, freeing it tells the provider */
    ret = neep_resource_insert(renderer, resource);
    if (ret < 0) {
        neep_resource_free(renderer, resource);
    }
    return ret;
}

int neep_resource_create_3d(struct neep_renderer *renderer, uint32_t resource_id,
                            const struct neep_resource_create_3d *create)
{
    if (!create) {
        return -EINVAL;
    }
    if (renderer->resource_provider && renderer->resource_provider->create_3d) {
        return create_provided(renderer, resource_id, create);
    }
    if (create->target != NEEP_TARGET_TEXTURE_2D || create->depth > 1 || create->array_size > 1 ||
        create->last_level != 0 || create->nr_samples > 1) {
        renderer_error(renderer,
                       "resource %u: target %u depth %u layers %u levels %u samples %u needs a "
                       "3D context type; only single-level 2D textures are built in",
                       resource_id, create->target, create->depth, create->array_size,
                       create->last_level + 1, create->nr_samples);
        return -EOPNOTSUPP;
    }
    struct neep_resource *resource;
    int ret = neep_resource_create_2d_storage(renderer, resource_id, create->format, create->width,
                                              create->height, &resource);
    if (ret < 0) {
        return ret;
    }
    ret = neep_resource_insert(renderer, resource);
    if (ret < 0) {
        neep_resource_free(renderer, resource);
    }
    return ret;
}

/* Copies a guest iovec list after checking its shape, charging the copy to the budget. */
int neep_resource_take_backing(struct neep_renderer *renderer, struct neep_resource *resource,
                               const struct iovec *backing, size_t backing_count)
{
    if (backing_count == 0) {
        renderer_error(renderer, "resource %u: backing with no entries", resource->id);
        return -EINVAL;
    }
    if (!backing) {
        return -EINVAL;
    }
    if (backing_count > NEEP_MAX_BACKING_ENTRIES) {
        renderer_error(renderer, "resource %u: %zu backing entries, limit %u", resource->id,
                       backing_count, NEEP_MAX_BACKING_ENTRIES);
        return -E2BIG;
    }
    uint64_t total_bytes;
    if (!iov_total_bytes(backing, backing_count, &total_bytes)) {
        renderer_error(renderer, "resource %u: backing length overflows", resource->id);
        return -EINVAL;
    }
    for (size_t i = 0; i < backing_count; i++) {
        if (backing[i].iov_len > 0 && !backing[i].iov_base) {
            renderer_error(renderer, "resource %u: backing entry %zu has no address", resource->id,
                           i);
            return -EINVAL;
        }
    }
    uint64_t array_bytes = (uint64_t)backing_count * sizeof(*backing);
    int ret = neep_budget_charge(renderer, array_bytes);
    if (ret < 0) {
        return ret;
    }
    struct iovec *copy = malloc(array_bytes);
    if (!copy) {
        neep_budget_release(renderer, array_bytes);
        return -ENOMEM;
    }
    memcpy(copy, backing, array_bytes);
    resource->backing = copy;
    resource->backing_count = backing_count;
    resource->backing_bytes = total_bytes;
    resource->backing_charged_bytes = array_bytes;
    return 0;
}

int neep_resource_attach_backing(struct neep_renderer *renderer, uint32_t resource_id,
                                 const struct iovec *backing, size_t backing_count)
{
    struct neep_resource *resource = neep_resource_find(renderer, resource_id, "attach_backing");
    if (!resource) {
        return -ENOENT;
    }
    if (resource->backing) {
        renderer_error(renderer, "attach_backing: resource %u already has backing", resource_id);
        return -EEXIST;
    }
    if (resource->kind == NEEP_RESOURCE_BLOB && resource->blob_mem == NEEP_BLOB_MEM_HOST3D) {
        renderer_error(renderer, "attach_backing: resource %u is a host-only blob", resource_id);
        return -EOPNOTSUPP;
    }
    int ret = neep_resource_take_backing(renderer, resource, backing, backing_count);
    if (ret == 0 && resource->kind == NEEP_RESOURCE_PROVIDED) {
        ret = renderer->resource_provider->attach_backing(renderer, resource);
        if (ret < 0) {
            drop_backing(renderer, resource);
        }
    }
    return ret;
}

int neep_resource_detach_backing(struct neep_renderer *renderer, uint32_t resource_id)
{
    struct neep_resource *resource = neep_resource_find(renderer, resource_id, "detach_backing");
    if (!resource) {
        return -ENOENT;
    }
    neep_contexts_release_backing(renderer, resource);
    if (resource->kind == NEEP_RESOURCE_PROVIDED && resource->backing) {
        renderer->resource_provider->detach_backing(renderer, resource);
    }
    drop_backing(renderer, resource);
    return 0;
}

bool neep_ranges_overlap(const void *base, size_t size_bytes, const void *begin, size_t range_bytes)
{
    uintptr_t a = (uintptr_t)base, b = (uintptr_t)begin;
    return size_bytes > 0 && range_bytes > 0 && a < b + range_bytes && b < a + size_bytes;
}

void neep_renderer_visit_borrowed_memory(struct neep_renderer *renderer,
                                         neep_borrowed_memory_fn visit, void *user_data)
{
    const struct id_table *resources = &renderer->resources;
    for (size_t i = 0; i < resources->capacity; i++) {
        const struct neep_resource *resource = resources->keys[i] ? resources->values[i] : NULL;
        for (size_t j = 0; resource && j < resource->backing_count; j++) {
            visit(user_data, resource->backing[j].iov_base, resource->backing[j].iov_len);
        }
    }
    const struct id_table *contexts = &renderer->contexts;
    for (size_t i = 0; i < contexts->capacity; i++) {
        struct neep_context *ctx = contexts->keys[i] ? contexts->values[i] : NULL;
        if (ctx && ctx->ops->visit_borrowed_memory) {
            ctx->ops->visit_borrowed_memory(ctx, visit, user_data);
        }
    }
}

void neep_renderer_forget_borrowed_memory(struct neep_renderer *renderer, const void *begin,
                                          size_t size_bytes)
{
    struct id_table *resources = &renderer->resources;
    for (size_t i = 0; i < resources->capacity; i++) {
        struct neep_resource *resource = resources->keys[i] ? resources->values[i] : NULL;
        for (size_t j = 0; resource && j < resource->backing_count; j++) {
            if (neep_ranges_overlap(resource->backing[j].iov_base, resource->backing[j].iov_len,
                                    begin, size_bytes)) {
                renderer_error(renderer,
                               "resource %u loses its backing: the memory it lived in is gone",
                               resource->id);
                if (resource->kind == NEEP_RESOURCE_PROVIDED) {
                    renderer->resource_provider->detach_backing(renderer, resource);
                }
                drop_backing(renderer, resource);
                break;
            }
        }
    }
    struct id_table *contexts = &renderer->contexts;
    for (size_t i = 0; i < contexts->capacity; i++) {
        struct neep_context *ctx = contexts->keys[i] ? contexts->values[i] : NULL;
        if (ctx && ctx->ops->forget_borrowed_memory) {
            ctx->ops->forget_borrowed_memory(ctx, begin, size_bytes);
        }
    }
}

int neep_resource_unref(struct neep_renderer *renderer, uint32_t resource_id)
{
    struct neep_resource *resource = neep_resource_find(renderer, resource_id, "unref");
    if (!resource) {
        return -ENOENT;
    }
    if (resource->host_map) {
        /* The VMM maps it into the guest's window until RESOURCE_UNMAP_BLOB: freed now, the
         * guest would keep the memory (reused by the host) or fault the VMM. */
        renderer_error(renderer, "unref: resource %u is still mapped (unmap it first)",
                       resource_id);
        return -EBUSY;
    }
    neep_contexts_detach_resource_everywhere(renderer, resource);
    id_table_remove(&renderer->resources, resource_id);
    neep_resource_free(renderer, resource);
    return 0;
}

int neep_resource_get_info(const struct neep_renderer *renderer, uint32_t resource_id,
                           struct neep_resource_info *info)
{
    const struct neep_resource *resource = neep_resource_lookup(renderer, resource_id);
    if (!resource || !info) {
        return -ENOENT;
    }
    memset(info, 0, sizeof(*info));
    info->format = resource->format;
    info->width = resource->width_px;
    info->height = resource->height_px;
    info->stride_bytes = resource->stride_bytes;
    info->size_bytes = resource->size_bytes;
    info->is_blob = resource->kind == NEEP_RESOURCE_BLOB || resource->blob_mem != 0;
    info->blob_mem = resource->blob_mem;
    info->blob_flags = resource->blob_flags;
    info->has_backing = resource->backing != NULL;
    info->is_3d_provided = resource->kind == NEEP_RESOURCE_PROVIDED;
    return 0;
}
