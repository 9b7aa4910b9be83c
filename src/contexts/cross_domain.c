/*
 * The cross-domain context type (capset 5): Wayland passthrough's host half. Commands from
 * the guest proxy arrive through SUBMIT_3D; each is copied, checked against its exact size and
 * every identifier against this context's own tables, then carried out. Replies travel back
 * through two guest blobs (the query and channel rings) and per-ring fences.
 */
#include "cross_domain.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <unistd.h>

#include "cross_domain_reactor.h"
#include "util/checked.h"

static const struct neep_context_ops cross_domain_ops;

static struct cross_domain_context *from_base(struct neep_context *base)
{
    /* The ops table is the type tag: only our contexts point at it. */
    return base->ops == &cross_domain_ops ? (struct cross_domain_context *)base : NULL;
}

/* What an item costs the budget beyond any copy of memory it holds. */
#define ITEM_CHARGE_BYTES ((uint64_t)sizeof(struct cross_domain_item))

void cross_domain_item_free(struct cross_domain_context *ctx, struct cross_domain_item *item)
{
    if (!item) {
        return;
    }
    cross_domain_queue_clear(ctx, &item->output);
    if (item->kind == ITEM_READ_PIPE && item->fd >= 0) {
        ctx->read_pipe_count--; /* counted once it had its fd */
    }
    if (item->fd >= 0) {
        cross_domain_unwatch(ctx, &item->watch);
        close(item->fd);
        cross_domain_fds_give_back(ctx, 1);
    }
    neep_budget_release(ctx->base.renderer, item->charged_bytes);
    free(item);
}

/* A new item, charged; `fd` (or -1) is counted against the fd caps by the caller. */
static struct cross_domain_item *item_new(struct cross_domain_context *ctx,
                                          enum cross_domain_item_kind kind)
{
    if (ctx->items.count >= CROSS_DOMAIN_MAX_ITEMS) {
        cd_error(ctx, "cross-domain: %u items held; the guest must consume some first",
                 CROSS_DOMAIN_MAX_ITEMS);
        return NULL;
    }
    if (neep_budget_charge(ctx->base.renderer, ITEM_CHARGE_BYTES) < 0) {
        return NULL;
    }
    struct cross_domain_item *item = calloc(1, sizeof(*item));
    if (!item) {
        neep_budget_release(ctx->base.renderer, ITEM_CHARGE_BYTES);
        return NULL;
    }
    item->kind = kind;
    item->fd = -1;
    item->watch.fd = -1;
    item->charged_bytes = ITEM_CHARGE_BYTES;
    return item;
}

static void item_set_fd(struct cross_domain_item *item, int fd, uint32_t id)
{
    item->fd = fd;
    item->watch.fd = fd;
    item->watch.token = id;
}

int cross_domain_add_item(struct cross_domain_context *ctx, struct cross_domain_item *item,
                          uint32_t *id)
{
    /* Host item ids stay below the read-pipe namespace. */
    if (ctx->next_item_id == 0 || ctx->next_item_id >= CROSS_DOMAIN_PIPE_READ_START) {
        ctx->next_item_id = 1;
    }
    while (id_table_get(&ctx->items, ctx->next_item_id)) {
        ctx->next_item_id++;
    }
    int ret = id_table_insert(&ctx->items, ctx->next_item_id, item);
    if (ret == 0) {
        *id = ctx->next_item_id++;
        item->watch.token = *id;
    }
    return ret;
}

static uint64_t page_align(uint64_t bytes)
{
    return (bytes + PAGE_BYTES - 1) / PAGE_BYTES * PAGE_BYTES;
}

/* Seals for memory we hand out: its size is fixed, and nobody may add seals (a compositor
 * given the fd could otherwise forbid writable mappings under the guest). */
#define HANDED_OUT_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* A copy of the first `size_bytes` of shmem `fd` in sealed memory of ours, charged. pread,
 * not a mapping: the sender may shrink its file while we copy (the rest reads as zeros). */
static int copy_to_sealed_memory(struct cross_domain_context *ctx, int fd, uint64_t size_bytes,
                                 int *copy_fd, uint64_t *charged_bytes)
{
    uint64_t copy_bytes = page_align(size_bytes);
    int ret = neep_budget_charge(ctx->base.renderer, copy_bytes);
    if (ret < 0) {
        return ret;
    }
    int copy = memfd_create("neep-cross-domain-received", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (copy < 0 || ftruncate(copy, (off_t)copy_bytes) < 0) {
        ret = -ENOMEM;
    }
    uint8_t block[16384];
    for (uint64_t done = 0; ret == 0 && done < size_bytes;) {
        size_t want =
            size_bytes - done < sizeof(block) ? (size_t)(size_bytes - done) : sizeof(block);
        ssize_t got = pread(fd, block, want, (off_t)done);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        if (pwrite(copy, block, (size_t)got, (off_t)done) != got) {
            ret = -EIO;
        }
        done += (uint64_t)got;
    }
    if (ret == 0 && fcntl(copy, F_ADD_SEALS, HANDED_OUT_SEALS) < 0) {
        ret = -EIO;
    }
    if (ret < 0) {
        if (copy >= 0) {
            close(copy);
        }
        neep_budget_release(ctx->base.renderer, copy_bytes);
        return ret;
    }
    *copy_fd = copy;
    *charged_bytes += copy_bytes;
    return 0;
}

/* Memory from the compositor that the guest will map (in the VMM: QEMU maps host blobs into
 * guest memory) must not shrink under the mapping, or the VMM dies of SIGBUS. Only shmem
 * (memfd, tmpfs, shm_open) counts as memory: F_GET_SEALS answers for it without asking any
 * filesystem server, where lseek or read on a FUSE or NFS file could wait forever. A memfd
 * sealed against shrinking is used as it is; other shmem is copied into sealed memory. */
static int received_memory(struct cross_domain_context *ctx, int *fd, int seals,
                           struct cross_domain_item *item)
{
    struct statfs fs;
    bool hugetlb = fstatfs(*fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC; /* local: no wait */
    off_t end = lseek(*fd, 0, SEEK_END);
    if (end < 0 || (uint64_t)end > CROSS_DOMAIN_MAX_BYTE_BUFFER) {
        cd_error(ctx, "cross-domain: the compositor sent memory of %lld bytes", (long long)end);
        return -EINVAL;
    }
    item->size_bytes = (uint64_t)end; /* after the seal check, for sealed memory: it cannot drop */
    if ((seals & F_SEAL_SHRINK) && !hugetlb) {
        return 0;
    }
    if (item->size_bytes > CROSS_DOMAIN_MAX_RECEIVED_COPY_BYTES) {
        cd_error(ctx,
                 "cross-domain: the compositor sent %llu bytes of memory not sealed against "
                 "shrinking; at most %u are copied",
                 (unsigned long long)item->size_bytes, CROSS_DOMAIN_MAX_RECEIVED_COPY_BYTES);
        return -EFBIG;
    }
    int copy;
    int ret = copy_to_sealed_memory(ctx, *fd, item->size_bytes, &copy, &item->charged_bytes);
    if (ret == 0) {
        cross_domain_close_later(ctx, *fd);
        *fd = copy;
    }
    return ret;
}

/* A pipe's write end gets an open file description of our own, non-blocking: the sender
 * shares the one it sent and could make it blocking again under us. */
static int received_write_pipe(struct cross_domain_context *ctx, int *fd)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", *fd);
    int own = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (own < 0 && errno == ENXIO) {
        /* No reader is left: writes into it would go nowhere anyway. */
        cross_domain_close_later(ctx, *fd);
        *fd = -1;
        return 0;
    }
    if (own < 0) {
        cd_error(ctx, "cross-domain: cannot reopen a pipe from the compositor: %s",
                 strerror(errno));
        return -EIO;
    }
    cross_domain_close_later(ctx, *fd);
    *fd = own;
    return 0;
}

int cross_domain_add_received_fd(struct cross_domain_context *ctx, int fd, uint32_t *id,
                                 uint32_t *type, uint32_t *size)
{
    /* Classified without a call that could reach a filesystem server. */
    int seals = fcntl(fd, F_GET_SEALS);
    int mode = fcntl(fd, F_GETFL);
    struct statx stat;
    bool fifo = seals < 0 &&
                statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &stat) == 0 &&
                S_ISFIFO(stat.stx_mode) && mode >= 0 && (mode & O_ACCMODE) == O_WRONLY;
    if (seals < 0 && !fifo) {
        cd_error(ctx, "cross-domain: the compositor sent an fd that is neither shared memory "
                      "nor a pipe's write end");
        cross_domain_close_later(ctx, fd);
        return -EINVAL;
    }
    struct cross_domain_item *item = item_new(ctx, fifo ? ITEM_WRITE_PIPE : ITEM_BLOB);
    if (!item || !cross_domain_fds_take(ctx, 1)) {
        cross_domain_close_later(ctx, fd);
        if (item) {
            cross_domain_item_free(ctx, item);
        }
        return -E2BIG;
    }
    int ret;
    if (fifo) {
        ret = received_write_pipe(ctx, &fd);
        *type = CROSS_DOMAIN_ID_TYPE_WRITE_PIPE;
        *size = 0;
    } else {
        bool read_only = (mode & O_ACCMODE) == O_RDONLY;
        item->map_info = MAP_CACHE_CACHED | (read_only ? MAP_ACCESS_READ : MAP_ACCESS_RW);
        ret = received_memory(ctx, &fd, seals, item);
        *type = CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB;
        *size = (uint32_t)item->size_bytes;
    }
    if (fd < 0) {
        cross_domain_fds_give_back(ctx, 1);
    }
    item_set_fd(item, fd, 0);
    if (ret == 0) {
        ret = cross_domain_add_item(ctx, item, id);
    }
    if (ret < 0) {
        cross_domain_item_free(ctx, item);
    }
    return ret;
}

/* Takes a copy of an attached guest blob's memory list for replies. */
static void ring_clear(struct cross_domain_context *ctx, struct cross_domain_ring *ring)
{
    free(ring->iov);
    neep_budget_release(ctx->base.renderer, ring->charged_bytes);
    memset(ring, 0, sizeof(*ring));
}

/* Takes a copy of the part of an attached guest blob's memory list that replies can reach
 * (replies are at most CROSS_DOMAIN_RING_BYTES), charged to the budget. */
static int ring_take(struct cross_domain_context *ctx, uint32_t resource_id, uint64_t min_bytes,
                     struct cross_domain_ring *ring)
{
    struct neep_resource *resource = id_table_get(&ctx->base.attached_resources, resource_id);
    if (!resource || resource->kind != NEEP_RESOURCE_BLOB || !resource->backing) {
        cd_error(ctx, "cross-domain INIT: ring %u is not a guest blob attached to context %u",
                 resource_id, ctx->base.id);
        return -EINVAL;
    }
    uint64_t size = resource->size_bytes < resource->backing_bytes ? resource->size_bytes
                                                                   : resource->backing_bytes;
    if (size < min_bytes) {
        cd_error(ctx, "cross-domain INIT: ring %u holds %llu bytes, too small for a reply of %llu",
                 resource_id, (unsigned long long)size, (unsigned long long)min_bytes);
        return -EINVAL;
    }
    size = size < CROSS_DOMAIN_RING_BYTES ? size : CROSS_DOMAIN_RING_BYTES;
    size_t count = 0;
    for (uint64_t covered = 0; covered < size; count++) {
        covered += resource->backing[count].iov_len;
    }
    uint64_t bytes = (uint64_t)count * sizeof(struct iovec);
    int ret = neep_budget_charge(ctx->base.renderer, bytes);
    if (ret < 0) {
        return ret;
    }
    ring->iov = malloc(bytes);
    if (!ring->iov) {
        neep_budget_release(ctx->base.renderer, bytes);
        return -ENOMEM;
    }
    memcpy(ring->iov, resource->backing, bytes);
    ring->iov_count = count;
    ring->size_bytes = size;
    ring->charged_bytes = bytes;
    ring->resource_id = resource_id;
    return 0;
}

static int connect_channel(struct cross_domain_context *ctx, uint32_t channel_type)
{
    const struct neep_renderer *renderer = ctx->base.renderer;
    const char *path = NULL;
    for (size_t i = 0; i < renderer->channel_count; i++) {
        if (renderer->channels[i].type == channel_type) {
            path = renderer->channels[i].path;
            break;
        }
    }
    if (!path) {
        cd_error(ctx, "cross-domain INIT: no host channel of type %u is configured", channel_type);
        return -EINVAL;
    }
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(address.sun_path)) {
        return -ENAMETOOLONG;
    }
    strcpy(address.sun_path, path);
    if (!cross_domain_fds_take(ctx, 1)) {
        return -EMFILE;
    }
    /* Non-blocking from the start: connect() on a compositor whose backlog is full fails at
     * once (EAGAIN) instead of freezing the VMM's thread. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        int error = errno;
        neep_log_host(&ctx->base.renderer->logger, NEEP_LOG_ERROR,
                      "cross-domain: cannot connect to %s: %s", path,
                      error == EAGAIN ? "its listen backlog is full" : strerror(error));
        if (fd >= 0) {
            close(fd);
        }
        cross_domain_fds_give_back(ctx, 1);
        return -EIO;
    }
    ctx->channel.fd = fd;
    return 0;
}

static int cmd_init(struct cross_domain_context *ctx, const uint8_t *bytes, size_t size)
{
    struct cross_domain_init init;
    memset(&init, 0, sizeof(init));
    if (size != CROSS_DOMAIN_INIT_LEGACY_BYTES && size != CROSS_DOMAIN_INIT_V1_BYTES &&
        size != sizeof(init)) {
        cd_error(ctx, "cross-domain INIT of %zu bytes", size);
        return -EINVAL;
    }
    memcpy(&init, bytes, size);
    if (size == CROSS_DOMAIN_INIT_LEGACY_BYTES) {
        /* The old layout: {query ring, channel type}, replies share one ring. */
        init.channel_type = init.channel_ring_id;
        init.channel_ring_id = init.query_ring_id;
    }
    if (ctx->initialized) {
        cd_error(ctx, "cross-domain: a second INIT on context %u", ctx->base.id);
        return -EINVAL;
    }
    if (init.channel_type != 0 && init.channel_type != CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND) {
        cd_error(ctx, "cross-domain INIT: channel type %u is not supported", init.channel_type);
        return -EINVAL;
    }
    /* Rings must hold the replies they are for: a layout, and a RECEIVE with a byte. */
    uint64_t query_min = sizeof(struct cross_domain_image_requirements);
    uint64_t channel_min = sizeof(struct cross_domain_send_receive) + 1;
    bool shared = init.channel_type != 0 && init.query_ring_id == init.channel_ring_id;
    int ret =
        ring_take(ctx, init.query_ring_id, shared ? channel_min : query_min, &ctx->query_ring);
    if (ret == 0 && init.channel_type != 0) {
        ret = ring_take(ctx, init.channel_ring_id, channel_min, &ctx->channel_ring);
    }
    if (ret == 0 && init.channel_type != 0) {
        ret = connect_channel(ctx, init.channel_type);
    }
    if (ret < 0) {
        ring_clear(ctx, &ctx->query_ring);
        ring_clear(ctx, &ctx->channel_ring);
        cross_domain_close_channel(ctx);
        return ret;
    }
    ctx->initialized = true;
    return 0;
}

/* Bytes per pixel of each plane, for the formats Wayland clients and proxies use. */
static int format_planes(uint32_t fourcc, uint32_t bpp[3], uint32_t vertical_divisor[3])
{
    vertical_divisor[0] = vertical_divisor[1] = vertical_divisor[2] = 1;
    switch (fourcc) {
    case DRM_FOURCC('R', '8', ' ', ' '):
        bpp[0] = 1;
        return 1;
    case DRM_FOURCC('R', 'G', '1', '6'):
        bpp[0] = 2;
        return 1;
    case DRM_FOURCC('B', 'G', '2', '4'):
        bpp[0] = 3;
        return 1;
    case DRM_FOURCC('X', 'R', '2', '4'):
    case DRM_FOURCC('X', 'B', '2', '4'):
    case DRM_FOURCC('A', 'R', '2', '4'):
    case DRM_FOURCC('A', 'B', '2', '4'):
    case DRM_FOURCC('X', 'R', '3', '0'):
    case DRM_FOURCC('X', 'B', '3', '0'):
    case DRM_FOURCC('A', 'R', '3', '0'):
    case DRM_FOURCC('A', 'B', '3', '0'):
        bpp[0] = 4;
        return 1;
    case DRM_FOURCC('A', 'B', '4', 'H'):
        bpp[0] = 8;
        return 1;
    case DRM_FOURCC('N', 'V', '1', '2'):
        bpp[0] = 1;
        bpp[1] = 2; /* interleaved UV at half width */
        vertical_divisor[1] = 2;
        return 2;
    case DRM_FOURCC('Y', 'V', '1', '2'):
        bpp[0] = bpp[1] = bpp[2] = 1;
        vertical_divisor[1] = vertical_divisor[2] = 2;
        return 3;
    }
    return 0;
}

static int cmd_get_image_requirements(struct cross_domain_context *ctx, const uint8_t *bytes,
                                      size_t size)
{
    struct cross_domain_get_image_requirements request;
    if (size != sizeof(request)) {
        cd_error(ctx, "cross-domain GET_IMAGE_REQUIREMENTS of %zu bytes", size);
        return -EINVAL;
    }
    memcpy(&request, bytes, sizeof(request));
    if (!ctx->query_ring.resource_id) {
        cd_error(ctx, "cross-domain GET_IMAGE_REQUIREMENTS before INIT");
        return -EINVAL;
    }
    uint32_t bpp[3], divisor[3];
    int planes = format_planes(request.drm_format, bpp, divisor);
    /* Byte buffers (one row of R8, as guest proxies ask for shared memory) may be long. */
    bool byte_buffer = request.drm_format == DRM_FORMAT_R8 && request.height == 1;
    uint32_t max_width = byte_buffer ? CROSS_DOMAIN_MAX_BYTE_BUFFER : NEEP_MAX_DIMENSION_PX;
    if (planes == 0 || request.width == 0 || request.height == 0 || request.width > max_width ||
        request.height > NEEP_MAX_DIMENSION_PX) {
        cd_error(ctx, "cross-domain: no layout for %ux%u of format 0x%08x", request.width,
                 request.height, request.drm_format);
        return -EINVAL;
    }
    struct cross_domain_image_requirements reply;
    memset(&reply, 0, sizeof(reply));
    uint64_t offset = 0;
    for (int i = 0; i < planes; i++) {
        /* Planes after the first are subsampled 2x horizontally (their bpp covers it). */
        uint64_t width = i == 0 ? request.width : (request.width + 1) / 2;
        uint64_t stride = width * bpp[i];
        uint64_t rows = (request.height + divisor[i] - 1) / divisor[i];
        reply.strides[i] = (uint32_t)stride;
        reply.offsets[i] = (uint32_t)offset;
        offset += stride * rows; /* dimensions are at most 2^14: no overflow */
    }
    /* Linux page-aligns host blob sizes; answering aligned keeps the two in step. */
    reply.size = page_align(offset);
    reply.map_info = MAP_CACHE_CACHED | MAP_ACCESS_RW;
    reply.memory_idx = -1;
    reply.physical_device_idx = -1;

    struct cross_domain_item *item = item_new(ctx, ITEM_IMAGE_REQUIREMENTS);
    if (!item) {
        return -E2BIG;
    }
    item->size_bytes = reply.size;
    item->map_info = reply.map_info;
    uint32_t id;
    int ret = cross_domain_add_item(ctx, item, &id);
    if (ret < 0) {
        cross_domain_item_free(ctx, item);
        return ret;
    }
    reply.blob_id = id;
    if (!cross_domain_ring_write(&ctx->query_ring, &reply, sizeof(reply))) {
        cd_error(ctx, "cross-domain: the query ring cannot hold a reply");
        return -EINVAL;
    }
    return 0;
}

/* A pipe for the compositor to write into (clipboard, drag and drop): our read end becomes
 * the guest's read-pipe id, the write end travels with the SEND. */
static int make_read_pipe(struct cross_domain_context *ctx, uint32_t id, int *write_end)
{
    uint32_t expected = ctx->next_read_pipe_id + 1;
    if (expected == 0) {
        expected = CROSS_DOMAIN_PIPE_READ_START;
    }
    if (*write_end >= 0 || id != expected) {
        cd_error(ctx, "cross-domain SEND: read pipe %u out of step (expected %u, one per SEND)", id,
                 expected);
        return -EINVAL;
    }
    if (ctx->read_pipe_count >= CROSS_DOMAIN_MAX_READ_PIPES) {
        cd_error(ctx, "cross-domain SEND: %u read pipes are open; host programs must close some",
                 CROSS_DOMAIN_MAX_READ_PIPES);
        return -E2BIG;
    }
    /* Both ends count until the write end is sent: the caller gives one back then. */
    struct cross_domain_item *item = item_new(ctx, ITEM_READ_PIPE);
    if (!item || !cross_domain_fds_take(ctx, 2)) {
        if (item) {
            cross_domain_item_free(ctx, item);
        }
        return -E2BIG;
    }
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) < 0) {
        cross_domain_fds_give_back(ctx, 2);
        cross_domain_item_free(ctx, item);
        return -EIO;
    }
    fcntl(ends[0], F_SETFL, O_NONBLOCK);
    item_set_fd(item, ends[0], id);
    ctx->read_pipe_count++; /* from here item_free counts it out */
    int ret = id_table_insert(&ctx->items, id, item);
    if (ret < 0) {
        close(ends[1]);
        cross_domain_fds_give_back(ctx, 1);
        cross_domain_item_free(ctx, item);
        return ret;
    }
    ctx->next_read_pipe_id = id;
    *write_end = ends[1];
    cross_domain_arm_item(ctx, item); /* a POLL may be waiting already */
    return 0;
}

/* Resolves the identifiers of a SEND into fds to pass (borrowed; a read pipe's write end is
 * returned separately for the caller to close). */
static int send_identifiers(struct cross_domain_context *ctx,
                            const struct cross_domain_send_receive *send, int *fds,
                            int *pipe_write_end)
{
    for (uint32_t i = 0; i < send->num_identifiers; i++) {
        uint32_t id = send->identifiers[i];
        switch (send->identifier_types[i]) {
        case CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB: {
            struct neep_resource *resource = id_table_get(&ctx->base.attached_resources, id);
            if (!resource || resource->storage.fd < 0) {
                cd_error(ctx, "cross-domain SEND: resource %u is not a host blob of context %u", id,
                         ctx->base.id);
                return -EINVAL;
            }
            fds[i] = resource->storage.fd;
            break;
        }
        case CROSS_DOMAIN_ID_TYPE_READ_PIPE: {
            int ret = make_read_pipe(ctx, id, pipe_write_end);
            if (ret < 0) {
                return ret;
            }
            fds[i] = *pipe_write_end;
            break;
        }
        default:
            cd_error(ctx, "cross-domain SEND: identifier type %u cannot be sent",
                     send->identifier_types[i]);
            return -EINVAL;
        }
    }
    return 0;
}

static void forget_item(struct cross_domain_context *ctx, uint32_t id)
{
    cross_domain_item_free(ctx, id_table_remove(&ctx->items, id));
}

static int cmd_send(struct cross_domain_context *ctx, const uint8_t *bytes, size_t size)
{
    struct cross_domain_send_receive send;
    if (size < sizeof(send)) {
        cd_error(ctx, "cross-domain SEND of %zu bytes", size);
        return -EINVAL;
    }
    memcpy(&send, bytes, sizeof(send));
    if (send.num_identifiers > CROSS_DOMAIN_MAX_IDENTIFIERS ||
        send.opaque_data_size > size - sizeof(send)) {
        cd_error(ctx, "cross-domain SEND: %u identifiers and %u data bytes in %zu bytes",
                 send.num_identifiers, send.opaque_data_size, size);
        return -EINVAL;
    }
    if (send.num_identifiers > 0 && send.opaque_data_size == 0) {
        /* A stream socket drops fds sent with no byte to carry them. */
        cd_error(ctx, "cross-domain SEND: %u identifiers without a data byte to carry them",
                 send.num_identifiers);
        return -EINVAL;
    }
    if (ctx->channel.fd < 0) {
        cd_error(ctx, "cross-domain SEND without an open channel");
        return -EINVAL;
    }
    int fds[CROSS_DOMAIN_MAX_IDENTIFIERS] = {0};
    int pipe_write_end = -1;
    int ret = send_identifiers(ctx, &send, fds, &pipe_write_end);
    if (ret == 0 && send.opaque_data_size > 0) {
        ret = cross_domain_channel_output(ctx, bytes + sizeof(send), send.opaque_data_size, fds,
                                          send.num_identifiers);
    }
    if (pipe_write_end >= 0) {
        close(pipe_write_end); /* the compositor has its copy; EOF must reach the guest */
        cross_domain_fds_give_back(ctx, 1);
        if (ret < 0) {
            /* The id stays used: the guest counted it when it sent. */
            forget_item(ctx, ctx->next_read_pipe_id);
        }
    }
    return ret;
}

static int cmd_write(struct cross_domain_context *ctx, const uint8_t *bytes, size_t size)
{
    struct cross_domain_read_write request;
    if (size < sizeof(request)) {
        cd_error(ctx, "cross-domain WRITE of %zu bytes", size);
        return -EINVAL;
    }
    memcpy(&request, bytes, sizeof(request));
    if (request.opaque_data_size > size - sizeof(request)) {
        cd_error(ctx, "cross-domain WRITE: %u data bytes in %zu bytes", request.opaque_data_size,
                 size);
        return -EINVAL;
    }
    struct cross_domain_item *item = id_table_get(&ctx->items, request.identifier);
    if (!item || item->kind != ITEM_WRITE_PIPE || item->hang_up_when_drained) {
        cd_error(ctx, "cross-domain WRITE: %u is not a write pipe", request.identifier);
        return -EINVAL;
    }
    int ret =
        cross_domain_pipe_output(ctx, item, bytes + sizeof(request), request.opaque_data_size);
    if (ret < 0) {
        /* The reader went away or stopped reading; like a closed pipe in any program, the
         * rest is dropped (the guest's clipboard source just finishes). */
        neep_log_host(&ctx->base.renderer->logger, NEEP_LOG_INFO,
                      "cross-domain: pipe %u of context %u closed (%s)", request.identifier,
                      ctx->base.id,
                      ret == -EPIPE ? "its reader left" : "its reader is not reading");
        forget_item(ctx, request.identifier);
        return 0;
    }
    if (request.hang_up) {
        if (item->output.head) {
            item->hang_up_when_drained = true; /* the event thread closes it when drained */
        } else {
            forget_item(ctx, request.identifier);
        }
    }
    return 0;
}

/* Walks the concatenated commands of one SUBMIT_3D. */
static int cross_domain_submit(struct neep_context *base, const uint8_t *commands,
                               size_t size_bytes)
{
    struct cross_domain_context *ctx = from_base(base);
    size_t pos = 0;
    int ret = 0;
    cross_domain_lock(ctx);
    while (ret == 0 && pos < size_bytes) {
        struct cross_domain_header hdr;
        if (size_bytes - pos < sizeof(hdr)) {
            cd_error(ctx, "cross-domain: %zu stray bytes after the last command", size_bytes - pos);
            ret = -EINVAL;
            break;
        }
        memcpy(&hdr, commands + pos, sizeof(hdr));
        if (hdr.cmd_size < sizeof(hdr) || hdr.cmd_size > size_bytes - pos) {
            cd_error(ctx, "cross-domain: command %u claims %u bytes, %zu remain", hdr.cmd,
                     hdr.cmd_size, size_bytes - pos);
            ret = -EINVAL;
            break;
        }
        const uint8_t *bytes = commands + pos;
        switch (hdr.cmd) {
        case CROSS_DOMAIN_CMD_INIT:
            ret = cmd_init(ctx, bytes, hdr.cmd_size);
            break;
        case CROSS_DOMAIN_CMD_GET_IMAGE_REQUIREMENTS:
            ret = cmd_get_image_requirements(ctx, bytes, hdr.cmd_size);
            break;
        case CROSS_DOMAIN_CMD_POLL:
            /* The ring-1 fence that follows is the request; the body means nothing. */
            if (!ctx->initialized || !ctx->channel_ring.resource_id) {
                cd_error(ctx, "cross-domain POLL before INIT with a channel");
                ret = -EINVAL;
            }
            break;
        case CROSS_DOMAIN_CMD_SEND:
            ret = cmd_send(ctx, bytes, hdr.cmd_size);
            break;
        case CROSS_DOMAIN_CMD_WRITE:
            ret = cmd_write(ctx, bytes, hdr.cmd_size);
            break;
        default:
            cd_error(ctx, "cross-domain: unknown command %u", hdr.cmd);
            ret = -EINVAL;
            break;
        }
        pos += hdr.cmd_size;
    }
    cross_domain_unlock(ctx);
    return ret;
}

static int cross_domain_create_fence(struct neep_context *base, struct neep_timeline *timeline,
                                     uint64_t fence_id)
{
    struct cross_domain_context *ctx = from_base(base);
    if (timeline->ring_idx == CROSS_DOMAIN_QUERY_RING) {
        /* Query work is done by the time it is fenced. */
        neep_timeline_signal(timeline, fence_id);
        return 0;
    }
    cross_domain_lock(ctx);
    int ret = 0;
    if (!ctx->channel_ring.resource_id) {
        cd_error(ctx, "cross-domain: channel-ring fence before INIT with a channel");
        ret = -EINVAL;
    } else if (ctx->poll_pending) {
        cd_error(ctx, "cross-domain: a second POLL while one is outstanding");
        ret = -EBUSY;
    } else {
        ctx->poll_timeline = timeline;
        ctx->poll_fence_id = fence_id;
        ctx->poll_pending = true;
        /* Sources that became ready while no POLL waited fire now (level-triggered). */
        cross_domain_rearm_all(ctx);
    }
    cross_domain_unlock(ctx);
    return ret;
}

/* The guest may reuse a ring's memory once it is detached or its backing is: no more replies
 * into it. */
static void cross_domain_forget_memory(struct neep_context *base, struct neep_resource *resource)
{
    struct cross_domain_context *ctx = from_base(base);
    cross_domain_lock(ctx);
    if (ctx->query_ring.resource_id == resource->id) {
        ring_clear(ctx, &ctx->query_ring);
    }
    if (ctx->channel_ring.resource_id == resource->id) {
        ring_clear(ctx, &ctx->channel_ring);
    }
    cross_domain_unlock(ctx);
}

static void cross_domain_visit_borrowed(struct neep_context *base, neep_borrowed_memory_fn visit,
                                        void *user_data)
{
    struct cross_domain_context *ctx = from_base(base);
    cross_domain_lock(ctx);
    const struct cross_domain_ring *rings[] = {&ctx->query_ring, &ctx->channel_ring};
    for (size_t r = 0; r < 2; r++) {
        for (size_t i = 0; i < rings[r]->iov_count; i++) {
            visit(user_data, rings[r]->iov[i].iov_base, rings[r]->iov[i].iov_len);
        }
    }
    cross_domain_unlock(ctx);
}

/* The memory a ring was copied from is going away: stop replying into it (under the lock, so
 * the event thread is not writing there meanwhile). */
static void cross_domain_forget_borrowed(struct neep_context *base, const void *begin,
                                         size_t size_bytes)
{
    struct cross_domain_context *ctx = from_base(base);
    cross_domain_lock(ctx);
    struct cross_domain_ring *rings[] = {&ctx->query_ring, &ctx->channel_ring};
    for (size_t r = 0; r < 2; r++) {
        for (size_t i = 0; i < rings[r]->iov_count; i++) {
            if (neep_ranges_overlap(rings[r]->iov[i].iov_base, rings[r]->iov[i].iov_len, begin,
                                    size_bytes)) {
                cd_error(ctx, "cross-domain: context %u loses ring %u: its memory is gone",
                         ctx->base.id, rings[r]->resource_id);
                ring_clear(ctx, rings[r]);
                break;
            }
        }
    }
    cross_domain_unlock(ctx);
}

static int cross_domain_create_blob(struct neep_context *base, uint32_t resource_id,
                                    const struct neep_blob_create *create,
                                    struct neep_blob_storage *out)
{
    struct cross_domain_context *ctx = from_base(base);
    if (create->blob_id > UINT32_MAX) {
        return -EINVAL;
    }
    cross_domain_lock(ctx);
    int ret = 0;
    uint32_t id = (uint32_t)create->blob_id;
    struct cross_domain_item *item = id_table_get(&ctx->items, id);
    if (!item || (item->kind != ITEM_IMAGE_REQUIREMENTS && item->kind != ITEM_BLOB)) {
        cd_error(ctx, "cross-domain blob %u: no item %u to make it from", resource_id, id);
        ret = -EINVAL;
    } else if (create->size_bytes < item->size_bytes ||
               page_align(create->size_bytes) != page_align(item->size_bytes)) {
        /* Equal, or the same size rounded up to a page as Linux does: never a mapping with a
         * page the memory does not have. */
        cd_error(ctx, "cross-domain blob %u: %llu bytes asked, item %u holds %llu", resource_id,
                 (unsigned long long)create->size_bytes, id, (unsigned long long)item->size_bytes);
        ret = -EINVAL;
    } else if (item->kind == ITEM_IMAGE_REQUIREMENTS) {
        /* A template: fresh zeroed memory each time, sealed against resizing. */
        int fd = memfd_create("neep-cross-domain", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0 || ftruncate(fd, (off_t)create->size_bytes) < 0 ||
            fcntl(fd, F_ADD_SEALS, HANDED_OUT_SEALS) < 0) {
            if (fd >= 0) {
                close(fd);
            }
            ret = -ENOMEM;
        } else {
            *out = (struct neep_blob_storage){fd, NEEP_HANDLE_MEM_SHM, create->size_bytes,
                                              item->map_info};
        }
    } else {
        /* A received fd: consumed by this blob, whose resource now owns (and charges) it. */
        id_table_remove(&ctx->items, id);
        *out = (struct neep_blob_storage){item->fd, NEEP_HANDLE_MEM_SHM, create->size_bytes,
                                          item->map_info};
        cross_domain_unwatch(ctx, &item->watch);
        item->fd = -1;
        cross_domain_fds_give_back(ctx, 1);
        cross_domain_item_free(ctx, item);
    }
    cross_domain_unlock(ctx);
    return ret;
}

static void cross_domain_destroy(struct neep_context *base)
{
    struct cross_domain_context *ctx = from_base(base);
    if (ctx->reactor) {
        cross_domain_lock(ctx);
        cross_domain_reactor_forget(ctx);
        for (size_t i = 0; i < ctx->items.capacity; i++) {
            if (ctx->items.keys[i]) {
                cross_domain_item_free(ctx, ctx->items.values[i]);
            }
        }
        cross_domain_close_channel(ctx);
        ring_clear(ctx, &ctx->query_ring);
        ring_clear(ctx, &ctx->channel_ring);
        cross_domain_unlock(ctx);
        cross_domain_reactor_leave(ctx);
    }
    id_table_finish(&ctx->items);
    neep_budget_release(ctx->base.renderer, sizeof(*ctx));
    free(ctx);
}

static const struct neep_context_ops cross_domain_ops = {
    .destroy = cross_domain_destroy,
    .submit = cross_domain_submit,
    .detach_resource = cross_domain_forget_memory,
    .release_backing = cross_domain_forget_memory,
    .visit_borrowed_memory = cross_domain_visit_borrowed,
    .forget_borrowed_memory = cross_domain_forget_borrowed,
    .create_fence = cross_domain_create_fence,
    .create_blob = cross_domain_create_blob,
};

static int cross_domain_probe(struct neep_renderer *renderer, uint32_t *max_version,
                              uint32_t *size_bytes, uint8_t **data)
{
    struct cross_domain_capabilities *caps = calloc(1, sizeof(*caps));
    if (!caps) {
        return -ENOMEM;
    }
    caps->version = 1;
    caps->neep_features = CROSS_DOMAIN_NEEP_ANY_CHANNEL_RING;
    for (size_t i = 0; i < renderer->channel_count; i++) {
        if (renderer->channels[i].type == CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND) {
            caps->supported_channels |= 1u << CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND;
        }
    }
    *max_version = 0;
    *size_bytes = sizeof(*caps);
    *data = (uint8_t *)caps;
    return 0;
}

static int cross_domain_create(struct neep_renderer *renderer, uint32_t ctx_id,
                               uint32_t context_init, const char *name, size_t name_len,
                               struct neep_context **out)
{
    int ret = neep_budget_charge(renderer, sizeof(struct cross_domain_context));
    if (ret < 0) {
        return ret;
    }
    struct cross_domain_context *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        neep_budget_release(renderer, sizeof(*ctx));
        return -ENOMEM;
    }
    ctx->base.ops = &cross_domain_ops;
    ctx->base.renderer = renderer;
    ctx->channel.fd = -1;
    ctx->channel.token = CROSS_DOMAIN_TOKEN_CHANNEL;
    ctx->next_item_id = 1;
    ctx->next_read_pipe_id = CROSS_DOMAIN_PIPE_READ_START;
    id_table_init(&ctx->items);
    ret = cross_domain_reactor_join(ctx);
    if (ret < 0) {
        cross_domain_destroy(&ctx->base);
        return ret;
    }
    *out = &ctx->base;
    return 0;
}

const struct neep_context_type neep_cross_domain_type = {
    .capset_id = NEEP_CAPSET_CROSS_DOMAIN,
    .name = "cross-domain",
    .probe = cross_domain_probe,
    .create = cross_domain_create,
};
