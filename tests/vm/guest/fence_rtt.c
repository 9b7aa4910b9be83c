/*
 * The guest's own fenced virtqueue round trip: a no-op command stream sent with an out-fence,
 * then waited for, N times. Prints "NEEP: fence-rtt-us <average>". The baseline the Vulkan
 * submit round trips are set against. By default a one-dword virgl stream on the default
 * context; with "gfxstream", gfxstream's placeholder command on a context of capset 3.
 *
 *   fence_rtt N [gfxstream]
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
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool gfxstream;

static void round_trip(int fd)
{
    uint32_t virgl_nop = 0;                     /* VIRGL_CCMD_NOP, no payload */
    uint32_t gfxstream_nop[3] = {0xf002, 0, 0}; /* PLACEHOLDER_COMMAND_VK */
    struct drm_virtgpu_execbuffer exec = {
        .flags = VIRTGPU_EXECBUF_FENCE_FD_OUT,
        .size = gfxstream ? sizeof(gfxstream_nop) : sizeof(virgl_nop),
        .command = gfxstream ? (uintptr_t)gfxstream_nop : (uintptr_t)&virgl_nop,
        .fence_fd = -1};
    while (ioctl(fd, DRM_IOCTL_VIRTGPU_EXECBUFFER, &exec) < 0) {
        if (errno != EINTR && errno != EAGAIN) {
            printf("NEEP: fence-rtt-failed EXECBUFFER (%s)\n", strerror(errno));
            exit(1);
        }
    }
    struct pollfd pfd = {.fd = exec.fence_fd, .events = POLLIN};
    while (poll(&pfd, 1, 10000) < 0 && errno == EINTR) {
    }
    if (!(pfd.revents & POLLIN)) {
        printf("NEEP: fence-rtt-failed the fence did not signal\n");
        exit(1);
    }
    close(exec.fence_fd);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 100;
    int fd = open("/dev/dri/renderD128", O_RDWR | O_CLOEXEC);
    if (fd < 0 || rounds < 1) {
        printf("NEEP: fence-rtt-failed open or arguments\n");
        return 1;
    }
    gfxstream = argc > 2 && strcmp(argv[2], "gfxstream") == 0;
    if (gfxstream) {
        struct drm_virtgpu_context_set_param params[] = {
            {VIRTGPU_CONTEXT_PARAM_CAPSET_ID, 3},
            {VIRTGPU_CONTEXT_PARAM_NUM_RINGS, 1},
        };
        struct drm_virtgpu_context_init init = {.num_params = 2,
                                                .ctx_set_params = (uintptr_t)params};
        if (ioctl(fd, DRM_IOCTL_VIRTGPU_CONTEXT_INIT, &init) < 0) {
            printf("NEEP: fence-rtt-failed CONTEXT_INIT (%s)\n", strerror(errno));
            return 1;
        }
    }
    round_trip(fd); /* creates the context */
    double start = now_s();
    for (int i = 0; i < rounds; i++) {
        round_trip(fd);
    }
    printf("NEEP: fence-rtt-us %.1f\n", (now_s() - start) / rounds * 1e6);
    return 0;
}
