/*
 * The process's one virglrenderer (its state is global): it serves one renderer at a time.
 * The first renderer that enables a virgl-family capset starts it, the last of its capsets to
 * be released cleans it up, and another renderer asking meanwhile gets -EBUSY.
 *
 * Fences are event-driven: virglrenderer waits for GL fences on its own sync thread and, with
 * ASYNC_FENCE_CB, calls back on that thread; the callbacks complete neep timelines, which wake
 * the embedder. Nothing polls on a timer: when virglrenderer asks for its poll (a query result
 * is pending), a relay thread wakes the embedder, whose dispatch on its own thread polls. The
 * callbacks find contexts through a table of their own under `callback_lock`, which the
 * embedder thread holds only to change that table, never across a call into virglrenderer
 * (whose sync thread may be waiting to call us).
 */
#define VIRGL_RENDERER_UNSTABLE_APIS 1
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_gpu.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <virgl/virglrenderer.h>

#include "virgl_internal.h"

/* The process's one virglrenderer, and whom it serves. */
static struct {
    pthread_mutex_t lock;          /* owner and probes: embedder threads */
    struct neep_renderer *owner;   /* NULL while virglrenderer is not initialised */
    uint32_t probes;               /* capsets of `owner` that probed successfully */
    pthread_mutex_t callback_lock; /* contexts, and owner as the callbacks see it */
    struct id_table contexts;      /* ctx_id -> struct virgl_context */
    struct neep_renderer *callback_owner;
    /* Under callback_lock. OpenGL fences (contexts' and global) created and not yet completed,
     * and the contexts the guest destroyed meanwhile. virglrenderer's sync thread waits for one
     * fence at a time with its list unlocked, holding the next; destroying a context frees that
     * context's queued fences under it, and marks the fence it waits for (whichever context's)
     * as having no context: 0.10.4 then never reports that fence's completion; 1.2.0 read the
     * context before waiting and uses it freed. So OpenGL contexts are destroyed in
     * virglrenderer only while no fence is in flight. */
    uint32_t gl_fences_in_flight;
    uint32_t retiring_contexts;
    const char *owner_render_node;  /* owner's, during virgl_renderer_init */
    bool has_gl;                    /* vrend (OpenGL) was asked for and started */
    bool has_venus;                 /* venus and its render server started */
    struct neep_renderer *starting; /* the renderer whose init is running */
    _Atomic bool venus_lost;        /* the render server died */
    bool venus_reaped;              /* and its contexts' virglrenderer side is gone */
    /* virglrenderer's poll relay (OpenGL only): see poll_relay_main. */
    pthread_t relay_thread;
    bool relay_running;
    int relay_stop_fd;   /* eventfd: the relay ends */
    int relay_polled_fd; /* eventfd: the embedder's thread polled virglrenderer */
} instance = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .callback_lock = PTHREAD_MUTEX_INITIALIZER,
    .relay_stop_fd = -1,
    .relay_polled_fd = -1,
};

/* ---- callbacks, on virglrenderer's sync thread (or, for the log, any thread) ------------- */

/* Under callback_lock: one OpenGL fence completed. The last one in flight lets retiring
 * contexts go: the embedder's dispatch destroys them (embedder_poll), so it is woken. */
static void gl_fence_completed(void)
{
    if (instance.gl_fences_in_flight > 0 && --instance.gl_fences_in_flight == 0 &&
        instance.retiring_contexts > 0 && instance.callback_owner) {
        neep_renderer_wake_dispatcher(instance.callback_owner);
    }
}

static void on_write_fence(void *cookie, uint32_t seq)
{
    (void)cookie;
    pthread_mutex_lock(&instance.callback_lock);
    gl_fence_completed();
    if (instance.callback_owner) {
        neep_timeline_signal_seq(&instance.callback_owner->global_timeline, seq);
    }
    pthread_mutex_unlock(&instance.callback_lock);
}

static void on_write_context_fence(void *cookie, uint32_t ctx_id, uint32_t ring_idx,
                                   uint64_t fence_id)
{
    (void)cookie;
    pthread_mutex_lock(&instance.callback_lock);
    struct virgl_context *ctx = id_table_get(&instance.contexts, ctx_id);
    if (ctx && ctx->capset_id != NEEP_CAPSET_VENUS) {
        gl_fence_completed();
    }
    struct neep_timeline *timeline =
        ctx && ring_idx < NEEP_MAX_RINGS ? ctx->timelines[ring_idx] : NULL;
    if (timeline) {
        neep_timeline_signal(timeline, fence_id);
    }
    pthread_mutex_unlock(&instance.callback_lock);
}

/* virglrenderer's own messages, informational or about a guest's bad command stream (so
 * rate-limited); its errors reach the guest too, as failed commands. */
__attribute__((format(printf, 1, 0))) static void on_debug_message(const char *fmt, va_list args)
{
    char line[256];
    vsnprintf(line, sizeof(line), fmt, args);
    size_t length = strlen(line);
    while (length > 0 && line[length - 1] == '\n') {
        line[--length] = '\0';
    }
    pthread_mutex_lock(&instance.callback_lock);
    if (instance.callback_owner && length > 0) {
        renderer_log(instance.callback_owner, NEEP_LOG_INFO, "virglrenderer: %s", line);
    }
    pthread_mutex_unlock(&instance.callback_lock);
}

/* The render node the embedder named, for virglrenderer's GBM; it owns what we return. */
static int on_get_drm_fd(void *cookie)
{
    (void)cookie;
    const char *path = instance.owner_render_node;
    return path ? open(path, O_RDWR | O_CLOEXEC) : -1;
}

/* On the server's watcher thread: venus's contexts are lost. Their fences complete, so no
 * guest waits for work that will never finish; their later work is refused. */
static void on_server_death(pid_t pid, int status, uint32_t unanswered_ms)
{
    atomic_store(&instance.venus_lost, true);
    pthread_mutex_lock(&instance.callback_lock);
    struct neep_renderer *renderer = instance.callback_owner;
    if (renderer && unanswered_ms > 0) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "venus: the render server (pid %d) left a call unanswered for %u ms, so "
                      "neep killed it: venus contexts are lost; OpenGL and other contexts go on",
                      (int)pid, unanswered_ms);
    } else if (renderer) {
        neep_log_host(
            &renderer->logger, NEEP_LOG_ERROR,
            "venus: the render server (pid %d) %s %d: venus contexts are lost; "
            "OpenGL and other contexts go on",
            (int)pid,
            status >= 0 && WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
            status >= 0 && WIFSIGNALED(status) ? WTERMSIG(status)
                                               : (status >= 0 ? WEXITSTATUS(status) : -1));
    }
    struct id_table *contexts = &instance.contexts;
    for (size_t i = 0; i < contexts->capacity; i++) {
        struct virgl_context *ctx = contexts->keys[i] ? contexts->values[i] : NULL;
        if (!ctx || ctx->capset_id != NEEP_CAPSET_VENUS) {
            continue;
        }
        for (uint32_t ring = 0; ring < NEEP_MAX_RINGS; ring++) {
            if (ctx->timelines[ring]) {
                neep_timeline_complete_all(ctx->timelines[ring]);
            }
        }
    }
    pthread_mutex_unlock(&instance.callback_lock);
}

/* virglrenderer asks for its connection to venus's render server: neep starts the server. */
static int on_get_server_fd(void *cookie, uint32_t version)
{
    (void)cookie;
    if (version != 0 || !instance.starting) {
        return -1;
    }
    return virgl_server_start(instance.starting, on_server_death);
}

bool virgl_instance_venus_lost(void)
{
    return atomic_load(&instance.venus_lost);
}

void virgl_instance_reap_lost_venus(void)
{
    if (!atomic_load(&instance.venus_lost) || instance.venus_reaped) {
        return;
    }
    instance.venus_reaped = true;
    /* Collected under the lock, destroyed outside it: destroying joins the context's sync
     * thread, which may be waiting for the lock in a fence callback. */
    uint32_t ids[64];
    size_t count = 0;
    bool more = true;
    while (more) {
        more = false;
        count = 0;
        pthread_mutex_lock(&instance.callback_lock);
        struct id_table *contexts = &instance.contexts;
        for (size_t i = 0; i < contexts->capacity; i++) {
            struct virgl_context *ctx = contexts->keys[i] ? contexts->values[i] : NULL;
            if (!ctx || ctx->capset_id != NEEP_CAPSET_VENUS || ctx->reaped) {
                continue;
            }
            if (count == sizeof(ids) / sizeof(ids[0])) {
                more = true;
                break;
            }
            ctx->reaped = true;
            ids[count++] = contexts->keys[i];
        }
        pthread_mutex_unlock(&instance.callback_lock);
        for (size_t i = 0; i < count; i++) {
            virgl_renderer_context_destroy(ids[i]);
        }
    }
}

/* ---- virglrenderer's poll, on the embedder's thread ------------------------------------- */

/* With a query result pending (a guest asked for one without waiting), virglrenderer's fence
 * thread stops after each fence until the thread that owns its GL contexts calls
 * virgl_renderer_poll(): it says so on its poll fd. This relay thread watches that fd and wakes
 * the embedder through the renderer's fence fd, whose dispatch on the embedder's thread polls
 * (virgl_instance_poll); then it waits for that poll before it looks again. */
static void *poll_relay_main(void *arg)
{
    (void)arg;
    struct pollfd asked[2] = {{.fd = virgl_renderer_get_poll_fd(), .events = POLLIN},
                              {.fd = instance.relay_stop_fd, .events = POLLIN}};
    struct pollfd polled[2] = {{.fd = instance.relay_polled_fd, .events = POLLIN},
                               {.fd = instance.relay_stop_fd, .events = POLLIN}};
    for (;;) {
        if (poll(asked, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (asked[1].revents) {
            break;
        }
        pthread_mutex_lock(&instance.callback_lock);
        if (instance.callback_owner) {
            neep_renderer_wake_dispatcher(instance.callback_owner);
        }
        pthread_mutex_unlock(&instance.callback_lock);
        while (poll(polled, 2, -1) < 0 && errno == EINTR) {
        }
        if (polled[1].revents) {
            break;
        }
        uint64_t count;
        ssize_t ignored = read(instance.relay_polled_fd, &count, sizeof(count));
        (void)ignored;
    }
    return NULL;
}

static void stop_poll_relay(void)
{
    if (instance.relay_running) {
        uint64_t one = 1;
        ssize_t ignored = write(instance.relay_stop_fd, &one, sizeof(one));
        (void)ignored;
        pthread_join(instance.relay_thread, NULL);
        instance.relay_running = false;
    }
    if (instance.relay_stop_fd >= 0) {
        close(instance.relay_stop_fd);
    }
    if (instance.relay_polled_fd >= 0) {
        close(instance.relay_polled_fd);
    }
    instance.relay_stop_fd = instance.relay_polled_fd = -1;
}

static void embedder_poll(struct neep_renderer *renderer)
{
    (void)renderer;
    virgl_instance_poll();
    virgl_reap_retired_contexts();
}

static int start_poll_relay(struct neep_renderer *renderer)
{
    instance.relay_stop_fd = eventfd(0, EFD_CLOEXEC);
    instance.relay_polled_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (instance.relay_stop_fd < 0 || instance.relay_polled_fd < 0 ||
        virgl_renderer_get_poll_fd() < 0 ||
        pthread_create(&instance.relay_thread, NULL, poll_relay_main, NULL) != 0) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "virgl: cannot watch virglrenderer's poll fd: %s", strerror(errno));
        stop_poll_relay();
        return -EAGAIN;
    }
    instance.relay_running = true;
    renderer->embedder_poll = embedder_poll;
    return 0;
}

void virgl_instance_poll(void)
{
    struct pollfd asked = {.fd = virgl_renderer_get_poll_fd(), .events = POLLIN};
    if (!instance.relay_running || poll(&asked, 1, 0) != 1) {
        return;
    }
    virgl_renderer_poll();
    uint64_t one = 1;
    ssize_t ignored = write(instance.relay_polled_fd, &one, sizeof(one));
    (void)ignored;
}

static struct virgl_renderer_callbacks callbacks = {
    .version = 3,
    .write_fence = on_write_fence,
    .get_drm_fd = on_get_drm_fd,
    .write_context_fence = on_write_context_fence,
    .get_server_fd = on_get_server_fd,
};

/* ---- the instance -------------------------------------------------------------------------- */

/* Starts virglrenderer with what the renderer's capsets need: OpenGL (vrend) for virgl and
 * virgl2, venus and its render server (a process of its own) for venus. A library that cannot
 * start venus (no render server installed) still gives OpenGL. */
static int start_virglrenderer(struct neep_renderer *renderer)
{
    const uint64_t gl_mask = (1ull << NEEP_CAPSET_VIRGL) | (1ull << NEEP_CAPSET_VIRGL2);
    bool want_gl = renderer->capset_mask & gl_mask;
    bool want_venus = renderer->capset_mask & (1ull << NEEP_CAPSET_VENUS);
    /* Without a render node, EGL renders surfaceless (llvmpipe where there is no GPU); with
     * one, virglrenderer's GBM opens it through on_get_drm_fd. */
    int flags = VIRGL_RENDERER_THREAD_SYNC | VIRGL_RENDERER_ASYNC_FENCE_CB;
    if (want_gl) {
        flags |= VIRGL_RENDERER_USE_EGL;
        if (!renderer->render_node_path) {
            flags |= VIRGL_RENDERER_USE_SURFACELESS;
        }
    } else {
        flags |= VIRGL_RENDERER_NO_VIRGL;
    }
    instance.owner_render_node = renderer->render_node_path;
    instance.starting = renderer;
    atomic_store(&instance.venus_lost, false);
    instance.venus_reaped = false;
    int ret = -ENODEV;
    if (want_venus) {
        /* The cookie is not used (callbacks find their renderer above), but must be set. */
        ret = virgl_as_errno(virgl_renderer_init(
            &instance, flags | VIRGL_RENDERER_VENUS | VIRGL_RENDERER_RENDER_SERVER, &callbacks));
        if (ret < 0) {
            neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                          "venus: virglrenderer did not start venus and its render server (%s)",
                          strerror(-ret));
        }
        instance.has_venus = ret == 0;
        if (ret < 0) {
            virgl_server_stop(); /* if it was started before virglrenderer gave up */
        }
    }
    if (ret < 0 && want_gl) {
        ret = virgl_as_errno(virgl_renderer_init(&instance, flags, &callbacks));
        if (ret < 0) {
            neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                          "virgl: virglrenderer did not start (%s) %s %s", strerror(-ret),
                          renderer->render_node_path ? "on render node" : "with surfaceless EGL",
                          renderer->render_node_path ? renderer->render_node_path : "");
        }
    }
    instance.owner_render_node = NULL;
    instance.starting = NULL;
    instance.has_gl = ret == 0 && want_gl;
    /* virglrenderer's own codes (-1 among them) say little: the host cannot run it. */
    return ret < 0 ? -ENODEV : 0;
}

/* Takes virglrenderer for `renderer`, initialising it on the first of its probes. */
int virgl_instance_acquire(struct neep_renderer *renderer)
{
    pthread_mutex_lock(&instance.lock);
    int ret = 0;
    if (instance.owner && instance.owner != renderer) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "virgl: virglrenderer already serves another renderer in this process "
                      "(it has one instance per process)");
        ret = -EBUSY;
    } else if (!instance.owner) {
        id_table_init(&instance.contexts);
        pthread_mutex_lock(&instance.callback_lock);
        instance.callback_owner = renderer;
        pthread_mutex_unlock(&instance.callback_lock);
        virgl_set_debug_callback(on_debug_message);
        ret = start_virglrenderer(renderer); /* says why it failed */
        if (ret == 0 && instance.has_gl) {
            ret = start_poll_relay(renderer);
            if (ret < 0) {
                virgl_renderer_cleanup(&instance);
                virgl_server_stop();
                instance.has_gl = instance.has_venus = false;
            }
        }
        if (ret < 0) {
            pthread_mutex_lock(&instance.callback_lock);
            instance.callback_owner = NULL;
            pthread_mutex_unlock(&instance.callback_lock);
            id_table_finish(&instance.contexts);
        } else {
            instance.owner = renderer;
        }
    }
    if (ret == 0) {
        instance.probes++;
    }
    pthread_mutex_unlock(&instance.lock);
    return ret;
}

void virgl_instance_release(struct neep_renderer *renderer)
{
    pthread_mutex_lock(&instance.lock);
    if (instance.owner == renderer && --instance.probes == 0) {
        renderer->resource_provider = NULL;
        renderer->embedder_poll = NULL;
        stop_poll_relay();
        virgl_server_stop_watching();      /* the server's exit from here on is no loss */
        virgl_renderer_cleanup(&instance); /* joins the sync thread: no callback after this */
        virgl_server_stop();
        /* Contexts still retiring went with virglrenderer's cleanup. */
        struct id_table *contexts = &instance.contexts;
        for (size_t i = 0; i < contexts->capacity; i++) {
            struct virgl_context *ctx = contexts->keys[i] ? contexts->values[i] : NULL;
            if (ctx && ctx->retiring) {
                virgl_context_free(ctx);
            }
        }
        pthread_mutex_lock(&instance.callback_lock);
        instance.callback_owner = NULL;
        id_table_finish(&instance.contexts);
        instance.gl_fences_in_flight = instance.retiring_contexts = 0;
        pthread_mutex_unlock(&instance.callback_lock);
        instance.owner = NULL;
        instance.has_gl = instance.has_venus = false;
    }
    pthread_mutex_unlock(&instance.lock);
}

bool virgl_instance_started(uint32_t capset_id)
{
    return capset_id == NEEP_CAPSET_VENUS ? instance.has_venus : instance.has_gl;
}

int virgl_instance_add_context(uint32_t ctx_id, struct virgl_context *ctx)
{
    pthread_mutex_lock(&instance.callback_lock);
    /* Contexts are capped, so a free id is near; virglrenderer's 0 is its own. */
    uint32_t id = ctx_id;
    while (id == 0 || id_table_get(&instance.contexts, id)) {
        id++;
    }
    ctx->virgl_id = id;
    int ret = id_table_insert(&instance.contexts, id, ctx);
    pthread_mutex_unlock(&instance.callback_lock);
    return ret;
}

void virgl_instance_remove_context(struct virgl_context *ctx)
{
    pthread_mutex_lock(&instance.callback_lock);
    id_table_remove(&instance.contexts, ctx->virgl_id);
    pthread_mutex_unlock(&instance.callback_lock);
}

void virgl_instance_count_gl_fence(void)
{
    pthread_mutex_lock(&instance.callback_lock);
    instance.gl_fences_in_flight++;
    pthread_mutex_unlock(&instance.callback_lock);
}

void virgl_instance_uncount_gl_fence(void)
{
    pthread_mutex_lock(&instance.callback_lock);
    instance.gl_fences_in_flight--;
    pthread_mutex_unlock(&instance.callback_lock);
}

bool virgl_instance_retire_context(struct virgl_context *ctx)
{
    pthread_mutex_lock(&instance.callback_lock);
    memset(ctx->timelines, 0, sizeof(ctx->timelines));
    /* venus's contexts live in the render server, apart from the sync thread's fences. */
    bool now = ctx->capset_id == NEEP_CAPSET_VENUS || instance.gl_fences_in_flight == 0;
    if (now) {
        id_table_remove(&instance.contexts, ctx->virgl_id);
    } else {
        ctx->retiring = true;
        instance.retiring_contexts++;
    }
    pthread_mutex_unlock(&instance.callback_lock);
    return now;
}

size_t virgl_instance_take_retired(struct virgl_context **out, size_t max)
{
    size_t count = 0;
    pthread_mutex_lock(&instance.callback_lock);
    struct id_table *contexts = &instance.contexts;
    for (size_t i = 0; i < contexts->capacity && count < max && instance.retiring_contexts > 0 &&
                       instance.gl_fences_in_flight == 0;
         i++) {
        struct virgl_context *ctx = contexts->keys[i] ? contexts->values[i] : NULL;
        if (ctx && ctx->retiring) {
            out[count++] = ctx;
        }
    }
    for (size_t i = 0; i < count; i++) {
        id_table_remove(contexts, out[i]->virgl_id);
    }
    instance.retiring_contexts -= (uint32_t)count;
    pthread_mutex_unlock(&instance.callback_lock);
    return count;
}

void virgl_instance_set_timeline(struct virgl_context *ctx, struct neep_timeline *timeline)
{
    pthread_mutex_lock(&instance.callback_lock);
    ctx->timelines[timeline->ring_idx] = timeline;
    pthread_mutex_unlock(&instance.callback_lock);
}
