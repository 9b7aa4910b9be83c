/*
 * Split virtqueues in guest memory, read as hostile input: every index, length and address
 * the guest wrote is checked before use, descriptor chains are bounded (no loops, at most one
 * level of indirection), and a ring that lies about itself is marked broken.
 */
#ifndef NEEP_VHOST_USER_VIRTQUEUE_H
#define NEEP_VHOST_USER_VIRTQUEUE_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "memory.h"

#define VU_MAX_QUEUE_SIZE           32768u
#define VU_MAX_CHAIN_IOVECS         1024u
#define VU_MAX_INDIRECT_DESCRIPTORS 1024u

struct vu_chain {
    uint16_t head;
    struct iovec out[VU_MAX_CHAIN_IOVECS]; /* device-readable */
    size_t out_count;
    struct iovec in[VU_MAX_CHAIN_IOVECS]; /* device-writable */
    size_t in_count;
};

/* The ring as last validated by vu_virtqueue_map: pointers into guest memory and the size
 * they were checked for. Every ring access goes through these, never through the requested
 * configuration, so a later SET_VRING_NUM or a new memory table cannot widen what is read. */
struct vu_ring_mapping {
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    uint32_t size; /* 0 while unmapped */
};

struct vu_virtqueue {
    uint32_t index;
    void *owner; /* the transport's, for callbacks */
    /* Requested by the front-end (SET_VRING_NUM, SET_VRING_ADDR); applied at start. */
    uint32_t size;
    struct vhost_vring_addr addr;
    bool addr_set;
    bool started; /* has a kick fd and a mapped ring */
    bool enabled;
    bool broken;
    bool event_idx;
    int kick_fd;
    int call_fd;

    struct vu_ring_mapping ring;
    uint16_t last_avail_idx;
    uint16_t used_idx;
    uint16_t signalled_used;
    bool signalled_used_valid;
};

void vu_virtqueue_init(struct vu_virtqueue *vq, uint32_t index);
/* Closes the fds and forgets the ring (not the memory). */
void vu_virtqueue_stop(struct vu_virtqueue *vq);

/* Validates the requested size and addresses against `memory` and maps the ring (replacing
 * any earlier mapping). 0, or -EINVAL with *reason and the ring unmapped. */
int vu_virtqueue_map(struct vu_virtqueue *vq, const struct vu_memory_table *memory,
                     const char **reason);

/* Takes the next available chain: 1 with *chain filled, 0 when the ring is empty, negative
 * when the guest broke the ring (then vq->broken is set and *reason says how). */
int vu_virtqueue_pop(struct vu_virtqueue *vq, const struct vu_memory_table *memory,
                     struct vu_chain *chain, const char **reason);

/* Hands a chain back as used, with `written_bytes` written into its device-writable part.
 * Does nothing while the ring is unmapped. */
void vu_virtqueue_push(struct vu_virtqueue *vq, uint16_t head, uint32_t written_bytes);

/* The used index the ring itself shows (what the driver has seen); 0 while unmapped. */
uint16_t vu_virtqueue_published_used_idx(const struct vu_virtqueue *vq);

/* Interrupts the guest if it asked for it (event index or flags). */
void vu_virtqueue_notify(struct vu_virtqueue *vq);

/* With the event index, tells the guest which avail index to kick at, then reports whether
 * more chains arrived meanwhile (so the caller drains again instead of missing them). */
bool vu_virtqueue_rearm(struct vu_virtqueue *vq);

#endif
