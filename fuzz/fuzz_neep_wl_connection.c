/*
 * One whole neep-wl connection, stateful: the real client.c, channel.c, relay.c and shm.c
 * between a Wayland client (the harness, on a socket) and the host (fake_host.c, which
 * stands for the virtio-gpu render node: it checks every command neep-wl submits as a host
 * would, and the harness answers its POLLs). The input is a sequence of events:
 *
 *   client   requests built for the client's objects, registry binds, or raw messages of
 *            any size up to the wire maximum; each with fds (memfds of fuzzed sizes, pipe
 *            ends); memfds shrunk later; pipes written, drained and closed; the socket read
 *            or hung up
 *   host     RECEIVE (events built for the client's objects, or raw bytes; with
 *            identifiers of every type), READ (data or hang-up) for a read pipe, the end of
 *            the stream, a stale fence completion, raw ring contents, SENDs failing; floods
 *            of events and READs, for the backpressure paths
 *
 * After each event neep-wl handles what is ready, as its loop does. It must never busy-loop,
 * submit anything a host would refuse, or leak: fds, blobs and memory are checked after each
 * input. Deterministic: no clocks, one connection per input, fresh state each time.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dirent.h>

#include "connection_support.h"
#include "fuzz_messages.h"
#include "shm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Rounds of epoll one event may take before neep-wl counts as spinning. */
#define PUMP_ROUNDS 4096u
/* fds the harness holds at once: its ends of pipes, memfds it may shrink, fds it received. */
#define HELD_FDS 32u
/* The byte that lets a flood through. */
#define FLOOD_MAGIC 0xf1u
/* Largest memfd the harness makes (pools may claim more: copies then fault, under guard). */
#define MAX_MEMFD_BYTES (256u << 10)

enum held_kind {
    HELD_MEMFD,     /* a memfd also sent to neep-wl: may be shrunk */
    HELD_READ_END,  /* read end of a pipe whose write end neep-wl got (a receive) */
    HELD_WRITE_END, /* write end of a pipe whose read end neep-wl got */
    HELD_RECEIVED,  /* an fd neep-wl sent the client (host blobs, write pipes) */
};

struct held_fd {
    int fd;
    enum held_kind kind;
};

struct harness {
    struct test_connection connection;
    struct wire_framing to_client; /* what the client reads must be whole messages */
    struct held_fd held[HELD_FDS];
    uint32_t held_count;
};

enum op {
    OP_REQUEST,
    OP_REQUEST_AGAIN, /* weighted: requests are most of what clients do */
    OP_BIND,
    OP_RAW_REQUEST,
    OP_EVENT,
    OP_RAW_RECEIVE,
    OP_READ,
    OP_END,
    OP_STALE_FENCE,
    OP_RAW_RING,
    OP_CLIENT_READS,
    OP_SHRINK,
    OP_PIPE_WRITE,
    OP_PIPE_DRAIN,
    OP_CLOSE_HELD,
    OP_CLIENT_HANGS_UP,
    OP_SUBMIT_FAILS,
    OP_HOST_FLOOD,
    OP_COUNT,
};

static void hold(struct harness *h, int fd, enum held_kind kind)
{
    if (h->held_count == HELD_FDS) {
        close(fd);
        return;
    }
    h->held[h->held_count++] = (struct held_fd){fd, kind};
}

static void release(struct harness *h, uint32_t index)
{
    close(h->held[index].fd);
    h->held[index] = h->held[--h->held_count];
}

/* An fd to send with a message; the harness keeps what it needs of it. */
static int make_fd(struct harness *h, struct fuzz_input *in)
{
    uint8_t kind = fuzz_u8(in);
    switch (kind % 5) {
    case 0:
    case 1: {
        int fd = memfd_create("fuzz-pool", MFD_CLOEXEC);
        uint32_t size_bytes = kind % 5 == 0 ? (uint32_t)(kind >> 3) * 8192u : (kind >> 3) * 4u;
        if (fd < 0 || ftruncate(fd, size_bytes % (MAX_MEMFD_BYTES + 1)) < 0) {
            if (fd >= 0) {
                close(fd);
            }
            return -1;
        }
        int kept = dup(fd);
        if (kept >= 0) {
            hold(h, kept, HELD_MEMFD);
        }
        return fd;
    }
    case 2:
    case 3: {
        int ends[2];
        if (pipe2(ends, O_CLOEXEC | O_NONBLOCK) < 0) {
            return -1;
        }
        bool send_write_end = kind % 5 == 2;
        hold(h, ends[send_write_end ? 0 : 1], send_write_end ? HELD_READ_END : HELD_WRITE_END);
        return ends[send_write_end ? 1 : 0];
    }
    default:
        return open("/dev/null", O_RDONLY | O_CLOEXEC); /* neither a pool nor a pipe */
    }
}

/* Sends a message with `fd_count` fds made from the input. */
static void client_sends(struct harness *h, struct fuzz_input *in, const uint8_t *message,
                         size_t size, uint32_t fd_count)
{
    int fds[CONNECTION_MAX_FDS];
    uint32_t made = 0;
    for (uint32_t i = 0; i < fd_count && made < CONNECTION_MAX_FDS; i++) {
        int fd = make_fd(h, in);
        if (fd >= 0) {
            fds[made++] = fd;
        }
    }
    if (h->connection.peer_fd >= 0) {
        /* A socket the proxy stopped reading may be full: what does not fit is dropped. */
        connection_send(&h->connection, message, size, fds, made);
    }
    for (uint32_t i = 0; i < made; i++) {
        close(fds[i]);
    }
}

static void raw_request(struct harness *h, struct fuzz_input *in)
{
    static uint8_t message[WIRE_MAX_MESSAGE_BYTES];
    uint8_t flags = fuzz_u8(in);
    size_t size = 8 + 4 * (fuzz_u16(in) % (WIRE_MAX_MESSAGE_BYTES / 4 - 1));
    fuzz_bytes(in, message, size);
    if (!(flags & 0x80)) {
        /* The size field says the truth unless the input insists. */
        uint32_t word;
        memcpy(&word, message + 4, 4);
        word = (word & 0xffff) | (uint32_t)size << 16;
        memcpy(message + 4, &word, 4);
    }
    client_sends(h, in, message, size, flags & 3);
}

/* Identifiers as the host would send them: blobs, pipes, and kinds a guest cannot use. */
static uint32_t identifiers(struct fuzz_input *in, uint32_t *ids, uint32_t *types, uint32_t *sizes)
{
    uint32_t count = fuzz_u8(in) % (CROSS_DOMAIN_MAX_IDENTIFIERS + 1);
    for (uint32_t i = 0; i < count; i++) {
        uint8_t kind = fuzz_u8(in);
        types[i] = kind % 8 < 4    ? CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB
                   : kind % 8 < 6  ? CROSS_DOMAIN_ID_TYPE_WRITE_PIPE
                   : kind % 8 == 6 ? CROSS_DOMAIN_ID_TYPE_VIRTGPU_SYNC
                                   : fuzz_u8(in);
        ids[i] = kind & 0x80 ? fuzz_u32(in) : fuzz_u8(in);
        sizes[i] = kind & 0x40 ? fuzz_u32(in) : fuzz_u16(in);
    }
    return count;
}

/* Host bytes for the client as RECEIVEs: at most a ring's worth each, fds with the first;
 * false when neep-wl stopped polling before all went (it holds the host back). */
static bool host_sends(struct harness *h, const uint8_t *bytes, size_t size, const uint32_t *ids,
                       const uint32_t *types, const uint32_t *sizes, uint32_t count)
{
    size_t done = 0;
    do {
        size_t chunk =
            size - done < VIRTGPU_SEND_MAX_DATA_BYTES ? size - done : VIRTGPU_SEND_MAX_DATA_BYTES;
        uint32_t id_count = done == 0 ? count : 0;
        if (chunk == 0 && id_count == 0) {
            return true; /* an empty RECEIVE would mean the end of the stream */
        }
        if (!fake_host_receive(bytes + done, (uint32_t)chunk, ids, types, sizes, id_count)) {
            return false; /* no POLL outstanding: a lagging client holds the host back */
        }
        if (!connection_pump(&h->connection, PUMP_ROUNDS)) {
            fprintf(stderr, "neep-wl keeps handling events without end\n");
            abort();
        }
        done += chunk;
    } while (done < size && h->connection.client);
    return true;
}

static void event(struct harness *h, struct fuzz_input *in)
{
    static uint8_t message[WIRE_MAX_MESSAGE_BYTES];
    uint32_t fd_count;
    size_t size = fuzz_message(in, h->connection.client, WIRE_EVENT, false, message, &fd_count);
    uint32_t ids[CROSS_DOMAIN_MAX_IDENTIFIERS], types[CROSS_DOMAIN_MAX_IDENTIFIERS];
    uint32_t sizes[CROSS_DOMAIN_MAX_IDENTIFIERS];
    for (uint32_t i = 0; i < fd_count && i < CROSS_DOMAIN_MAX_IDENTIFIERS; i++) {
        uint8_t kind = fuzz_u8(in);
        types[i] = kind & 1 ? CROSS_DOMAIN_ID_TYPE_WRITE_PIPE : CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB;
        ids[i] = 1 + (kind >> 1);
        sizes[i] = 1 + fuzz_u16(in);
    }
    if (size) {
        host_sends(h, message, size, ids, types, sizes,
                   fd_count < CROSS_DOMAIN_MAX_IDENTIFIERS ? fd_count
                                                           : CROSS_DOMAIN_MAX_IDENTIFIERS);
    }
}

static void raw_receive(struct harness *h, struct fuzz_input *in)
{
    static uint8_t bytes[VIRTGPU_SEND_MAX_DATA_BYTES];
    uint32_t ids[CROSS_DOMAIN_MAX_IDENTIFIERS], types[CROSS_DOMAIN_MAX_IDENTIFIERS];
    uint32_t sizes[CROSS_DOMAIN_MAX_IDENTIFIERS];
    uint32_t count = identifiers(in, ids, types, sizes);
    size_t size = fuzz_u16(in) % (VIRTGPU_SEND_MAX_DATA_BYTES + 1);
    fuzz_bytes(in, bytes, size);
    host_sends(h, bytes, size, ids, types, sizes, count);
}

/* READ for one of the read pipes neep-wl sent (or any id). */
/* The same event many times over, as a compositor flooding a client that may not read:
 * what backpressure is for. */
static void host_floods(struct harness *h, struct fuzz_input *in)
{
    static uint8_t message[WIRE_MAX_MESSAGE_BYTES];
    static uint8_t bytes[VIRTGPU_SEND_MAX_DATA_BYTES];
    /* Rare on purpose: a flood costs as much as dozens of other events. This build lowers the
     * backlog at which neep-wl stops polling for a client to 8 KiB (some 2 full RECEIVEs) and
     * the one at which it gives the client up to 64 KiB (some 16): both within reach. */
    if (fuzz_u8(in) != FLOOD_MAGIC) {
        return;
    }
    uint32_t receives = 1 + fuzz_u16(in) % 24u;
    uint32_t fd_count;
    size_t size = fuzz_message(in, h->connection.client, WIRE_EVENT, true, message, &fd_count);
    if (size == 0 || fd_count > 0) {
        return;
    }
    /* As many copies as one RECEIVE holds (a message longer than that goes in two). */
    size_t copies = size < sizeof(bytes) ? sizeof(bytes) / size : 1;
    for (size_t i = 0; size < sizeof(bytes) && i < copies; i++) {
        memcpy(bytes + i * size, message, size);
    }
    const uint8_t *flood = size < sizeof(bytes) ? bytes : message;
    for (uint32_t i = 0; i < receives && h->connection.client; i++) {
        if (!host_sends(h, flood, copies * size, NULL, NULL, NULL, 0)) {
            return;
        }
    }
}

/* READs for one of the read pipes neep-wl sent (or any id), as long as it polls. */
static void read_reply(struct harness *h, struct fuzz_input *in)
{
    static uint8_t bytes[CROSS_DOMAIN_RING_BYTES];
    uint8_t choice = fuzz_u8(in);
    uint32_t pipe_id = fuzz_u32(in);
    uint32_t seen = 0;
    for (uint32_t i = 0; i < fake_host.identifier_count && i < FAKE_HOST_IDENTIFIERS; i++) {
        if (fake_host.identifiers[i].type == CROSS_DOMAIN_ID_TYPE_READ_PIPE &&
            seen++ == choice % 8u) {
            pipe_id = fake_host.identifiers[i].id;
        }
    }
    size_t size =
        fuzz_u16(in) % (CROSS_DOMAIN_RING_BYTES - sizeof(struct cross_domain_read_write) + 1);
    /* Mostly one; sometimes enough to fill a 64 KiB pipe (16 full READs) and more. */
    uint8_t repeat_choice = fuzz_u8(in);
    uint32_t repeats = repeat_choice >= 0xf0 ? 1 + (repeat_choice & 0x0fu) * 4 : 1;
    fuzz_bytes(in, bytes, size);
    for (uint32_t i = 0; i < repeats && h->connection.client; i++) {
        bool hang_up = (choice & 0x80) && i == repeats - 1;
        if (!fake_host_read(pipe_id, bytes, (uint32_t)size, hang_up)) {
            return;
        }
        if (!connection_pump(&h->connection, PUMP_ROUNDS)) {
            fprintf(stderr, "neep-wl keeps handling events without end\n");
            abort();
        }
    }
}

static void raw_ring(struct fuzz_input *in)
{
    uint8_t ring[CROSS_DOMAIN_RING_BYTES];
    size_t size = fuzz_u8(in) % 128u;
    fuzz_bytes(in, ring, size);
    memset(ring + size, 0, sizeof(ring) - size);
    fake_host_raw(ring, sizeof(ring));
}

/* The client reads everything neep-wl sent it, keeping some of the fds. */
static void client_reads(struct harness *h)
{
    static uint8_t bytes[65536];
    int fds[CONNECTION_MAX_FDS];
    uint32_t fd_count;
    size_t size;
    while (h->connection.peer_fd >= 0 &&
           (size = connection_read(&h->connection, bytes, sizeof(bytes), fds, &fd_count)) > 0) {
        for (uint32_t i = 0; i < fd_count; i++) {
            hold(h, fds[i], HELD_RECEIVED);
        }
        if (!wire_framing_feed(&h->to_client, bytes, size)) {
            fprintf(stderr, "neep-wl sent the client a malformed message (the %u-th)\n",
                    h->to_client.messages);
            abort();
        }
    }
}

static struct held_fd *pick_held(struct harness *h, struct fuzz_input *in, uint32_t *index)
{
    if (h->held_count == 0) {
        fuzz_u8(in);
        return NULL;
    }
    *index = fuzz_u8(in) % h->held_count;
    return &h->held[*index];
}

static void run(struct harness *h, struct fuzz_input *in)
{
    static uint8_t message[WIRE_MAX_MESSAGE_BYTES];
    while (fuzz_left(in) && h->connection.client) {
        uint32_t fd_count, index;
        struct held_fd *held;
        size_t size;
        switch (fuzz_u8(in) % OP_COUNT) {
        case OP_REQUEST:
        case OP_REQUEST_AGAIN:
            size = fuzz_message(in, h->connection.client, WIRE_REQUEST, false, message, &fd_count);
            if (size) {
                client_sends(h, in, message, size, fd_count + (fuzz_u8(in) == 0xff));
            }
            break;
        case OP_BIND:
            size = fuzz_bind(in, h->connection.client, message);
            if (size) {
                client_sends(h, in, message, size, 0);
            } else {
                uint32_t get_registry[] = {1, 12u << 16 | 1u, 2};
                client_sends(h, in, (const uint8_t *)get_registry, sizeof(get_registry), 0);
            }
            break;
        case OP_RAW_REQUEST:
            raw_request(h, in);
            break;
        case OP_EVENT:
            event(h, in);
            break;
        case OP_RAW_RECEIVE:
            raw_receive(h, in);
            break;
        case OP_READ:
            read_reply(h, in);
            break;
        case OP_END:
            fake_host_end();
            break;
        case OP_STALE_FENCE:
            fake_host_signal();
            break;
        case OP_RAW_RING:
            raw_ring(in);
            break;
        case OP_CLIENT_READS:
            client_reads(h);
            break;
        case OP_SHRINK:
            held = pick_held(h, in, &index);
            if (held && held->kind == HELD_MEMFD && ftruncate(held->fd, fuzz_u8(in) * 64) < 0) {
                release(h, index);
            }
            break;
        case OP_PIPE_WRITE:
            held = pick_held(h, in, &index);
            if (held && (held->kind == HELD_WRITE_END || held->kind == HELD_RECEIVED)) {
                uint8_t bytes[8192];
                size_t length = fuzz_u16(in) % sizeof(bytes);
                fuzz_bytes(in, bytes, length < 64 ? length : 64);
                memset(bytes + (length < 64 ? length : 64), 0x33, length > 64 ? length - 64 : 0);
                /* Never block: received pipe ends come blocking, as clients get them. */
                fcntl(held->fd, F_SETFL, fcntl(held->fd, F_GETFL) | O_NONBLOCK);
                ssize_t ignored = write(held->fd, bytes, length);
                (void)ignored;
            }
            break;
        case OP_PIPE_DRAIN:
            held = pick_held(h, in, &index);
            if (held && held->kind == HELD_READ_END) {
                uint8_t bytes[65536];
                while (read(held->fd, bytes, sizeof(bytes)) > 0) {
                }
            }
            break;
        case OP_CLOSE_HELD:
            if (pick_held(h, in, &index)) {
                release(h, index);
            }
            break;
        case OP_CLIENT_HANGS_UP:
            if (h->connection.peer_fd >= 0) {
                close(h->connection.peer_fd);
                h->connection.peer_fd = -1;
            }
            break;
        case OP_SUBMIT_FAILS:
            fake_host.fail_submit = fuzz_u8(in) & 1;
            break;
        case OP_HOST_FLOOD:
            host_floods(h, in);
            break;
        default:
            break;
        }
        if (!connection_pump(&h->connection, PUMP_ROUNDS)) {
            fprintf(stderr, "neep-wl keeps handling events without end\n");
            abort();
        }
        if (fake_host.violation[0]) {
            fprintf(stderr, "neep-wl submitted what a host refuses: %s\n", fake_host.violation);
            abort();
        }
    }
}

static int open_fd_count(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) {
        abort();
    }
    int count = 0;
    while (readdir(dir)) {
        count++;
    }
    closedir(dir);
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        shm_install_guard();
        signal(SIGPIPE, SIG_IGN); /* pipes whose reader left must fail with EPIPE */
        ready = true;
    }
    int fds_before = open_fd_count();
    static struct harness h;
    memset(&h, 0, sizeof(h));
    struct fuzz_input in = {data, size, 0};
    if (connection_open(&h.connection)) {
        /* The kernel's smallest buffer toward the client, so what a client leaves unread piles
         * up in neep-wl's queue (the code under test) and not in the socket. */
        int smallest = 1;
        if (setsockopt(h.connection.client->socket_fd, SOL_SOCKET, SO_SNDBUF, &smallest,
                       sizeof(smallest)) < 0) {
            abort();
        }
        fake_host.max_blob_bytes = 4u << 20;
        fake_host.max_import_bytes = 64u << 10;
        run(&h, &in);
        client_reads(&h); /* the rest, to check its framing too */
    }
    connection_close(&h.connection);
    while (h.held_count) {
        release(&h, 0);
    }
    if (fake_host.open || fake_host.blob_count || fake_host.violation[0]) {
        fprintf(stderr, "after the connection: channel %s, %u blobs alive, violation: %s\n",
                fake_host.open ? "open" : "closed", fake_host.blob_count, fake_host.violation);
        abort();
    }
    int fds_after = open_fd_count();
    if (fds_after != fds_before) {
        fprintf(stderr, "%d fds open before the connection, %d after\n", fds_before, fds_after);
        abort();
    }
    return 0;
}
