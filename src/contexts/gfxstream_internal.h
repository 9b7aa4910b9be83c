/*
 * The gfxstream context types' shared parts (src/contexts/gfxstream*.c): the process's one
 * backend, loaded at run time (gfxstream_instance.c), the resource provider that keeps 3D
 * resources and blobs in it (gfxstream_resources.c), and the contexts and capsets
 * (gfxstream.c). The backend trusts its caller: everything the guest gives is checked here
 * before it reaches the backend.
 */
#ifndef NEEP_CONTEXTS_GFXSTREAM_INTERNAL_H
#define NEEP_CONTEXTS_GFXSTREAM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "context_type.h"
#include "gfxstream_api.h"
#include "gfxstream_formats.h"

/* Most ASG instances (each a render thread in the backend) per context and per device. */
#define GFXSTREAM_MAX_ASGS_PER_CONTEXT 8u
#define GFXSTREAM_MAX_ASGS             64u
/* The largest blob a render thread may run on (the backend's block size). */
#define GFXSTREAM_ASG_MAX_BYTES (16u << 20)
/* A render thread's blob is whole pages of this size: the backend sub-allocates its ring from
 * the blob's whole pages and aborts when the last one is short. */
#define GFXSTREAM_ASG_PAGE_BYTES 4096u
/* Most 3D objects a context may announce before it makes their blobs. */
#define GFXSTREAM_MAX_ANNOUNCED 32u

struct gfxstream_context {
    struct neep_context base;
    /* The timelines the fence callback completes; set under the instance's callback lock. */
    struct neep_timeline *timelines[NEEP_MAX_RINGS];
    /* Resources with an ASG instance running on them (CONTEXT_CREATE), embedder thread. */
    uint32_t asg_resources[GFXSTREAM_MAX_ASGS_PER_CONTEXT];
    uint32_t asg_count;
    /* RESOURCE_CREATE_3D announcements not yet made into blobs: blob id and image bytes. */
    struct {
        uint64_t blob_id;
        uint64_t bytes;
    } announced[GFXSTREAM_MAX_ANNOUNCED];
    uint32_t announced_count;
};

/* How long the backend's init may take in a probe child before it counts as hung (ms). */
#define GFXSTREAM_PROBE_TIMEOUT_MS 20000u

/* gfxstream_instance.c: takes the backend for `renderer` (starting its server on the first
 * probe; -ELIBACC when the library is not there), and gives it back (the server ends with the
 * last capset). */
int gfxstream_instance_acquire(struct neep_renderer *renderer);
void gfxstream_instance_release(struct neep_renderer *renderer);
/* The backend's entry points (after a successful acquire). */
const struct gfxstream_api *gfxstream_api(void);
/* The contexts the fence callback can find. */
int gfxstream_instance_add_context(uint32_t ctx_id, struct gfxstream_context *ctx);
void gfxstream_instance_remove_context(uint32_t ctx_id);
void gfxstream_instance_set_timeline(struct gfxstream_context *ctx, struct neep_timeline *timeline);

/* Whether the backend started with GLES. */
bool gfxstream_instance_has_gles(void);
/* Whether gfxstream_formats[index] was seen to make images on this host (by the probe). */
bool gfxstream_instance_format_usable(uint32_t index);

/* gfxstream_remote.c: the backend in its server process. */
struct gfxstream_remote_events {
    void (*fence)(const struct gfxstream_fence *fence);
    /* debug_type: GFXSTREAM_DEBUG_*; from_server: the server's own line, about the host. */
    void (*log)(uint32_t debug_type, bool from_server, const char *text);
    /* The server died or hung (once; on any thread). */
    void (*lost)(const char *why);
};
/* Starts the server with the backend's renderer `flags`; it tries them in children first and
 * says in *usable_formats which formats make images, unless `probe` is false (their bits are
 * known from an earlier server: *usable_formats is then 0). 0, -ELIBACC (no library or no
 * server program), -ELIBBAD, -ETIMEDOUT, -ENODEV. */
int gfxstream_remote_start(uint32_t flags, const struct gfxstream_remote_events *events, bool probe,
                           uint64_t *usable_formats);
void gfxstream_remote_stop(void);
/* Whether the server died or hung: every call then fails at once. */
bool gfxstream_remote_lost(void);
/* One call to the server and its reply (in `reply`, or nowhere when NULL; its length in
 * *reply_bytes and its fd in *fd_out when those are not NULL). The server's return value, or
 * -ENODEV when the server is lost (or is lost waiting). Calls with GFXSTREAM_CALL_NO_REPLY
 * return 0 once sent. */
struct gfxstream_call;
struct gfxstream_reply;
int gfxstream_remote_call(struct gfxstream_call *call, int fd_in, struct gfxstream_reply *reply,
                          size_t *reply_bytes, int *fd_out);

/* gfxstream_remote_api.c: the backend's API on its server, and neep's records of the server's
 * resources (staging, maps), kept while a server runs. */
extern const struct gfxstream_api gfxstream_remote_api;
void gfxstream_remote_resources_begin(void);
void gfxstream_remote_resources_end(void);
/* For fuzz_gfxstream_server only: serves the server's ends of the two sockets (it must dup
 * them) instead of starting the program. */
extern int (*gfxstream_remote_spawn_hook)(int call_fd, int event_fd);

/* gfxstream_resources.c */
extern const struct neep_resource_provider_ops gfxstream_provider_ops;
/* Checks RESOURCE_CREATE_3D's fields (from the virtio command or a gfxstream command) before
 * the backend sees them; the bytes its image may take, or a negative errno. */
int64_t gfxstream_check_3d(struct neep_renderer *renderer, uint32_t target, uint32_t format,
                           uint32_t bind, uint32_t width_px, uint32_t height_px, uint32_t depth,
                           uint32_t array_size, uint32_t last_level, uint32_t nr_samples);

/* The provider's own records, kept while a renderer has the backend. */
void gfxstream_resources_begin(void);
void gfxstream_resources_end(void);

/* gfxstream.c */
bool gfxstream_is_context(const struct neep_context *ctx);
/* A blob about to be made from an id the context announced with RESOURCE_CREATE_3D: charges
 * what its image takes beyond the claimed size (and forgets the announcement). */
int gfxstream_claim_announced(struct neep_renderer *renderer, uint32_t ctx_id,
                              struct neep_resource *resource);

#endif
