/*
 * The backend's API (struct gfxstream_api) on its server (gfxstream_remote.c carries the
 * calls), so the rest of neep calls it as it would the library. What cannot cross as it is:
 *  - guest backing: the server never sees guest memory. Each resource with backing has a
 *    staging memfd of the backing's size, mapped on both sides; a transfer copies the rows of
 *    its box between the guest's pages and the staging here, and the backend moves them
 *    between the staging and its object there;
 *  - blobs: the backend runs with external and system blobs, so every mappable blob is a
 *    memfd it exports; neep maps it, or hands it out, only as a memfd on tmpfs sealed against
 *    shrinking (a server a guest took over must not pull pages from under the VMM's mapping).
 * Embedder thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "gfxstream_internal.h"
#include "gfxstream_protocol.h"
#include "util/checked.h"
#include "util/iov.h"

/* What neep keeps per resource of the server's. Embedder thread only. */
struct remote_resource {
    uint32_t format;
    uint32_t width_px;
    uint32_t height_px;
    const struct iovec *backing; /* the renderer's list, valid until detached */
    size_t backing_count;
    uint8_t *staging; /* shared with the server */
    uint64_t staging_bytes;
    void *map; /* a blob's memfd, mapped for the guest */
    uint64_t map_bytes;
};

static struct id_table resources;
/* Replies to this file's calls, and the last capset read (for fill_caps). */
static struct gfxstream_reply reply;
static uint8_t capset[GFXSTREAM_MAX_CAPSET_BYTES];
static uint32_t capset_id;
static uint32_t capset_bytes;

static int call(struct gfxstream_call *request, int fd_in, int *fd_out)
{
    return gfxstream_remote_call(request, fd_in, &reply, NULL, fd_out);
}

/* ---- resources: staging and maps ------------------------------------------------------------ */

static struct remote_resource *resource_for(uint32_t id, bool create)
{
    bool created;
    return create ? id_table_get_or_add(&resources, id, sizeof(struct remote_resource), &created)
                  : id_table_get(&resources, id);
}

static void drop_staging(struct remote_resource *resource)
{
    if (resource->staging) {
        munmap(resource->staging, (size_t)resource->staging_bytes);
    }
    resource->staging = NULL;
    resource->staging_bytes = 0;
    resource->backing = NULL;
    resource->backing_count = 0;
}

static void forget(uint32_t id)
{
    struct remote_resource *resource = id_table_remove(&resources, id);
    if (resource) {
        drop_staging(resource);
        if (resource->map) {
            munmap(resource->map, (size_t)resource->map_bytes);
        }
        free(resource);
    }
}

/* A memfd of `size_bytes` that neither side can resize, mapped here; -errno. */
static int make_staging(uint64_t size_bytes, uint8_t **mapped)
{
    if (size_bytes == 0 || size_bytes > SIZE_MAX) {
        return -EINVAL;
    }
    int fd = memfd_create("neep-gfxstream-staging", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        return -errno;
    }
    if (ftruncate(fd, (off_t)size_bytes) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    void *address = mmap(NULL, (size_t)size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (address == MAP_FAILED) {
        int error = errno;
        close(fd);
        return -error;
    }
    *mapped = address;
    return fd;
}

/*
 * Copies what a transfer of `box` moves between guest memory (`list`) and the staging: the
 * rows of the box in the backend's linear layout (rows of width x bytes per pixel), or, for
 * YUV, everything. Both are `size_bytes` long; bytes past that are not the backend's either.
 * The box lies within the image (gfxstream_resources.c checked): each row is at most one
 * image row, at most the image's height of them, so the work is bounded by the staging's size.
 */
static void copy_box(const struct remote_resource *resource, const struct gfxstream_box *box,
                     const struct iovec *list, size_t count, uint8_t *staging, uint64_t size_bytes,
                     bool to_staging)
{
    struct iov_cursor cursor;
    iov_cursor_init(&cursor, list, count);
    uint64_t bytes_per_pixel = gfxstream_format_bytes_per_pixel(resource->format);
    uint64_t row_bytes = 0, stride_bytes = 0;
    if (bytes_per_pixel == 0) {
        row_bytes = size_bytes; /* one "row": all of it */
    } else if ((uint64_t)box->x + box->w > resource->width_px ||
               (uint64_t)box->y + box->h > resource->height_px ||
               !checked_mul_u64(box->w, bytes_per_pixel, &row_bytes) ||
               !checked_mul_u64(resource->width_px, bytes_per_pixel, &stride_bytes)) {
        return; /* not the image's: the backend refuses it too */
    }
    uint32_t rows = bytes_per_pixel == 0 ? 1 : box->h;
    for (uint32_t row = 0; row < rows; row++) {
        uint64_t start = 0, end = 0;
        if (bytes_per_pixel != 0 &&
            (!checked_mul_add_u64((uint64_t)box->y + row, stride_bytes,
                                  (uint64_t)box->x * bytes_per_pixel, &start))) {
            return;
        }
        if (start >= size_bytes || !checked_add_u64(start, row_bytes, &end)) {
            return; /* the backend refuses boxes past its copy; so does this */
        }
        size_t length = (size_t)((end < size_bytes ? end : size_bytes) - start);
        iov_cursor_seek(&cursor, start);
        if (to_staging) {
            iov_cursor_read(&cursor, staging + start, length);
        } else {
            iov_cursor_write(&cursor, staging + start, length);
        }
    }
}

/* ---- the API ------------------------------------------------------------------------------ */

static void remote_get_cap_set(uint32_t set, uint32_t *max_version, uint32_t *max_size)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_GET_CAPSET, .value = set};
    size_t got = 0;
    int ret = gfxstream_remote_call(&request, -1, &reply, &got, NULL);
    uint32_t size = reply.values[1];
    capset_bytes = 0;
    *max_size = 0;
    if (ret == 0 && size > 0 && size <= sizeof(capset) &&
        got == GFXSTREAM_REPLY_HEADER_BYTES + size) {
        memcpy(capset, reply.data, size);
        capset_id = set;
        capset_bytes = size;
        *max_version = reply.values[0];
        *max_size = size;
    }
}

static void remote_fill_caps(uint32_t set, uint32_t version, void *caps)
{
    (void)version;
    if (set == capset_id && capset_bytes) {
        memcpy(caps, capset, capset_bytes);
    }
}

static int remote_context_create(uint32_t ctx_id, uint32_t name_length, const char *name,
                                 uint32_t context_init)
{
    struct gfxstream_call request = {
        .op = GFXSTREAM_CALL_CONTEXT_CREATE, .ctx_id = ctx_id, .value = context_init};
    request.u.name.length =
        name_length < GFXSTREAM_MAX_NAME_BYTES ? name_length : GFXSTREAM_MAX_NAME_BYTES;
    memcpy(request.u.name.bytes, name, request.u.name.length);
    return call(&request, -1, NULL);
}

static void remote_context_destroy(uint32_t ctx_id)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_CONTEXT_DESTROY, .ctx_id = ctx_id};
    call(&request, -1, NULL);
}

static void remote_ctx_attach_resource(int ctx_id, int resource_id)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_ATTACH_RESOURCE,
                                     .ctx_id = (uint32_t)ctx_id,
                                     .resource_id = (uint32_t)resource_id};
    call(&request, -1, NULL);
}

static void remote_ctx_detach_resource(int ctx_id, int resource_id)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_DETACH_RESOURCE,
                                     .ctx_id = (uint32_t)ctx_id,
                                     .resource_id = (uint32_t)resource_id};
    call(&request, -1, NULL);
}

static int remote_submit_cmd(struct gfxstream_command *command)
{
    /* Only a render thread's start and an announcement need their answer (neep records
     * them); the rest go without waiting. */
    uint32_t op = 0;
    memcpy(&op, command->cmd, command->cmd_size >= 4 ? 4 : 0);
    bool answer = op == GFXSTREAM_CMD_CONTEXT_CREATE || op == GFXSTREAM_CMD_RESOURCE_CREATE_3D;
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_SUBMIT |
                                           (answer ? 0 : GFXSTREAM_CALL_NO_REPLY),
                                     .ctx_id = command->ctx_id};
    /* The backend copies at most RESOURCE_CREATE_3D's 56 bytes of a command. */
    request.u.command.size_bytes = command->cmd_size < GFXSTREAM_MAX_COMMAND_BYTES
                                       ? command->cmd_size
                                       : GFXSTREAM_MAX_COMMAND_BYTES;
    memcpy(request.u.command.bytes, command->cmd, request.u.command.size_bytes);
    return call(&request, -1, NULL);
}

static int remote_create_fence(const struct gfxstream_fence *fence)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_CREATE_FENCE | GFXSTREAM_CALL_NO_REPLY};
    request.u.fence = *fence;
    return call(&request, -1, NULL);
}

static int remote_resource_create(struct gfxstream_resource_create_args *args, struct iovec *iov,
                                  uint32_t iov_count)
{
    (void)iov;
    (void)iov_count; /* neep attaches backing separately */
    struct remote_resource *resource = resource_for(args->handle, true);
    if (!resource) {
        return -ENOMEM;
    }
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_RESOURCE_CREATE,
                                     .resource_id = args->handle};
    request.u.create = *args;
    int ret = call(&request, -1, NULL);
    if (ret != 0) {
        forget(args->handle);
        return ret;
    }
    resource->format = args->format;
    resource->width_px = args->width;
    resource->height_px = args->target == 0 /* a buffer */ ? 1 : args->height;
    return 0;
}

static void remote_resource_unref(uint32_t resource_id)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_RESOURCE_UNREF,
                                     .resource_id = resource_id};
    call(&request, -1, NULL);
    forget(resource_id);
}

static int remote_resource_attach_iov(int resource_id, struct iovec *iov, int iov_count)
{
    uint64_t total = 0;
    struct remote_resource *resource = resource_for((uint32_t)resource_id, true);
    if (!resource || iov_count <= 0 || !iov_total_bytes(iov, (size_t)iov_count, &total)) {
        return -EINVAL;
    }
    uint8_t *staging = NULL;
    int fd = make_staging(total, &staging);
    if (fd < 0) {
        return fd;
    }
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_ATTACH_BACKING,
                                     .resource_id = (uint32_t)resource_id,
                                     .size_bytes = total};
    int ret = call(&request, fd, NULL);
    close(fd);
    if (ret != 0) {
        munmap(staging, (size_t)total);
        return ret;
    }
    drop_staging(resource);
    resource->staging = staging;
    resource->staging_bytes = total;
    resource->backing = iov;
    resource->backing_count = (size_t)iov_count;
    return 0;
}

static void remote_resource_detach_iov(int resource_id, struct iovec **iov, int *iov_count)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_DETACH_BACKING,
                                     .resource_id = (uint32_t)resource_id};
    call(&request, -1, NULL);
    struct remote_resource *resource = resource_for((uint32_t)resource_id, false);
    *iov = resource ? (struct iovec *)resource->backing : NULL;
    *iov_count = resource ? (int)resource->backing_count : 0;
    if (resource) {
        drop_staging(resource);
    }
}

/* A transfer through the staging (list NULL) or through a memfd holding the caller's list. */
static int remote_transfer(uint32_t resource_id, uint32_t ctx_id, struct gfxstream_box *box,
                           uint64_t offset, const struct iovec *list, size_t count, bool to_host)
{
    struct remote_resource *resource = resource_for(resource_id, false);
    if (!resource) {
        return -EINVAL;
    }
    struct gfxstream_call request = {
        .op = GFXSTREAM_CALL_TRANSFER, .ctx_id = ctx_id, .resource_id = resource_id};
    request.u.transfer.to_host = to_host;
    request.u.transfer.box = *box;
    request.u.transfer.offset_bytes = offset;
    uint8_t *buffer = resource->staging;
    uint64_t size = resource->staging_bytes;
    int fd = -1;
    if (list) {
        if (!iov_total_bytes(list, count, &size)) {
            return -EINVAL;
        }
        fd = make_staging(size, &buffer);
        if (fd < 0) {
            return fd;
        }
        request.size_bytes = size;
    } else {
        if (!buffer) {
            return -EINVAL;
        }
        list = resource->backing;
        count = resource->backing_count;
    }
    if (to_host) {
        copy_box(resource, box, list, count, buffer, size, true);
    }
    int ret = call(&request, fd, NULL);
    if (ret == 0 && !to_host) {
        copy_box(resource, box, list, count, buffer, size, false);
    }
    if (fd >= 0) {
        close(fd);
        munmap(buffer, (size_t)size);
    }
    return ret;
}

static int remote_transfer_write_iov(uint32_t resource_id, uint32_t ctx_id, int level,
                                     uint32_t stride, uint32_t layer_stride,
                                     struct gfxstream_box *box, uint64_t offset, struct iovec *iov,
                                     unsigned int iov_count)
{
    (void)level, (void)stride, (void)layer_stride; /* the backend ignores them */
    return remote_transfer(resource_id, ctx_id, box, offset, iov, iov ? iov_count : 0, true);
}

static int remote_transfer_read_iov(uint32_t resource_id, uint32_t ctx_id, uint32_t level,
                                    uint32_t stride, uint32_t layer_stride,
                                    struct gfxstream_box *box, uint64_t offset, struct iovec *iov,
                                    int iov_count)
{
    (void)level, (void)stride, (void)layer_stride;
    return remote_transfer(resource_id, ctx_id, box, offset, iov,
                           iov && iov_count > 0 ? (size_t)iov_count : 0, false);
}

static int remote_create_blob(uint32_t ctx_id, uint32_t resource_id,
                              const struct gfxstream_create_blob *create, const struct iovec *iov,
                              uint32_t iov_count, const struct gfxstream_handle *handle)
{
    (void)iov, (void)iov_count, (void)handle; /* host blobs only */
    if (!resource_for(resource_id, true)) {
        return -ENOMEM;
    }
    struct gfxstream_call request = {
        .op = GFXSTREAM_CALL_CREATE_BLOB, .ctx_id = ctx_id, .resource_id = resource_id};
    request.u.blob = *create;
    int ret = call(&request, -1, NULL);
    if (ret != 0) {
        forget(resource_id);
    }
    return ret;
}

/*
 * What the server hands over must be a memfd on tmpfs that cannot shrink: it may be in a
 * guest's hands (a taken-over backend), and the VMM maps it. Not hugetlbfs (a server could
 * punch its page out and take the free huge pages: SIGBUS in the VMM), not a pipe, a socket or
 * a device. The backend seals its memfds itself; any other is sealed here. Its size, or -errno.
 */
static int64_t check_server_memfd(int fd)
{
    struct statfs filesystem;
    struct stat info;
    if (fstatfs(fd, &filesystem) < 0 || filesystem.f_type != TMPFS_MAGIC || fstat(fd, &info) < 0 ||
        !S_ISREG(info.st_mode) || info.st_size <= 0 || (uint64_t)info.st_size > SIZE_MAX) {
        return -EINVAL;
    }
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (!(seals & F_SEAL_SHRINK) && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)) {
        return -EINVAL;
    }
    /* Sealed now: its size can only grow (which maps nothing new here). */
    if (fstat(fd, &info) < 0) {
        return -EINVAL;
    }
    return (int64_t)info.st_size;
}

static int remote_export_blob(uint32_t resource_id, struct gfxstream_handle *handle)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_EXPORT_BLOB, .resource_id = resource_id};
    int fd = -1;
    int ret = call(&request, -1, &fd);
    uint32_t type = reply.values[0];
    if (ret == 0 && (fd < 0 || type != GFXSTREAM_HANDLE_MEM_SHM || check_server_memfd(fd) < 0)) {
        ret = -EIO; /* not what the backend makes in this mode: a sealed memfd */
    }
    if (ret != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return ret;
    }
    handle->os_handle = fd;
    handle->handle_type = type;
    return 0;
}

/* The guest maps a blob through its memfd. */
static int remote_resource_map(uint32_t resource_id, void **hva, uint64_t *size)
{
    struct remote_resource *resource = resource_for(resource_id, false);
    if (!resource) {
        return -EINVAL;
    }
    if (resource->map) {
        *hva = resource->map;
        *size = resource->map_bytes;
        return 0;
    }
    struct gfxstream_handle handle;
    int ret = remote_export_blob(resource_id, &handle);
    if (ret != 0) {
        return ret;
    }
    int fd = (int)handle.os_handle;
    int64_t bytes = check_server_memfd(fd); /* checked by remote_export_blob already */
    void *address = bytes > 0 ? mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                              : MAP_FAILED;
    close(fd);
    if (address == MAP_FAILED) {
        return -EINVAL;
    }
    resource->map = address;
    resource->map_bytes = (uint64_t)bytes;
    *hva = address;
    *size = resource->map_bytes;
    return 0;
}

static int remote_resource_unmap(uint32_t resource_id)
{
    struct remote_resource *resource = resource_for(resource_id, false);
    if (!resource || !resource->map) {
        return -EINVAL;
    }
    munmap(resource->map, (size_t)resource->map_bytes);
    resource->map = NULL;
    resource->map_bytes = 0;
    return 0;
}

static int remote_resource_map_info(uint32_t resource_id, uint32_t *map_info)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_MAP_INFO, .resource_id = resource_id};
    int ret = call(&request, -1, NULL);
    *map_info = reply.values[0];
    return ret;
}

const struct gfxstream_api gfxstream_remote_api = {
    .get_cap_set = remote_get_cap_set,
    .fill_caps = remote_fill_caps,
    .context_create = remote_context_create,
    .context_destroy = remote_context_destroy,
    .ctx_attach_resource = remote_ctx_attach_resource,
    .ctx_detach_resource = remote_ctx_detach_resource,
    .submit_cmd = remote_submit_cmd,
    .create_fence = remote_create_fence,
    .resource_create = remote_resource_create,
    .resource_unref = remote_resource_unref,
    .resource_attach_iov = remote_resource_attach_iov,
    .resource_detach_iov = remote_resource_detach_iov,
    .transfer_write_iov = remote_transfer_write_iov,
    .transfer_read_iov = remote_transfer_read_iov,
    .create_blob = remote_create_blob,
    .export_blob = remote_export_blob,
    .resource_map = remote_resource_map,
    .resource_unmap = remote_resource_unmap,
    .resource_map_info = remote_resource_map_info,
};

void gfxstream_remote_resources_begin(void)
{
    id_table_init(&resources);
}

void gfxstream_remote_resources_end(void)
{
    for (size_t i = 0; i < resources.capacity; i++) {
        if (resources.keys[i]) {
            struct remote_resource *resource = resources.values[i];
            drop_staging(resource);
            if (resource->map) {
                munmap(resource->map, (size_t)resource->map_bytes);
            }
            free(resource);
        }
    }
    id_table_finish(&resources);
}
