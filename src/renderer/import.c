/* Resources whose pixels live in a file descriptor handed in by the embedder. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "renderer_internal.h"
#include "util/checked.h"

#define KNOWN_IMPORT_FLAGS (NEEP_IMPORT_RESOURCE_EXISTS | NEEP_IMPORT_PRESERVE_CONTENT)

/* Maps `fd` after checking it holds the described image; takes ownership of fd on success. */
static int map_import(struct neep_renderer *renderer, uint32_t resource_id, int fd,
                      const struct neep_import *import, struct neep_host_storage *storage)
{
    if (import->width == 0 || import->height == 0 || import->width > NEEP_MAX_DIMENSION_PX ||
        import->height > NEEP_MAX_DIMENSION_PX) {
        renderer_error(renderer, "import %u: size %ux%u is empty or over the limit", resource_id,
                       import->width, import->height);
        return -EINVAL;
    }
    uint64_t row_bytes = (uint64_t)import->width * NEEP_BYTES_PER_PIXEL;
    if (import->stride_bytes < row_bytes) {
        renderer_error(renderer, "import %u: stride %u under the row size %llu", resource_id,
                       import->stride_bytes, (unsigned long long)row_bytes);
        return -EINVAL;
    }
    uint64_t needed_bytes;
    if (!checked_mul_add_u64(import->stride_bytes, import->height, import->offset_bytes,
                             &needed_bytes)) {
        return -EINVAL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        renderer_error(renderer, "import %u: fd %d is not usable: %s", resource_id, fd,
                       strerror(errno));
        return -EINVAL;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size < needed_bytes) {
        renderer_error(renderer, "import %u: the fd holds %lld bytes, the image needs %llu",
                       resource_id, (long long)st.st_size, (unsigned long long)needed_bytes);
        return -EINVAL;
    }
    void *mapping = mmap(NULL, needed_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapping == MAP_FAILED) {
        renderer_error(renderer, "import %u: cannot map the fd: %s", resource_id, strerror(errno));
        return -EINVAL;
    }
    storage->fd = fd;
    storage->handle_type = NEEP_HANDLE_MEM_OPAQUE_FD;
    storage->mapping = mapping;
    storage->mapping_bytes = needed_bytes;
    return 0;
}

static void copy_pixels(const struct neep_resource *from, uint8_t *to_pixels,
                        uint32_t to_stride_bytes)
{
    size_t row_bytes = (size_t)from->width_px * NEEP_BYTES_PER_PIXEL;
    for (uint32_t row = 0; row < from->height_px; row++) {
        memcpy(to_pixels + (size_t)row * to_stride_bytes,
               from->pixels + (size_t)row * from->stride_bytes, row_bytes);
    }
}

int neep_resource_import(struct neep_renderer *renderer, uint32_t resource_id, int fd,
                         const struct neep_import *import)
{
    int ret = -EINVAL;
    struct neep_host_storage storage = {.fd = -1};
    struct neep_resource *created = NULL;
    if (fd < 0 || !import) {
        goto out;
    }
    if (import->flags & ~KNOWN_IMPORT_FLAGS) {
        renderer_error(renderer, "import %u: unknown flags 0x%x", resource_id, import->flags);
        goto out;
    }
    uint32_t format = neep_format_from_drm_fourcc(import->drm_fourcc);
    if (format == 0) {
        renderer_error(renderer, "import %u: unsupported fourcc 0x%08x", resource_id,
                       import->drm_fourcc);
        goto out;
    }
    struct neep_resource *resource = neep_resource_lookup(renderer, resource_id);
    bool refresh = import->flags & NEEP_IMPORT_RESOURCE_EXISTS;
    if (refresh) {
        if (!resource) {
            renderer_error(renderer, "import: no resource %u to refresh", resource_id);
            ret = -ENOENT;
            goto out;
        }
        if (resource->kind != NEEP_RESOURCE_2D || resource->width_px != import->width ||
            resource->height_px != import->height) {
            renderer_error(renderer, "import %u: the image does not match the resource",
                           resource_id);
            goto out;
        }
    } else if (resource) {
        renderer_error(renderer, "import: resource id %u is already in use", resource_id);
        ret = -EEXIST;
        goto out;
    } else if (resource_id == 0) {
        goto out;
    }

    ret = map_import(renderer, resource_id, fd, import, &storage);
    if (ret < 0) {
        goto out;
    }
    fd = -1; /* now owned by storage */
    uint8_t *pixels = storage.mapping + import->offset_bytes;

    if (refresh) {
        if (import->flags & NEEP_IMPORT_PRESERVE_CONTENT) {
            copy_pixels(resource, pixels, import->stride_bytes);
        }
        /* The old storage's budget charge now covers the imported mapping. */
        neep_host_storage_release(&resource->storage);
        resource->storage = storage;
        resource->pixels = pixels;
        resource->stride_bytes = import->stride_bytes;
        resource->format = format;
        return 0;
    }

    ret = neep_resource_create_2d_storage(renderer, resource_id, format, import->width,
                                          import->height, &created);
    if (ret < 0) {
        goto out;
    }
    neep_host_storage_release(&created->storage);
    created->storage = storage;
    storage.fd = -1;
    storage.mapping = NULL;
    created->pixels = pixels;
    created->stride_bytes = import->stride_bytes;
    ret = neep_resource_insert(renderer, created);
    if (ret < 0) {
        neep_resource_free(renderer, created);
    }
out:
    neep_host_storage_release(&storage);
    if (fd >= 0) {
        close(fd);
    }
    return ret;
}
