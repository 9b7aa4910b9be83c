/* The host side of neep-wl, recorded (see fake_host.h). */
#include "fake_host.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "proxy.h"
#include "wire.h"

#define PAGE_BYTES 4096u

struct fake_host fake_host;

/* --- neep_wl.c's log --- */

bool proxy_tracing;

void proxy_log(const char *format, ...)
{
    (void)format;
}

void proxy_trace(const struct proxy_client *client, const char *direction,
                 const struct wire_message *message, uint32_t from_id, uint32_t to_id)
{
    (void)client;
    (void)direction;
    (void)message;
    (void)from_id;
    (void)to_id;
}

/* --- the recorded host --- */

static void violation(const char *format, ...) __attribute__((format(printf, 1, 2)));

static void violation(const char *format, ...)
{
    if (fake_host.violation[0]) {
        return; /* the first one explains the rest */
    }
    va_list args;
    va_start(args, format);
    vsnprintf(fake_host.violation, sizeof(fake_host.violation), format, args);
    va_end(args);
}

void fake_host_reset(void)
{
    if (fake_host.open || fake_host.blob_count) {
        fprintf(stderr, "fake_host_reset: a channel or %u blobs are still alive\n",
                fake_host.blob_count);
        abort();
    }
    memset(&fake_host, 0, sizeof(fake_host));
    fake_host.event_fd = -1;
    fake_host.max_blob_bytes = 64u << 20;
    fake_host.max_import_bytes = 1u << 20;
    fake_host.next_resource = 100;
    fake_host.last_read_pipe = CROSS_DOMAIN_PIPE_READ_START;
}

bool wire_framing_feed(struct wire_framing *framing, const uint8_t *bytes, size_t size)
{
    while (size > 0 && !framing->broken) {
        if (framing->message_left > 0) {
            size_t take = size < framing->message_left ? size : framing->message_left;
            framing->message_left -= take;
            bytes += take;
            size -= take;
            continue;
        }
        size_t take = sizeof(framing->header) - framing->header_bytes;
        take = size < take ? size : take;
        memcpy(framing->header + framing->header_bytes, bytes, take);
        framing->header_bytes += take;
        bytes += take;
        size -= take;
        if (framing->header_bytes == sizeof(framing->header)) {
            uint32_t words[2];
            memcpy(words, framing->header, sizeof(words));
            uint32_t message_size = words[1] >> 16;
            framing->broken =
                message_size < 8 || message_size % 4 || message_size > WIRE_MAX_MESSAGE_BYTES;
            framing->message_left = framing->broken ? 0 : message_size - 8;
            framing->header_bytes = 0;
            framing->messages++;
        }
    }
    return !framing->broken;
}

/* The compositor reads a stream of whole Wayland messages; check each header as it comes. */
static void check_framing(const uint8_t *data, size_t size)
{
    if (!fake_host.framing.broken && !wire_framing_feed(&fake_host.framing, data, size)) {
        violation("message %u to the compositor has a malformed size",
                  fake_host.framing.messages - 1);
    }
}

static struct fake_host_blob *find_blob(uint32_t res_handle)
{
    for (uint32_t i = 0; i < fake_host.blob_count; i++) {
        if (fake_host.blobs[i].res_handle == res_handle) {
            return &fake_host.blobs[i];
        }
    }
    return NULL;
}

static void send_command(const uint8_t *bytes, size_t size)
{
    struct cross_domain_send_receive send;
    if (size < sizeof(send)) {
        violation("a SEND of %zu bytes", size);
        return;
    }
    memcpy(&send, bytes, sizeof(send));
    if (send.num_identifiers > CROSS_DOMAIN_MAX_IDENTIFIERS ||
        send.opaque_data_size > size - sizeof(send)) {
        violation("a SEND of %zu bytes with %u identifiers and %u data bytes", size,
                  send.num_identifiers, send.opaque_data_size);
        return;
    }
    /* More than this could not come back through a one-page ring, and hosts refuse it. */
    if (send.opaque_data_size > VIRTGPU_SEND_MAX_DATA_BYTES) {
        violation("a SEND with %u data bytes, more than %zu", send.opaque_data_size,
                  (size_t)VIRTGPU_SEND_MAX_DATA_BYTES);
        return;
    }
    bool read_pipe = false;
    for (uint32_t i = 0; i < send.num_identifiers; i++) {
        uint32_t id = send.identifiers[i];
        switch (send.identifier_types[i]) {
        case CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB: {
            struct fake_host_blob *blob = find_blob(id);
            if (!blob || !blob->guest_made) {
                violation("a SEND names resource %u, which is not a byte buffer of the guest", id);
                return;
            }
            break;
        }
        case CROSS_DOMAIN_ID_TYPE_READ_PIPE: {
            uint32_t expected = fake_host.last_read_pipe + 1;
            expected = expected ? expected : CROSS_DOMAIN_PIPE_READ_START;
            if (read_pipe || id != expected) {
                violation("read pipe %u out of step (expected %u, one per SEND)", id, expected);
                return;
            }
            read_pipe = true;
            fake_host.last_read_pipe = id;
            break;
        }
        default:
            violation("a SEND carries identifier type %u", send.identifier_types[i]);
            return;
        }
    }
    size_t start = fake_host.stream_bytes;
    const uint8_t *data = bytes + sizeof(send);
    if (start < sizeof(fake_host.stream)) {
        size_t room = sizeof(fake_host.stream) - start;
        memcpy(fake_host.stream + start, data,
               send.opaque_data_size < room ? send.opaque_data_size : room);
    }
    fake_host.stream_bytes += send.opaque_data_size;
    check_framing(data, send.opaque_data_size);
    for (uint32_t i = 0; i < send.num_identifiers; i++) {
        if (fake_host.identifier_count < FAKE_HOST_IDENTIFIERS) {
            fake_host.identifiers[fake_host.identifier_count] = (struct fake_host_identifier){
                send.identifiers[i], send.identifier_types[i], start, fake_host.stream_bytes};
        }
        fake_host.identifier_count++;
    }
    fake_host.sends++;
}

static void write_command(const uint8_t *bytes, size_t size)
{
    struct cross_domain_read_write write_cmd;
    if (size < sizeof(write_cmd)) {
        violation("a WRITE of %zu bytes", size);
        return;
    }
    memcpy(&write_cmd, bytes, sizeof(write_cmd));
    if (write_cmd.opaque_data_size > size - sizeof(write_cmd)) {
        violation("a WRITE of %zu bytes with %u data bytes", size, write_cmd.opaque_data_size);
        return;
    }
    fake_host.writes++;
    fake_host.write_bytes += write_cmd.opaque_data_size;
    fake_host.write_hang_ups += write_cmd.hang_up != 0;
}

/* --- virtgpu.h --- */

int virtgpu_channel_open(struct virtgpu_channel *channel, const char *render_node,
                         uint32_t poll_ring, const char **error)
{
    (void)render_node;
    memset(channel, 0, sizeof(*channel));
    channel->drm_fd = -1;
    channel->next_read_pipe_id = CROSS_DOMAIN_PIPE_READ_START;
    if (fake_host.open || fake_host.refuse_open) {
        errno = fake_host.open ? EBUSY : ENODEV;
        *error = "the fake host refuses a channel";
        return -1;
    }
    uint8_t *ring = aligned_alloc(PAGE_BYTES, CROSS_DOMAIN_RING_BYTES);
    int event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
    if (!ring || event_fd < 0) {
        int saved = errno;
        free(ring);
        if (event_fd >= 0) {
            close(event_fd);
        }
        errno = saved;
        *error = "cannot open the render node";
        return -1;
    }
    memset(ring, 0, CROSS_DOMAIN_RING_BYTES);
    channel->drm_fd = event_fd;
    channel->poll_ring = poll_ring >= VIRTGPU_FIRST_POLL_RING && poll_ring <= VIRTGPU_LAST_POLL_RING
                             ? poll_ring
                             : CROSS_DOMAIN_CHANNEL_RING;
    channel->channel_ring =
        (struct virtgpu_blob){1, fake_host.next_resource++, ring, CROSS_DOMAIN_RING_BYTES};
    fake_host.open = true;
    fake_host.event_fd = event_fd;
    fake_host.channel_ring = ring;
    fake_host.poll_outstanding = true; /* INIT is followed by the first POLL */
    fake_host.polls = 1;
    return 0;
}

void virtgpu_channel_close(struct virtgpu_channel *channel)
{
    if (channel->drm_fd >= 0) {
        close(channel->drm_fd);
        free(channel->channel_ring.map);
        memset(&channel->channel_ring, 0, sizeof(channel->channel_ring));
        fake_host.open = false;
        fake_host.event_fd = -1;
        fake_host.channel_ring = NULL;
        fake_host.poll_outstanding = false;
    }
    channel->drm_fd = -1;
}

int virtgpu_channel_submit(struct virtgpu_channel *channel, const void *commands, size_t size)
{
    (void)channel;
    if (fake_host.fail_submit) {
        errno = EIO;
        return -1;
    }
    const uint8_t *bytes = commands;
    size_t pos = 0;
    while (pos < size) {
        struct cross_domain_header header;
        if (size - pos < sizeof(header)) {
            violation("%zu stray bytes after the last command", size - pos);
            break;
        }
        memcpy(&header, bytes + pos, sizeof(header));
        if (header.cmd_size < sizeof(header) || header.cmd_size > size - pos) {
            violation("command %u claims %u bytes, %zu remain", header.cmd, header.cmd_size,
                      size - pos);
            break;
        }
        switch (header.cmd) {
        case CROSS_DOMAIN_CMD_SEND:
            send_command(bytes + pos, header.cmd_size);
            break;
        case CROSS_DOMAIN_CMD_WRITE:
            write_command(bytes + pos, header.cmd_size);
            break;
        default:
            violation("command %u submitted as a SEND or WRITE", header.cmd);
            break;
        }
        pos += header.cmd_size;
    }
    return 0;
}

int virtgpu_channel_poll(struct virtgpu_channel *channel)
{
    (void)channel;
    if (fake_host.fail_poll) {
        errno = EIO;
        return -1;
    }
    if (fake_host.poll_outstanding) {
        violation("a second POLL while one is outstanding (a reply would be lost)");
    }
    fake_host.poll_outstanding = true;
    fake_host.polls++;
    return 0;
}

int virtgpu_channel_take_event(struct virtgpu_channel *channel)
{
    uint64_t count;
    ssize_t got = read(channel->drm_fd, &count, sizeof(count));
    if (got < 0) {
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    }
    return got == sizeof(count) ? 1 : 0;
}

uint32_t virtgpu_channel_next_read_pipe(struct virtgpu_channel *channel)
{
    channel->next_read_pipe_id++;
    if (channel->next_read_pipe_id == 0) {
        channel->next_read_pipe_id = CROSS_DOMAIN_PIPE_READ_START;
    }
    return channel->next_read_pipe_id;
}

static int make_blob(uint64_t size_bytes, uint64_t limit, bool guest_made, struct virtgpu_blob *out)
{
    uint64_t mapped = (size_bytes + PAGE_BYTES - 1) / PAGE_BYTES * PAGE_BYTES;
    if (size_bytes == 0 || mapped < size_bytes || mapped > limit ||
        fake_host.blob_count == FAKE_HOST_BLOBS) {
        errno = ENOMEM;
        return -1;
    }
    uint8_t *memory = aligned_alloc(PAGE_BYTES, mapped);
    if (!memory) {
        errno = ENOMEM;
        return -1;
    }
    memset(memory, 0, mapped);
    uint32_t res_handle = fake_host.next_resource++;
    fake_host.blobs[fake_host.blob_count++] =
        (struct fake_host_blob){res_handle, memory, mapped, guest_made};
    *out = (struct virtgpu_blob){1, res_handle, memory, mapped};
    return 0;
}

int virtgpu_byte_buffer(struct virtgpu_channel *channel, uint64_t size_bytes,
                        struct virtgpu_blob *out)
{
    (void)channel;
    if (make_blob(size_bytes, fake_host.max_blob_bytes, true, out) < 0) {
        return -1;
    }
    if (fake_host.shadow_count < FAKE_HOST_SHADOW_MAPS) {
        fake_host.shadow_maps[fake_host.shadow_count++] = out->map;
    }
    return 0;
}

int virtgpu_import_host_blob(struct virtgpu_channel *channel, uint32_t blob_id, uint64_t size_bytes,
                             struct virtgpu_blob *out)
{
    (void)channel;
    if (blob_id == 0 || make_blob(size_bytes, fake_host.max_import_bytes, false, out) < 0) {
        errno = ENOMEM;
        return -1;
    }
    /* What the compositor wrote, recognisably: byte i is (blob_id + i) mod 256. One period,
     * then copies of what is filled (a byte loop here was a sixth of the fuzzers' time). */
    uint64_t filled = size_bytes < 256 ? size_bytes : 256;
    for (uint64_t i = 0; i < filled; i++) {
        out->map[i] = (uint8_t)(blob_id + i);
    }
    while (filled < size_bytes) {
        uint64_t chunk = filled < size_bytes - filled ? filled : size_bytes - filled;
        memcpy(out->map + filled, out->map, chunk);
        filled += chunk;
    }
    return 0;
}

void virtgpu_blob_free(struct virtgpu_channel *channel, struct virtgpu_blob *blob)
{
    (void)channel;
    if (blob->map) {
        struct fake_host_blob *found = find_blob(blob->res_handle);
        if (!found || found->map != blob->map) {
            violation("freed blob %u, which it does not hold", blob->res_handle);
        } else {
            free(found->map);
            *found = fake_host.blobs[--fake_host.blob_count];
        }
    }
    memset(blob, 0, sizeof(*blob));
}

/* --- replies --- */

bool fake_host_raw(const void *bytes, size_t size)
{
    if (!fake_host.open || !fake_host.poll_outstanding || size > CROSS_DOMAIN_RING_BYTES) {
        return false;
    }
    memcpy(fake_host.channel_ring, bytes, size);
    return fake_host_signal();
}

bool fake_host_signal(void)
{
    if (!fake_host.open || !fake_host.poll_outstanding) {
        return false;
    }
    uint64_t one = 1;
    if (write(fake_host.event_fd, &one, sizeof(one)) != sizeof(one)) {
        return false;
    }
    fake_host.poll_outstanding = false;
    return true;
}

bool fake_host_receive(const uint8_t *data, uint32_t size, const uint32_t *ids,
                       const uint32_t *types, const uint32_t *sizes, uint32_t count)
{
    uint8_t reply[CROSS_DOMAIN_RING_BYTES];
    struct cross_domain_send_receive header;
    if (size > sizeof(reply) - sizeof(header) || count > CROSS_DOMAIN_MAX_IDENTIFIERS) {
        return false;
    }
    memset(&header, 0, sizeof(header));
    header.hdr.cmd = CROSS_DOMAIN_CMD_RECEIVE;
    header.hdr.cmd_size = (uint16_t)(sizeof(header) + size);
    header.num_identifiers = count;
    header.opaque_data_size = size;
    for (uint32_t i = 0; i < count; i++) {
        header.identifiers[i] = ids[i];
        header.identifier_types[i] = types[i];
        header.identifier_sizes[i] = sizes ? sizes[i] : 0;
    }
    memcpy(reply, &header, sizeof(header));
    if (size) {
        memcpy(reply + sizeof(header), data, size);
    }
    return fake_host_raw(reply, sizeof(header) + size);
}

bool fake_host_read(uint32_t pipe_id, const uint8_t *data, uint32_t size, bool hang_up)
{
    uint8_t reply[CROSS_DOMAIN_RING_BYTES];
    struct cross_domain_read_write header;
    if (size > sizeof(reply) - sizeof(header)) {
        return false;
    }
    memset(&header, 0, sizeof(header));
    header.hdr.cmd = CROSS_DOMAIN_CMD_READ;
    header.hdr.cmd_size = (uint16_t)(sizeof(header) + size);
    header.identifier = pipe_id;
    header.hang_up = hang_up;
    header.opaque_data_size = size;
    memcpy(reply, &header, sizeof(header));
    if (size) {
        memcpy(reply + sizeof(header), data, size);
    }
    return fake_host_raw(reply, sizeof(header) + size);
}

bool fake_host_end(void)
{
    return fake_host_receive(NULL, 0, NULL, NULL, NULL, 0);
}
