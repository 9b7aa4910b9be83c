/*
 * The cross-domain context type (capset 5): Wayland passthrough's host half. Commands from
 * the guest proxy arrive through SUBMIT_3D; each is copied, checked against its exact size and
 * every identifier against this context's own tables, then carried out. Replies travel back
 * through two guest blobs (the query and channel rings) and per-ring fences.
 */
#include "cross_domain.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/checked.h"

static const struct neep_context_ops cross_domain_ops;

static struct cross_domain_context *from_base(struct neep_context *base)
{
    /* The ops table is the type tag: only our contexts point at it. */
    return base->ops == &cross_domain_ops ? (struct cross_domain_context *)base : NULL;
}

void cross_domain_item_free(struct cross_domain_item *item)
{
    if (item) {
        if (item->fd >= 0) {
            close(item->fd);
        }
        free(item);
    }
}

int cross_domain_add_item(struct cross_domain_context *ctx, struct cross_domain_item *item,
                          uint32_t *id)
{
    if (ctx->items.count >= CROSS_DOMAIN_MAX_ITEMS) {
        cd_error(ctx, "cross-domain: %u items held; the guest must consume some first",
                 CROSS_DOMAIN_MAX_ITEMS);
        return -E2BIG;
    }
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
    }
    return ret;
}

static void ring_clear(struct cross_domain_ring *ring)
{
    free(ring->iov);
    memset(ring, 0, sizeof(*ring));
}

/* Takes a copy of an attached guest blob's memory list for replies. */
static int ring_take(struct cross_domain_context *ctx, uint32_t resource_id,
                     struct cross_domain_ring *ring)
{
    struct neep_resource *resource = id_table_get(&ctx->base.attached_resources, resource_id);
    if (!resource || resource->kind != NEEP_RESOURCE_BLOB || !resource->backing) {
        cd_error(ctx, "cross-domain INIT: ring %u is not a guest blob attached to context %u",
                 resource_id, ctx->base.id);
        return -EINVAL;
    }
    size_t bytes = resource->backing_count * sizeof(struct iovec);
    ring->iov = malloc(bytes);
    if (!ring->iov) {
        return -ENOMEM;
    }
    memcpy(ring->iov, resource->backing, bytes);
    ring->iov_count = resource->backing_count;
    ring->size_bytes = resource->size_bytes < resource->backing_bytes ? resource->size_bytes
                                                                      : resource->backing_bytes;
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
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        int error = errno;
        neep_log_host(&ctx->base.renderer->logger, NEEP_LOG_ERROR,
                      "cross-domain: cannot connect to %s: %s", path, strerror(error));
        if (fd >= 0) {
            close(fd);
        }
        return -EIO;
    }
    ctx->channel_fd = fd;
    return cross_domain_watch(ctx, fd, CROSS_DOMAIN_TOKEN_CHANNEL);
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
    int ret = ring_take(ctx, init.query_ring_id, &ctx->query_ring);
    if (ret == 0 && init.channel_type != 0) {
        ret = ring_take(ctx, init.channel_ring_id, &ctx->channel_ring);
    }
    if (ret == 0 && init.channel_type != 0) {
        ret = connect_channel(ctx, init.channel_type);
    }
    if (ret < 0) {
        ring_clear(&ctx->query_ring);
        ring_clear(&ctx->channel_ring);
        if (ctx->channel_fd >= 0) {
            close(ctx->channel_fd);
            ctx->channel_fd = -1;
        }
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
    reply.size = (offset + PAGE_BYTES - 1) / PAGE_BYTES * PAGE_BYTES;
    reply.map_info = MAP_CACHE_CACHED | MAP_ACCESS_RW;
    reply.memory_idx = -1;
    reply.physical_device_idx = -1;

    struct cross_domain_item *item = calloc(1, sizeof(*item));
    if (!item) {
        return -ENOMEM;
    }
    *item = (struct cross_domain_item){ITEM_IMAGE_REQUIREMENTS, -1, reply.size, reply.map_info};
    uint32_t id;
    int ret = cross_domain_add_item(ctx, item, &id);
    if (ret < 0) {
        free(item);
        return ret;
    }
    reply.blob_id = id;
    if (!cross_domain_ring_write(&ctx->query_ring, &reply, sizeof(reply))) {
        cd_error(ctx, "cross-domain: the query ring cannot hold a reply");
        return -EINVAL;
    }
    return 0;
}

/* Resolves the identifiers of a SEND into fds to pass; read pipes are made here. */
static int send_identifiers(struct cross_domain_context *ctx,
                            const struct cross_domain_send_receive *send, int *fds,
                            int *pipe_write_end, uint32_t *pipe_id)
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
            uint32_t expected = ctx->next_read_pipe_id + 1;
            if (expected == 0) {
                expected = CROSS_DOMAIN_PIPE_READ_START;
            }
            if (*pipe_write_end >= 0 || id != expected) {
                cd_error(ctx,
                         "cross-domain SEND: read pipe %u out of step (expected %u, one "
                         "per SEND)",
                         id, expected);
                return -EINVAL;
            }
            int ends[2];
            if (pipe2(ends, O_CLOEXEC) < 0) {
                return -EIO;
            }
            struct cross_domain_item *item = calloc(1, sizeof(*item));
            if (!item) {
                close(ends[0]);
                close(ends[1]);
                return -ENOMEM;
            }
            *item = (struct cross_domain_item){ITEM_READ_PIPE, ends[0], 0, 0};
            int ret = id_table_insert(&ctx->items, id, item);
            if (ret == 0) {
                ret = cross_domain_watch(ctx, ends[0], id);
                if (ret < 0) {
                    id_table_remove(&ctx->items, id);
                }
            }
            if (ret < 0) {
                cross_domain_item_free(item);
                close(ends[1]);
                return ret;
            }
            ctx->next_read_pipe_id = id;
            *pipe_write_end = ends[1];
            *pipe_id = id;
            fds[i] = ends[1];
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
    if (ctx->channel_fd < 0) {
        cd_error(ctx, "cross-domain SEND without an open channel");
        return -EINVAL;
    }
    int fds[CROSS_DOMAIN_MAX_IDENTIFIERS];
    int pipe_write_end = -1;
    uint32_t pipe_id = 0;
    int ret = send_identifiers(ctx, &send, fds, &pipe_write_end, &pipe_id);
    if (ret == 0) {
        struct iovec iov = {(void *)(bytes + sizeof(send)), send.opaque_data_size};
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(CROSS_DOMAIN_MAX_IDENTIFIERS * sizeof(int))];
        } control;
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        if (send.num_identifiers > 0) {
            msg.msg_control = &control;
            msg.msg_controllen = CMSG_SPACE(send.num_identifiers * sizeof(int));
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(send.num_identifiers * sizeof(int));
            memcpy(CMSG_DATA(c), fds, send.num_identifiers * sizeof(int));
        }
        ssize_t sent;
        do {
            sent = sendmsg(ctx->channel_fd, &msg, MSG_NOSIGNAL);
        } while (sent < 0 && errno == EINTR);
        if (sent != (ssize_t)send.opaque_data_size) {
            neep_log_host(&ctx->base.renderer->logger, NEEP_LOG_WARN,
                          "cross-domain: the compositor did not take a message (%s)",
                          sent < 0 ? strerror(errno) : "short write");
            ret = -EIO;
        }
    }
    if (pipe_write_end >= 0) {
        close(pipe_write_end); /* the compositor has its copy; EOF must reach the guest */
        if (ret < 0) {
            struct cross_domain_item *item = id_table_remove(&ctx->items, pipe_id);
            if (item) {
                cross_domain_unwatch(ctx, item->fd);
                cross_domain_item_free(item);
            }
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
    if (!item || item->kind != ITEM_WRITE_PIPE) {
        cd_error(ctx, "cross-domain WRITE: %u is not a write pipe", request.identifier);
        return -EINVAL;
    }
    const uint8_t *data = bytes + sizeof(request);
    size_t left = request.opaque_data_size;
    int ret = 0;
    while (left > 0) {
        ssize_t written = write(item->fd, data, left);
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written <= 0) {
            /* The reader went away; like a closed pipe in any program, drop the rest. */
            ret = -EPIPE;
            break;
        }
        data += written;
        left -= (size_t)written;
    }
    if (request.hang_up || ret < 0) {
        cross_domain_item_free(id_table_remove(&ctx->items, request.identifier));
    }
    return ret == -EPIPE ? 0 : ret;
}

/* Walks the concatenated commands of one SUBMIT_3D. */
static int cross_domain_submit(struct neep_context *base, const uint8_t *commands,
                               size_t size_bytes)
{
    struct cross_domain_context *ctx = from_base(base);
    size_t pos = 0;
    int ret = 0;
    pthread_mutex_lock(&ctx->lock);
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
    pthread_mutex_unlock(&ctx->lock);
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
    pthread_mutex_lock(&ctx->lock);
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
        pthread_cond_signal(&ctx->wake);
    }
    pthread_mutex_unlock(&ctx->lock);
    return ret;
}

static void cross_domain_detach(struct neep_context *base, struct neep_resource *resource)
{
    struct cross_domain_context *ctx = from_base(base);
    pthread_mutex_lock(&ctx->lock);
    /* The guest may reuse that memory: no more replies into it. */
    if (ctx->query_ring.resource_id == resource->id) {
        ring_clear(&ctx->query_ring);
    }
    if (ctx->channel_ring.resource_id == resource->id) {
        ring_clear(&ctx->channel_ring);
    }
    pthread_mutex_unlock(&ctx->lock);
}

static void cross_domain_visit_borrowed(struct neep_context *base, neep_borrowed_memory_fn visit,
                                        void *user_data)
{
    struct cross_domain_context *ctx = from_base(base);
    pthread_mutex_lock(&ctx->lock);
    const struct cross_domain_ring *rings[] = {&ctx->query_ring, &ctx->channel_ring};
    for (size_t r = 0; r < 2; r++) {
        for (size_t i = 0; i < rings[r]->iov_count; i++) {
            visit(user_data, rings[r]->iov[i].iov_base, rings[r]->iov[i].iov_len);
        }
    }
    pthread_mutex_unlock(&ctx->lock);
}

/* The memory a ring was copied from is going away: stop replying into it (under the lock, so
 * the worker is not writing there meanwhile). */
static void cross_domain_forget_borrowed(struct neep_context *base, const void *begin,
                                         size_t size_bytes)
{
    struct cross_domain_context *ctx = from_base(base);
    pthread_mutex_lock(&ctx->lock);
    struct cross_domain_ring *rings[] = {&ctx->query_ring, &ctx->channel_ring};
    for (size_t r = 0; r < 2; r++) {
        for (size_t i = 0; i < rings[r]->iov_count; i++) {
            if (neep_ranges_overlap(rings[r]->iov[i].iov_base, rings[r]->iov[i].iov_len, begin,
                                    size_bytes)) {
                cd_error(ctx, "cross-domain: context %u loses ring %u: its memory is gone",
                         ctx->base.id, rings[r]->resource_id);
                ring_clear(rings[r]);
                break;
            }
        }
    }
    pthread_mutex_unlock(&ctx->lock);
}

static int cross_domain_create_blob(struct neep_context *base, uint32_t resource_id,
                                    const struct neep_blob_create *create,
                                    struct neep_blob_storage *out)
{
    struct cross_domain_context *ctx = from_base(base);
    if (create->blob_id > UINT32_MAX) {
        return -EINVAL;
    }
    pthread_mutex_lock(&ctx->lock);
    int ret = 0;
    uint32_t id = (uint32_t)create->blob_id;
    struct cross_domain_item *item = id_table_get(&ctx->items, id);
    if (!item || (item->kind != ITEM_IMAGE_REQUIREMENTS && item->kind != ITEM_BLOB)) {
        cd_error(ctx, "cross-domain blob %u: no item %u to make it from", resource_id, id);
        ret = -EINVAL;
    } else if (create->size_bytes < item->size_bytes ||
               create->size_bytes - item->size_bytes >= PAGE_BYTES) {
        /* Equal, or the same size rounded up to a page as Linux does. */
        cd_error(ctx, "cross-domain blob %u: %llu bytes asked, item %u holds %llu", resource_id,
                 (unsigned long long)create->size_bytes, id, (unsigned long long)item->size_bytes);
        ret = -EINVAL;
    } else if (item->kind == ITEM_IMAGE_REQUIREMENTS) {
        /* A template: fresh zeroed memory each time, sealed against resizing. */
        int fd = memfd_create("neep-cross-domain", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0 || ftruncate(fd, (off_t)create->size_bytes) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
            if (fd >= 0) {
                close(fd);
            }
            ret = -ENOMEM;
        } else {
            *out = (struct neep_blob_storage){fd, NEEP_HANDLE_MEM_SHM, create->size_bytes,
                                              item->map_info};
        }
    } else {
        /* A received fd: consumed by this blob. */
        id_table_remove(&ctx->items, id);
        *out = (struct neep_blob_storage){item->fd, NEEP_HANDLE_MEM_SHM, create->size_bytes,
                                          item->map_info};
        item->fd = -1;
        cross_domain_item_free(item);
    }
    pthread_mutex_unlock(&ctx->lock);
    return ret;
}

static void cross_domain_destroy(struct neep_context *base)
{
    struct cross_domain_context *ctx = from_base(base);
    cross_domain_channel_stop(ctx);
    for (size_t i = 0; i < ctx->items.capacity; i++) {
        if (ctx->items.keys[i]) {
            cross_domain_item_free(ctx->items.values[i]);
        }
    }
    id_table_finish(&ctx->items);
    ring_clear(&ctx->query_ring);
    ring_clear(&ctx->channel_ring);
    if (ctx->channel_fd >= 0) {
        close(ctx->channel_fd);
    }
    pthread_cond_destroy(&ctx->wake);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

static const struct neep_context_ops cross_domain_ops = {
    .destroy = cross_domain_destroy,
    .submit = cross_domain_submit,
    .detach_resource = cross_domain_detach,
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

static int cross_domain_create(struct neep_renderer *renderer, uint32_t context_init,
                               struct neep_context **out)
{
    struct cross_domain_context *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        return -ENOMEM;
    }
    ctx->base.ops = &cross_domain_ops;
    ctx->base.renderer = renderer;
    ctx->channel_fd = -1;
    ctx->epoll_fd = -1;
    ctx->wake_fd = -1;
    ctx->next_item_id = 1;
    ctx->next_read_pipe_id = CROSS_DOMAIN_PIPE_READ_START;
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_cond_init(&ctx->wake, NULL);
    id_table_init(&ctx->items);
    int ret = cross_domain_channel_start(ctx);
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
