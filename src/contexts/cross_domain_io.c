/*
 * What happens when a cross-domain fd is ready: exactly one reply (RECEIVE from the
 * compositor, READ from a pipe) per outstanding POLL, written into the channel ring; and
 * output (to the compositor, to pipes the compositor handed over) sent as far as the peer
 * takes it, the rest queued with a per-context limit. Nothing here blocks: every fd is
 * non-blocking, so this code may run on the embedder's thread for a first try.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cross_domain.h"
#include "util/fd_passing.h"
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

static bool poll_ready(const struct cross_domain_context *ctx)
{
    return ctx->poll_pending && ctx->channel_ring.resource_id != 0;
}

static uint32_t channel_interest(const struct cross_domain_context *ctx)
{
    return (poll_ready(ctx) && !ctx->channel_done ? EPOLLIN : 0u) |
           (ctx->channel_out.head ? EPOLLOUT : 0u);
}

static uint32_t item_interest(const struct cross_domain_context *ctx,
                              const struct cross_domain_item *item)
{
    if (item->kind == ITEM_READ_PIPE) {
        return poll_ready(ctx) ? EPOLLIN : 0u;
    }
    return item->kind == ITEM_WRITE_PIPE && item->output.head ? EPOLLOUT : 0u;
}

void cross_domain_arm_item(struct cross_domain_context *ctx, struct cross_domain_item *item)
{
    cross_domain_arm(ctx, &item->watch, item_interest(ctx, item));
}

void cross_domain_rearm_all(struct cross_domain_context *ctx)
{
    /* Pipes first: sources ready at once are answered in the order they are armed, and a
     * compositor that writes into a pipe, closes it and then sends a message expects the
     * pipe's end to arrive before the message. */
    for (size_t i = 0; i < ctx->items.capacity; i++) {
        if (ctx->items.keys[i]) {
            struct cross_domain_item *item = ctx->items.values[i];
            cross_domain_arm(ctx, &item->watch, item_interest(ctx, item));
        }
    }
    cross_domain_arm(ctx, &ctx->channel, channel_interest(ctx));
}

/* ---- output ------------------------------------------------------------------------------ */

/* write() to a pipe whose reader left raises SIGPIPE in the calling thread, which would kill
 * an embedder that does not ignore it. Block it around the write and take back the one the
 * write raised (one that was pending before is not ours and stays). */
static ssize_t writev_without_sigpipe(int fd, const struct iovec *iov, int iov_count)
{
    sigset_t pipe_signal, old_mask, pending;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, &old_mask);
    ssize_t written;
    do {
        written = writev(fd, iov, iov_count);
    } while (written < 0 && errno == EINTR);
    int error = errno;
    if (written < 0 && error == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_signal, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    errno = error;
    return written;
}

/* One non-blocking send of the bytes in `iov`, with fds when given; returns bytes taken or
 * -errno. */
static ssize_t send_some(int fd, bool is_socket, const struct iovec *iov, int iov_count,
                         const int *fds, uint32_t fd_count)
{
    if (!is_socket) {
        ssize_t written = writev_without_sigpipe(fd, iov, iov_count);
        return written < 0 ? -errno : written;
    }
    union fd_passing_control control;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iov_count};
    fd_passing_attach(&msg, &control, fds, fd_count);
    ssize_t sent;
    do {
        sent = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent < 0 ? -errno : sent;
}

static ssize_t send_one(int fd, bool is_socket, const uint8_t *data, size_t size, const int *fds,
                        uint32_t fd_count)
{
    struct iovec iov = {(void *)data, size};
    return send_some(fd, is_socket, &iov, 1, fds, fd_count);
}

static uint64_t chunk_charge_bytes(size_t size_bytes)
{
    return sizeof(struct cross_domain_chunk) + size_bytes;
}

static void chunk_free(struct cross_domain_context *ctx, struct cross_domain_chunk *chunk)
{
    for (uint32_t i = 0; i < chunk->fd_count; i++) {
        close(chunk->fds[i]);
    }
    cross_domain_fds_give_back(ctx, chunk->fd_count);
    ctx->queued_bytes -= chunk->size_bytes;
    neep_budget_release(ctx->base.renderer, chunk_charge_bytes(chunk->size_bytes));
    free(chunk);
}

void cross_domain_queue_clear(struct cross_domain_context *ctx, struct cross_domain_queue *queue)
{
    while (queue->head) {
        struct cross_domain_chunk *next = queue->head->next;
        chunk_free(ctx, queue->head);
        queue->head = next;
    }
    queue->tail = NULL;
}

/* Appends a copy of the bytes and duplicates of the fds; charged and capped. */
static int enqueue(struct cross_domain_context *ctx, struct cross_domain_queue *queue,
                   const uint8_t *data, size_t size_bytes, const int *fds, uint32_t fd_count)
{
    if (size_bytes > CROSS_DOMAIN_MAX_QUEUED_BYTES - ctx->queued_bytes) {
        cd_error(ctx, "cross-domain: context %u already has %llu bytes its peers have not read",
                 ctx->base.id, (unsigned long long)ctx->queued_bytes);
        return -ENOBUFS;
    }
    if (!cross_domain_fds_take(ctx, fd_count)) {
        return -EMFILE;
    }
    int ret = neep_budget_charge(ctx->base.renderer, chunk_charge_bytes(size_bytes));
    struct cross_domain_chunk *chunk = ret == 0 ? malloc(sizeof(*chunk) + size_bytes) : NULL;
    if (!chunk) {
        if (ret == 0) {
            neep_budget_release(ctx->base.renderer, chunk_charge_bytes(size_bytes));
        }
        cross_domain_fds_give_back(ctx, fd_count);
        return -ENOMEM;
    }
    chunk->next = NULL;
    chunk->size_bytes = size_bytes;
    chunk->sent_bytes = 0;
    chunk->fd_count = 0;
    memcpy(chunk->data, data, size_bytes);
    ctx->queued_bytes += size_bytes;
    for (uint32_t i = 0; i < fd_count; i++) {
        int copy = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
        if (copy < 0) {
            cross_domain_fds_give_back(ctx, fd_count - i);
            chunk_free(ctx, chunk);
            return -EMFILE;
        }
        chunk->fds[chunk->fd_count++] = copy;
    }
    if (queue->tail) {
        queue->tail->next = chunk;
    } else {
        queue->head = chunk;
    }
    queue->tail = chunk;
    return 0;
}

/* Chunks gathered into one send: fewer syscalls for a queue of small Wayland messages. */
#define FLUSH_MAX_CHUNKS 64

/* Sends queued chunks until the peer would block: 0 (drained or waiting) or -errno. */
static int flush(struct cross_domain_context *ctx, struct cross_domain_queue *queue, int fd,
                 bool is_socket)
{
    while (queue->head) {
        /* A chunk with fds starts a send of its own: they travel with its first byte. */
        struct cross_domain_chunk *first = queue->head;
        struct iovec iov[FLUSH_MAX_CHUNKS];
        int iov_count = 0;
        for (struct cross_domain_chunk *chunk = first; chunk && iov_count < FLUSH_MAX_CHUNKS;
             chunk = chunk->next) {
            if (chunk != first && chunk->fd_count > 0) {
                break;
            }
            iov[iov_count++] = (struct iovec){chunk->data + chunk->sent_bytes,
                                              chunk->size_bytes - chunk->sent_bytes};
        }
        ssize_t sent = send_some(fd, is_socket, iov, iov_count, first->fds, first->fd_count);
        if (sent == -EAGAIN || sent == 0) {
            return 0;
        }
        if (sent < 0) {
            return (int)sent;
        }
        for (uint32_t i = 0; i < first->fd_count; i++) {
            close(first->fds[i]);
        }
        cross_domain_fds_give_back(ctx, first->fd_count);
        first->fd_count = 0;
        for (size_t left = (size_t)sent; left > 0;) {
            struct cross_domain_chunk *chunk = queue->head;
            size_t taken = chunk->size_bytes - chunk->sent_bytes;
            taken = taken < left ? taken : left;
            chunk->sent_bytes += taken;
            left -= taken;
            if (chunk->sent_bytes == chunk->size_bytes) {
                queue->head = chunk->next;
                if (!queue->head) {
                    queue->tail = NULL;
                }
                chunk_free(ctx, chunk);
            }
        }
    }
    return 0;
}

void cross_domain_close_channel(struct cross_domain_context *ctx)
{
    cross_domain_queue_clear(ctx, &ctx->channel_out);
    if (ctx->channel.fd >= 0) {
        cross_domain_unwatch(ctx, &ctx->channel);
        close(ctx->channel.fd);
        ctx->channel.fd = -1;
        cross_domain_fds_give_back(ctx, 1);
    }
}

/* The compositor stopped taking our bytes: the stream is broken. Shut the socket down, so the
 * compositor drops this client and the guest sees the end after what was already received. */
static void output_failed(struct cross_domain_context *ctx, const char *why)
{
    neep_log_host(&ctx->base.renderer->logger, NEEP_LOG_WARN,
                  "cross-domain: context %u: the compositor connection is closed (%s)",
                  ctx->base.id, why);
    ctx->channel_output_failed = true;
    cross_domain_queue_clear(ctx, &ctx->channel_out);
    shutdown(ctx->channel.fd, SHUT_RDWR);
}

int cross_domain_channel_output(struct cross_domain_context *ctx, const uint8_t *data,
                                size_t size_bytes, const int *fds, uint32_t fd_count)
{
    if (ctx->channel.fd < 0 || ctx->channel_output_failed) {
        cd_error(ctx, "cross-domain SEND: the compositor connection of context %u is closed",
                 ctx->base.id);
        return -EPIPE;
    }
    if (ctx->channel_out.head) {
        /* Move what waits first, here: no need to wait for the event thread's turn. */
        int ret = flush(ctx, &ctx->channel_out, ctx->channel.fd, true);
        if (ret < 0) {
            output_failed(ctx, strerror(-ret));
            return -EIO;
        }
    }
    if (!ctx->channel_out.head) {
        ssize_t sent = send_one(ctx->channel.fd, true, data, size_bytes, fds, fd_count);
        if (sent < 0 && sent != -EAGAIN) {
            output_failed(ctx, strerror((int)-sent));
            return -EIO;
        }
        if (sent > 0) {
            data += sent;
            size_bytes -= (size_t)sent;
            fd_count = 0; /* they went with the first byte */
        }
        if (size_bytes == 0) {
            return 0;
        }
    }
    int ret = enqueue(ctx, &ctx->channel_out, data, size_bytes, fds, fd_count);
    if (ret < 0) {
        /* The bytes cannot wait, so the stream would lose them: end it, saying why. */
        output_failed(ctx, ret == -ENOBUFS ? "it does not read what the guest sends"
                                           : "the rest of a message cannot be queued");
        return ret;
    }
    return cross_domain_arm(ctx, &ctx->channel, channel_interest(ctx));
}

int cross_domain_pipe_output(struct cross_domain_context *ctx, struct cross_domain_item *item,
                             const uint8_t *data, size_t size_bytes)
{
    if (item->fd < 0) {
        return -EPIPE; /* its reader was gone when it arrived */
    }
    if (item->output.head && flush(ctx, &item->output, item->fd, false) < 0) {
        return -EPIPE;
    }
    if (!item->output.head && size_bytes > 0) {
        ssize_t written = send_one(item->fd, false, data, size_bytes, NULL, 0);
        if (written < 0 && written != -EAGAIN) {
            return -EPIPE;
        }
        if (written > 0) {
            data += written;
            size_bytes -= (size_t)written;
        }
    }
    if (size_bytes == 0) {
        return 0;
    }
    int ret = enqueue(ctx, &item->output, data, size_bytes, NULL, 0);
    return ret < 0 ? ret : cross_domain_arm(ctx, &item->watch, EPOLLOUT);
}

/* ---- replies ----------------------------------------------------------------------------- */

/* Answers with the end of the stream (a RECEIVE with nothing in it) and closes the channel. */
static void report_end(struct cross_domain_context *ctx)
{
    struct cross_domain_send_receive reply;
    memset(&reply, 0, sizeof(reply));
    reply.hdr.cmd = CROSS_DOMAIN_CMD_RECEIVE;
    reply.hdr.cmd_size = sizeof(reply);
    cross_domain_ring_write(&ctx->channel_ring, &reply, sizeof(reply));
    cross_domain_close_channel(ctx);
    ctx->channel_done = true;
}

static size_t reply_room(const struct cross_domain_context *ctx)
{
    return ctx->channel_ring.size_bytes < CROSS_DOMAIN_RING_BYTES ? ctx->channel_ring.size_bytes
                                                                  : CROSS_DOMAIN_RING_BYTES;
}

/* One recvmsg from the compositor into a RECEIVE reply; false if nothing was there. */
static bool receive(struct cross_domain_context *ctx)
{
    uint8_t buffer[CROSS_DOMAIN_RING_BYTES];
    struct cross_domain_send_receive *reply = (struct cross_domain_send_receive *)buffer;
    memset(reply, 0, sizeof(*reply));
    size_t room = reply_room(ctx);
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
        got = recvmsg(ctx->channel.fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return false; /* spurious wake-up: keep waiting */
    }
    int error = errno;
    int fds[CROSS_DOMAIN_MAX_IDENTIFIERS];
    uint32_t fd_count = 0;
    for (struct cmsghdr *c = got >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < n; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (fd_count < CROSS_DOMAIN_MAX_IDENTIFIERS) {
                    fds[fd_count++] = fd;
                } else {
                    cross_domain_close_later(ctx, fd);
                }
            }
        }
    }
    if (got <= 0 || (msg.msg_flags & MSG_CTRUNC)) {
        if (got < 0 || (msg.msg_flags & MSG_CTRUNC)) {
            cd_error(ctx, "cross-domain: the compositor connection failed (%s)",
                     got < 0 ? strerror(error) : "too many fds in one message");
        }
        for (uint32_t i = 0; i < fd_count; i++) {
            cross_domain_close_later(ctx, fds[i]);
        }
        report_end(ctx);
        return true;
    }
    for (uint32_t i = 0; i < fd_count; i++) {
        if (cross_domain_add_received_fd(ctx, fds[i], &reply->identifiers[i],
                                         &reply->identifier_types[i],
                                         &reply->identifier_sizes[i]) < 0) {
            /* An fd the guest cannot be given would desynchronise the stream: end it, and
             * forget what this message made already (the guest never hears of it). */
            for (uint32_t j = 0; j < i; j++) {
                cross_domain_item_free(ctx, id_table_remove(&ctx->items, reply->identifiers[j]));
            }
            for (uint32_t j = i + 1; j < fd_count; j++) {
                cross_domain_close_later(ctx, fds[j]);
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
static bool read_pipe(struct cross_domain_context *ctx, uint32_t id, struct cross_domain_item *item)
{
    uint8_t buffer[CROSS_DOMAIN_RING_BYTES];
    struct cross_domain_read_write *reply = (struct cross_domain_read_write *)buffer;
    memset(reply, 0, sizeof(*reply));
    size_t room = reply_room(ctx);
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
        cross_domain_item_free(ctx, id_table_remove(&ctx->items, id));
    }
    return true;
}

/* ---- events ------------------------------------------------------------------------------ */

static bool channel_event(struct cross_domain_context *ctx, uint32_t events)
{
    if (ctx->channel.fd < 0) {
        return false;
    }
    ctx->channel.armed_events = 0; /* one-shot: it fired */
    if (ctx->channel_out.head && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int ret = flush(ctx, &ctx->channel_out, ctx->channel.fd, true);
        if (ret < 0) {
            output_failed(ctx, strerror(-ret));
        }
    }
    bool replied = false;
    if (poll_ready(ctx) && !ctx->channel_done && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
        replied = receive(ctx);
        if (replied) {
            ctx->poll_pending = false;
        }
    }
    cross_domain_arm(ctx, &ctx->channel, channel_interest(ctx));
    return replied;
}

static bool item_event(struct cross_domain_context *ctx, uint32_t id, uint32_t events)
{
    struct cross_domain_item *item = id_table_get(&ctx->items, id);
    if (!item || item->fd < 0) {
        return false;
    }
    item->watch.armed_events = 0;
    if (item->kind == ITEM_READ_PIPE) {
        if (poll_ready(ctx) && read_pipe(ctx, id, item)) {
            ctx->poll_pending = false;
            return true; /* the item may be gone; nothing more to arm for it now */
        }
    } else if (item->kind == ITEM_WRITE_PIPE) {
        int ret = flush(ctx, &item->output, item->fd, false);
        if (ret < 0 || (!item->output.head && item->hang_up_when_drained)) {
            /* The reader left (like any program writing to a closed pipe, drop the rest), or
             * everything is out and the guest hung up. */
            cross_domain_item_free(ctx, id_table_remove(&ctx->items, id));
            return false;
        }
    }
    cross_domain_arm(ctx, &item->watch, item_interest(ctx, item));
    return false;
}

bool cross_domain_handle_event(struct cross_domain_context *ctx, uint32_t token, uint32_t events)
{
    return token == CROSS_DOMAIN_TOKEN_CHANNEL ? channel_event(ctx, events)
                                               : item_event(ctx, token, events);
}
