/*
 * neep-wl's relay on arbitrary traffic both ways: requests from a client (with pipes and
 * memfds as their fds, some of them shrunk under the proxy) and events from a compositor
 * (with fds as the host would hand them over). Ids, shm shadows and damage copies all run;
 * the connection is recorded instead of sent (tests/unit/relay_support.c).
 *
 * Input: records, each an op byte and its operands:
 *   0 a raw request, 1 a raw event: [fds][words: 2 bytes][message]; the harness writes the
 *     message's size into its header (the wire reader checks sizes before the relay sees a
 *     message), fds's low 2 bits say how many fds come with it, the rest of which kind
 *   2 a request, 3 an event, built for one of the connection's objects (fuzz_messages.c),
 *     then a kind byte for each fd it carries
 *   4 a wl_registry.bind of an interface neep-wl knows
 * (The first version of this harness read sizes from the message headers and stopped at
 * the first that did not fit; most mutations broke the framing of everything after them,
 * and ids and interface names had to be guessed: it plateaued at a few hundred edges.)
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_messages.h"
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

static void push_fds(struct fd_fifo *fifo, uint32_t count, struct fuzz_input *in, uint8_t kind)
{
    for (uint32_t i = 0; i < count; i++) {
        int fd = make_fd(in ? fuzz_u8(in) : kind);
        if (fd >= 0 && !fd_fifo_push(fifo, fd)) {
            close(fd);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool guarded;
    if (!guarded) {
        shm_install_guard();
        guarded = true;
    }
    /* Static: a fresh 160 KB record per input cost more than the relay's work. */
    static struct relay_record record;
    relay_record_init(&record);
    struct proxy_client *client = &record.client;
    struct fuzz_input in = {data, size, 0};
    static uint8_t message[WIRE_MAX_MESSAGE_BYTES];
    while (fuzz_left(&in) && !client->closing) {
        uint8_t op = fuzz_u8(&in) % 5;
        size_t length = 0;
        uint32_t fd_count = 0;
        bool event = op == 1 || op == 3;
        struct fd_fifo *fifo = event ? &client->host_fds : &client->client_fds;
        if (op <= 1) {
            uint8_t fds = fuzz_u8(&in);
            length = 8 + 4 * (fuzz_u16(&in) % (WIRE_MAX_MESSAGE_BYTES / 4 - 1));
            fuzz_bytes(&in, message, length);
            uint32_t header;
            memcpy(&header, message + 4, 4);
            header = (header & 0xffff) | (uint32_t)length << 16;
            memcpy(message + 4, &header, 4);
            push_fds(fifo, fds & 3, NULL, fds >> 2);
        } else if (op <= 3) {
            length = fuzz_message(&in, client, event ? WIRE_EVENT : WIRE_REQUEST, false, message,
                                  &fd_count);
            push_fds(fifo, fd_count, &in, 0);
        } else {
            length = fuzz_bind(&in, client, message);
            if (!length) {
                uint32_t get_registry[] = {1, 12u << 16 | 1u, 2};
                memcpy(message, get_registry, sizeof(get_registry));
                length = sizeof(get_registry);
            }
        }
        if (length == 0) {
            continue;
        }
        if (event) {
            relay_event(client, message, length);
        } else {
            relay_request(client, message, length);
        }
    }
    relay_record_finish(&record);
    return 0;
}
