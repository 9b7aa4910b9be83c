/*
 * Guest test program (static, runs from the test initramfs): the cross-domain protocol
 * through the virtio-gpu render node, as a Wayland guest proxy drives it.
 *
 * Checks the capset, creates a context with CONTEXT_INIT (capset 5, two rings, ring 1
 * polled), allocates the query and channel rings as guest blobs, runs INIT with the Wayland
 * channel, asks for image requirements, creates a host blob from them and writes and reads
 * it through the host-visible mapping, sends wl_display.sync to the host compositor and
 * receives wl_callback.done through POLL and RECEIVE. Prints "NEEP: cd-..." lines; the last
 * is "NEEP: cd-ok" when every step held.
 *
 * With "bench N" it then times N wl_display.sync round trips through the device and N
 * fenced query round trips (the guest's own virtqueue round trip), for
 * bench/cross_domain_bench.py.
 *
 * With "pipes" it talks to a clipboard peer instead of a compositor (tests/vm/vmtest.py's
 * PipePeer): it sends a READ_PIPE, gets the peer's data back through READ events until the
 * hang-up, then takes a WRITE_PIPE from the peer and feeds it with WRITE.
 */
#include <drm/drm.h>
#include <drm/virtgpu_drm.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../../../src/contexts/cross_domain_protocol.h"

static int fd;

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        printf("NEEP: cd-fail ");                                                                  \
        printf(__VA_ARGS__);                                                                       \
        printf(" (%s)\n", strerror(errno));                                                        \
        exit(1);                                                                                   \
    } while (0)

static void drm_ioctl(unsigned long request, void *arg, const char *what)
{
    while (ioctl(fd, request, arg) < 0) {
        if (errno != EINTR && errno != EAGAIN) {
            FAIL("%s", what);
        }
    }
}

static uint64_t getparam(uint64_t param)
{
    uint64_t value = 0;
    struct drm_virtgpu_getparam get = {.param = param, .value = (uintptr_t)&value};
    drm_ioctl(DRM_IOCTL_VIRTGPU_GETPARAM, &get, "GETPARAM");
    return value;
}

struct blob {
    uint32_t bo_handle, res_handle;
    uint8_t *map;
    uint64_t size;
};

static void create_blob(uint32_t mem, uint32_t flags, uint64_t size, uint64_t blob_id,
                        struct blob *out)
{
    struct drm_virtgpu_resource_create_blob create = {
        .blob_mem = mem, .blob_flags = flags, .size = size, .blob_id = blob_id};
    drm_ioctl(DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB, &create, "RESOURCE_CREATE_BLOB");
    struct drm_virtgpu_map map = {.handle = create.bo_handle};
    drm_ioctl(DRM_IOCTL_VIRTGPU_MAP, &map, "MAP");
    void *ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map.offset);
    if (ptr == MAP_FAILED) {
        FAIL("mmap of blob");
    }
    *out = (struct blob){create.bo_handle, create.res_handle, ptr, size};
}

/* Sends commands; with ring >= 0 they are fenced on that ring. */
static void execbuffer(const void *commands, uint32_t size, int ring, uint32_t *bo_handle)
{
    struct drm_virtgpu_execbuffer exec = {.size = size, .command = (uintptr_t)commands};
    if (ring >= 0) {
        exec.flags = VIRTGPU_EXECBUF_RING_IDX;
        exec.ring_idx = (uint32_t)ring;
    }
    if (bo_handle) {
        exec.bo_handles = (uintptr_t)bo_handle;
        exec.num_bo_handles = 1;
    }
    drm_ioctl(DRM_IOCTL_VIRTGPU_EXECBUFFER, &exec, "EXECBUFFER");
}

static void wait_idle(uint32_t bo_handle)
{
    struct drm_virtgpu_3d_wait wait = {.handle = bo_handle};
    drm_ioctl(DRM_IOCTL_VIRTGPU_WAIT, &wait, "WAIT");
}

/* A POLL on ring 1 stays outstanding, as a guest proxy keeps one: the host answers it as soon
 * as the compositor speaks, without waiting for the guest to ask. */
static void start_poll(void)
{
    struct cross_domain_poll request = {
        .hdr = {.cmd = CROSS_DOMAIN_CMD_POLL, .cmd_size = sizeof(request)}};
    execbuffer(&request, sizeof(request), CROSS_DOMAIN_CHANNEL_RING, NULL);
}

/* Waits for the outstanding POLL's fence event; the channel ring then holds a reply. */
static void wait_poll(void)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, 10000) != 1) {
        FAIL("no channel event within 10 s");
    }
    struct drm_event event;
    if (read(fd, &event, sizeof(event)) != sizeof(event) ||
        event.type != VIRTGPU_EVENT_FENCE_SIGNALED) {
        FAIL("unexpected DRM event");
    }
}

static uint8_t stream[65536];
static size_t stream_bytes;

/* Sends wl_display.sync with new callback `callback_id`, then polls until its done arrives. */
static void sync_round_trip(struct blob *channel, uint32_t callback_id)
{
    uint8_t send_buffer[sizeof(struct cross_domain_send_receive) + 12];
    struct cross_domain_send_receive *send = (void *)send_buffer;
    memset(send_buffer, 0, sizeof(send_buffer));
    send->hdr.cmd = CROSS_DOMAIN_CMD_SEND;
    send->hdr.cmd_size = sizeof(send_buffer);
    send->opaque_data_size = 12;
    uint32_t sync[3] = {1, (12u << 16) | 0, callback_id};
    memcpy(send_buffer + sizeof(*send), sync, sizeof(sync));
    execbuffer(send_buffer, sizeof(send_buffer), -1, NULL);

    for (int round = 0; round < 64; round++) {
        /* Messages seen so far (whole ones) are consumed as they are scanned. */
        size_t pos = 0;
        bool done = false;
        while (pos + 8 <= stream_bytes) {
            uint32_t object, size_opcode;
            memcpy(&object, stream + pos, 4);
            memcpy(&size_opcode, stream + pos + 4, 4);
            uint32_t size = size_opcode >> 16;
            if (size < 8 || pos + size > stream_bytes) {
                break;
            }
            if (object == callback_id && (size_opcode & 0xffff) == 0) {
                done = true;
            }
            pos += size;
        }
        memmove(stream, stream + pos, stream_bytes - pos);
        stream_bytes -= pos;
        if (done) {
            return;
        }
        wait_poll();
        struct cross_domain_send_receive reply;
        memcpy(&reply, channel->map, sizeof(reply));
        if (reply.hdr.cmd != CROSS_DOMAIN_CMD_RECEIVE || reply.opaque_data_size == 0 ||
            reply.opaque_data_size > 4096 - sizeof(reply) ||
            reply.opaque_data_size > sizeof(stream) - stream_bytes) {
            FAIL("channel reply %u with %u bytes", reply.hdr.cmd, reply.opaque_data_size);
        }
        memcpy(stream + stream_bytes, channel->map + sizeof(reply), reply.opaque_data_size);
        stream_bytes += reply.opaque_data_size;
        start_poll(); /* the ring's content is copied out: hand it back */
    }
    FAIL("no wl_callback.done for callback %u", callback_id);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The next channel-ring reply, copied out; the POLL is handed back at once. */
static void next_reply(struct blob *channel, uint8_t *reply, size_t size)
{
    wait_poll();
    memcpy(reply, channel->map, size);
    start_poll();
}

/* Clipboard data both ways through pipes, against a peer that expects exactly this. */
static void exercise_pipes(struct blob *channel)
{
    /* wl_data_offer.receive-like: our READ_PIPE goes out with one byte of message. */
    uint8_t buffer[sizeof(struct cross_domain_send_receive) + 1];
    struct cross_domain_send_receive *send = (void *)buffer;
    memset(buffer, 0, sizeof(buffer));
    send->hdr.cmd = CROSS_DOMAIN_CMD_SEND;
    send->hdr.cmd_size = sizeof(buffer);
    send->num_identifiers = 1;
    send->opaque_data_size = 1;
    send->identifiers[0] = CROSS_DOMAIN_PIPE_READ_START + 1;
    send->identifier_types[0] = CROSS_DOMAIN_ID_TYPE_READ_PIPE;
    buffer[sizeof(*send)] = 'r';
    execbuffer(buffer, sizeof(buffer), -1, NULL);

    char got[256];
    size_t have = 0;
    for (;;) {
        uint8_t reply_bytes[4096];
        next_reply(channel, reply_bytes, sizeof(reply_bytes));
        struct cross_domain_read_write reply;
        memcpy(&reply, reply_bytes, sizeof(reply));
        if (reply.hdr.cmd != CROSS_DOMAIN_CMD_READ ||
            reply.identifier != CROSS_DOMAIN_PIPE_READ_START + 1 ||
            reply.opaque_data_size > sizeof(got) - have) {
            FAIL("unexpected reply %u for the read pipe", reply.hdr.cmd);
        }
        memcpy(got + have, reply_bytes + sizeof(reply), reply.opaque_data_size);
        have += reply.opaque_data_size;
        if (reply.hang_up) {
            break;
        }
    }
    got[have] = '\0';
    printf("NEEP: cd-pipe-read '%s'\n", got);

    /* wl_data_source.send-like: the peer sends us a pipe's write end; we feed it. */
    uint8_t receive_bytes[4096];
    next_reply(channel, receive_bytes, sizeof(receive_bytes));
    struct cross_domain_send_receive received;
    memcpy(&received, receive_bytes, sizeof(received));
    if (received.hdr.cmd != CROSS_DOMAIN_CMD_RECEIVE || received.num_identifiers != 1 ||
        received.identifier_types[0] != CROSS_DOMAIN_ID_TYPE_WRITE_PIPE) {
        FAIL("expected a write pipe from the peer");
    }
    const char *text = "from the guest";
    uint8_t write_buffer[sizeof(struct cross_domain_read_write) + 14];
    struct cross_domain_read_write *write_cmd = (void *)write_buffer;
    memset(write_buffer, 0, sizeof(write_buffer));
    write_cmd->hdr.cmd = CROSS_DOMAIN_CMD_WRITE;
    write_cmd->hdr.cmd_size = sizeof(write_buffer);
    write_cmd->identifier = received.identifiers[0];
    write_cmd->hang_up = 1;
    write_cmd->opaque_data_size = 14;
    memcpy(write_buffer + sizeof(*write_cmd), text, 14);
    execbuffer(write_buffer, sizeof(write_buffer), -1, NULL);
    printf("NEEP: cd-pipe-write '%s'\n", text);
}

int main(int argc, char **argv)
{
    int bench_rounds = argc > 2 && strcmp(argv[1], "bench") == 0 ? atoi(argv[2]) : 0;
    bool pipes = argc > 1 && strcmp(argv[1], "pipes") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    fd = open("/dev/dri/renderD128", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        FAIL("open renderD128");
    }
    if (!getparam(VIRTGPU_PARAM_CONTEXT_INIT) || !getparam(VIRTGPU_PARAM_RESOURCE_BLOB) ||
        !getparam(VIRTGPU_PARAM_HOST_VISIBLE) ||
        !(getparam(VIRTGPU_PARAM_SUPPORTED_CAPSET_IDs) & (1u << 5))) {
        FAIL("the device lacks context init, blobs, host-visible memory or capset 5");
    }
    struct cross_domain_capabilities caps;
    struct drm_virtgpu_get_caps get_caps = {
        .cap_set_id = 5, .cap_set_ver = 0, .addr = (uintptr_t)&caps, .size = sizeof(caps)};
    drm_ioctl(DRM_IOCTL_VIRTGPU_GET_CAPS, &get_caps, "GET_CAPS");
    if (caps.version != 1 || !(caps.supported_channels & (1u << 1))) {
        FAIL("capset 5: version %u, channels 0x%x", caps.version, caps.supported_channels);
    }
    printf("NEEP: cd-capset version %u channels 0x%x\n", caps.version, caps.supported_channels);

    struct drm_virtgpu_context_set_param params[] = {
        {VIRTGPU_CONTEXT_PARAM_CAPSET_ID, 5},
        {VIRTGPU_CONTEXT_PARAM_NUM_RINGS, 2},
        {VIRTGPU_CONTEXT_PARAM_POLL_RINGS_MASK, 1u << CROSS_DOMAIN_CHANNEL_RING},
    };
    struct drm_virtgpu_context_init init_ctx = {.num_params = 3,
                                                .ctx_set_params = (uintptr_t)params};
    drm_ioctl(DRM_IOCTL_VIRTGPU_CONTEXT_INIT, &init_ctx, "CONTEXT_INIT");

    struct blob query, channel;
    create_blob(VIRTGPU_BLOB_MEM_GUEST, VIRTGPU_BLOB_FLAG_USE_MAPPABLE, 4096, 0, &query);
    create_blob(VIRTGPU_BLOB_MEM_GUEST, VIRTGPU_BLOB_FLAG_USE_MAPPABLE, 4096, 0, &channel);
    struct cross_domain_init init = {
        .hdr = {.cmd = CROSS_DOMAIN_CMD_INIT, .cmd_size = CROSS_DOMAIN_INIT_V1_BYTES},
        .query_ring_id = query.res_handle,
        .channel_ring_id = channel.res_handle,
        .channel_type = CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    execbuffer(&init, CROSS_DOMAIN_INIT_V1_BYTES, -1, NULL);
    printf("NEEP: cd-init rings %u %u\n", query.res_handle, channel.res_handle);
    start_poll();

    struct cross_domain_get_image_requirements get = {
        .hdr = {.cmd = CROSS_DOMAIN_CMD_GET_IMAGE_REQUIREMENTS, .cmd_size = sizeof(get)},
        .width = 256,
        .height = 64,
        .drm_format = 0x34325241 /* AR24 */,
        .flags = 0x11};
    execbuffer(&get, sizeof(get), CROSS_DOMAIN_QUERY_RING, &query.bo_handle);
    wait_idle(query.bo_handle);
    struct cross_domain_image_requirements reqs;
    memcpy(&reqs, query.map, sizeof(reqs));
    if (reqs.strides[0] != 1024 || reqs.size < 65536 || reqs.blob_id == 0) {
        FAIL("image requirements: stride %u size %llu blob %u", reqs.strides[0],
             (unsigned long long)reqs.size, reqs.blob_id);
    }
    printf("NEEP: cd-requirements stride %u size %llu\n", reqs.strides[0],
           (unsigned long long)reqs.size);

    struct blob image;
    create_blob(VIRTGPU_BLOB_MEM_HOST3D,
                VIRTGPU_BLOB_FLAG_USE_MAPPABLE | VIRTGPU_BLOB_FLAG_USE_SHAREABLE, reqs.size,
                reqs.blob_id, &image);
    for (uint64_t i = 0; i < image.size; i++) {
        image.map[i] = (uint8_t)(i * 13 + 5);
    }
    for (uint64_t i = 0; i < image.size; i++) {
        if (image.map[i] != (uint8_t)(i * 13 + 5)) {
            FAIL("host blob byte %llu reads back wrong", (unsigned long long)i);
        }
    }
    printf("NEEP: cd-host-blob %llu bytes through the host-visible mapping\n",
           (unsigned long long)image.size);

    if (pipes) {
        exercise_pipes(&channel);
        printf("NEEP: cd-ok\n");
        return 0;
    }

    /* wl_display (object 1).sync (opcode 0) with new wl_callback id 2. */
    sync_round_trip(&channel, 2);
    printf("NEEP: cd-sync round trip through the host compositor\n");
    if (bench_rounds > 0) {
        double started = now_us();
        for (int i = 0; i < bench_rounds; i++) {
            sync_round_trip(&channel, 3 + (uint32_t)i);
        }
        double sync_us = (now_us() - started) / bench_rounds;
        started = now_us();
        for (int i = 0; i < bench_rounds; i++) {
            execbuffer(&get, sizeof(get), CROSS_DOMAIN_QUERY_RING, &query.bo_handle);
            wait_idle(query.bo_handle);
        }
        double query_us = (now_us() - started) / bench_rounds;
        printf("NEEP: cd-bench rounds=%d sync_us=%.1f query_us=%.1f\n", bench_rounds, sync_us,
               query_us);
    }
    printf("NEEP: cd-ok\n");
    return 0;
}
