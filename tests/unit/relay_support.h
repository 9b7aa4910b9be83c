/* A neep-wl connection whose traffic is recorded (see relay_support.c). */
#ifndef NEEP_TESTS_RELAY_SUPPORT_H
#define NEEP_TESTS_RELAY_SUPPORT_H

#include "fake_host.h"
#include "proxy.h"
#include "shm.h"

#define RELAY_RECORD_IDS 64u

struct relay_stream {
    uint8_t bytes[1u << 16];
    size_t size;
    uint32_t messages;
};

/* The connection comes first, so the fakes find the record from the client pointer. */
struct relay_record {
    struct proxy_client client;
    struct relay_stream to_client;
    struct relay_stream to_host;
    uint32_t fds_to_client;
    uint64_t last_fd_to_client_inode; /* which file the last fd handed to the client was */
    uint32_t ids[RELAY_RECORD_IDS];
    uint32_t id_types[RELAY_RECORD_IDS];
    uint32_t id_count;
    char error[512];
    uint32_t error_object;
    uint32_t error_code;
};

void relay_record_init(struct relay_record *record);
void relay_record_finish(struct relay_record *record);

#endif
