/*
 * One connection's host side: the messages gathered into SENDs, the replies the host writes
 * into the channel ring (RECEIVE with the compositor's bytes and files, READ with pipe
 * data), and the pipes of clipboard and drag-and-drop transfers both ways.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proxy.h"
#include "wayland-client-protocol.h"

/* Largest host blob handed to a client as a copy (keymaps are tens of KiB). */
#define MAX_HOST_BLOB_BYTES (64u << 20)

void channel_pipe_free(struct proxy_client *client, struct proxy_pipe *pipe)
{
    epoll_ctl(client->proxy->epoll_fd, EPOLL_CTL_DEL, pipe->fd, NULL);
    close(pipe->fd);
    free(pipe->pending);
    pipe->watch.kind = WATCH_DEAD;
    proxy_defer_free(client->proxy, pipe);
}

void channel_free_pipes(struct proxy_client *client, struct id_table *table)
{
    for (size_t i = 0; i < table->capacity; i++) {
        if (table->keys[i]) {
            channel_pipe_free(client, table->values[i]);
        }
    }
    id_table_finish(table);
}

/* --- to the host --- */

/* The batch is submitted as one block: the SEND's fixed part, then its data. */
_Static_assert(offsetof(struct send_batch, command) == 0 &&
                   offsetof(struct send_batch, data) == sizeof(struct cross_domain_send_receive),
               "a SEND's data follows its fixed part");
/* The host walks commands by cmd_size and refuses stray bytes after the last one, while the
 * submission is padded to 4 bytes: chunks of 4-byte-aligned messages must stay aligned. */
_Static_assert(VIRTGPU_SEND_MAX_DATA_BYTES % 4 == 0, "split messages stay 4-byte aligned");
_Static_assert(sizeof(struct cross_domain_send_receive) + VIRTGPU_SEND_MAX_DATA_BYTES <= UINT16_MAX,
               "a SEND's size fits cmd_size");
/* Any message the wire reader accepts is relayed, in at most two SENDs. */
_Static_assert(WIRE_MAX_MESSAGE_BYTES <= 2 * VIRTGPU_SEND_MAX_DATA_BYTES,
               "a Wayland message spans at most two SENDs");
_Static_assert(WIRE_MAX_ARGS <= CROSS_DOMAIN_MAX_IDENTIFIERS, "a message's fds fit one SEND");
/* What is left of an unfinished message plus one RECEIVE always fits from_host. */
_Static_assert(sizeof(((struct proxy_client *)0)->from_host) >=
                   WIRE_MAX_MESSAGE_BYTES - 1 + VIRTGPU_SEND_MAX_DATA_BYTES,
               "from_host holds a partial message and a RECEIVE");

bool proxy_client_flush_host(struct proxy_client *client)
{
    struct send_batch *batch = &client->batch;
    if (batch->data_bytes == 0 && batch->identifier_count == 0) {
        return true;
    }
    struct cross_domain_send_receive *send = &batch->command;
    send->hdr = (struct cross_domain_header){
        .cmd = CROSS_DOMAIN_CMD_SEND, .cmd_size = (uint16_t)(sizeof(*send) + batch->data_bytes)};
    send->num_identifiers = batch->identifier_count;
    send->opaque_data_size = (uint32_t)batch->data_bytes;
    size_t size = (sizeof(*send) + batch->data_bytes + 3) & ~(size_t)3;
    int ret = virtgpu_channel_submit(&client->channel, batch, size);
    memset(send, 0, sizeof(*send));
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
    if (id_count > CROSS_DOMAIN_MAX_IDENTIFIERS) {
        proxy_client_fail(client, 1, WL_DISPLAY_ERROR_IMPLEMENTATION,
                          "a message with %u files, more than one SEND carries", id_count);
        return false;
    }
    /* A message starts a new SEND when it does not fit whole in this one, or its identifiers
     * do not: the host passes a SEND's fds with its first byte, so fds stay with or ahead of
     * the message that carries them. */
    if (size > sizeof(batch->data) - batch->data_bytes ||
        id_count > CROSS_DOMAIN_MAX_IDENTIFIERS - batch->identifier_count ||
        (read_pipe && batch->has_read_pipe)) {
        if (!proxy_client_flush_host(client)) {
            return false;
        }
    }
    for (uint32_t i = 0; i < id_count; i++) {
        batch->command.identifiers[batch->identifier_count] = ids[i];
        batch->command.identifier_types[batch->identifier_count] = types[i];
        batch->identifier_count++;
    }
    batch->has_read_pipe |= read_pipe;
    /* Longer than a SEND's data: the rest continues in the next SEND (the compositor's
     * socket is a byte stream, the host forwards each SEND's bytes in order). */
    while (size > 0) {
        if (batch->data_bytes == sizeof(batch->data) && !proxy_client_flush_host(client)) {
            return false;
        }
        size_t room = sizeof(batch->data) - batch->data_bytes;
        size_t chunk = size < room ? size : room;
        memcpy(batch->data + batch->data_bytes, message, chunk);
        batch->data_bytes += chunk;
        message += chunk;
        size -= chunk;
    }
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
    if (client->write_pipes.count >= PROXY_MAX_PIPES_PER_CLIENT) {
        errno = EMFILE; /* the compositor's transfers to this client: at most this many open */
        return -1;
    }
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
    if (proxy_watch_fd(client, ends[0], EPOLLIN, &pipe->watch) < 0) {
        id_table_remove(&client->write_pipes, host_id);
        channel_pipe_free(client, pipe);
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
void channel_pump_client_pipe(struct proxy_client *client, struct proxy_pipe *pipe)
{
    while (pipe->pending_bytes > 0) {
        ssize_t wrote = write(pipe->fd, pipe->pending, pipe->pending_bytes);
        if (wrote < 0 && errno == EINTR) {
            continue;
        }
        if (wrote < 0 && errno == EAGAIN) {
            proxy_watch_fd(client, pipe->fd, EPOLLOUT, &pipe->watch);
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
        channel_pipe_free(client, pipe);
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
    } else if (reply.opaque_data_size) {
        /* The data cannot be kept: the reader gets what came before, then the end, rather
         * than a stream with a hole in it. */
        proxy_log("client %u: out of memory for %u bytes of pipe %u: ending it early",
                  client->serial, reply.opaque_data_size, reply.identifier);
        pipe->hang_up_after_pending = true;
    }
    pipe->hang_up_after_pending |= reply.hang_up != 0;
    fcntl(pipe->fd, F_SETFL, fcntl(pipe->fd, F_GETFL) | O_NONBLOCK);
    channel_pump_client_pipe(client, pipe);
}

bool channel_pipes_pending(struct proxy_client *client)
{
    for (size_t i = 0; i < client->read_pipes.capacity; i++) {
        if (client->read_pipes.keys[i] &&
            ((struct proxy_pipe *)client->read_pipes.values[i])->pending_bytes > 0) {
            return true;
        }
    }
    return false;
}

bool channel_handle_reply(struct proxy_client *client)
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
void channel_forward_guest_pipe(struct proxy_client *client, struct proxy_pipe *pipe)
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
        channel_pipe_free(client, pipe);
    }
}
