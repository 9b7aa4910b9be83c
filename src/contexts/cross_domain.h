/*
 * The cross-domain context type's private state, shared by cross_domain.c (commands from the
 * guest) and cross_domain_channel.c (the worker that answers POLL fences with what arrives
 * from the host compositor).
 *
 * Locking: `lock` guards everything below it; the embedder thread (commands, attach/detach)
 * and the worker both take it. The worker never touches renderer objects except the
 * timeline it signals, whose lifetime the context outlives.
 */
#ifndef NEEP_CONTEXTS_CROSS_DOMAIN_H
#define NEEP_CONTEXTS_CROSS_DOMAIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "context_type.h"
#include "cross_domain_protocol.h"
#include "util/id_table.h"

enum cross_domain_item_kind {
    ITEM_IMAGE_REQUIREMENTS, /* a template: each HOST3D blob made from it gets fresh memory */
    ITEM_BLOB,               /* a received memory fd, consumed by one HOST3D blob */
    ITEM_WRITE_PIPE,         /* a received pipe write end; the guest feeds it with WRITE */
    ITEM_READ_PIPE,          /* our read end of a pipe whose write end we sent */
};

struct cross_domain_item {
    enum cross_domain_item_kind kind;
    int fd;
    uint64_t size_bytes;
    uint32_t map_info;
};

/* A guest blob the host writes replies into: our copy of its guest memory list. */
struct cross_domain_ring {
    uint32_t resource_id; /* 0 when unset */
    struct iovec *iov;
    size_t iov_count;
    uint64_t size_bytes;
};

/* map_info of host blobs: cached, with access from the memory's open mode. */
#define MAP_CACHE_CACHED 0x01u
#define MAP_ACCESS_READ  0x10u
#define MAP_ACCESS_RW    0x30u
#define PAGE_BYTES       4096u
/* Longest byte buffer (one row of R8) a guest may ask a layout for. */
#define CROSS_DOMAIN_MAX_BYTE_BUFFER (512u << 20)

/* Most items a context may hold; a guest that never consumes them cannot grow us forever. */
#define CROSS_DOMAIN_MAX_ITEMS 4096u

struct cross_domain_context {
    struct neep_context base;
    pthread_mutex_t lock;
    pthread_cond_t wake;

    bool initialized;
    struct cross_domain_ring query_ring;
    struct cross_domain_ring channel_ring;
    int channel_fd;    /* connection to the host compositor, -1 when closed */
    bool channel_done; /* end of stream reported to the guest */

    struct id_table items; /* item id -> struct cross_domain_item */
    uint32_t next_item_id; /* host items count up from 1 */
    uint32_t next_read_pipe_id;

    /* The one outstanding channel-ring fence, answered by the worker. */
    struct neep_timeline *poll_timeline;
    uint64_t poll_fence_id;
    bool poll_pending;

    pthread_t worker;
    bool worker_started;
    bool stopping;
    int epoll_fd;
    int wake_fd; /* interrupts the worker's wait */
};

/* cross_domain_channel.c */
int cross_domain_channel_start(struct cross_domain_context *ctx);
void cross_domain_channel_stop(struct cross_domain_context *ctx);
/* Watches (or stops watching) a read pipe or the channel socket; caller holds the lock. */
int cross_domain_watch(struct cross_domain_context *ctx, int fd, uint32_t token);
void cross_domain_unwatch(struct cross_domain_context *ctx, int fd);
/* Copies `size` bytes into a ring at offset 0; false if the ring is gone or too small. */
bool cross_domain_ring_write(const struct cross_domain_ring *ring, const void *data, size_t size);

/* cross_domain.c */
void cross_domain_item_free(struct cross_domain_item *item);
int cross_domain_add_item(struct cross_domain_context *ctx, struct cross_domain_item *item,
                          uint32_t *id);

/* Tokens for the worker's epoll set, apart from item ids. */
#define CROSS_DOMAIN_TOKEN_WAKE    0u
#define CROSS_DOMAIN_TOKEN_CHANNEL 1u

#define cd_error(ctx, ...) context_log(&(ctx)->base, NEEP_LOG_ERROR, __VA_ARGS__)

#endif
