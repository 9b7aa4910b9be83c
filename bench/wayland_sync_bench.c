/*
 * wl_display.sync round trips made directly on the host, on a raw socket to a compositor:
 * the baseline for the same round trip made by a guest through cross-domain.
 *
 *   wayland_sync_bench SOCKET_PATH ROUNDS    prints "host_sync_us=X"
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: wayland_sync_bench SOCKET_PATH ROUNDS\n");
        return 2;
    }
    int rounds = atoi(argv[2]);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", argv[1]);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        perror("connect");
        return 1;
    }
    uint8_t stream[65536];
    size_t have = 0;
    double started = 0;
    /* Round 0 warms up and is not timed. */
    for (int i = 0; i <= rounds; i++) {
        if (i == 1) {
            started = now_us();
        }
        uint32_t callback_id = 2 + (uint32_t)i;
        uint32_t sync[3] = {1, 12u << 16, callback_id};
        if (write(fd, sync, sizeof(sync)) != sizeof(sync)) {
            return 1;
        }
        for (int done = 0; !done;) {
            ssize_t got = read(fd, stream + have, sizeof(stream) - have);
            if (got <= 0) {
                return 1;
            }
            have += (size_t)got;
            size_t pos = 0;
            while (pos + 8 <= have) {
                uint32_t object, size_opcode;
                memcpy(&object, stream + pos, 4);
                memcpy(&size_opcode, stream + pos + 4, 4);
                uint32_t size = size_opcode >> 16;
                if (size < 8 || pos + size > have) {
                    break;
                }
                done |= object == callback_id && (size_opcode & 0xffff) == 0;
                pos += size;
            }
            memmove(stream, stream + pos, have - pos);
            have -= pos;
        }
    }
    printf("host_sync_us=%.1f\n", (now_us() - started) / rounds);
    return 0;
}
