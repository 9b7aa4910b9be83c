/*
 * A cross-domain channel through the guest's virtio-gpu render node: one DRM fd, one
 * cross-domain context (CONTEXT_INIT first, capset 5, two rings, ring 1 polled), the query
 * and channel rings as guest blobs, INIT with the Wayland channel, and host blobs that the
 * guest maps. One channel per Wayland connection (a DRM fd holds one context).
 */
#ifndef NEEP_WL_VIRTGPU_H
#define NEEP_WL_VIRTGPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../src/contexts/cross_domain_protocol.h"

/* Data one SEND may carry so that the host's reply rings (one page) never overflow. */
#define VIRTGPU_SEND_MAX_DATA_BYTES                                                                \
    (CROSS_DOMAIN_RING_BYTES - sizeof(struct cross_domain_send_receive))

struct virtgpu_blob {
    uint32_t bo_handle;
    uint32_t res_handle;
    uint8_t *map;
    uint64_t size_bytes; /* of the mapping: page-aligned */
};

struct virtgpu_cached_requirements {
    uint64_t size_bytes;
    uint32_t blob_id;
};

#define VIRTGPU_REQUIREMENTS_CACHE 32u

struct virtgpu_channel {
    int drm_fd;
    struct virtgpu_blob query_ring;
    struct virtgpu_blob channel_ring;
    /* Each query leaves an item on the host: byte-buffer layouts are asked once per size. */
    struct virtgpu_cached_requirements requirements[VIRTGPU_REQUIREMENTS_CACHE];
    uint32_t requirements_count;
    uint32_t next_read_pipe_id;
    uint32_t poll_ring; /* the channel ring's index */
};

/* Ring indices a channel may poll on, when the host lets it choose (1 otherwise). */
#define VIRTGPU_FIRST_POLL_RING 1u
#define VIRTGPU_LAST_POLL_RING  63u

/* Opens `render_node` and sets the channel up, polling on `poll_ring` if the host allows
 * (see CROSS_DOMAIN_NEEP_ANY_CHANNEL_RING), else on ring 1; on failure returns -1 with
 * *error set. */
int virtgpu_channel_open(struct virtgpu_channel *channel, const char *render_node,
                         uint32_t poll_ring, const char **error);
void virtgpu_channel_close(struct virtgpu_channel *channel);

/* Submits commands without a fence (SEND, WRITE). */
int virtgpu_channel_submit(struct virtgpu_channel *channel, const void *commands, size_t size);
/* Hands the channel ring back to the host: it answers when the compositor speaks. */
int virtgpu_channel_poll(struct virtgpu_channel *channel);
/* Consumes the DRM event that says the ring holds a reply; 1 if it did, 0 if none, -1. */
int virtgpu_channel_take_event(struct virtgpu_channel *channel);

/* The next id for a read pipe sent to the host (the host checks the sequence). */
uint32_t virtgpu_channel_next_read_pipe(struct virtgpu_channel *channel);

/* A host blob of at least `size_bytes` the guest writes and the host reads, mapped here. */
int virtgpu_byte_buffer(struct virtgpu_channel *channel, uint64_t size_bytes,
                        struct virtgpu_blob *out);
/* Maps a host item (a blob the compositor sent) of `size_bytes`, for reading. */
int virtgpu_import_host_blob(struct virtgpu_channel *channel, uint32_t blob_id, uint64_t size_bytes,
                             struct virtgpu_blob *out);
void virtgpu_blob_free(struct virtgpu_channel *channel, struct virtgpu_blob *blob);

#endif
