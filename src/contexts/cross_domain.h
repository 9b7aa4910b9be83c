/*
 * The cross-domain context type's private state, shared by cross_domain.c (commands from the
 * guest, on the embedder's thread), cross_domain_reactor.c (the one event thread that serves
 * every cross-domain context of a renderer) and cross_domain_io.c (what that thread does with
 * a ready fd: replies to POLL, queued output to the compositor and to pipes).
 *
 * Locking: the reactor's `lock` guards every field of every cross-domain context below
 * `reactor`. The embedder's thread takes it for commands, fences and detaches; the event
 * thread takes it while it handles events. Neither ever blocks while holding it: every fd is
 * non-blocking and what a peer does not take at once waits in a bounded queue.
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

/* An fd in the reactor's epoll set, armed one-shot for the events its owner wants now. */
struct cross_domain_watch {
    int fd;
    uint32_t token;        /* CROSS_DOMAIN_TOKEN_CHANNEL or the item id */
    uint32_t armed_events; /* EPOLLIN/EPOLLOUT armed; 0 once fired or never armed */
    bool registered;       /* in the epoll set (armed or fired) */
};

/* Bytes (and, on the first chunk of a message, fds) a peer has not taken yet. */
struct cross_domain_chunk {
    struct cross_domain_chunk *next;
    size_t size_bytes;
    size_t sent_bytes;
    uint32_t fd_count;
    int fds[CROSS_DOMAIN_MAX_IDENTIFIERS];
    uint8_t data[];
};

struct cross_domain_queue {
    struct cross_domain_chunk *head;
    struct cross_domain_chunk *tail;
};

struct cross_domain_item {
    enum cross_domain_item_kind kind;
    int fd;
    uint64_t size_bytes;
    uint32_t map_info;
    uint64_t charged_bytes;           /* memory charged for this item (copies included) */
    struct cross_domain_watch watch;  /* pipes */
    struct cross_domain_queue output; /* write pipes: data the reader has not taken yet */
    bool hang_up_when_drained;        /* write pipes: the guest hung up */
};

/* A guest blob the host writes replies into: our copy of its guest memory list. */
struct cross_domain_ring {
    uint32_t resource_id; /* 0 when unset */
    struct iovec *iov;
    size_t iov_count;
    uint64_t size_bytes; /* what replies may use: at most CROSS_DOMAIN_RING_BYTES */
    uint64_t charged_bytes;
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
/* Host fds one context may hold (its socket, pipes, received memory, queued fds) ... */
#define CROSS_DOMAIN_MAX_FDS_PER_CONTEXT 128u
/* ... and all cross-domain contexts of one renderer together. */
#define CROSS_DOMAIN_MAX_FDS 1024u
/* Bytes one context may have waiting for the compositor and its pipes' readers. */
#define CROSS_DOMAIN_MAX_QUEUED_BYTES (4u << 20)
/* Largest compositor memory copied into sealed memory (keymaps are tens of KiB): copies are
 * made on the event thread, so this bounds how long one message can hold it. */
#define CROSS_DOMAIN_MAX_RECEIVED_COPY_BYTES (4u << 20)
/* Read pipes one context may have open: each waits for a host program to close its end. */
#define CROSS_DOMAIN_MAX_READ_PIPES 32u

struct cross_domain_reactor;

struct cross_domain_context {
    struct neep_context base;
    struct cross_domain_reactor *reactor;
    uint32_t serial; /* the reactor's key for this context; event tokens carry it */

    bool initialized;
    struct cross_domain_ring query_ring;
    struct cross_domain_ring channel_ring;
    struct cross_domain_watch channel;     /* fd -1 when closed */
    struct cross_domain_queue channel_out; /* to the compositor */
    bool channel_output_failed;            /* the compositor stopped taking data */
    bool channel_done;                     /* end of stream reported to the guest */

    struct id_table items; /* item id -> struct cross_domain_item */
    uint32_t next_item_id; /* host items count up from 1 */
    uint32_t next_read_pipe_id;

    uint32_t fds_held; /* charged against both fd caps */
    uint32_t read_pipe_count;
    uint64_t queued_bytes; /* channel_out plus every write pipe's output */
    uint64_t queue_charged_bytes;

    /* The one outstanding channel-ring fence, answered by the event thread. */
    struct neep_timeline *poll_timeline;
    uint64_t poll_fence_id;
    bool poll_pending;
};

/* cross_domain_reactor.c: the event thread, shared by the contexts of one renderer. */
int cross_domain_reactor_join(struct cross_domain_context *ctx);
/* With the lock held: no event reaches the context after this returns. */
void cross_domain_reactor_forget(struct cross_domain_context *ctx);
/* Without the lock, after forget: the thread stops with the renderer's last context. */
void cross_domain_reactor_leave(struct cross_domain_context *ctx);
void cross_domain_lock(struct cross_domain_context *ctx);
void cross_domain_unlock(struct cross_domain_context *ctx);
/* Arms `watch` (one-shot) for `events` unless it already is; 0 leaves it as it is, so at most
 * one stale event arrives, which the handler drops. */
int cross_domain_arm(struct cross_domain_context *ctx, struct cross_domain_watch *watch,
                     uint32_t events);
void cross_domain_unwatch(struct cross_domain_context *ctx, struct cross_domain_watch *watch);
/* Closes an fd from the compositor once the lock is dropped (on the event thread). */
void cross_domain_close_later(struct cross_domain_context *ctx, int fd);
/* Counts fds against the context's and the renderer's caps; false (logged) when over. */
bool cross_domain_fds_take(struct cross_domain_context *ctx, uint32_t count);
void cross_domain_fds_give_back(struct cross_domain_context *ctx, uint32_t count);

/* cross_domain_io.c: runs on the event thread (or the embedder's, for a first try). */
/* What the channel and each pipe are armed for, from the context's state. */
void cross_domain_rearm_all(struct cross_domain_context *ctx);
void cross_domain_arm_item(struct cross_domain_context *ctx, struct cross_domain_item *item);
/* Handles a ready fd; returns true if the POLL fence was answered (caller signals it). */
bool cross_domain_handle_event(struct cross_domain_context *ctx, uint32_t token, uint32_t events);
/* Queues bytes (and fds, whose ownership moves to the queue) behind what waits already and
 * tries to send; -ENOBUFS when the context's queue limit would be passed. */
int cross_domain_channel_output(struct cross_domain_context *ctx, const uint8_t *data,
                                size_t size_bytes, const int *fds, uint32_t fd_count);
int cross_domain_pipe_output(struct cross_domain_context *ctx, struct cross_domain_item *item,
                             const uint8_t *data, size_t size_bytes);
void cross_domain_queue_clear(struct cross_domain_context *ctx, struct cross_domain_queue *queue);
/* Closes the compositor connection; what it sent already still reaches the guest first. */
void cross_domain_close_channel(struct cross_domain_context *ctx);
/* Copies `size` bytes into a ring at offset 0; false if the ring is gone or too small. */
bool cross_domain_ring_write(const struct cross_domain_ring *ring, const void *data, size_t size);

/* cross_domain.c */
void cross_domain_item_free(struct cross_domain_context *ctx, struct cross_domain_item *item);
int cross_domain_add_item(struct cross_domain_context *ctx, struct cross_domain_item *item,
                          uint32_t *id);
/* Turns an fd the compositor sent into an item; the fd is the item's or closed. */
int cross_domain_add_received_fd(struct cross_domain_context *ctx, int fd, uint32_t *id,
                                 uint32_t *type, uint32_t *size);

/* Token of the channel socket in the context's events, apart from item ids. */
#define CROSS_DOMAIN_TOKEN_CHANNEL 0u

#define cd_error(ctx, ...) context_log(&(ctx)->base, NEEP_LOG_ERROR, __VA_ARGS__)

#endif
