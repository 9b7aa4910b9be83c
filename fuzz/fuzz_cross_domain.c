/*
 * The cross-domain context as a state machine: the input is a sequence of operations by the
 * guest (commands, well-formed or raw, fences on any ring, ring detaches, blobs made from
 * whatever the host handed out), by the compositor (bytes with memfds, pipes and other fds
 * attached, reads, a hang-up) and by clipboard peers (reading, closing). The event thread is
 * replaced by explicit pumps so that every run is repeatable.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <neep/renderer.h>

#include "contexts/cross_domain_protocol.h"
#include "contexts/cross_domain_reactor.h"
#include "util/fd_passing.h"

#define CTX            1
#define FIRST_RING_ID  10
#define RING_COUNT     3
#define MAX_PEER_FDS   16
#define MAX_OPERATIONS 64

static char socket_path[108];
static int listener = -1;
static uint8_t rings[RING_COUNT][8192] __attribute__((aligned(4096)));

struct input {
    const uint8_t *data;
    size_t size;
};

static uint32_t take(struct input *in, unsigned bytes)
{
    uint32_t value = 0;
    for (unsigned i = 0; i < bytes && in->size > 0; i++) {
        value = value << 8 | *in->data++;
        in->size--;
    }
    return value;
}

/* The fds the compositor and clipboard peers hold during one run. */
struct peers {
    int compositor;
    int fds[MAX_PEER_FDS];
    uint32_t fd_count;
};

static void keep_fd(struct peers *peers, int fd)
{
    if (fd < 0) {
        return;
    }
    if (peers->fd_count == MAX_PEER_FDS) {
        close(peers->fds[0]);
        memmove(peers->fds, peers->fds + 1, (MAX_PEER_FDS - 1) * sizeof(int));
        peers->fd_count--;
    }
    peers->fds[peers->fd_count++] = fd;
}

static void quiet_log(void *user_data, enum neep_log_level level, const char *message)
{
    (void)user_data;
    (void)level;
    (void)message;
}

static void remove_socket(void)
{
    unlink(socket_path);
}

static void setup(void)
{
    /* The harness writes to pipes and sockets neep may have closed. */
    signal(SIGPIPE, SIG_IGN);
    snprintf(socket_path, sizeof(socket_path), "/tmp/neep-fuzz-cd-%d", getpid());
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, socket_path);
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    unlink(socket_path);
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) < 0 ||
        listen(listener, 16) < 0) {
        abort();
    }
    atexit(remove_socket);
}

/* Connections a previous run left in the backlog belong to contexts that are gone. */
static void drain_backlog(void)
{
    for (int fd; (fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC)) >= 0;) {
        close(fd);
    }
}

static int peer_fd(struct input *in, struct peers *peers)
{
    int ends[2];
    switch (take(in, 1) % 5) {
    case 0: { /* memory, sealed or not, of a fuzzed size */
        int fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd >= 0 && ftruncate(fd, take(in, 2) * 16) == 0 && (take(in, 1) & 1)) {
            fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
        }
        return fd;
    }
    case 1: /* a pipe's write end (wl_data_source.send): we keep the read end */
        if (pipe2(ends, O_CLOEXEC | O_NONBLOCK) < 0) {
            return -1;
        }
        keep_fd(peers, ends[0]);
        return ends[1];
    case 2: /* a pipe's read end: neither memory nor a write end */
        if (pipe2(ends, O_CLOEXEC) < 0) {
            return -1;
        }
        close(ends[1]);
        return ends[0];
    case 3:
        return open("/dev/null", O_WRONLY | O_CLOEXEC);
    default:
        return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    }
}

static void compositor_send(struct input *in, struct peers *peers)
{
    uint8_t bytes[512];
    size_t size = take(in, 2) % sizeof(bytes);
    memset(bytes, (int)take(in, 1), size);
    int fds[32];
    uint32_t fd_count = take(in, 1) % 31; /* past 28 the host must end the stream */
    for (uint32_t i = 0; i < fd_count; i++) {
        fds[i] = peer_fd(in, peers);
        if (fds[i] < 0) {
            fd_count = i;
            break;
        }
    }
    struct iovec iov = {bytes, size ? size : 1};
    union fd_passing_control control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    fd_passing_attach(&msg, &control, fds, fd_count);
    ssize_t ignored = sendmsg(peers->compositor, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
    for (uint32_t i = 0; i < fd_count; i++) {
        close(fds[i]);
    }
}

/* The compositor reads what waits; read pipes' write ends it receives it writes into. */
static void compositor_read(struct input *in, struct peers *peers)
{
    uint8_t bytes[4096];
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(32 * sizeof(int))];
    } control;
    struct iovec iov = {bytes, sizeof(bytes)};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = &control,
                         .msg_controllen = sizeof(control)};
    if (recvmsg(peers->compositor, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0) {
        return;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (take(in, 1) & 1) {
                ssize_t ignored = write(fd, bytes, take(in, 1));
                (void)ignored;
            }
            close(fd);
        }
    }
}

/* Commands shaped well enough to reach the deep states, with fuzzed fields. */
static size_t build_command(struct input *in, uint8_t *out, size_t room)
{
    uint8_t kind = (uint8_t)(take(in, 1) % 7);
    memset(out, 0, room);
    struct cross_domain_header *hdr = (struct cross_domain_header *)out;
    size_t size;
    switch (kind) {
    case 0: {
        struct cross_domain_init *init = (void *)out;
        init->query_ring_id = FIRST_RING_ID + take(in, 1) % (RING_COUNT + 1);
        init->channel_ring_id = FIRST_RING_ID + take(in, 1) % (RING_COUNT + 1);
        init->channel_type = take(in, 1) & 1 ? CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND : take(in, 1);
        const size_t sizes[] = {16, 20, 36};
        size = sizes[take(in, 1) % 3];
        hdr->cmd = CROSS_DOMAIN_CMD_INIT;
        break;
    }
    case 1: {
        struct cross_domain_get_image_requirements *get = (void *)out;
        get->width = take(in, 3);
        get->height = take(in, 1) & 1 ? 1 : take(in, 2);
        const uint32_t formats[] = {DRM_FORMAT_R8, DRM_FOURCC('X', 'R', '2', '4'),
                                    DRM_FOURCC('N', 'V', '1', '2'), take(in, 4)};
        get->drm_format = formats[take(in, 1) % 4];
        size = sizeof(*get);
        hdr->cmd = CROSS_DOMAIN_CMD_GET_IMAGE_REQUIREMENTS;
        break;
    }
    case 2:
        size = sizeof(struct cross_domain_poll);
        hdr->cmd = CROSS_DOMAIN_CMD_POLL;
        break;
    case 3:
    case 4: {
        struct cross_domain_send_receive *send = (void *)out;
        send->num_identifiers = take(in, 1) % 4;
        for (uint32_t i = 0; i < send->num_identifiers; i++) {
            send->identifier_types[i] = take(in, 1) % 5;
            uint32_t pick = take(in, 1);
            send->identifiers[i] =
                pick & 0x80 ? CROSS_DOMAIN_PIPE_READ_START + (pick & 0x7f) : 100 + (pick & 0x7f);
        }
        send->opaque_data_size = take(in, 2) % (room - sizeof(*send));
        size = sizeof(*send) + send->opaque_data_size;
        hdr->cmd = CROSS_DOMAIN_CMD_SEND;
        break;
    }
    default: {
        struct cross_domain_read_write *write_cmd = (void *)out;
        write_cmd->identifier = take(in, 1) % 16;
        write_cmd->hang_up = take(in, 1) & 1;
        write_cmd->opaque_data_size = take(in, 2) % (room - sizeof(*write_cmd));
        size = sizeof(*write_cmd) + write_cmd->opaque_data_size;
        hdr->cmd = CROSS_DOMAIN_CMD_WRITE;
        break;
    }
    }
    hdr->cmd_size = (uint16_t)size;
    if (take(in, 1) == 0xff) {
        hdr->cmd_size = (uint16_t)take(in, 2); /* a lying size now and then */
    }
    return size;
}

/* A blob made from an id the host wrote into a ring, or a fuzzed one. */
static void make_blob(struct neep_renderer *renderer, struct input *in, uint32_t *next_id)
{
    /* Where a RECEIVE reply has its first identifier and an image-requirements reply its
     * blob id. */
    static const size_t id_offsets[] = {16, 48};
    uint32_t blob_id = take(in, 1);
    if (blob_id & 1) {
        memcpy(&blob_id, rings[take(in, 1) % RING_COUNT] + id_offsets[take(in, 1) % 2],
               sizeof(blob_id));
    }
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_HOST3D,
                                    .blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE,
                                    .blob_id = blob_id,
                                    .size_bytes = (uint64_t)take(in, 2) * 64};
    uint32_t id = (*next_id)++;
    if (neep_resource_create_blob(renderer, CTX, id, &blob, NULL, 0) == 0) {
        void *ptr;
        uint64_t size;
        if (neep_resource_map(renderer, id, &ptr, &size) == 0 && size > 0) {
            ((volatile uint8_t *)ptr)[size - 1] ^= 1; /* would die if the memory shrank */
            neep_resource_unmap(renderer, id);
        }
        if (take(in, 1) & 1) {
            neep_resource_unref(renderer, id);
        }
    }
}

static void make_rings(struct neep_renderer *renderer)
{
    for (uint32_t i = 0; i < RING_COUNT; i++) {
        memset(rings[i], 0, sizeof(rings[i]));
        struct iovec iov = {rings[i], i == 2 ? 256 : sizeof(rings[i])};
        struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_GUEST, .size_bytes = iov.iov_len};
        neep_resource_create_blob(renderer, CTX, FIRST_RING_ID + i, &blob, &iov, 1);
        neep_context_attach_resource(renderer, CTX, FIRST_RING_ID + i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (listener < 0) {
        setup();
    }
    drain_backlog();
    struct neep_channel channel = {socket_path, CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    struct neep_renderer_config config = {.capset_mask = 1ull << NEEP_CAPSET_CROSS_DOMAIN,
                                          .memory_budget_bytes = 64u << 20,
                                          .log_fn = quiet_log,
                                          .channels = &channel,
                                          .channel_count = 1};
    struct neep_renderer *renderer;
    if (neep_renderer_create(&config, &renderer) < 0) {
        abort();
    }
    neep_cross_domain_set_manual_pump(renderer);
    neep_context_create(renderer, CTX, NEEP_CAPSET_CROSS_DOMAIN, NULL, 0);
    make_rings(renderer);

    struct input in = {data, size};
    struct peers peers = {.compositor = -1};
    uint32_t next_resource_id = 100;
    uint64_t next_fence_id = 1;
    static uint8_t command[8192];
    for (int op = 0; op < MAX_OPERATIONS && in.size > 0; op++) {
        switch (take(&in, 1) % 12) {
        case 0: { /* a raw command stream */
            size_t length = take(&in, 2) % 2048;
            length = length < in.size ? length : in.size;
            neep_context_submit(renderer, CTX, in.data, length);
            in.data += length;
            in.size -= length;
            break;
        }
        case 1:
        case 2: {
            size_t length = build_command(&in, command, sizeof(command));
            neep_context_submit(renderer, CTX, command, length);
            if (peers.compositor < 0) {
                peers.compositor = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            }
            break;
        }
        case 3: {
            struct neep_fence fence = {.flags = NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX,
                                       .fence_id = next_fence_id++,
                                       .ctx_id = CTX,
                                       .ring_idx = take(&in, 1) % 4};
            neep_fence_create(renderer, &fence);
            break;
        }
        case 4:
            if (peers.compositor >= 0) {
                compositor_send(&in, &peers);
            }
            break;
        case 5:
            if (peers.compositor >= 0) {
                compositor_read(&in, &peers);
            }
            break;
        case 6:
            if (peers.compositor >= 0 && (take(&in, 1) & 3) == 0) {
                close(peers.compositor);
                peers.compositor = -1;
            }
            break;
        case 7:
            neep_cross_domain_pump(renderer, 0);
            break;
        case 8: {
            uint32_t ring = FIRST_RING_ID + take(&in, 1) % RING_COUNT;
            if (take(&in, 1) & 1) {
                neep_resource_detach_backing(renderer, ring);
            } else {
                neep_context_detach_resource(renderer, CTX, ring);
            }
            break;
        }
        case 9:
            make_blob(renderer, &in, &next_resource_id);
            break;
        case 10:
            neep_renderer_dispatch_fences(renderer, NULL, NULL);
            break;
        default: /* a clipboard peer reads, or goes away */
            if (peers.fd_count > 0) {
                uint32_t which = take(&in, 1) % peers.fd_count;
                if (take(&in, 1) & 1) {
                    uint8_t sink[4096];
                    ssize_t ignored = read(peers.fds[which], sink, sizeof(sink));
                    (void)ignored;
                } else {
                    close(peers.fds[which]);
                    peers.fds[which] = peers.fds[--peers.fd_count];
                }
            }
            break;
        }
    }
    neep_cross_domain_pump(renderer, 0);
    neep_renderer_dispatch_fences(renderer, NULL, NULL);
    neep_renderer_destroy(renderer);
    if (peers.compositor >= 0) {
        close(peers.compositor);
    }
    for (uint32_t i = 0; i < peers.fd_count; i++) {
        close(peers.fds[i]);
    }
    return 0;
}
