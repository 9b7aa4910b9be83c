/*
 * The gfxstream backend of the renderer that has it (one at a time). The backend runs in a
 * server process neep starts for that renderer (gfxstream_remote.c, src/gfxstream_server/):
 * it starts once per process, trusts its caller, and a guest can make it abort or read out of
 * bounds, so that process is the one that pays. The server is started on the renderer's first
 * gfxstream capset and ended with its last; a server that dies or hangs is lost for that
 * renderer (its contexts' fences complete, their later work is refused), and the next renderer
 * gets a new one.
 *
 * Fences and the backend's log lines arrive on the remote side's event thread. The callbacks
 * only complete neep timelines (which wake the embedder through the renderer's eventfd) and
 * find contexts in a table of their own under `callback_lock`, which the embedder thread
 * never holds across a call to the server.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gfxstream_internal.h"

static struct {
    pthread_mutex_t lock;          /* everything below but the callback side */
    uint32_t flags;                /* the renderer flags the server started with */
    struct neep_renderer *owner;   /* the renderer it serves, or NULL */
    uint32_t probes;               /* capsets of `owner` that probed successfully */
    int failure;                   /* sticky: the backend's start hung here (or 0) */
    pthread_mutex_t callback_lock; /* contexts and callback_owner */
    struct id_table contexts;      /* ctx_id -> struct gfxstream_context */
    struct neep_renderer *callback_owner;
    struct neep_logger backend_logger; /* the backend's messages, to its renderer's log */
    bool backend_logger_ready;
    uint64_t usable_formats; /* bit i: gfxstream_formats[i] makes images on this host */
} instance = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .callback_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* What the first server's probe found (under instance.lock), for the next servers of this
 * process with the same flags and library: a renderer made again (after a device reset, or a
 * server a guest crashed) then starts the backend once, not once more per format it aborts on
 * (four with lavapipe here). No guest has reached a server before its probe ends. */
static struct {
    bool known;
    uint32_t flags;
    char library[PATH_MAX];
    uint64_t usable_formats;
} probed;

const struct gfxstream_api *gfxstream_api(void)
{
    return &gfxstream_remote_api;
}

/* ---- callbacks, on the event thread -------------------------------------------------------- */

static void on_fence(const struct gfxstream_fence *fence)
{
    pthread_mutex_lock(&instance.callback_lock);
    struct neep_renderer *owner = instance.callback_owner;
    if (owner && (fence->flags & GFXSTREAM_FENCE_FLAG_RING_IDX)) {
        struct gfxstream_context *ctx = id_table_get(&instance.contexts, fence->ctx_id);
        struct neep_timeline *timeline =
            ctx && fence->ring_idx < NEEP_MAX_RINGS ? ctx->timelines[fence->ring_idx] : NULL;
        if (timeline) {
            neep_timeline_signal(timeline, fence->fence_id);
        }
    } else if (owner && fence->fence_id <= UINT32_MAX) {
        /* Global fences carry the renderer's own sequence number (see create_global_fence). */
        neep_timeline_signal_seq(&owner->global_timeline, (uint32_t)fence->fence_id);
    }
    pthread_mutex_unlock(&instance.callback_lock);
}

/*
 * The server's own lines are about the host (loading, starting): the renderer's log. The
 * backend's go through a logger of their own: many are about a guest's streams (rate-limited,
 * then), and neep's own lines must not lose their budget to them. Its errors mostly repeat
 * what neep says about the same request, so they are warnings here.
 */
static void on_log(uint32_t debug_type, bool from_server, const char *text)
{
    static const enum neep_log_level levels[] = {[GFXSTREAM_DEBUG_ERROR] = NEEP_LOG_WARN,
                                                 [GFXSTREAM_DEBUG_WARN] = NEEP_LOG_INFO,
                                                 [GFXSTREAM_DEBUG_INFO] = NEEP_LOG_DEBUG,
                                                 [GFXSTREAM_DEBUG_DEBUG] = NEEP_LOG_DEBUG};
    static const enum neep_log_level server_levels[] = {[GFXSTREAM_DEBUG_ERROR] = NEEP_LOG_ERROR,
                                                        [GFXSTREAM_DEBUG_WARN] = NEEP_LOG_WARN,
                                                        [GFXSTREAM_DEBUG_INFO] = NEEP_LOG_INFO,
                                                        [GFXSTREAM_DEBUG_DEBUG] = NEEP_LOG_DEBUG};
    bool known = debug_type >= GFXSTREAM_DEBUG_ERROR && debug_type <= GFXSTREAM_DEBUG_DEBUG;
    pthread_mutex_lock(&instance.callback_lock);
    if (from_server && instance.callback_owner) {
        neep_log_host(&instance.callback_owner->logger,
                      known ? server_levels[debug_type] : NEEP_LOG_DEBUG, "%s", text);
    } else if (!from_server && instance.backend_logger_ready) {
        neep_log_guest(&instance.backend_logger, known ? levels[debug_type] : NEEP_LOG_DEBUG,
                       "gfxstream backend: %.300s", text);
    }
    pthread_mutex_unlock(&instance.callback_lock);
}

/* The server died or hung: the work it had will never finish, so every fence waiting on it
 * completes; later work is refused (gfxstream_remote_lost). */
static void on_lost(const char *why)
{
    pthread_mutex_lock(&instance.callback_lock);
    struct neep_renderer *owner = instance.callback_owner;
    if (owner) {
        neep_log_host(&owner->logger, NEEP_LOG_ERROR,
                      "gfxstream: %s: gfxstream contexts are lost; other contexts go on", why);
        struct id_table *contexts = &instance.contexts;
        for (size_t i = 0; i < contexts->capacity; i++) {
            struct gfxstream_context *ctx = contexts->keys[i] ? contexts->values[i] : NULL;
            for (uint32_t ring = 0; ctx && ring < NEEP_MAX_RINGS; ring++) {
                if (ctx->timelines[ring]) {
                    neep_timeline_complete_all(ctx->timelines[ring]);
                }
            }
        }
        neep_timeline_complete_all(&owner->global_timeline);
    }
    pthread_mutex_unlock(&instance.callback_lock);
}

static const struct gfxstream_remote_events remote_events = {
    .fence = on_fence,
    .log = on_log,
    .lost = on_lost,
};

/* Points the callbacks (and the backend's log lines) at `renderer` (NULL: nowhere). Caller
 * holds callback_lock. */
static void route_callbacks(struct neep_renderer *renderer)
{
    if (instance.backend_logger_ready) {
        neep_logger_finish(&instance.backend_logger);
        instance.backend_logger_ready = false;
    }
    if (renderer) {
        neep_logger_init(&instance.backend_logger, renderer->logger.fn, renderer->logger.user_data,
                         renderer->logger.level);
        instance.backend_logger_ready = true;
    }
    instance.callback_owner = renderer;
}

/* What QEMU's gfxstream properties give through rutabaga: host GLES and Vulkan through EGL,
 * GLES only for capset 8, Vulkan only for capset 3. */
static uint32_t flags_for(uint64_t capset_mask)
{
    uint32_t flags = GFXSTREAM_FLAG_USE_EGL;
    if (capset_mask & (1ull << NEEP_CAPSET_GFXSTREAM_GLES)) {
        flags |= GFXSTREAM_FLAG_USE_GLES;
    }
    if (capset_mask & (1ull << NEEP_CAPSET_GFXSTREAM_VULKAN)) {
        flags |= GFXSTREAM_FLAG_USE_VK;
    }
    return flags;
}

bool gfxstream_instance_has_gles(void)
{
    return instance.flags & GFXSTREAM_FLAG_USE_GLES;
}

bool gfxstream_instance_format_usable(uint32_t index)
{
    return index < 64 && (instance.usable_formats & (1ull << index));
}

/* Starts a server for `renderer`. Caller holds instance.lock. */
static int start_server(struct neep_renderer *renderer, uint32_t flags)
{
    id_table_init(&instance.contexts);
    pthread_mutex_lock(&instance.callback_lock);
    route_callbacks(renderer);
    pthread_mutex_unlock(&instance.callback_lock);
    const char *library = getenv("NEEP_GFXSTREAM_LIBRARY");
    library = library ? library : "";
    bool reuse = probed.known && probed.flags == flags && strcmp(probed.library, library) == 0;
    uint64_t found = 0;
    int ret = gfxstream_remote_start(flags, &remote_events, !reuse, &found);
    size_t library_bytes = strlen(library) + 1;
    if (ret == 0 && !reuse && library_bytes <= sizeof(probed.library)) {
        probed.known = true;
        probed.flags = flags;
        memcpy(probed.library, library, library_bytes);
        probed.usable_formats = found;
    }
    instance.usable_formats = reuse ? probed.usable_formats : found;
    if (ret < 0) {
        pthread_mutex_lock(&instance.callback_lock);
        route_callbacks(NULL);
        pthread_mutex_unlock(&instance.callback_lock);
        id_table_finish(&instance.contexts);
        return ret;
    }
    instance.flags = flags;
    gfxstream_resources_begin();
    instance.owner = renderer;
    return 0;
}

int gfxstream_instance_acquire(struct neep_renderer *renderer)
{
    pthread_mutex_lock(&instance.lock);
    int ret = 0;
    if (instance.owner && instance.owner != renderer) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "gfxstream: its server already serves another device in this process");
        ret = -EBUSY;
    } else if (instance.owner) {
        ret = 0; /* another capset of the same renderer */
    } else if (instance.failure) {
        ret = instance.failure; /* said when it happened */
    } else {
        ret = start_server(renderer, flags_for(renderer->capset_mask));
        if (ret == -ETIMEDOUT) {
            instance.failure = ret; /* a backend whose start hangs is not waited for again */
        }
    }
    if (ret == 0) {
        instance.probes++;
    }
    pthread_mutex_unlock(&instance.lock);
    return ret;
}

void gfxstream_instance_release(struct neep_renderer *renderer)
{
    pthread_mutex_lock(&instance.lock);
    if (instance.owner == renderer && --instance.probes == 0) {
        /* The renderer's contexts and resources are gone by now: so goes its server. */
        renderer->resource_provider = NULL;
        gfxstream_remote_stop();
        pthread_mutex_lock(&instance.callback_lock);
        id_table_finish(&instance.contexts);
        route_callbacks(NULL);
        pthread_mutex_unlock(&instance.callback_lock);
        gfxstream_resources_end();
        instance.owner = NULL;
    }
    pthread_mutex_unlock(&instance.lock);
}

int gfxstream_instance_add_context(uint32_t ctx_id, struct gfxstream_context *ctx)
{
    pthread_mutex_lock(&instance.callback_lock);
    int ret = id_table_insert(&instance.contexts, ctx_id, ctx);
    pthread_mutex_unlock(&instance.callback_lock);
    return ret;
}

void gfxstream_instance_remove_context(uint32_t ctx_id)
{
    pthread_mutex_lock(&instance.callback_lock);
    id_table_remove(&instance.contexts, ctx_id);
    pthread_mutex_unlock(&instance.callback_lock);
}

void gfxstream_instance_set_timeline(struct gfxstream_context *ctx, struct neep_timeline *timeline)
{
    pthread_mutex_lock(&instance.callback_lock);
    ctx->timelines[timeline->ring_idx] = timeline;
    pthread_mutex_unlock(&instance.callback_lock);
}
