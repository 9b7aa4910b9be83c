/*
 * A small vhost-user front-end for driving the real back-end (src/vhost_user/backend.c) in
 * one thread: the back-end's watched fds are polled here and their callbacks run on demand,
 * messages go over a socketpair with their fds, and guest memory is memfds this side maps
 * too. Shared by the transport tests and the stateful fuzz target, so nothing here aborts on
 * what the back-end answers; the callers decide what an answer means.
 */
#ifndef NEEP_TEST_VHOST_USER_SUPPORT_H
#define NEEP_TEST_VHOST_USER_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhost_user/backend.h"
#include "vhost_user/protocol.h"

#define VU_TEST_MAX_WATCHES 16

struct vu_test_watch {
    int fd; /* -1 when the slot is free */
    vu_ready_fn ready;
    void *arg;
    bool writable; /* watched for writable rather than readable */
};

/* The event loop the back-end asks to watch its fds. */
struct vu_test_loop {
    struct vu_test_watch watches[VU_TEST_MAX_WATCHES];
    uint64_t changes; /* counts watch adds and removes */
};

extern const struct vu_watch_ops vu_test_watch_ops;

void vu_test_loop_init(struct vu_test_loop *loop);
/* Runs the callbacks of ready watched fds until none is ready (a bounded number of rounds);
 * returns how many callbacks ran. */
int vu_test_loop_run(struct vu_test_loop *loop);
/* True if `fd` is watched. */
bool vu_test_loop_watches(const struct vu_test_loop *loop, int fd);

struct vu_test_frontend {
    struct vu_test_loop loop;
    struct vu_backend *backend;
    int socket_fd; /* the front-end's end of the connection */
};

/* Connects a new back-end serving `config` (its watch fields are filled in here). Returns 0
 * or the back-end's error. */
int vu_test_frontend_init(struct vu_test_frontend *f, const struct vu_backend_config *config);
/* Destroys the back-end and closes the connection. */
void vu_test_frontend_finish(struct vu_test_frontend *f);

/* Sends one message (payload and fds as given; the fds stay the caller's), then lets the
 * back-end handle it. False if the connection is gone. */
bool vu_test_send(struct vu_test_frontend *f, uint32_t request, uint32_t flags, const void *payload,
                  uint32_t size, const int *fds, int fd_count);
/* Reads one reply if one is waiting: its header and up to `capacity` payload bytes (the rest
 * is discarded). False when there is none. */
bool vu_test_read_reply(struct vu_test_frontend *f, struct vu_header *header, void *payload,
                        uint32_t capacity);
/* Discards every reply waiting. */
void vu_test_drain_replies(struct vu_test_frontend *f);

/* Sends with NEED_REPLY and returns the back-end's REPLY_ACK value (0 = done), or -1 when no
 * acknowledgement came (REPLY_ACK not negotiated, or the back-end hung up). */
int64_t vu_test_request(struct vu_test_frontend *f, uint32_t request, const void *payload,
                        uint32_t size, const int *fds, int fd_count);
/* Sends a GET_* request that answers with a u64; -1 on no answer. */
int64_t vu_test_get_u64(struct vu_test_frontend *f, uint32_t request);

/* A memfd of `size_bytes` named `name` (shows as /memfd:<name> in /proc/self/maps). */
int vu_test_memfd(const char *name, size_t size_bytes);
/* How many mappings of memfd `name` this process has. */
int vu_test_count_mappings(const char *name);

#endif
