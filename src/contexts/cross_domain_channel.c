/*
 * The cross-domain worker: while a POLL fence is outstanding it waits for the compositor's
 * socket or a read pipe to become readable, writes exactly one reply (RECEIVE or READ) into
 * the channel ring and signals the fence. It never blocks the embedder: the embedder's
 * thread only takes the context lock, briefly.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cross_domain.h"
#include "util/iov.h"

bool cross_domain_ring_write(const struct cross_domain_ring *ring, const void *data, size_t size)
{
    if (!ring->resource_id || size > ring->size_bytes) {
        return false;
    }
    struct iov_cursor cursor;
    iov_cursor_init(&cursor, ring->iov, ring->iov_count);
    iov_cursor_write(&cursor, data, size);
    return true;
}

int cross_domain_watch(struct cross_domain_context *ctx, int fd, uint32_t token)
{
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = token};
    return epoll_ctl(ctx->epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0 ? -errno : 0;
}

void cross_domain_unwatch(struct cross_domain_context *ctx, int fd)
{
    epoll_ctl(ctx->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
}

/* Turns a received fd into an item: memory (seekable), or a pipe's write end. */
static int classify(struct cross_domain_context *ctx, int fd, uint32_t *id, uint32_t *type,
                    uint32_t *size)
{
    struct cross_domain_item *item = calloc(1, sizeof(*item));
    if (!item) {
        close(fd);
        return -ENOMEM;
    }
    item->fd = fd;
    off_t end = lseek(fd, 0, SEEK_END);
    int mode = fcntl(fd, F_GETFL);
    if (end >= 0 && end <= UINT32_MAX) {
        item->kind = ITEM_BLOB;
        item->size_bytes = (uint64_t)end;
        bool read_only = mode >= 0 && (mode & O_ACCMODE) == O_RDONLY;
        item->map_info = MAP_CACHE_CACHED | (read_only ? MAP_ACCESS_READ : MAP_ACCESS_RW);
        *type = CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB;
        *size = (uint32_t)end;
    } else if (mode >= 0 && (mode & O_ACCMODE) == O_WRONLY) {
        item->kind = ITEM_WRITE_PIPE;
        *type = CROSS_DOMAIN_ID_TYPE_WRITE_PIPE;
        *size = 0;
    } else {
        cd_error(ctx, "cross-domain: the compositor sent an fd that is neither memory nor a "
                      "pipe's write end");
        cross_domain_item_free(item);
        return -EINVAL;
    }
    int ret = cross_domain_add_item(ctx, item, id);
    if (ret < 0) {
        cross_domain_item_free(item);
    }
    return ret;
}

/* Answers with the end of the stream (a RECEIVE with nothing in it) and closes the channel. */
static void report_end(struct cross_domain_context *ctx)
{
    struct cross_domain_send_receive reply;
    memset(&reply, 0, sizeof(reply));
    reply.hdr.cmd = CROSS_DOMAIN_CMD_RECEIVE;
    reply.hdr.cmd_size = sizeof(reply);
    cross_domain_ring_write(&ctx->channel_ring, &reply, sizeof(reply));
    if (ctx->channel_fd >= 0) {
        cross_domain_unwatch(ctx, ctx->channel_fd);
        close(ctx->channel_fd);
        ctx->channel_fd = -1;
    }
    ctx->channel_done = true;
}

/* One recvmsg from the compositor into a RECEIVE reply; false if nothing was there. */
static bool receive(struct cross_domain_context *ctx)
{
    uint8_t buffer[CROSS_DOMAIN_RING_BYTES];
    struct cross_domain_send_receive *reply = (struct cross_domain_send_receive *)buffer;
    memset(reply, 0, sizeof(*reply));
    size_t room = ctx->channel_ring.size_bytes < sizeof(buffer) ? ctx->channel_ring.size_bytes
                                                                : sizeof(buffer);
    if (room <= sizeof(*reply)) {
        cd_error(ctx, "cross-domain: the channel ring is too small for any data");
        report_end(ctx);
        return true;
    }
    struct iovec iov = {buffer + sizeof(*reply), room - sizeof(*reply)};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(CROSS_DOMAIN_MAX_IDENTIFIERS * sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = &control,
                         .msg_controllen = sizeof(control)};
    ssize_t got;
    do {
        got = recvmsg(ctx->channel_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return false; /* spurious wake-up: keep waiting */
    }
    int fds[CROSS_DOMAIN_MAX_IDENTIFIERS];
    uint32_t fd_count = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < n; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (fd_count < CROSS_DOMAIN_MAX_IDENTIFIERS) {
                    fds[fd_count++] = fd;
                } else {
                    close(fd);
                }
            }
        }
    }
    if (got <= 0 || (msg.msg_flags & MSG_CTRUNC)) {
        if (got < 0 || (msg.msg_flags & MSG_CTRUNC)) {
            cd_error(ctx, "cross-domain: the compositor connection failed (%s)",
                     got < 0 ? strerror(errno) : "too many fds in one message");
        }
        for (uint32_t i = 0; i < fd_count; i++) {
            close(fds[i]);
        }
        report_end(ctx);
        return true;
    }
    for (uint32_t i = 0; i < fd_count; i++) {
        if (classify(ctx, fds[i], &reply->identifiers[i], &reply->identifier_types[i],
                     &reply->identifier_sizes[i]) < 0) {
            /* An fd the guest cannot be given would desynchronise the stream: end it. */
            for (uint32_t j = i + 1; j < fd_count; j++) {
                close(fds[j]);
            }
            report_end(ctx);
            return true;
        }
    }
    reply->hdr.cmd = CROSS_DOMAIN_CMD_RECEIVE;
    reply->hdr.cmd_size = (uint16_t)(sizeof(*reply) + (size_t)got);
    reply->num_identifiers = fd_count;
    reply->opaque_data_size = (uint32_t)got;
    cross_domain_ring_write(&ctx->channel_ring, buffer, sizeof(*reply) + (size_t)got);
    return true;
}

/* Data from a read pipe into a READ reply; end of file hangs up and forgets the pipe. */
static bool read_pipe(struct cross_domain_context *ctx, uint32_t id)
{
    struct cross_domain_item *item = id_table_get(&ctx->items, id);
    if (!item || item->kind != ITEM_READ_PIPE) {
        return false;
    }
    uint8_t buffer[CROSS_DOMAIN_RING_BYTES];
    struct cross_domain_read_write *reply = (struct cross_domain_read_write *)buffer;
    memset(reply, 0, sizeof(*reply));
    size_t room = ctx->channel_ring.size_bytes < sizeof(buffer) ? ctx->channel_ring.size_bytes
                                                                : sizeof(buffer);
    if (room <= sizeof(*reply)) {
        return false;
    }
    ssize_t got;
    do {
        got = read(item->fd, buffer + sizeof(*reply), room - sizeof(*reply));
    } while (got < 0 && errno == EINTR);
    if (got < 0 && errno == EAGAIN) {
        return false;
    }
    reply->hdr.cmd = CROSS_DOMAIN_CMD_READ;
    reply->identifier = id;
    reply->hang_up = got <= 0;
    reply->opaque_data_size = got > 0 ? (uint32_t)got : 0;
    reply->hdr.cmd_size = (uint16_t)(sizeof(*reply) + reply->opaque_data_size);
    cross_domain_ring_write(&ctx->channel_ring, buffer, reply->hdr.cmd_size);
    if (reply->hang_up) {
        cross_domain_unwatch(ctx, item->fd);
        cross_domain_item_free(id_table_remove(&ctx->items, id));
    }
    return true;
}

static void *worker(void *arg)
{
    struct cross_domain_context *ctx = arg;
    pthread_mutex_lock(&ctx->lock);
    while (!ctx->stopping) {
        if (!ctx->poll_pending) {
            pthread_cond_wait(&ctx->wake, &ctx->lock);
            continue;
        }
        pthread_mutex_unlock(&ctx->lock);
        struct epoll_event events[8];
        int count = epoll_wait(ctx->epoll_fd, events, 8, -1);
        pthread_mutex_lock(&ctx->lock);
        if (ctx->stopping || count <= 0 || !ctx->poll_pending) {
            continue;
        }
        /* One reply per fence: the first ready source; the rest stay ready for the next. */
        for (int i = 0; i < count; i++) {
            uint32_t token = events[i].data.u32;
            if (token == CROSS_DOMAIN_TOKEN_WAKE) {
                uint64_t counter;
                ssize_t ignored = read(ctx->wake_fd, &counter, sizeof(counter));
                (void)ignored;
                continue;
            }
            bool replied = token == CROSS_DOMAIN_TOKEN_CHANNEL
                               ? ctx->channel_fd >= 0 && receive(ctx)
                               : read_pipe(ctx, token);
            if (replied) {
                ctx->poll_pending = false;
                /* Signal without the lock: the embedder may deliver right here. */
                struct neep_timeline *timeline = ctx->poll_timeline;
                uint64_t fence_id = ctx->poll_fence_id;
                pthread_mutex_unlock(&ctx->lock);
                neep_timeline_signal(timeline, fence_id);
                pthread_mutex_lock(&ctx->lock);
                break;
            }
        }
    }
    pthread_mutex_unlock(&ctx->lock);
    return NULL;
}

int cross_domain_channel_start(struct cross_domain_context *ctx)
{
    ctx->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    ctx->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ctx->epoll_fd < 0 || ctx->wake_fd < 0 ||
        cross_domain_watch(ctx, ctx->wake_fd, CROSS_DOMAIN_TOKEN_WAKE) < 0) {
        return -errno;
    }
    if (pthread_create(&ctx->worker, NULL, worker, ctx) != 0) {
        return -EAGAIN;
    }
    ctx->worker_started = true;
    return 0;
}

void cross_domain_channel_stop(struct cross_domain_context *ctx)
{
    if (ctx->worker_started) {
        pthread_mutex_lock(&ctx->lock);
        ctx->stopping = true;
        pthread_cond_signal(&ctx->wake);
        pthread_mutex_unlock(&ctx->lock);
        uint64_t one = 1;
        ssize_t ignored = write(ctx->wake_fd, &one, sizeof(one));
        (void)ignored;
        pthread_join(ctx->worker, NULL);
        ctx->worker_started = false;
    }
    if (ctx->epoll_fd >= 0) {
        close(ctx->epoll_fd);
        ctx->epoll_fd = -1;
    }
    if (ctx->wake_fd >= 0) {
        close(ctx->wake_fd);
        ctx->wake_fd = -1;
    }
}
