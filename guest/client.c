/*
 * One client connection's plumbing: its socket, its channel to the host, the byte and fd
 * queues between them, and the pipes of clipboard transfers. What the messages mean is
 * relay.c's business.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"
#include "shm.h"
#include "wayland-client-protocol.h"

/* libwayland's limit on fds in one sendmsg. */
#define FDS_PER_SENDMSG 28u
/* Largest host blob handed to a client as a copy (keymaps are tens of KiB). */
#define MAX_HOST_BLOB_BYTES (64u << 20)

/* Watches `fd` for `events`, whether or not it was watched before. */
static int watch_fd(struct proxy_client *client, int fd, uint32_t events, struct watch *watch)
{
    struct epoll_event event = {.events = events, .data.ptr = watch};
    if (epoll_ctl(client->proxy->epoll_fd, EPOLL_CTL_MOD, fd, &event) == 0) {
        return 0;
    }
    return epoll_ctl(client->proxy->epoll_fd, EPOLL_CTL_ADD, fd, &event);
}

/* Tells a client that cannot be served why, as the only thing it hears. */
static void refuse(int socket_fd, const char *why)
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

static void pipe_free(struct proxy_client *client, struct proxy_pipe *pipe)
{
    epoll_ctl(client->proxy->epoll_fd, EPOLL_CTL_DEL, pipe->fd, NULL);
    close(pipe->fd);
    free(pipe->pending);
    pipe->watch.kind = WATCH_DEAD;
    proxy_defer_free(client->proxy, pipe);
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
    proxy->client_count++;
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
        refuse(socket_fd, why);
        client->channel.drm_fd = -1;
        proxy_client_destroy(client);
        return NULL;
    }
    client->poll_armed = true;
    proxy->ring_users[client->channel.poll_ring]++;
    fcntl(socket_fd, F_SETFL, fcntl(socket_fd, F_GETFL) | O_NONBLOCK);
    if (watch_fd(client, socket_fd, EPOLLIN, &client->socket_watch) < 0 ||
        watch_fd(client, client->channel.drm_fd, EPOLLIN, &client->channel_watch) < 0) {
        proxy_client_destroy(client);
        return NULL;
    }
    return client;
}

static void free_pipes(struct proxy_client *client, struct id_table *table)
{
    for (size_t i = 0; i < table->capacity; i++) {
        if (table->keys[i]) {
            pipe_free(client, table->values[i]);
        }
    }
    id_table_finish(table);
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
    free_pipes(client, &client->read_pipes);
    free_pipes(client, &client->write_pipes);
    shm_finish(client);
    virtgpu_channel_close(&client->channel); /* the host drops its side with the context */
    relay_finish(client);
    fd_fifo_clear(&client->client_fds);
    fd_fifo_clear(&client->host_fds);
    for (uint32_t i = 0; i < client->outgoing_fd_count; i++) {
        close(client->outgoing_fds[i].fd);
    }
    free(client->to_client_bytes.data);
    client->proxy->client_count--;
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
        /* Compact, then grow. */
        memmove(queue->data, queue->data + queue->start, queue->end - queue->start);
        queue->end -= queue->start;
        queue->start = 0;
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
        union {
            struct cmsghdr align;
            char buffer[CMSG_SPACE(FDS_PER_SENDMSG * sizeof(int))];
        } control;
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        if (fd_count) {
            msg.msg_control = control.buffer;
            msg.msg_controllen = CMSG_SPACE(fd_count * sizeof(int));
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(fd_count * sizeof(int));
            for (uint32_t i = 0; i < fd_count; i++) {
                memcpy(CMSG_DATA(c) + i * sizeof(int), &client->outgoing_fds[i].fd, sizeof(int));
            }
        }
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

/* --- to the host --- */

bool proxy_client_flush_host(struct proxy_client *client)
{
    struct send_batch *batch = &client->batch;
    if (batch->data_bytes == 0 && batch->identifier_count == 0) {
        return true;
    }
    struct cross_domain_send_receive *send = (struct cross_domain_send_receive *)batch->buffer;
    send->hdr = (struct cross_domain_header){
        .cmd = CROSS_DOMAIN_CMD_SEND, .cmd_size = (uint16_t)(sizeof(*send) + batch->data_bytes)};
    send->num_identifiers = batch->identifier_count;
    send->opaque_data_size = (uint32_t)batch->data_bytes;
    size_t size = (sizeof(*send) + batch->data_bytes + 3) & ~(size_t)3;
    int ret = virtgpu_channel_submit(&client->channel, batch->buffer, size);
    memset(batch->buffer, 0, sizeof(struct cross_domain_send_receive));
    batch->data_bytes = 0;
    batch->identifier_count = 0;
    batch->has_read_pipe = false;
    if (ret < 0) {
        proxy_log("client %u: SEND to the host failed (%s)", client->serial, strerror(errno));
        client->closing = true;
        return false;
    }
    return true;
}

bool proxy_client_send(struct proxy_client *client, const uint8_t *message, size_t size,
                       const uint32_t *ids, const uint32_t *types, uint32_t id_count)
{
    struct send_batch *batch = &client->batch;
    bool read_pipe = false;
    for (uint32_t i = 0; i < id_count; i++) {
        read_pipe |= types[i] == CROSS_DOMAIN_ID_TYPE_READ_PIPE;
    }
    if (batch->data_bytes + size > VIRTGPU_SEND_MAX_DATA_BYTES ||
        batch->identifier_count + id_count > CROSS_DOMAIN_MAX_IDENTIFIERS ||
        (read_pipe && batch->has_read_pipe)) {
        if (!proxy_client_flush_host(client)) {
            return false;
        }
    }
    struct cross_domain_send_receive *send = (struct cross_domain_send_receive *)batch->buffer;
    for (uint32_t i = 0; i < id_count; i++) {
        send->identifiers[batch->identifier_count] = ids[i];
        send->identifier_types[batch->identifier_count] = types[i];
        batch->identifier_count++;
    }
    batch->has_read_pipe |= read_pipe;
    memcpy(batch->buffer + sizeof(*send) + batch->data_bytes, message, size);
    batch->data_bytes += size;
    return true;
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

/* --- from the host --- */

/* A host blob for the client: its bytes, copied into a sealed memfd of the guest. */
static int host_blob_fd(struct proxy_client *client, uint32_t blob_id, uint32_t size_bytes)
{
    if (size_bytes == 0 || size_bytes > MAX_HOST_BLOB_BYTES) {
        return -1;
    }
    struct virtgpu_blob blob;
    if (virtgpu_import_host_blob(&client->channel, blob_id, size_bytes, &blob) < 0) {
        return -1;
    }
    int fd = memfd_create("neep-wl-host-blob", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    bool ok = fd >= 0 && ftruncate(fd, size_bytes) == 0;
    for (uint32_t done = 0; ok && done < size_bytes;) {
        ssize_t wrote = pwrite(fd, blob.map + done, size_bytes - done, done);
        ok = wrote > 0;
        done += ok ? (uint32_t)wrote : 0;
    }
    virtgpu_blob_free(&client->channel, &blob); /* the host drops the item with it */
    /* No F_SEAL_WRITE: kernels before 6.7 refuse even read-only shared mappings of
     * write-sealed memfds, and clients of wl_keyboard before version 7 map keymaps shared. */
    if (!ok || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

/* A pipe the host compositor writes into (wl_data_source.send): the client gets the write
 * end, the proxy forwards what arrives on the read end. */
static int host_write_pipe_fd(struct proxy_client *client, uint32_t host_id)
{
    int ends[2];
    if (pipe2(ends, O_CLOEXEC | O_NONBLOCK) < 0) {
        return -1;
    }
    struct proxy_pipe *pipe = calloc(1, sizeof(*pipe));
    if (!pipe || id_table_insert(&client->write_pipes, host_id, pipe) < 0) {
        free(pipe);
        close(ends[0]);
        close(ends[1]);
        return -1;
    }
    *pipe = (struct proxy_pipe){{WATCH_GUEST_PIPE, client}, ends[0], host_id, NULL, 0, false};
    if (watch_fd(client, ends[0], EPOLLIN, &pipe->watch) < 0) {
        id_table_remove(&client->write_pipes, host_id);
        pipe_free(client, pipe);
        close(ends[1]);
        return -1;
    }
    fcntl(ends[1], F_SETFL, 0); /* the client's end blocks as a pipe normally does */
    return ends[1];
}

static bool receive(struct proxy_client *client, const uint8_t *ring)
{
    struct cross_domain_send_receive reply;
    memcpy(&reply, ring, sizeof(reply));
    if (reply.num_identifiers > CROSS_DOMAIN_MAX_IDENTIFIERS ||
        reply.opaque_data_size > VIRTGPU_SEND_MAX_DATA_BYTES) {
        proxy_client_fail(client, 1, WL_DISPLAY_ERROR_IMPLEMENTATION,
                          "the host sent a malformed RECEIVE");
        return false;
    }
    if (reply.num_identifiers == 0 && reply.opaque_data_size == 0) {
        proxy_log("client %u: the host compositor closed the connection", client->serial);
        client->host_closed = true;
        client->closing = true;
        return false;
    }
    for (uint32_t i = 0; i < reply.num_identifiers; i++) {
        int fd = -1;
        switch (reply.identifier_types[i]) {
        case CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB:
            fd = host_blob_fd(client, reply.identifiers[i], reply.identifier_sizes[i]);
            break;
        case CROSS_DOMAIN_ID_TYPE_WRITE_PIPE:
            fd = host_write_pipe_fd(client, reply.identifiers[i]);
            break;
        default:
            break;
        }
        if (fd < 0 || !fd_fifo_push(&client->host_fds, fd)) {
            if (fd >= 0) {
                close(fd);
            }
            proxy_client_fail(client, 1, WL_DISPLAY_ERROR_IMPLEMENTATION,
                              "neep-wl cannot hand over a file (type %u, %u bytes) from the "
                              "compositor: %s",
                              reply.identifier_types[i], reply.identifier_sizes[i],
                              strerror(errno));
            return false;
        }
    }
    if (reply.opaque_data_size > sizeof(client->from_host) - client->from_host_bytes) {
        proxy_client_fail(client, 1, WL_DISPLAY_ERROR_IMPLEMENTATION,
                          "the compositor's stream overran neep-wl's buffer");
        return false;
    }
    memcpy(client->from_host + client->from_host_bytes, ring + sizeof(reply),
           reply.opaque_data_size);
    client->from_host_bytes += reply.opaque_data_size;
    size_t position = 0;
    while (!client->closing && client->from_host_bytes - position >= 8) {
        uint32_t header[2];
        memcpy(header, client->from_host + position, sizeof(header));
        size_t size = header[1] >> 16;
        if (size < 8 || size > WIRE_MAX_MESSAGE_BYTES || size % 4) {
            proxy_client_fail(client, 1, WL_DISPLAY_ERROR_IMPLEMENTATION,
                              "the compositor sent a message of %zu bytes", size);
            return false;
        }
        if (client->from_host_bytes - position < size) {
            break;
        }
        if (!relay_event(client, client->from_host + position, size)) {
            return false;
        }
        position += size;
    }
    memmove(client->from_host, client->from_host + position, client->from_host_bytes - position);
    client->from_host_bytes -= position;
    return true;
}

/* Writes what a client's pipe takes; the rest waits for EPOLLOUT. */
static void pump_client_pipe(struct proxy_client *client, struct proxy_pipe *pipe)
{
    while (pipe->pending_bytes > 0) {
        ssize_t wrote = write(pipe->fd, pipe->pending, pipe->pending_bytes);
        if (wrote < 0 && errno == EINTR) {
            continue;
        }
        if (wrote < 0 && errno == EAGAIN) {
            watch_fd(client, pipe->fd, EPOLLOUT, &pipe->watch);
            return;
        }
        if (wrote <= 0) {
            pipe->pending_bytes = 0; /* the reader went away: drop the rest */
            pipe->hang_up_after_pending = true;
            break;
        }
        memmove(pipe->pending, pipe->pending + wrote, pipe->pending_bytes - (size_t)wrote);
        pipe->pending_bytes -= (size_t)wrote;
    }
    epoll_ctl(client->proxy->epoll_fd, EPOLL_CTL_DEL, pipe->fd, NULL);
    if (pipe->hang_up_after_pending) {
        id_table_remove(&client->read_pipes, pipe->host_id);
        pipe_free(client, pipe);
    }
}

static void read_data(struct proxy_client *client, const uint8_t *ring)
{
    struct cross_domain_read_write reply;
    memcpy(&reply, ring, sizeof(reply));
    struct proxy_pipe *pipe = id_table_get(&client->read_pipes, reply.identifier);
    if (!pipe || reply.opaque_data_size > CROSS_DOMAIN_RING_BYTES - sizeof(reply)) {
        proxy_log("client %u: READ for unknown pipe %u", client->serial, reply.identifier);
        return;
    }
    uint8_t *grown = reply.opaque_data_size
                         ? realloc(pipe->pending, pipe->pending_bytes + reply.opaque_data_size)
                         : pipe->pending;
    if (reply.opaque_data_size && grown) {
        pipe->pending = grown;
        memcpy(pipe->pending + pipe->pending_bytes, ring + sizeof(reply), reply.opaque_data_size);
        pipe->pending_bytes += reply.opaque_data_size;
    }
    pipe->hang_up_after_pending |= reply.hang_up != 0;
    fcntl(pipe->fd, F_SETFL, fcntl(pipe->fd, F_GETFL) | O_NONBLOCK);
    pump_client_pipe(client, pipe);
}

static bool pipes_pending(struct proxy_client *client)
{
    for (size_t i = 0; i < client->read_pipes.capacity; i++) {
        if (client->read_pipes.keys[i] &&
            ((struct proxy_pipe *)client->read_pipes.values[i])->pending_bytes > 0) {
            return true;
        }
    }
    return false;
}

static bool handle_channel(struct proxy_client *client)
{
    int event = virtgpu_channel_take_event(&client->channel);
    if (event <= 0) {
        return event == 0;
    }
    client->poll_armed = false;
    uint8_t ring[CROSS_DOMAIN_RING_BYTES];
    memcpy(ring, client->channel.channel_ring.map, sizeof(ring));
    struct cross_domain_header header;
    memcpy(&header, ring, sizeof(header));
    switch (header.cmd) {
    case CROSS_DOMAIN_CMD_RECEIVE:
        receive(client, ring);
        break;
    case CROSS_DOMAIN_CMD_READ:
        read_data(client, ring);
        break;
    default:
        proxy_log("client %u: unexpected reply %u on the channel ring", client->serial, header.cmd);
        break;
    }
    return true;
}

/* Data a client wrote into a pipe for the host compositor (wl_data_source.send). */
static void forward_guest_pipe(struct proxy_client *client, struct proxy_pipe *pipe)
{
    uint8_t buffer[CROSS_DOMAIN_RING_BYTES];
    struct cross_domain_read_write *write_cmd = (struct cross_domain_read_write *)buffer;
    ssize_t got;
    do {
        got = read(pipe->fd, buffer + sizeof(*write_cmd), sizeof(buffer) - sizeof(*write_cmd));
    } while (got < 0 && errno == EINTR);
    if (got < 0 && errno == EAGAIN) {
        return;
    }
    memset(write_cmd, 0, sizeof(*write_cmd));
    write_cmd->hdr.cmd = CROSS_DOMAIN_CMD_WRITE;
    write_cmd->identifier = pipe->host_id;
    write_cmd->hang_up = got <= 0;
    write_cmd->opaque_data_size = got > 0 ? (uint32_t)got : 0;
    /* Commands stay 4-byte aligned; the data size says where the data ends. */
    size_t size = (sizeof(*write_cmd) + write_cmd->opaque_data_size + 3u) & ~(size_t)3;
    write_cmd->hdr.cmd_size = (uint16_t)size;
    if (virtgpu_channel_submit(&client->channel, buffer, size) < 0 || got <= 0) {
        id_table_remove(&client->write_pipes, pipe->host_id);
        pipe_free(client, pipe);
    }
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
        alive = handle_channel(client);
        why = alive ? NULL : "the channel failed";
        break;
    case WATCH_GUEST_PIPE:
        forward_guest_pipe(client, (struct proxy_pipe *)watch);
        break;
    case WATCH_CLIENT_PIPE:
        pump_client_pipe(client, (struct proxy_pipe *)watch);
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
    watch_fd(client, client->socket_fd, socket_events, &client->socket_watch);
    /* The host's next reply waits while the client lags: that is the backpressure. */
    if (!client->poll_armed && !client->closing &&
        queued_bytes(client) < PROXY_CLIENT_BACKLOG_BYTES && !pipes_pending(client)) {
        if (virtgpu_channel_poll(&client->channel) < 0) {
            proxy_log("client %u: POLL failed (%s)", client->serial, strerror(errno));
            proxy_client_destroy(client);
            return false;
        }
        client->poll_armed = true;
    }
    return true;
}
