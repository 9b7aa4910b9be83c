#include "virtgpu.h"

#include <drm/drm.h>
#include <drm/virtgpu_drm.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE_SIZE_BYTES       4096u
#define LAYOUT_LINEAR_SCANOUT 0x11u

static int drm_ioctl(int fd, unsigned long request, void *arg)
{
    int ret;
    do {
        ret = ioctl(fd, request, arg);
    } while (ret < 0 && (errno == EINTR || errno == EAGAIN));
    return ret;
}

static uint64_t getparam(int fd, uint64_t param)
{
    int value = 0; /* the kernel writes an int */
    struct drm_virtgpu_getparam get = {.param = param, .value = (uintptr_t)&value};
    return drm_ioctl(fd, DRM_IOCTL_VIRTGPU_GETPARAM, &get) < 0 ? 0 : (uint64_t)(unsigned)value;
}

static int create_blob(struct virtgpu_channel *channel, uint32_t mem, uint32_t flags,
                       uint64_t size_bytes, uint64_t blob_id, int prot, struct virtgpu_blob *out)
{
    uint64_t mapped_bytes = (size_bytes + PAGE_SIZE_BYTES - 1) / PAGE_SIZE_BYTES * PAGE_SIZE_BYTES;
    if (size_bytes == 0 || mapped_bytes < size_bytes) {
        errno = EINVAL;
        return -1;
    }
    struct drm_virtgpu_resource_create_blob create = {
        .blob_mem = mem, .blob_flags = flags, .size = mapped_bytes, .blob_id = blob_id};
    if (drm_ioctl(channel->drm_fd, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB, &create) < 0) {
        return -1;
    }
    *out = (struct virtgpu_blob){create.bo_handle, create.res_handle, NULL, mapped_bytes};
    struct drm_virtgpu_map map = {.handle = create.bo_handle};
    if (drm_ioctl(channel->drm_fd, DRM_IOCTL_VIRTGPU_MAP, &map) == 0) {
        void *ptr = mmap(NULL, mapped_bytes, prot, MAP_SHARED, channel->drm_fd, (off_t)map.offset);
        if (ptr != MAP_FAILED) {
            out->map = ptr;
            return 0;
        }
    }
    int saved = errno;
    virtgpu_blob_free(channel, out);
    errno = saved;
    return -1;
}

void virtgpu_blob_free(struct virtgpu_channel *channel, struct virtgpu_blob *blob)
{
    if (blob->map) {
        munmap(blob->map, blob->size_bytes);
    }
    if (blob->bo_handle) {
        struct drm_gem_close close_bo = {.handle = blob->bo_handle};
        drm_ioctl(channel->drm_fd, DRM_IOCTL_GEM_CLOSE, &close_bo);
    }
    memset(blob, 0, sizeof(*blob));
}

static int execbuffer(struct virtgpu_channel *channel, const void *commands, size_t size, int ring,
                      uint32_t *bo_handle)
{
    struct drm_virtgpu_execbuffer exec = {.size = (uint32_t)size, .command = (uintptr_t)commands};
    if (ring >= 0) {
        exec.flags = VIRTGPU_EXECBUF_RING_IDX;
        exec.ring_idx = (uint32_t)ring;
    }
    if (bo_handle) {
        exec.bo_handles = (uintptr_t)bo_handle;
        exec.num_bo_handles = 1;
    }
    return drm_ioctl(channel->drm_fd, DRM_IOCTL_VIRTGPU_EXECBUFFER, &exec);
}

int virtgpu_channel_submit(struct virtgpu_channel *channel, const void *commands, size_t size)
{
    return execbuffer(channel, commands, size, -1, NULL);
}

int virtgpu_channel_poll(struct virtgpu_channel *channel)
{
    struct cross_domain_poll poll = {
        .hdr = {.cmd = CROSS_DOMAIN_CMD_POLL, .cmd_size = sizeof(poll)}};
    /* Alone in its buffer: the fence belongs to the whole submission. */
    return execbuffer(channel, &poll, sizeof(poll), (int)channel->poll_ring, NULL);
}

int virtgpu_channel_take_event(struct virtgpu_channel *channel)
{
    struct drm_event event;
    ssize_t got = read(channel->drm_fd, &event, sizeof(event));
    if (got < 0) {
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    }
    return got == sizeof(event) && event.type == VIRTGPU_EVENT_FENCE_SIGNALED ? 1 : 0;
}

uint32_t virtgpu_channel_next_read_pipe(struct virtgpu_channel *channel)
{
    channel->next_read_pipe_id++;
    if (channel->next_read_pipe_id == 0) {
        channel->next_read_pipe_id = CROSS_DOMAIN_PIPE_READ_START;
    }
    return channel->next_read_pipe_id;
}

/* Asks the host for a byte-buffer layout of `size_bytes` (page-aligned); waits for it. */
static int byte_buffer_requirements(struct virtgpu_channel *channel, uint64_t size_bytes,
                                    uint32_t *blob_id)
{
    for (uint32_t i = 0; i < channel->requirements_count; i++) {
        if (channel->requirements[i].size_bytes == size_bytes) {
            *blob_id = channel->requirements[i].blob_id;
            return 0;
        }
    }
    if (size_bytes > UINT32_MAX) {
        errno = EFBIG;
        return -1;
    }
    struct cross_domain_get_image_requirements get = {
        .hdr = {.cmd = CROSS_DOMAIN_CMD_GET_IMAGE_REQUIREMENTS, .cmd_size = sizeof(get)},
        .width = (uint32_t)size_bytes,
        .height = 1,
        .drm_format = DRM_FORMAT_R8,
        .flags = LAYOUT_LINEAR_SCANOUT};
    struct cross_domain_image_requirements reply;
    memset(channel->query_ring.map, 0, sizeof(reply));
    if (execbuffer(channel, &get, sizeof(get), CROSS_DOMAIN_QUERY_RING,
                   &channel->query_ring.bo_handle) < 0) {
        return -1;
    }
    struct drm_virtgpu_3d_wait wait = {.handle = channel->query_ring.bo_handle};
    if (drm_ioctl(channel->drm_fd, DRM_IOCTL_VIRTGPU_WAIT, &wait) < 0) {
        return -1;
    }
    memcpy(&reply, channel->query_ring.map, sizeof(reply));
    /* A refused query leaves the ring as it was: zero. */
    if (reply.blob_id == 0 || reply.size < size_bytes ||
        reply.size - size_bytes >= PAGE_SIZE_BYTES) {
        errno = ENOMEM;
        return -1;
    }
    if (channel->requirements_count < VIRTGPU_REQUIREMENTS_CACHE) {
        channel->requirements[channel->requirements_count++] =
            (struct virtgpu_cached_requirements){size_bytes, reply.blob_id};
    }
    *blob_id = reply.blob_id;
    return 0;
}

int virtgpu_byte_buffer(struct virtgpu_channel *channel, uint64_t size_bytes,
                        struct virtgpu_blob *out)
{
    uint64_t aligned = (size_bytes + PAGE_SIZE_BYTES - 1) / PAGE_SIZE_BYTES * PAGE_SIZE_BYTES;
    uint32_t blob_id;
    if (size_bytes == 0 || aligned < size_bytes ||
        byte_buffer_requirements(channel, aligned, &blob_id) < 0) {
        return -1;
    }
    return create_blob(channel, VIRTGPU_BLOB_MEM_HOST3D,
                       VIRTGPU_BLOB_FLAG_USE_MAPPABLE | VIRTGPU_BLOB_FLAG_USE_SHAREABLE, aligned,
                       blob_id, PROT_READ | PROT_WRITE, out);
}

int virtgpu_import_host_blob(struct virtgpu_channel *channel, uint32_t blob_id, uint64_t size_bytes,
                             struct virtgpu_blob *out)
{
    return create_blob(channel, VIRTGPU_BLOB_MEM_HOST3D,
                       VIRTGPU_BLOB_FLAG_USE_MAPPABLE | VIRTGPU_BLOB_FLAG_USE_SHAREABLE, size_bytes,
                       blob_id, PROT_READ, out);
}

static int fail(struct virtgpu_channel *channel, const char **error, const char *what)
{
    int saved = errno;
    virtgpu_channel_close(channel);
    errno = saved;
    *error = what;
    return -1;
}

int virtgpu_channel_open(struct virtgpu_channel *channel, const char *render_node,
                         uint32_t poll_ring, const char **error)
{
    memset(channel, 0, sizeof(*channel));
    channel->next_read_pipe_id = CROSS_DOMAIN_PIPE_READ_START;
    channel->drm_fd = open(render_node, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (channel->drm_fd < 0) {
        *error = "cannot open the render node";
        return -1;
    }
    int fd = channel->drm_fd;
    if (!getparam(fd, VIRTGPU_PARAM_CONTEXT_INIT) || !getparam(fd, VIRTGPU_PARAM_RESOURCE_BLOB) ||
        !getparam(fd, VIRTGPU_PARAM_HOST_VISIBLE) ||
        !(getparam(fd, VIRTGPU_PARAM_SUPPORTED_CAPSET_IDs) & (1u << 5))) {
        errno = ENODEV;
        return fail(channel, error,
                    "the device lacks context init, blobs, host-visible memory or capset 5 "
                    "(QEMU's virtio-gpu-rutabaga with cross-domain=on and hostmem provides them)");
    }
    struct cross_domain_capabilities caps = {0};
    struct drm_virtgpu_get_caps get_caps = {
        .cap_set_id = 5, .cap_set_ver = 0, .addr = (uintptr_t)&caps, .size = sizeof(caps)};
    if (drm_ioctl(fd, DRM_IOCTL_VIRTGPU_GET_CAPS, &get_caps) < 0 ||
        !(caps.supported_channels & (1u << CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND))) {
        errno = ENODEV;
        return fail(channel, error, "the host offers no Wayland channel");
    }
    channel->poll_ring = CROSS_DOMAIN_CHANNEL_RING;
    if ((caps.neep_features & CROSS_DOMAIN_NEEP_ANY_CHANNEL_RING) &&
        poll_ring >= VIRTGPU_FIRST_POLL_RING && poll_ring <= VIRTGPU_LAST_POLL_RING) {
        channel->poll_ring = poll_ring;
    }
    /* Before any GEM handle exists on this fd, or the kernel makes a default context. */
    struct drm_virtgpu_context_set_param params[] = {
        {VIRTGPU_CONTEXT_PARAM_CAPSET_ID, 5},
        {VIRTGPU_CONTEXT_PARAM_NUM_RINGS, channel->poll_ring + 1},
        {VIRTGPU_CONTEXT_PARAM_POLL_RINGS_MASK, 1ull << channel->poll_ring},
    };
    struct drm_virtgpu_context_init init_context = {.num_params = 3,
                                                    .ctx_set_params = (uintptr_t)params};
    if (drm_ioctl(fd, DRM_IOCTL_VIRTGPU_CONTEXT_INIT, &init_context) < 0) {
        return fail(channel, error, "CONTEXT_INIT failed");
    }
    if (create_blob(channel, VIRTGPU_BLOB_MEM_GUEST, VIRTGPU_BLOB_FLAG_USE_MAPPABLE,
                    PAGE_SIZE_BYTES, 0, PROT_READ | PROT_WRITE, &channel->query_ring) < 0 ||
        create_blob(channel, VIRTGPU_BLOB_MEM_GUEST, VIRTGPU_BLOB_FLAG_USE_MAPPABLE,
                    PAGE_SIZE_BYTES, 0, PROT_READ | PROT_WRITE, &channel->channel_ring) < 0) {
        return fail(channel, error, "cannot create the ring blobs");
    }
    struct cross_domain_init init = {
        .hdr = {.cmd = CROSS_DOMAIN_CMD_INIT, .cmd_size = CROSS_DOMAIN_INIT_V1_BYTES},
        .query_ring_id = channel->query_ring.res_handle,
        .channel_ring_id = channel->channel_ring.res_handle,
        .channel_type = CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    if (virtgpu_channel_submit(channel, &init, CROSS_DOMAIN_INIT_V1_BYTES) < 0 ||
        virtgpu_channel_poll(channel) < 0) {
        return fail(channel, error, "INIT or the first POLL failed");
    }
    return 0;
}

void virtgpu_channel_close(struct virtgpu_channel *channel)
{
    if (channel->drm_fd >= 0) {
        virtgpu_blob_free(channel, &channel->query_ring);
        virtgpu_blob_free(channel, &channel->channel_ring);
        close(channel->drm_fd);
    }
    channel->drm_fd = -1;
}
