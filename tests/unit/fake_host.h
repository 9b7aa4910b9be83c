/*
 * neep-wl's surroundings on a machine without a virtio-gpu (the device exists only in a guest;
 * tests/vm runs the real thing): virtgpu.h's functions over plain memory and an eventfd, a
 * recorded host that checks every command neep-wl submits as the host would and reassembles
 * the SENDs into the byte stream the compositor would read; and neep_wl.c's log, silenced.
 * One channel at a time.
 */
#ifndef NEEP_TESTS_FAKE_HOST_H
#define NEEP_TESTS_FAKE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtgpu.h"

#define FAKE_HOST_STREAM_BYTES (1u << 16)
#define FAKE_HOST_IDENTIFIERS  256u
/* Blobs alive at once; more fail as a full host-visible window does. */
#define FAKE_HOST_BLOBS       256u
#define FAKE_HOST_SHADOW_MAPS 16u

/* An fd that reached the compositor, and which bytes of the stream its SEND carried. */
struct fake_host_identifier {
    uint32_t id;
    uint32_t type;
    size_t send_start; /* stream offset of the SEND's first data byte */
    size_t send_end;
};

/* A Wayland byte stream checked as it arrives: every header must give a size the wire allows
 * (8 to WIRE_MAX_MESSAGE_BYTES, a multiple of 4). */
struct wire_framing {
    uint8_t header[8];
    size_t header_bytes;
    size_t message_left;
    uint32_t messages; /* headers seen */
    bool broken;       /* a header was not */
};

/* Feeds bytes; false once a header was malformed. */
bool wire_framing_feed(struct wire_framing *framing, const uint8_t *bytes, size_t size);

struct fake_host_blob {
    uint32_t res_handle;
    uint8_t *map;
    uint64_t size_bytes;
    bool guest_made; /* a byte buffer neep-wl may name in a SEND (not a blob from the host) */
};

struct fake_host {
    /* Knobs a test sets after fake_host_reset. */
    bool refuse_open;
    bool fail_submit;
    bool fail_poll;
    uint64_t max_blob_bytes;   /* larger byte buffers fail (default 64 MiB) */
    uint64_t max_import_bytes; /* larger host blobs fail to import (default 1 MiB) */

    /* The channel: its DRM fd is an eventfd counting fence events not yet taken. */
    bool open;
    int event_fd;
    uint8_t *channel_ring;
    bool poll_outstanding;
    uint32_t polls;

    /* What reached the compositor: the SENDs' data in order, and the fds they carried. */
    uint8_t stream[FAKE_HOST_STREAM_BYTES];
    size_t stream_bytes; /* all of it; bytes past the buffer are counted, not kept */
    uint32_t sends;
    struct fake_host_identifier identifiers[FAKE_HOST_IDENTIFIERS];
    uint32_t identifier_count; /* all of them; those past the array are counted, not kept */
    uint32_t last_read_pipe;
    struct wire_framing framing;

    /* WRITEs: what clients wrote into pipes for the compositor. */
    uint32_t writes;
    uint64_t write_bytes;
    uint32_t write_hang_ups;

    struct fake_host_blob blobs[FAKE_HOST_BLOBS];
    uint32_t blob_count;
    uint8_t *shadow_maps[FAKE_HOST_SHADOW_MAPS]; /* the first byte buffers made, in order */
    uint32_t shadow_count;
    uint32_t next_resource;

    /* The first thing neep-wl did that a host would refuse (or "" if none). */
    char violation[256];
};

extern struct fake_host fake_host;

/* Forgets everything (the previous channel must be closed) and sets the default knobs. */
void fake_host_reset(void);

/* The host's replies. Each answers the outstanding POLL: it is written into the channel ring
 * and the POLL's fence signalled. All return false (and do nothing) without a POLL. */
bool fake_host_receive(const uint8_t *data, uint32_t size, const uint32_t *ids,
                       const uint32_t *types, const uint32_t *sizes, uint32_t count);
bool fake_host_read(uint32_t pipe_id, const uint8_t *data, uint32_t size, bool hang_up);
/* A RECEIVE with nothing in it: the compositor closed its connection. */
bool fake_host_end(void);
/* Any bytes as the reply (at most CROSS_DOMAIN_RING_BYTES). */
bool fake_host_raw(const void *bytes, size_t size);
/* The POLL completes with the ring as it is (a stale reply). */
bool fake_host_signal(void);

#endif
