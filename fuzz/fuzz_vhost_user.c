/*
 * The vhost-user back-end as a state machine: the input is a sequence of operations, each a
 * front-end message with fuzzed payload (features, memory tables of real memfds this harness
 * creates, ring configuration, kicks and calls, GET_VRING_BASE stops, resets, display
 * sockets, raw messages with eventfds attached) or a guest driver's write (virtio-gpu
 * commands placed on the rings as descriptor chains, raw descriptor and ring bytes, guest
 * memory). The real back-end serves it over a socketpair, its callbacks run from this
 * thread, so every input plays out the same way.
 *
 * Each input starts from a fresh back-end and must end with every fd it opened closed (checked
 * here) and every allocation freed (LeakSanitizer). The display socket's far end is served by
 * a thread standing in for QEMU; cross-domain contexts connect to a listener that never
 * speaks, so their POLL fences stay pending until a reset drops them.
 *
 * Input: [config byte: bit 7 enables cross-domain, bit 0 a second scanout] then operations,
 * each [opcode byte][arguments], read little-endian; missing bytes read as zero. Seeds come
 * from scripts/make-fuzz-seeds.py; NEEP_FUZZ_LOG=1 prints what the back-end logs.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_gpu.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "open_fds.h"
#include "vhost_user_support.h"

#define SLOT_COUNT    3
#define SLOT_BYTES    (64u << 10)
#define QUEUE_SLOTS   3 /* queues 0 and 1, and one the back-end does not have */
#define MAX_OPS       512
#define MAX_DISPLAYS  4
#define MAX_RAW_BYTES 300u /* past the largest payload, to reach the size checks */
/* Where the front-end says each memfd lives in its own address space (QEMU's addresses). */
#define SLOT_UVA(slot) (0x100000000000ull * ((uint64_t)(slot) + 1))
/* Commands go in the second half of slot 0, 4 KiB each: the request, an indirect table for
 * it, then the response buffer (up to 3 KiB). */
#define COMMAND_AREA_OFFSET (SLOT_BYTES / 2)
#define COMMAND_BYTES       4096u
#define COMMAND_COUNT       (SLOT_BYTES / 2 / COMMAND_BYTES)
#define REQUEST_MAX_BYTES   960u
#define INDIRECT_OFFSET     960u
#define RESPONSE_OFFSET     1024u
#define RESPONSE_UNIT_BYTES 384u

enum op {
    OP_GET_FEATURES,
    OP_SET_FEATURES,
    OP_GET_PROTOCOL_FEATURES,
    OP_SET_PROTOCOL_FEATURES,
    OP_SET_OWNER,
    OP_SET_MEM_TABLE,
    OP_REPLACE_MEMFD,
    OP_SET_VRING_NUM,
    OP_SET_VRING_ADDR,
    OP_SET_VRING_BASE,
    OP_SET_VRING_KICK,
    OP_SET_VRING_CALL,
    OP_GET_VRING_BASE,
    OP_SET_VRING_ENABLE,
    OP_RESET,
    OP_GET_CONFIG,
    OP_GPU_SET_SOCKET,
    OP_KICK,
    OP_PUT_COMMAND,
    OP_WRITE_RING,
    OP_WRITE_GUEST,
    OP_RAW_MESSAGE,
    OP_COUNT,
};

struct input {
    const uint8_t *data;
    size_t size;
    size_t pos;
};

static uint8_t take_u8(struct input *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

static uint16_t take_u16(struct input *in)
{
    uint16_t low = take_u8(in);
    return (uint16_t)(low | take_u8(in) << 8);
}

static uint64_t take_u64(struct input *in)
{
    uint64_t value = 0;
    for (int i = 0; i < 8; i++) {
        value |= (uint64_t)take_u8(in) << (8 * i);
    }
    return value;
}

/* Copies up to `size` input bytes to `dst`, zero-filling what the input lacks. */
static void take_bytes(struct input *in, void *dst, size_t size)
{
    size_t available = in->size - in->pos < size ? in->size - in->pos : size;
    memcpy(dst, in->data + in->pos, available);
    memset((uint8_t *)dst + available, 0, size - available);
    in->pos += available;
}

/* One region of the last memory table sent: which memfd, where. */
struct table_entry {
    uint32_t slot;
    uint64_t gpa;
    uint64_t offset; /* within the memfd */
    uint64_t size;
};

/* What this front-end last told the back-end about a ring, as the guest driver sees it. */
struct ring_view {
    uint32_t num;
    bool placed; /* SET_VRING_ADDR named addresses inside one of our memfds */
    uint32_t slot;
    uint32_t desc_offset, avail_offset, used_offset;
    uint16_t avail_idx;
    uint16_t next_desc;
};

struct display {
    pthread_t thread;
    int fd;
    uint32_t width_px, height_px; /* the layout this front-end reports */
};

struct session {
    struct vu_test_frontend f;
    int slot_fd[SLOT_COUNT];
    uint8_t *slot[SLOT_COUNT]; /* our view of each memfd */
    int kick[QUEUE_SLOTS], call[QUEUE_SLOTS];
    struct table_entry table[VU_MAX_MEM_REGIONS];
    uint32_t table_count;
    struct ring_view rings[QUEUE_SLOTS];
    uint32_t next_command;
    struct display displays[MAX_DISPLAYS];
    uint32_t display_count;
    uint64_t offered_features;
    uint64_t offered_protocol_features;
};

/* ---- a compositor that never speaks, for cross-domain contexts to connect to ------------ */

static int compositor_fd = -1;
static char compositor_path[108];
static char compositor_dir[64];

static void remove_compositor(void)
{
    unlink(compositor_path);
    rmdir(compositor_dir);
}

static void make_compositor(void)
{
    snprintf(compositor_dir, sizeof(compositor_dir), "/tmp/neep-fuzz-vu-XXXXXX");
    if (!mkdtemp(compositor_dir)) {
        abort();
    }
    snprintf(compositor_path, sizeof(compositor_path), "%s/wayland-0", compositor_dir);
    compositor_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, compositor_path);
    /* A backlog above the most INITs one input can hold, so a connect never waits. */
    if (compositor_fd < 0 || bind(compositor_fd, (struct sockaddr *)&address, sizeof(address)) ||
        listen(compositor_fd, 4096)) {
        abort();
    }
    atexit(remove_compositor);
}

/* Connections of the input just finished; accepted and closed so the next starts clean. */
static void drop_compositor_connections(void)
{
    for (int fd; (fd = accept4(compositor_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0;) {
        close(fd);
    }
}

/* ---- the display channel's far end, as QEMU serves it ------------------------------------ */

static bool read_full(int fd, void *buf, size_t size)
{
    uint8_t *dst = buf;
    while (size > 0) {
        ssize_t got = read(fd, dst, size);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return false;
        }
        dst += got;
        size -= (size_t)got;
    }
    return true;
}

/* Reads and drops `size` bytes. */
static bool skip(int fd, uint32_t size)
{
    uint8_t discard[4096];
    while (size > 0) {
        uint32_t chunk = size < sizeof(discard) ? size : (uint32_t)sizeof(discard);
        if (!read_full(fd, discard, chunk)) {
            return false;
        }
        size -= chunk;
    }
    return true;
}

static void *display_main(void *arg)
{
    struct display *display = arg;
    struct vu_gpu_header header;
    while (read_full(display->fd, &header, sizeof(header)) && skip(display->fd, header.size)) {
        if (header.request == VU_GPU_GET_DISPLAY_INFO) {
            struct vu_gpu_header reply = {VU_GPU_GET_DISPLAY_INFO, VU_GPU_FLAG_REPLY,
                                          sizeof(struct virtio_gpu_resp_display_info)};
            struct virtio_gpu_resp_display_info info = {.hdr.type =
                                                            VIRTIO_GPU_RESP_OK_DISPLAY_INFO};
            info.pmodes[0].r.width = display->width_px;
            info.pmodes[0].r.height = display->height_px;
            info.pmodes[0].enabled = 1;
            info.pmodes[1].r.width = display->height_px;
            info.pmodes[1].r.height = display->width_px;
            /* Header and body in one message, with no padding between them. */
            struct iovec iov[2] = {{&reply, sizeof(reply)}, {&info, sizeof(info)}};
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
            if (sendmsg(display->fd, &msg, MSG_NOSIGNAL) !=
                (ssize_t)(sizeof(reply) + sizeof(info))) {
                break;
            }
        }
    }
    close(display->fd);
    return NULL;
}

/* ---- session lifetime --------------------------------------------------------------------- */

/* Silent while fuzzing; NEEP_FUZZ_LOG=1 shows what the back-end says (to check seeds). */
static void log_line(void *user_data, enum neep_log_level level, const char *message)
{
    static int verbose = -1;
    if (verbose < 0) {
        verbose = getenv("NEEP_FUZZ_LOG") != NULL;
    }
    if (verbose) {
        fprintf(stderr, "back-end (%d): %s\n", level, message);
    }
}

static void session_init(struct session *s, uint8_t config_byte)
{
    memset(s, 0, sizeof(*s));
    struct neep_channel channel = {compositor_path, 1};
    struct vu_backend_config config = {
        .device = {.renderer = {.memory_budget_bytes = 32u << 20,
                                .log_fn = log_line,
                                .log_level = NEEP_LOG_DEBUG,
                                .channels = &channel,
                                .channel_count = 1},
                   .scanout_count = 1 + config_byte % 2,
                   .scanouts = {{640, 480, true}, {320, 200, true}}},
    };
#if NEEP_HAVE_CROSS_DOMAIN
    if (config_byte & 0x80) {
        config.device.renderer.capset_mask = 1ull << NEEP_CAPSET_CROSS_DOMAIN;
    }
#endif
    for (int i = 0; i < SLOT_COUNT; i++) {
        s->slot_fd[i] = vu_test_memfd("fuzz-guest", SLOT_BYTES);
        s->slot[i] = mmap(NULL, SLOT_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, s->slot_fd[i], 0);
        if (s->slot_fd[i] < 0 || s->slot[i] == MAP_FAILED) {
            abort();
        }
    }
    for (int i = 0; i < QUEUE_SLOTS; i++) {
        s->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        s->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->kick[i] < 0 || s->call[i] < 0) {
            abort();
        }
    }
    if (vu_test_frontend_init(&s->f, &config) < 0) {
        abort(); /* nothing in the input is involved yet */
    }
}

static void session_finish(struct session *s)
{
    vu_test_frontend_finish(&s->f);
    /* The back-end closed its end of each display socket: the threads see the end. */
    for (uint32_t i = 0; i < s->display_count; i++) {
        pthread_join(s->displays[i].thread, NULL);
    }
    for (int i = 0; i < QUEUE_SLOTS; i++) {
        close(s->kick[i]);
        close(s->call[i]);
    }
    for (int i = 0; i < SLOT_COUNT; i++) {
        munmap(s->slot[i], SLOT_BYTES);
        close(s->slot_fd[i]);
    }
    drop_compositor_connections();
}

/* ---- guest memory as this front-end laid it out ------------------------------------------- */

/* The guest-physical address of byte `offset` of memfd `slot`, per the last table sent; an
 * address outside guest memory when the table does not map it (the back-end must cope). */
static uint64_t gpa_of(const struct session *s, uint32_t slot, uint64_t offset)
{
    for (uint32_t i = 0; i < s->table_count; i++) {
        const struct table_entry *e = &s->table[i];
        if (e->slot == slot && offset >= e->offset && offset - e->offset < e->size) {
            return e->gpa + (offset - e->offset);
        }
    }
    return 0xfff0000000000000ull + offset;
}

static uint32_t queue_of(uint8_t byte)
{
    return byte % QUEUE_SLOTS;
}

/* True if the ring this front-end last described lies inside our memory, aligned, at a
 * valid size: a driver writes only such a ring (the back-end refuses the others). */
static bool ring_usable(const struct ring_view *ring)
{
    uint64_t n = ring->num;
    return ring->placed && n > 0 && n <= 32768 && !(n & (n - 1)) && ring->desc_offset % 16 == 0 &&
           ring->avail_offset % 2 == 0 && ring->used_offset % 4 == 0 &&
           ring->desc_offset + 16 * n <= SLOT_BYTES &&
           ring->avail_offset + 6 + 2 * n <= SLOT_BYTES &&
           ring->used_offset + 6 + 8 * n <= SLOT_BYTES;
}

/* ---- operations --------------------------------------------------------------------------- */

/* True unless the back-end acknowledged a failure (without REPLY_ACK it says nothing). */
static bool not_refused(int64_t ack)
{
    return ack <= 0;
}

static int64_t send_state(struct session *s, uint32_t request, uint32_t queue, uint32_t num)
{
    struct vhost_vring_state state = {queue, num};
    return vu_test_request(&s->f, request, &state, sizeof(state), NULL, 0);
}

static void op_set_mem_table(struct session *s, struct input *in)
{
    uint8_t shape = take_u8(in);
    uint32_t count = shape & 7;
    struct vu_memory memory = {.nregions = count};
    int fds[VU_MAX_MEM_REGIONS];
    for (uint32_t i = 0; i < count; i++) {
        uint32_t slot = take_u8(in) % SLOT_COUNT;
        uint8_t gpa_selector = take_u8(in);
        uint8_t offset_selector = take_u8(in);
        uint8_t size_selector = take_u8(in);
        uint64_t gpa = (uint64_t)(gpa_selector & 0x7f) * 0x8000;
        if (gpa_selector == 0xff) {
            gpa = UINT64_MAX - 0xfff; /* wraps */
        }
        uint64_t offset =
            offset_selector == 0xff ? UINT64_MAX / 2 : (offset_selector % 4) * 0x4000u;
        uint64_t region_bytes =
            SLOT_BYTES - (offset < SLOT_BYTES ? offset : 0) - (size_selector % 4) * 0x4000u;
        if (size_selector == 0xff) {
            region_bytes = 2ull * SLOT_BYTES; /* past the end of the memfd */
        } else if (size_selector == 0xfe) {
            region_bytes = 0;
        }
        memory.regions[i] =
            (struct vu_memory_region){gpa, region_bytes, SLOT_UVA(slot) + offset, offset};
        fds[i] = s->slot_fd[slot];
        s->table[i] = (struct table_entry){slot, gpa, offset, region_bytes};
    }
    s->table_count = count;
    /* Sometimes one fd fewer than regions, or a payload size that disagrees. */
    int fd_count = (int)count - ((shape & 0x08) && count > 0);
    uint32_t payload_bytes =
        8 + count * (uint32_t)sizeof(struct vu_memory_region) + ((shape & 0x10) ? 8 : 0);
    vu_test_request(&s->f, VU_SET_MEM_TABLE, &memory, payload_bytes, fds, fd_count);
}

/* The front-end moves a memfd's contents to a new one at the same addresses (as QEMU may); the
 * next SET_MEM_TABLE naming it retires the old mapping. */
static void op_replace_memfd(struct session *s, struct input *in)
{
    uint32_t slot = take_u8(in) % SLOT_COUNT;
    int fd = vu_test_memfd("fuzz-guest", SLOT_BYTES);
    if (fd < 0 || pwrite(fd, s->slot[slot], SLOT_BYTES, 0) != SLOT_BYTES) {
        abort();
    }
    uint8_t *view = mmap(NULL, SLOT_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (view == MAP_FAILED) {
        abort();
    }
    munmap(s->slot[slot], SLOT_BYTES);
    close(s->slot_fd[slot]);
    s->slot[slot] = view;
    s->slot_fd[slot] = fd;
}

static void op_set_vring_addr(struct session *s, struct input *in)
{
    uint32_t queue = queue_of(take_u8(in));
    uint32_t slot = take_u8(in) % SLOT_COUNT;
    uint16_t desc = take_u16(in), avail = take_u16(in), used = take_u16(in);
    struct vhost_vring_addr addr = {
        .index = queue,
        .desc_user_addr = SLOT_UVA(slot) + desc,
        .avail_user_addr = SLOT_UVA(slot) + avail,
        .used_user_addr = SLOT_UVA(slot) + used,
    };
    if (not_refused(vu_test_request(&s->f, VU_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0))) {
        struct ring_view *ring = &s->rings[queue];
        ring->placed = true;
        ring->slot = slot;
        ring->desc_offset = desc;
        ring->avail_offset = avail;
        ring->used_offset = used;
    }
}

static void op_set_vring_fd(struct session *s, struct input *in, uint32_t request)
{
    uint8_t byte = take_u8(in);
    uint32_t queue = queue_of(byte);
    uint64_t payload = queue | ((byte & 0x80) ? VU_VRING_NOFD_MASK : 0);
    int fd = request == VU_SET_VRING_KICK ? s->kick[queue] : s->call[queue];
    bool attach = !(byte & 0x40);
    vu_test_request(&s->f, request, &payload, sizeof(payload), &fd, attach ? 1 : 0);
}

static void op_get_vring_base(struct session *s, struct input *in)
{
    uint32_t queue = queue_of(take_u8(in));
    struct vhost_vring_state state = {queue, 0};
    vu_test_send(&s->f, VU_GET_VRING_BASE, VU_FLAG_VERSION, &state, sizeof(state), NULL, 0);
}

static void op_gpu_set_socket(struct session *s, struct input *in)
{
    uint16_t width = take_u16(in), height = take_u16(in);
    if (s->display_count == MAX_DISPLAYS) {
        return;
    }
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
        abort();
    }
    struct display *display = &s->displays[s->display_count];
    *display = (struct display){.fd = pair[0], .width_px = width, .height_px = height};
    if (pthread_create(&display->thread, NULL, display_main, display) != 0) {
        abort();
    }
    s->display_count++;
    vu_test_request(&s->f, VU_GPU_SET_SOCKET, NULL, 0, &pair[1], 1);
    close(pair[1]);
}

static void kick(struct session *s, uint32_t queue)
{
    uint64_t one = 1;
    if (write(s->kick[queue], &one, sizeof(one)) != sizeof(one)) {
        abort();
    }
    vu_test_loop_run(&s->f.loop);
}

/*
 * A virtio-gpu command as the driver places it: the request in one to three readable
 * descriptors (or an indirect table), then a writable response buffer.
 * layout: bits 0-1 readable pieces - 1, bit 2 indirect, bit 3 no response buffer,
 * bits 4-6 response size in 384-byte steps - 1, bit 7 kick afterwards.
 */
static void op_put_command(struct session *s, struct input *in)
{
    uint32_t queue = queue_of(take_u8(in));
    uint8_t layout = take_u8(in);
    uint32_t length = take_u16(in) % (REQUEST_MAX_BYTES + 1);
    uint64_t slot_offset =
        COMMAND_AREA_OFFSET + (uint64_t)(s->next_command++ % COMMAND_COUNT) * COMMAND_BYTES;
    uint8_t *request = s->slot[0] + slot_offset;
    take_bytes(in, request, length);
    struct ring_view *ring = &s->rings[queue];
    if (!ring_usable(ring)) {
        return;
    }
    uint8_t *base = s->slot[ring->slot];
    struct vring_desc *table = (struct vring_desc *)(base + ring->desc_offset);
    struct vring_avail *avail = (struct vring_avail *)(base + ring->avail_offset);

    struct vring_desc chain[4];
    uint32_t pieces = 1 + (layout & 3) % 3;
    uint32_t count = 0;
    for (uint32_t i = 0; i < pieces; i++) {
        uint32_t from = length * i / pieces, to = length * (i + 1) / pieces;
        chain[count++] = (struct vring_desc){gpa_of(s, 0, slot_offset + from), to - from, 0, 0};
    }
    if (!(layout & 0x08)) {
        uint32_t response_bytes = (((layout >> 4) & 7) + 1) * RESPONSE_UNIT_BYTES;
        chain[count++] = (struct vring_desc){gpa_of(s, 0, slot_offset + RESPONSE_OFFSET),
                                             response_bytes, VRING_DESC_F_WRITE, 0};
    }
    uint16_t head = (uint16_t)(ring->next_desc % ring->num);
    if (layout & 0x04) {
        /* An indirect table between request and response, linked by index from 0. */
        uint64_t table_offset = slot_offset + INDIRECT_OFFSET;
        for (uint32_t i = 0; i + 1 < count; i++) {
            chain[i].flags |= VRING_DESC_F_NEXT;
            chain[i].next = (uint16_t)(i + 1);
        }
        memcpy(s->slot[0] + table_offset, chain, count * sizeof(chain[0]));
        table[head] =
            (struct vring_desc){gpa_of(s, 0, table_offset), count * (uint32_t)sizeof(chain[0]),
                                VRING_DESC_F_INDIRECT, 0};
        ring->next_desc++;
    } else {
        for (uint32_t i = 0; i < count; i++) {
            uint16_t index = (uint16_t)(ring->next_desc++ % ring->num);
            table[index] = chain[i];
            if (i + 1 < count) {
                table[index].flags |= VRING_DESC_F_NEXT;
                table[index].next = (uint16_t)(ring->next_desc % ring->num);
            }
        }
    }
    avail->ring[ring->avail_idx % ring->num] = head;
    ring->avail_idx++;
    __atomic_store_n(&avail->idx, ring->avail_idx, __ATOMIC_RELEASE);
    if (layout & 0x80) {
        kick(s, queue);
    }
}

/* Raw bytes into a ring's descriptor table (part 0), available ring (1) or used ring (2). */
static void op_write_ring(struct session *s, struct input *in)
{
    struct ring_view *ring = &s->rings[queue_of(take_u8(in))];
    uint8_t part = take_u8(in) % 3;
    uint16_t offset = take_u16(in);
    uint8_t length = take_u8(in);
    uint8_t bytes[256];
    take_bytes(in, bytes, length);
    if (!ring->placed) {
        return;
    }
    uint64_t start = (part == 0   ? ring->desc_offset
                      : part == 1 ? ring->avail_offset
                                  : ring->used_offset) +
                     (uint64_t)offset;
    if (start < SLOT_BYTES) {
        size_t room = SLOT_BYTES - start < length ? SLOT_BYTES - start : length;
        memcpy(s->slot[ring->slot] + start, bytes, room);
    }
}

static void op_write_guest(struct session *s, struct input *in)
{
    uint32_t slot = take_u8(in) % SLOT_COUNT;
    uint16_t offset = take_u16(in);
    uint8_t length = take_u8(in);
    uint8_t bytes[256];
    take_bytes(in, bytes, length);
    size_t room = SLOT_BYTES - offset < length ? SLOT_BYTES - offset : length;
    memcpy(s->slot[slot] + offset, bytes, room);
}

/* Any request with any payload, and eventfds attached (which fit nothing but kick and call). */
static void op_raw_message(struct session *s, struct input *in)
{
    uint8_t request = take_u8(in) % VU_REQUEST_LIMIT;
    uint8_t flag_byte = take_u8(in);
    uint32_t flags =
        (flag_byte & 0x80) ? flag_byte : VU_FLAG_VERSION | (flag_byte & VU_FLAG_NEED_REPLY);
    uint32_t size = take_u16(in) % (MAX_RAW_BYTES + 1);
    uint8_t payload[MAX_RAW_BYTES];
    take_bytes(in, payload, size);
    int fd_count = take_u8(in) % (VU_MAX_FDS + 1);
    int fds[VU_MAX_FDS];
    for (int i = 0; i < fd_count; i++) {
        fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    vu_test_send(&s->f, request, flags, payload, size, fds, fd_count);
    for (int i = 0; i < fd_count; i++) {
        close(fds[i]);
    }
}

static void run_op(struct session *s, struct input *in)
{
    switch (take_u8(in) % OP_COUNT) {
    case OP_GET_FEATURES:
        s->offered_features = (uint64_t)vu_test_get_u64(&s->f, VU_GET_FEATURES);
        break;
    case OP_SET_FEATURES: {
        uint8_t mode = take_u8(in);
        uint64_t value = take_u64(in);
        uint64_t features = mode % 3 == 0   ? s->offered_features
                            : mode % 3 == 1 ? s->offered_features & value
                                            : value;
        vu_test_request(&s->f, VU_SET_FEATURES, &features, sizeof(features), NULL, 0);
        break;
    }
    case OP_GET_PROTOCOL_FEATURES:
        s->offered_protocol_features = (uint64_t)vu_test_get_u64(&s->f, VU_GET_PROTOCOL_FEATURES);
        break;
    case OP_SET_PROTOCOL_FEATURES: {
        uint8_t mode = take_u8(in);
        uint64_t value = take_u64(in);
        uint64_t features = mode % 2 == 0 ? s->offered_protocol_features : value;
        vu_test_send(&s->f, VU_SET_PROTOCOL_FEATURES, VU_FLAG_VERSION, &features, sizeof(features),
                     NULL, 0);
        break;
    }
    case OP_SET_OWNER:
        vu_test_request(&s->f, VU_SET_OWNER, NULL, 0, NULL, 0);
        break;
    case OP_SET_MEM_TABLE:
        op_set_mem_table(s, in);
        break;
    case OP_REPLACE_MEMFD:
        op_replace_memfd(s, in);
        break;
    case OP_SET_VRING_NUM: {
        uint32_t queue = queue_of(take_u8(in));
        uint16_t num = take_u16(in);
        if (not_refused(send_state(s, VU_SET_VRING_NUM, queue, num))) {
            s->rings[queue].num = num; /* the driver lays out what the device took */
        }
        break;
    }
    case OP_SET_VRING_ADDR:
        op_set_vring_addr(s, in);
        break;
    case OP_SET_VRING_BASE: {
        uint32_t queue = queue_of(take_u8(in));
        uint16_t base = take_u16(in);
        if (not_refused(send_state(s, VU_SET_VRING_BASE, queue, base))) {
            s->rings[queue].avail_idx = base;
        }
        break;
    }
    case OP_SET_VRING_KICK:
        op_set_vring_fd(s, in, VU_SET_VRING_KICK);
        break;
    case OP_SET_VRING_CALL:
        op_set_vring_fd(s, in, VU_SET_VRING_CALL);
        break;
    case OP_GET_VRING_BASE:
        op_get_vring_base(s, in);
        break;
    case OP_SET_VRING_ENABLE: {
        uint32_t queue = queue_of(take_u8(in));
        send_state(s, VU_SET_VRING_ENABLE, queue, take_u8(in) % 3);
        break;
    }
    case OP_RESET:
        vu_test_request(&s->f, take_u8(in) & 1 ? VU_RESET_OWNER : VU_RESET_DEVICE, NULL, 0, NULL,
                        0);
        break;
    case OP_GET_CONFIG: {
        struct vu_config config = {.offset = take_u8(in), .size = take_u8(in)};
        vu_test_send(&s->f, VU_GET_CONFIG, VU_FLAG_VERSION, &config, 12 + config.size, NULL, 0);
        break;
    }
    case OP_GPU_SET_SOCKET:
        op_gpu_set_socket(s, in);
        break;
    case OP_KICK:
        kick(s, queue_of(take_u8(in)));
        break;
    case OP_PUT_COMMAND:
        op_put_command(s, in);
        break;
    case OP_WRITE_RING:
        op_write_ring(s, in);
        break;
    case OP_WRITE_GUEST:
        op_write_guest(s, in);
        break;
    case OP_RAW_MESSAGE:
        op_raw_message(s, in);
        break;
    }
    vu_test_drain_replies(&s->f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (compositor_fd < 0) {
        make_compositor();
    }
    if (size < 1) {
        return 0;
    }
    int fds_before = count_open_fds();
    struct input in = {data, size, 1};
    struct session s;
    session_init(&s, data[0]);
    for (int ops = 0; ops < MAX_OPS && in.pos < in.size && vu_backend_alive(s.f.backend); ops++) {
        run_op(&s, &in);
    }
    session_finish(&s);
    int fds_after = count_open_fds();
    if (fds_after != fds_before) {
        fprintf(stderr, "fuzz_vhost_user: %d fds open before this input, %d after\n", fds_before,
                fds_after);
        abort();
    }
    return 0;
}
