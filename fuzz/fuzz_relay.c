/*
 * neep-wl's relay on arbitrary traffic both ways: requests from a client (with pipes and
 * memfds as their fds, some of them shrunk under the proxy) and events from a compositor
 * (with fds as the host would hand them over). Ids, shm shadows and damage copies all run;
 * the connection is recorded instead of sent (tests/unit/relay_support.c).
 *
 * Input: records of [who: 1 byte][fds: 1 byte][message]; who's low bit picks the direction,
 * fds's low bits say how many fds come with the message and of which kind.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "relay_support.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int make_fd(uint8_t kind)
{
    if (kind & 1) {
        int ends[2];
        if (pipe2(ends, O_CLOEXEC) < 0) {
            return -1;
        }
        close(ends[0]);
        return ends[1];
    }
    int fd = memfd_create("fuzz-pool", MFD_CLOEXEC);
    /* Sometimes smaller than the pool the message will claim. */
    if (fd >= 0 && ftruncate(fd, (kind & 2) ? 64 : 1 << 20) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool guarded;
    if (!guarded) {
        shm_install_guard();
        guarded = true;
    }
    struct relay_record *record = calloc(1, sizeof(*record));
    if (!record) {
        return 0;
    }
    relay_record_init(record);
    struct proxy_client *client = &record->client;
    size_t pos = 0;
    while (pos + 10 <= size && !client->closing) {
        uint8_t who = data[pos], fds = data[pos + 1];
        uint32_t header[2];
        memcpy(header, data + pos + 2, 8);
        size_t length = header[1] >> 16;
        if (length < 8 || length % 4 || length > WIRE_MAX_MESSAGE_BYTES ||
            length > size - pos - 2) {
            break;
        }
        struct fd_fifo *fifo = (who & 1) ? &client->host_fds : &client->client_fds;
        for (int i = 0; i < (fds & 3); i++) {
            int fd = make_fd(fds >> 2);
            if (fd >= 0 && !fd_fifo_push(fifo, fd)) {
                close(fd);
            }
        }
        uint8_t message[WIRE_MAX_MESSAGE_BYTES];
        memcpy(message, data + pos + 2, length);
        if (who & 1) {
            relay_event(client, message, length);
        } else {
            relay_request(client, message, length);
        }
        pos += 2 + length;
    }
    relay_record_finish(record);
    free(record);
    return 0;
}
