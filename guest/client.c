/*
 * One client connection: its life, its socket and the byte and fd queues towards it, and
 * the dispatch of its fds' readiness. channel.c has the host side; what the messages mean is
 * relay.c's business.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../src/util/fd_passing.h"
#include "proxy.h"
#include "shm.h"
#include "wayland-client-protocol.h"

/* libwayland's limit on fds in one sendmsg. */
#define FDS_PER_SENDMSG 28u
_Static_assert(FDS_PER_SENDMSG <= FD_PASSING_MAX_FDS, "one control message holds them");

int proxy_watch_fd(struct proxy_client *client, int fd, uint32_t events, struct watch *watch)
{
    struct epoll_event event = {.events = events, .data.ptr = watch};
    if (epoll_ctl(client->proxy->epoll_fd, EPOLL_CTL_MOD, fd, &event) == 0) {
        return 0;
    }
    return epoll_ctl(client->proxy->epoll_fd, EPOLL_CTL_ADD, fd, &event);
}

void proxy_refuse(int socket_fd, const char *why)
{
    char event[512];
    uint32_t length = (uint32_t)strnlen(why, sizeof(event) - 24) + 1;
    uint32_t size = 20 + ((length + 3) & ~3u);
    uint32_t header[] = {1, size << 16, 1, WL_DISPLAY_ERROR_IMPLEMENTATION, length};
    memset(event, 0, sizeof(event));
    memcpy(event, header, sizeof(header));
    memcpy(event + 20, why, length - 1);
    ssize_t ignored = send(socket_fd, event, size, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)ignored;
}

void proxy_defer_free(struct proxy *proxy, void *memory)
{
    if (proxy->garbage_count == proxy->garbage_capacity) {
        size_t capacity = proxy->garbage_capacity ? proxy->garbage_capacity * 2 : 16;
        void **grown = realloc(proxy->garbage, capacity * sizeof(*grown));
        if (!grown) {
            return; /* a leak is the lesser harm than a use after free */
        }
        proxy->garbage = grown;
        proxy->garbage_capacity = capacity;
    }
    proxy->garbage[proxy->garbage_count++] = memory;
}

void proxy_collect_garbage(struct proxy *proxy)
{
    for (size_t i = 0; i < proxy->garbage_count; i++) {
        free(proxy->garbage[i]);
    }
    proxy->garbage_count = 0;
}

struct proxy_client *proxy_client_create(struct proxy *proxy, int socket_fd)
{
    struct proxy_client *client = calloc(1, sizeof(*client));
    if (!client) {
        close(socket_fd);
        return NULL;
    }
    client->proxy = proxy;
    client->socket_fd = socket_fd;
    client->serial = ++proxy->next_serial;
    client->socket_watch = (struct watch){WATCH_CLIENT, client};
    client->channel_watch = (struct watch){WATCH_CHANNEL, client};
    id_table_init(&client->pools);
    id_table_init(&client->buffers);
    id_table_init(&client->surfaces);
    id_table_init(&client->read_pipes);
    id_table_init(&client->write_pipes);
    const char *error = "out of memory";
    bool relay_ready = relay_init(client) == 0;
    uint32_t ring = VIRTGPU_FIRST_POLL_RING;
    for (uint32_t r = VIRTGPU_FIRST_POLL_RING; r <= VIRTGPU_LAST_POLL_RING; r++) {
        if (proxy->ring_users[r] < proxy->ring_users[ring]) {
            ring = r;
        }
    }
    if (!relay_ready ||
        virtgpu_channel_open(&client->channel, proxy->render_node, ring, &error) < 0) {
        char why[256];
        snprintf(why, sizeof(why), "neep-wl cannot reach the host compositor: %s (%s)", error,
                 strerror(errno));
        proxy_log("client %u: %s", client->serial, why);
        proxy_refuse(socket_fd, why);
        client->channel.drm_fd = -1;
        proxy_client_destroy(client);
        return NULL;
    }
    client->poll_armed = true;
    proxy->ring_users[client->channel.poll_ring]++;
    fcntl(socket_fd, F_SETFL, fcntl(socket_fd, F_GETFL) | O_NONBLOCK);
    if (proxy_watch_fd(client, socket_fd, EPOLLIN, &client->socket_watch) < 0 ||
        proxy_watch_fd(client, client->channel.drm_fd, EPOLLIN, &client->channel_watch) < 0) {
        proxy_client_destroy(client);
        return NULL;
    }
    return client;
}

void proxy_client_destroy(struct proxy_client *client)
{
    if (client->shm_commits) {
        proxy_log("client %u: %llu commits, %llu bytes copied to the host in %.1f ms",
                  client->serial, (unsigned long long)client->shm_commits,
                  (unsigned long long)client->shm_copied_bytes, (double)client->shm_copy_ns / 1e6);
    }
    epoll_ctl(client->proxy->epoll_fd, EPOLL_CTL_DEL, client->socket_fd, NULL);
    if (client->channel.drm_fd >= 0) {
        epoll_ctl(client->proxy->epoll_fd, EPOLL_CTL_DEL, client->channel.drm_fd, NULL);
        client->proxy->ring_users[client->channel.poll_ring]--;
    }
    close(client->socket_fd);
    channel_free_pipes(client, &client->read_pipes);
    channel_free_pipes(client, &client->write_pipes);
    shm_finish(client);
    virtgpu_channel_close(&client->channel); /* the host drops its side with the context */
    relay_finish(client);
    fd_fifo_clear(&client->client_fds);
    fd_fifo_clear(&client->host_fds);
    for (uint32_t i = 0; i < client->outgoing_fd_count; i++) {
        close(client->outgoing_fds[i].fd);
    }
    free(client->to_client_bytes.data);
    client->socket_watch.kind = WATCH_DEAD;
    client->channel_watch.kind = WATCH_DEAD;
    proxy_defer_free(client->proxy, client);
}

/* --- to the client --- */

static size_t queued_bytes(const struct proxy_client *client)
{
    return client->to_client_bytes.end - client->to_client_bytes.start;
}

bool proxy_client_queue(struct proxy_client *client, const uint8_t *message, size_t size,
                        const int *fds, uint32_t fd_count)
{
    struct byte_queue *queue = &client->to_client_bytes;
    bool fits = queued_bytes(client) + size <= PROXY_CLIENT_MAX_QUEUED_BYTES &&
                client->outgoing_fd_count + fd_count <= PROXY_MAX_QUEUED_FDS;
    if (fits && queue->end + size > queue->capacity) {
        /* Compact, then grow (an empty queue has no memory yet: no arithmetic on NULL). */
        if (queue->start > 0) {
            memmove(queue->data, queue->data + queue->start, queue->end - queue->start);
            queue->end -= queue->start;
            queue->start = 0;
        }
        size_t capacity = queue->capacity ? queue->capacity : 16384;
        while (queue->end + size > capacity) {
            capacity *= 2;
        }
        uint8_t *grown = capacity == queue->capacity ? queue->data : realloc(queue->data, capacity);
        fits = grown != NULL;
        if (grown) {
            queue->data = grown;
            queue->capacity = capacity;
        }
    }
    if (!fits) {
        for (uint32_t i = 0; i < fd_count; i++) {
            close(fds[i]);
        }
        proxy_log("client %u: does not read its messages; disconnecting it", client->serial);
        client->closing = true;
        return false;
    }
    uint64_t offset = client->to_client_offset + queued_bytes(client);
    memcpy(queue->data + queue->end, message, size);
    queue->end += size;
    for (uint32_t i = 0; i < fd_count; i++) {
        client->outgoing_fds[client->outgoing_fd_count++] = (struct outgoing_fd){fds[i], offset};
    }
    return true;
}

/* Sends what the client's socket takes; false if the client is gone. */
static bool flush_client(struct proxy_client *client)
{
    struct byte_queue *queue = &client->to_client_bytes;
    while (queue->end > queue->start) {
        /* Fds go with the first bytes of their message, at most 28 per sendmsg. */
        uint32_t fd_count = 0;
        size_t length = queue->end - queue->start;
        while (fd_count < client->outgoing_fd_count &&
               client->outgoing_fds[fd_count].offset < client->to_client_offset + length) {
            if (fd_count == FDS_PER_SENDMSG) {
                length = (size_t)(client->outgoing_fds[fd_count].offset - client->to_client_offset);
                break;
            }
            fd_count++;
        }
        struct iovec iov = {queue->data + queue->start, length};
        int fds[FDS_PER_SENDMSG];
        for (uint32_t i = 0; i < fd_count; i++) {
            fds[i] = client->outgoing_fds[i].fd;
        }
        union fd_passing_control control;
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        fd_passing_attach(&msg, &control, fds, fd_count);
        ssize_t sent = sendmsg(client->socket_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
        for (uint32_t i = 0; i < fd_count; i++) {
            close(client->outgoing_fds[i].fd);
        }
        memmove(client->outgoing_fds, client->outgoing_fds + fd_count,
                (client->outgoing_fd_count - fd_count) * sizeof(client->outgoing_fds[0]));
        client->outgoing_fd_count -= fd_count;
        queue->start += (size_t)sent;
        client->to_client_offset += (uint64_t)sent;
    }
    queue->start = queue->end = 0;
    return true;
}

void proxy_client_fail(struct proxy_client *client, uint32_t object_id, uint32_t code,
                       const char *format, ...)
{
    char text[512];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof(text), format, args);
    va_end(args);
    proxy_log("client %u: %s", client->serial, text);
    if (client->closing) {
        return; /* one error per connection, as libwayland does */
    }
    /* wl_display.error(object, code, message). */
    uint32_t length = (uint32_t)strlen(text) + 1;
    uint32_t padded = (length + 3) & ~3u;
    uint8_t event[16 + sizeof(text) + 4];
    uint32_t size = 20 + padded;
    uint32_t header[] = {1, (size << 16) | 0, object_id, code, length};
    memset(event, 0, sizeof(event));
    memcpy(event, header, sizeof(header));
    memcpy(event + 20, text, length);
    proxy_client_queue(client, event, size, NULL, 0);
    client->closing = true;
}

/* --- from the client --- */

static bool read_client(struct proxy_client *client)
{
    size_t room = sizeof(client->from_client) - client->from_client_bytes;
    struct iovec iov = {client->from_client + client->from_client_bytes, room};
    union {
        struct cmsghdr align;
        char buffer[CMSG_SPACE(FDS_PER_SENDMSG * sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buffer,
                         .msg_controllen = sizeof(control.buffer)};
    ssize_t got;
    do {
        got = recvmsg(client->socket_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return true;
    }
    bool fds_fit = true;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (!fd_fifo_push(&client->client_fds, fd)) {
                close(fd);
                fds_fit = false;
            }
        }
    }
    if (got <= 0) {
        return false; /* the client hung up */
    }
    if (!fds_fit || (msg.msg_flags & MSG_CTRUNC)) {
        proxy_client_fail(client, 1, WL_DISPLAY_ERROR_IMPLEMENTATION,
                          "too many file descriptors in flight");
        return true;
    }
    client->from_client_bytes += (size_t)got;
    size_t position = 0;
    while (!client->closing && client->from_client_bytes - position >= 8) {
        uint32_t header[2];
        memcpy(header, client->from_client + position, sizeof(header));
        size_t size = header[1] >> 16;
        if (size < 8 || size > WIRE_MAX_MESSAGE_BYTES || size % 4) {
            proxy_client_fail(client, header[0], WL_DISPLAY_ERROR_INVALID_METHOD,
                              "a message of %zu bytes", size);
            break;
        }
        if (client->from_client_bytes - position < size) {
            break;
        }
        if (!relay_request(client, client->from_client + position, size)) {
            break;
        }
        position += size;
    }
    memmove(client->from_client, client->from_client + position,
            client->from_client_bytes - position);
    client->from_client_bytes -= position;
    proxy_client_flush_host(client);
    return true;
}

bool proxy_client_handle(struct proxy_client *client, struct watch *watch, uint32_t events)
{
    bool alive = true;
    const char *why = NULL;
    if (watch->kind == WATCH_DEAD) {
        return false;
    }
    switch (watch->kind) {
    case WATCH_CLIENT:
        if ((events & EPOLLIN) && !client->closing) {
            alive = read_client(client);
        } else if (events & (EPOLLHUP | EPOLLERR)) {
            alive = false;
        }
        why = alive ? NULL : "the client hung up";
        break;
    case WATCH_CHANNEL:
        alive = channel_handle_reply(client);
        why = alive ? NULL : "the channel failed";
        break;
    case WATCH_GUEST_PIPE:
        channel_forward_guest_pipe(client, (struct proxy_pipe *)watch);
        break;
    case WATCH_CLIENT_PIPE:
        channel_pump_client_pipe(client, (struct proxy_pipe *)watch);
        break;
    default:
        break;
    }
    if (alive && !flush_client(client)) {
        alive = false;
        why = "the client's socket failed";
    }
    if (alive && client->closing && queued_bytes(client) == 0) {
        alive = false;
        why = "closed after an error";
    }
    if (!alive) {
        proxy_log("client %u: disconnected: %s (%s)", client->serial, why, strerror(errno));
        proxy_client_destroy(client);
        return false;
    }
    uint32_t socket_events =
        (client->closing ? 0 : EPOLLIN) | (queued_bytes(client) ? EPOLLOUT : 0);
    proxy_watch_fd(client, client->socket_fd, socket_events, &client->socket_watch);
    /* The host's next reply waits while the client lags: that is the backpressure. */
    if (!client->poll_armed && !client->closing &&
        queued_bytes(client) < PROXY_CLIENT_BACKLOG_BYTES && !channel_pipes_pending(client)) {
        if (virtgpu_channel_poll(&client->channel) < 0) {
            proxy_log("client %u: POLL failed (%s)", client->serial, strerror(errno));
            proxy_client_destroy(client);
            return false;
        }
        client->poll_armed = true;
    }
    return true;
}
