/*
 * The guest's own fenced virtqueue round trip: a one-dword virgl command stream (a no-op) sent
 * with an out-fence on the default context, then waited for, N times. Prints
 * "NEEP: fence-rtt-us <average>". The baseline the venus submit round trip is set against.
 *
 *   fence_rtt N
 */
#include <drm/drm.h>
#include <drm/virtgpu_drm.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

static void round_trip(int fd)
{
    uint32_t nop = 0; /* VIRGL_CCMD_NOP, no payload */
    struct drm_virtgpu_execbuffer exec = {.flags = VIRTGPU_EXECBUF_FENCE_FD_OUT,
                                          .size = sizeof(nop),
                                          .command = (uintptr_t)&nop,
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
    round_trip(fd); /* creates the context */
    double start = now_s();
    for (int i = 0; i < rounds; i++) {
        round_trip(fd);
    }
    printf("NEEP: fence-rtt-us %.1f\n", (now_s() - start) / rounds * 1e6);
    return 0;
}
