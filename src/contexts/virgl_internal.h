/*
 * The virgl context types' shared parts (src/contexts/virgl*.c): the process's one
 * virglrenderer instance (virgl_instance.c), the resource provider that keeps 3D resources and
 * blobs in it (virgl_resources.c), and the contexts and capsets (virgl.c).
 */
#ifndef NEEP_CONTEXTS_VIRGL_INTERNAL_H
#define NEEP_CONTEXTS_VIRGL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "context_type.h"

struct virgl_context {
    struct neep_context base;
    uint32_t capset_id; /* set before the callbacks can see the context */
    /* virglrenderer's id for it: the guest's, unless a context the guest destroyed still holds
     * that id in virglrenderer (see `retiring`). */
    uint32_t virgl_id;
    /* venus: virglrenderer's side was destroyed after the render server's loss. */
    bool reaped;
    /* Under the instance's callback lock. The guest destroyed the context while OpenGL fences
     * were in flight (see virgl_instance_retire_context); virglrenderer's side goes once none
     * is (virgl_instance_take_retired). */
    bool retiring;
    /* The timelines the sync thread completes; set under the instance's callback lock. */
    struct neep_timeline *timelines[NEEP_MAX_RINGS];
};

/* virglrenderer returns positive or negative errnos, depending on the call. */
static inline int virgl_as_errno(int ret)
{
    return ret > 0 ? -ret : ret;
}

/* virgl_instance.c: takes virglrenderer for `renderer` (starting it on the first of its
 * probes with what its capsets need), and gives it back (cleaning up on the last). */
int virgl_instance_acquire(struct neep_renderer *renderer);
void virgl_instance_release(struct neep_renderer *renderer);
/* Whether what capset `capset_id` needs (OpenGL, or venus) started. */
bool virgl_instance_started(uint32_t capset_id);
/* The contexts the fence callbacks can find, by virglrenderer's id for them: adding one picks
 * that id (ctx->virgl_id), the guest's `ctx_id` if no context holds it still. */
int virgl_instance_add_context(uint32_t ctx_id, struct virgl_context *ctx);
void virgl_instance_remove_context(struct virgl_context *ctx);
void virgl_instance_set_timeline(struct virgl_context *ctx, struct neep_timeline *timeline);
/* Around creating an OpenGL fence, a context's or a global one: counted in flight before
 * virglrenderer can complete it, and uncounted if virglrenderer refused it. */
void virgl_instance_count_gl_fence(void);
void virgl_instance_uncount_gl_fence(void);
/* The guest destroyed `ctx`: true if virglrenderer's side may go now (the context is no longer
 * found), false if it stays, retiring, until no OpenGL fence is in flight. Its timelines are no
 * longer completed either way. */
bool virgl_instance_retire_context(struct virgl_context *ctx);
/* On the embedder's thread, once no OpenGL fence is in flight: the retiring contexts, taken out
 * (up to `max`); the caller destroys virglrenderer's side of each. */
size_t virgl_instance_take_retired(struct virgl_context **out, size_t max);

/* On the embedder's thread: calls virgl_renderer_poll() if virglrenderer asked for it (its
 * fence thread waits for that while a query result is pending). */
void virgl_instance_poll(void);

/* Whether venus's render server died (its contexts are lost then). */
bool virgl_instance_venus_lost(void);
/* On the embedder's thread, after a loss: destroys virglrenderer's side of the lost venus
 * contexts once (whose threads would otherwise spin on their dead sockets). */
void virgl_instance_reap_lost_venus(void);

/* neep_resource.provider_flags: the render server has heard of the resource (a venus blob,
 * or one attached to a venus context), so its end goes through the server. */
#define VIRGL_RESOURCE_KNOWN_TO_VENUS 1u

/* virgl_server.c: starts the render server for `renderer` and returns virglrenderer's end of
 * the connection (-1 on failure, logged); `on_death` runs on a watcher thread if it dies
 * (`unanswered_ms` > 0: neep killed it after a call waited on it that long). */
int virgl_server_start(struct neep_renderer *renderer,
                       void (*on_death)(pid_t pid, int status, uint32_t unanswered_ms));
/* Around each virglrenderer call that may wait on the server (embedder thread only; they
 * nest): the watcher kills a server that leaves one waiting past the timeout. */
void virgl_server_call_begin(void);
void virgl_server_call_end(void);
/* Before virglrenderer lets go of the connection (the server then exits, and that is no
 * loss): stops watching. */
void virgl_server_stop_watching(void);
/* After virglrenderer let go of the connection: stops watching and reaps the server. */
void virgl_server_stop(void);

/* virgl_resources.c: with OpenGL, and for venus alone (blobs only). */
extern const struct neep_resource_provider_ops virgl_provider_ops;
extern const struct neep_resource_provider_ops virgl_venus_provider_ops;

/* virgl.c */
bool virgl_is_context(const struct neep_context *ctx);
/* The guest's live virgl-family context `ctx_id`, or NULL. */
struct virgl_context *virgl_context_lookup(const struct neep_renderer *renderer, uint32_t ctx_id);
/* virglrenderer's id for the guest's context `ctx_id` (0 for 0): -EINVAL for an id that is
 * no live virgl-family context's. */
int virgl_context_id_for(const struct neep_renderer *renderer, uint32_t ctx_id, uint32_t *virgl_id);
/* On the embedder's thread: destroys virglrenderer's side of the contexts retired since. */
void virgl_reap_retired_contexts(void);
/* Gives back what `ctx` was charged, and frees it (virglrenderer's side is gone). */
void virgl_context_free(struct virgl_context *ctx);

#endif
