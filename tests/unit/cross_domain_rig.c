/* The cross-domain test rig (see cross_domain_rig.h). */
#include "cross_domain_rig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "util/fd_passing.h"

void make_ring(struct rig *rig, uint32_t ctx, uint32_t id, uint8_t **memory)
{
    *memory = aligned_alloc(4096, 4096);
    memset(*memory, 0, 4096);
    struct iovec iov = {*memory, 4096};
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_GUEST,
                                    .blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE,
                                    .size_bytes = 4096};
    CHECK_EQ(neep_resource_create_blob(rig->renderer, ctx, id, &blob, &iov, 1), 0);
    CHECK_EQ(neep_context_attach_resource(rig->renderer, ctx, id), 0);
}

void rig_init(struct rig *rig)
{
    memset(rig, 0, sizeof(*rig));
    snprintf(rig->dir, sizeof(rig->dir), "/tmp/neep-cd-XXXXXX");
    CHECK(mkdtemp(rig->dir));
    snprintf(rig->socket_path, sizeof(rig->socket_path), "%s/wayland-0", rig->dir);
    rig->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, rig->socket_path);
    CHECK_EQ(bind(rig->listen_fd, (struct sockaddr *)&address, sizeof(address)), 0);
    CHECK_EQ(listen(rig->listen_fd, 4), 0);
    rig->compositor_fd = -1;

    struct neep_channel channel = {rig->socket_path, CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    struct neep_renderer_config config = {
        .capset_mask = 1ull << NEEP_CAPSET_CROSS_DOMAIN,
        .log_fn = support_log,
        .log_user_data = &rig->log,
        .channels = &channel,
        .channel_count = 1,
    };
    CHECK_EQ(neep_renderer_create(&config, &rig->renderer), 0);
    CHECK_EQ(neep_context_create(rig->renderer, CTX, NEEP_CAPSET_CROSS_DOMAIN, "test", 4), 0);
    make_ring(rig, CTX, QUERY_RING_ID, &rig->query_ring);
    make_ring(rig, CTX, CHANNEL_RING_ID, &rig->channel_ring);
    rig->next_fence = 1;
}

void rig_finish(struct rig *rig)
{
    neep_renderer_destroy(rig->renderer);
    if (rig->compositor_fd >= 0) {
        close(rig->compositor_fd);
    }
    close(rig->listen_fd);
    unlink(rig->socket_path);
    rmdir(rig->dir);
    free(rig->query_ring);
    free(rig->channel_ring);
}

int submit(struct rig *rig, uint32_t ctx, const void *command, size_t size)
{
    return neep_context_submit(rig->renderer, ctx, command, size);
}

struct cross_domain_header header(uint8_t cmd, size_t size)
{
    return (struct cross_domain_header){.cmd = cmd, .cmd_size = (uint16_t)size};
}

/* INIT with both rings and the Wayland channel; the compositor accepts. */
void init_channel(struct rig *rig)
{
    struct cross_domain_init init = {.hdr = header(CROSS_DOMAIN_CMD_INIT, 20),
                                     .query_ring_id = QUERY_RING_ID,
                                     .channel_ring_id = CHANNEL_RING_ID,
                                     .channel_type = CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    CHECK_EQ(submit(rig, CTX, &init, 20), 0);
    rig->compositor_fd = accept4(rig->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(rig->compositor_fd >= 0);
}

int fence(struct rig *rig, uint32_t ctx, uint32_t ring, uint64_t *id)
{
    *id = rig->next_fence++;
    struct neep_fence f = {.flags = NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX,
                           .fence_id = *id,
                           .ctx_id = ctx,
                           .ring_idx = ring};
    return neep_fence_create(rig->renderer, &f);
}

static uint64_t delivered_id; /* by record(), for fence_done() */
static void record(void *user_data, const struct neep_fence *f)
{
    delivered_id = f->fence_id;
}

/* Waits up to `ms` for fence `id` to be delivered. */
bool fence_done(struct rig *rig, uint64_t id, int ms)
{
    delivered_id = 0;
    struct pollfd pfd = {.fd = neep_renderer_fence_fd(rig->renderer), .events = POLLIN};
    for (int waited = 0; waited <= ms; waited += 10) {
        neep_renderer_dispatch_fences(rig->renderer, record, NULL);
        if (delivered_id == id) {
            return true;
        }
        poll(&pfd, 1, 10);
    }
    return false;
}

/* POLL with its ring-1 fence; returns the fence id. */
uint64_t start_poll(struct rig *rig)
{
    struct cross_domain_poll request = {.hdr = header(CROSS_DOMAIN_CMD_POLL, 16)};
    CHECK_EQ(submit(rig, CTX, &request, sizeof(request)), 0);
    uint64_t id;
    CHECK_EQ(fence(rig, CTX, CROSS_DOMAIN_CHANNEL_RING, &id), 0);
    return id;
}

int memfd_holding(const char *text)
{
    int fd = memfd_create("keymap", MFD_CLOEXEC);
    CHECK_EQ(write(fd, text, strlen(text)), (long long)strlen(text));
    return fd;
}

void compositor_send(struct rig *rig, const void *data, size_t size, const int *fds, int fd_count)
{
    struct iovec iov = {(void *)data, size};
    union fd_passing_control control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    fd_passing_attach(&msg, &control, fds, (uint32_t)fd_count);
    CHECK_EQ(sendmsg(rig->compositor_fd, &msg, MSG_NOSIGNAL), (long long)size);
}

/* Asks for a layout (no fence: the reply is written during the submit). */
struct cross_domain_image_requirements query_requirements(struct rig *rig, uint32_t width,
                                                          uint32_t height, uint32_t format)
{
    struct cross_domain_get_image_requirements request = {
        .hdr = header(CROSS_DOMAIN_CMD_GET_IMAGE_REQUIREMENTS, 24),
        .width = width,
        .height = height,
        .drm_format = format,
        .flags = 0x11};
    CHECK_EQ(submit(rig, CTX, &request, sizeof(request)), 0);
    struct cross_domain_image_requirements reqs;
    memcpy(&reqs, rig->query_ring, sizeof(reqs));
    return reqs;
}

/* The compositor reads one message; returns its size and the fd it carried (or -1). */
ssize_t compositor_receive(struct rig *rig, void *data, size_t size, int *fd)
{
    struct iovec iov = {data, size};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = &control,
                         .msg_controllen = sizeof(control)};
    ssize_t got = recvmsg(rig->compositor_fd, &msg, 0);
    *fd = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (got >= 0 && c && c->cmsg_type == SCM_RIGHTS) {
        memcpy(fd, CMSG_DATA(c), sizeof(int));
    }
    return got;
}
