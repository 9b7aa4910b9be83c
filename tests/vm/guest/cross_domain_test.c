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

/* POLL on ring 1, then wait for the fence event the kernel queues on the fd. */
static void poll_channel(void)
{
    struct cross_domain_poll request = {
        .hdr = {.cmd = CROSS_DOMAIN_CMD_POLL, .cmd_size = sizeof(request)}};
    execbuffer(&request, sizeof(request), CROSS_DOMAIN_CHANNEL_RING, NULL);
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

int main(void)
{
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

    /* wl_display (object 1).sync (opcode 0) with new wl_callback id 2. */
    uint8_t send_buffer[sizeof(struct cross_domain_send_receive) + 12];
    struct cross_domain_send_receive *send = (void *)send_buffer;
    memset(send_buffer, 0, sizeof(send_buffer));
    send->hdr.cmd = CROSS_DOMAIN_CMD_SEND;
    send->hdr.cmd_size = sizeof(send_buffer);
    send->opaque_data_size = 12;
    uint32_t sync[3] = {1, (12u << 16) | 0, 2};
    memcpy(send_buffer + sizeof(*send), sync, sizeof(sync));
    execbuffer(send_buffer, sizeof(send_buffer), -1, NULL);

    /* Events arrive in pieces; gather until wl_callback(2).done shows up. */
    uint8_t stream[8192];
    size_t have = 0;
    bool done = false;
    for (int round = 0; round < 16 && !done; round++) {
        poll_channel();
        struct cross_domain_send_receive reply;
        memcpy(&reply, channel.map, sizeof(reply));
        if (reply.hdr.cmd != CROSS_DOMAIN_CMD_RECEIVE || reply.opaque_data_size == 0 ||
            reply.opaque_data_size > 4096 - sizeof(reply) ||
            reply.opaque_data_size > sizeof(stream) - have) {
            FAIL("channel reply %u with %u bytes", reply.hdr.cmd, reply.opaque_data_size);
        }
        memcpy(stream + have, channel.map + sizeof(reply), reply.opaque_data_size);
        have += reply.opaque_data_size;
        for (size_t pos = 0; pos + 8 <= have;) {
            uint32_t object, size_opcode;
            memcpy(&object, stream + pos, 4);
            memcpy(&size_opcode, stream + pos + 4, 4);
            uint32_t size = size_opcode >> 16;
            if (size < 8 || pos + size > have) {
                break;
            }
            if (object == 2 && (size_opcode & 0xffff) == 0 && size == 12) {
                done = true;
            }
            pos += size;
        }
    }
    if (!done) {
        FAIL("no wl_callback.done in %zu bytes from the compositor", have);
    }
    printf("NEEP: cd-sync round trip through the host compositor\n");
    printf("NEEP: cd-ok\n");
    return 0;
}
