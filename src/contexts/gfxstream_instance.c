/*
 * The process's one gfxstream backend. Its state is global, and it can start only once per
 * process (after a teardown a second init fails and the next call crashes), so it is loaded
 * and started for the first renderer that asks and kept until the process ends; a later
 * renderer may take it again if it wants the same capsets, one renderer at a time.
 *
 * Its init is first tried in a child process: an init whose renderer cannot start (GLES on a
 * host without a display) never returns, and the VMM's thread must not be the one waiting.
 * Only once the child has come through it runs here.
 *
 * Fences: the backend calls back with its own lock held, inside create_fence on the calling
 * thread or later on a thread of its own. The callback only completes neep timelines (which
 * wake the embedder through the renderer's eventfd) and finds contexts in a table of its own
 * under `callback_lock`, which the embedder thread never holds across a call into the backend.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gfxstream_internal.h"

#define DEFAULT_LIBRARY          "libgfxstream_backend.so.0"
#define DEFAULT_PROBE_TIMEOUT_MS 20000u
/* The window size the backend is told (rutabaga's default); the guest sets its own modes. */
#define WINDOW_WIDTH_PX  1280u
#define WINDOW_HEIGHT_PX 1024u

static struct {
    pthread_mutex_t lock;          /* everything below but the callback side */
    void *library;                 /* dlopen'd, never closed (the backend keeps threads) */
    struct gfxstream_api api;      /* resolved entry points */
    bool started;                  /* init ran in this process */
    uint32_t flags;                /* the renderer flags it started with */
    int failure;                   /* sticky: why it cannot be used in this process, or 0 */
    struct neep_renderer *owner;   /* the renderer it serves, or NULL */
    uint32_t probes;               /* capsets of `owner` that probed successfully */
    pthread_mutex_t callback_lock; /* contexts and callback_owner */
    struct id_table contexts;      /* ctx_id -> struct gfxstream_context */
    struct neep_renderer *callback_owner;
    struct neep_logger backend_logger; /* the backend's messages, to its renderer's log */
    bool backend_logger_ready;
    uint64_t usable_formats; /* bit i: gfxstream_formats[i] makes images on this host */
    void (*teardown)(void);  /* stream_renderer_teardown, for process exit only */
    pid_t started_pid;       /* the process it started in */
} instance = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .callback_lock = PTHREAD_MUTEX_INITIALIZER,
};

const struct gfxstream_api *gfxstream_api(void)
{
    return &instance.api;
}

/* ---- callbacks, on any thread ------------------------------------------------------------ */

static void on_fence(void *user_data, struct gfxstream_fence *fence)
{
    (void)user_data;
    struct gfxstream_fence copy;
    memcpy(&copy, fence, sizeof(copy));
    pthread_mutex_lock(&instance.callback_lock);
    struct neep_renderer *owner = instance.callback_owner;
    if (owner && (copy.flags & GFXSTREAM_FENCE_FLAG_RING_IDX)) {
        struct gfxstream_context *ctx = id_table_get(&instance.contexts, copy.ctx_id);
        struct neep_timeline *timeline =
            ctx && copy.ring_idx < NEEP_MAX_RINGS ? ctx->timelines[copy.ring_idx] : NULL;
        if (timeline) {
            neep_timeline_signal(timeline, copy.fence_id);
        }
    } else if (owner && copy.fence_id <= UINT32_MAX) {
        /* Global fences carry the renderer's own sequence number (see create_global_fence). */
        neep_timeline_signal_seq(&owner->global_timeline, (uint32_t)copy.fence_id);
    }
    pthread_mutex_unlock(&instance.callback_lock);
}

/*
 * The backend's messages, through a logger of their own: many are about a guest's streams
 * (rate-limited, then), and neep's own lines must not lose their budget to them. Its errors
 * mostly repeat what neep says about the same request, so they are warnings here.
 */
static void on_debug(void *user_data, struct gfxstream_debug *debug)
{
    (void)user_data;
    static const enum neep_log_level levels[] = {[GFXSTREAM_DEBUG_ERROR] = NEEP_LOG_WARN,
                                                 [GFXSTREAM_DEBUG_WARN] = NEEP_LOG_INFO,
                                                 [GFXSTREAM_DEBUG_INFO] = NEEP_LOG_DEBUG,
                                                 [GFXSTREAM_DEBUG_DEBUG] = NEEP_LOG_DEBUG};
    enum neep_log_level level =
        debug->debug_type >= GFXSTREAM_DEBUG_ERROR && debug->debug_type <= GFXSTREAM_DEBUG_DEBUG
            ? levels[debug->debug_type]
            : NEEP_LOG_DEBUG;
    const char *message = debug->message ? debug->message : "";
    pthread_mutex_lock(&instance.callback_lock);
    if (instance.backend_logger_ready) {
        neep_log_guest(&instance.backend_logger, level, "gfxstream backend: %.300s", message);
    }
    pthread_mutex_unlock(&instance.callback_lock);
}

/* Points the backend's messages at `renderer`'s log (NULL: nowhere). Caller holds
 * callback_lock. */
static void route_backend_log(struct neep_renderer *renderer)
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
}

/* ---- loading --------------------------------------------------------------------------- */

#define RESOLVE(field, symbol)                                                                     \
    do {                                                                                           \
        *(void **)&instance.api.field = dlsym(instance.library, symbol);                           \
        if (!instance.api.field) {                                                                 \
            missing = symbol;                                                                      \
        }                                                                                          \
    } while (0)

/* Loads the library and resolves every entry point neep uses. -ELIBACC when there is no
 * library (the gfxstream capsets are then absent), -ELIBBAD when it is not the backend. */
static int load_library(struct neep_renderer *renderer)
{
    const char *path = getenv("NEEP_GFXSTREAM_LIBRARY");
    if (!path || !*path) {
        path = DEFAULT_LIBRARY;
    }
    /* RTLD_LOCAL: the backend exports thousands of C++ symbols that must not meet QEMU's. */
    instance.library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!instance.library) {
        const char *why = dlerror();
        neep_log_host(&renderer->logger, NEEP_LOG_WARN,
                      "gfxstream: cannot load %s (%s): the gfxstream capsets are absent "
                      "(NEEP_GFXSTREAM_LIBRARY names the library)",
                      path, why ? why : "unknown error");
        return -ELIBACC;
    }
    const char *missing = NULL;
    RESOLVE(init, "stream_renderer_init");
    RESOLVE(get_cap_set, "stream_renderer_get_cap_set");
    RESOLVE(fill_caps, "stream_renderer_fill_caps");
    RESOLVE(context_create, "stream_renderer_context_create");
    RESOLVE(context_destroy, "stream_renderer_context_destroy");
    RESOLVE(ctx_attach_resource, "stream_renderer_ctx_attach_resource");
    RESOLVE(ctx_detach_resource, "stream_renderer_ctx_detach_resource");
    RESOLVE(submit_cmd, "stream_renderer_submit_cmd");
    RESOLVE(create_fence, "stream_renderer_create_fence");
    RESOLVE(resource_create, "stream_renderer_resource_create");
    RESOLVE(resource_unref, "stream_renderer_resource_unref");
    RESOLVE(resource_attach_iov, "stream_renderer_resource_attach_iov");
    RESOLVE(resource_detach_iov, "stream_renderer_resource_detach_iov");
    RESOLVE(transfer_write_iov, "stream_renderer_transfer_write_iov");
    RESOLVE(transfer_read_iov, "stream_renderer_transfer_read_iov");
    RESOLVE(create_blob, "stream_renderer_create_blob");
    RESOLVE(export_blob, "stream_renderer_export_blob");
    RESOLVE(resource_map, "stream_renderer_resource_map");
    RESOLVE(resource_unmap, "stream_renderer_resource_unmap");
    RESOLVE(resource_map_info, "stream_renderer_resource_map_info");
    if (missing) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "gfxstream: %s is not gfxstream's host backend (no %s)", path, missing);
        dlclose(instance.library);
        instance.library = NULL;
        memset(&instance.api, 0, sizeof(instance.api));
        return -ELIBBAD;
    }
    return 0;
}

/* ---- starting -------------------------------------------------------------------------- */

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

static int init_backend(uint32_t flags)
{
    struct gfxstream_param params[] = {
        {GFXSTREAM_PARAM_USER_DATA, (uint64_t)(uintptr_t)&instance},
        {GFXSTREAM_PARAM_RENDERER_FLAGS, flags},
        {GFXSTREAM_PARAM_FENCE_CALLBACK, (uint64_t)(uintptr_t)on_fence},
        {GFXSTREAM_PARAM_WIN0_WIDTH, WINDOW_WIDTH_PX},
        {GFXSTREAM_PARAM_WIN0_HEIGHT, WINDOW_HEIGHT_PX},
        {GFXSTREAM_PARAM_DEBUG_CALLBACK, (uint64_t)(uintptr_t)on_debug},
    };
    return instance.api.init(params, sizeof(params) / sizeof(params[0]));
}

static uint32_t probe_timeout_ms(void)
{
    const char *text = getenv("NEEP_GFXSTREAM_PROBE_TIMEOUT_MS");
    char *end = NULL;
    unsigned long ms = text && *text ? strtoul(text, &end, 10) : 0;
    return end && *end == '\0' && ms >= 100 && ms <= 600000 ? (uint32_t)ms
                                                            : DEFAULT_PROBE_TIMEOUT_MS;
}

static uint64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

/* What a probe child says on its pipe: this once the backend's init came back; then, for each
 * format, its index before it tries an image of it and the index | PROBE_MADE after. */
#define PROBE_STARTED 0xffu
#define PROBE_MADE    0x80u

/* In the child: the backend's init, then a small image of each known format from `first` on. */
static _Noreturn void probe_child(int report, uint32_t flags, uint32_t first)
{
    /* When the backend aborts here, the child just ends: the embedder's crash handlers (a
     * VMM's, a fuzzer's) are not for it. */
    static const int fatal_signals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP};
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
        signal(fatal_signals[i], SIG_DFL);
    }
    int ret = init_backend(flags);
    if (ret != 0) {
        _exit(ret < 0 ? (-ret & 0x7f) : 1);
    }
    uint8_t byte = PROBE_STARTED;
    if (write(report, &byte, 1) != 1) {
        _exit(1);
    }
    for (uint32_t i = first; i < gfxstream_format_count; i++) {
        struct gfxstream_resource_create_args args = {.handle = 1,
                                                      .target = 2, /* 2D texture */
                                                      .format = gfxstream_formats[i].format,
                                                      .bind = 2, /* render target */
                                                      .width = 16,
                                                      .height = 16,
                                                      .depth = 1,
                                                      .array_size = 1};
        byte = (uint8_t)i;
        if (write(report, &byte, 1) != 1) {
            _exit(1);
        }
        if (instance.api.resource_create(&args, NULL, 0) == 0) {
            instance.api.resource_unref(1);
            byte = (uint8_t)(i | PROBE_MADE);
            if (write(report, &byte, 1) != 1) {
                _exit(1);
            }
        }
    }
    _exit(0);
}

/* How one probe child went. */
struct probe_run {
    bool started;   /* its init came back */
    bool finished;  /* it went through every format it was given */
    bool timed_out; /* and was killed */
    int trying;     /* the format it was making when it stopped, or -1 */
    int status;     /* its wait status */
};

static int run_probe_child(uint32_t flags, uint32_t first, uint32_t timeout_ms,
                           struct probe_run *run)
{
    *run = (struct probe_run){.trying = -1};
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) {
        return -errno;
    }
    pid_t child = fork();
    if (child < 0) {
        int error = errno;
        close(report[0]);
        close(report[1]);
        return -error;
    }
    if (child == 0) {
        close(report[0]);
        probe_child(report[1], flags, first);
    }
    close(report[1]);
    uint64_t deadline_ms = now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = now_ms();
        struct pollfd ready = {.fd = report[0], .events = POLLIN};
        int count = now < deadline_ms ? poll(&ready, 1, (int)(deadline_ms - now)) : 0;
        if (count < 0 && errno == EINTR) {
            continue;
        }
        uint8_t byte;
        if (count != 1 || read(report[0], &byte, 1) != 1) {
            run->timed_out = count == 0;
            break; /* silent too long, or gone */
        }
        if (byte == PROBE_STARTED) {
            run->started = true;
        } else if (byte & PROBE_MADE) {
            instance.usable_formats |= 1ull << (byte & ~PROBE_MADE);
            run->trying = -1;
        } else {
            run->trying = byte;
        }
    }
    close(report[0]);
    kill(child, SIGKILL); /* if it is still there, hung */
    while (waitpid(child, &run->status, 0) < 0 && errno == EINTR) {
    }
    run->finished = !run->timed_out && WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0;
    return 0;
}

/*
 * Runs the backend in child processes before it runs here: its init (which never returns when
 * it cannot start its renderer), then an image of each format it knows (it aborts the process
 * on a format the host's driver cannot make images of). A child that dies on a format marks it
 * unusable and the next one goes on after it. Returns 0, -ETIMEDOUT if init hung, -ENODEV if
 * it failed.
 */
static int probe_in_children(struct neep_renderer *renderer, uint32_t flags)
{
    uint32_t timeout_ms = probe_timeout_ms();
    instance.usable_formats = 0;
    for (uint32_t first = 0; first <= gfxstream_format_count;) {
        struct probe_run run;
        int ret = run_probe_child(flags, first, timeout_ms, &run);
        if (ret < 0) {
            return ret;
        }
        if (!run.started && run.timed_out) {
            neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                          "gfxstream: the backend's init did not return within %u ms (tried in "
                          "a child process; flags 0x%x). With GLES on a host without a display, "
                          "set EGL_PLATFORM=surfaceless",
                          timeout_ms, flags);
            return -ETIMEDOUT;
        }
        if (!run.started) {
            neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                          "gfxstream: the backend's init failed (tried in a child process; flags "
                          "0x%x: %s %d)",
                          flags, WIFSIGNALED(run.status) ? "killed by signal" : "exit status",
                          WIFSIGNALED(run.status) ? WTERMSIG(run.status) : WEXITSTATUS(run.status));
            return -ENODEV;
        }
        if (run.finished || run.trying < 0) {
            break;
        }
        neep_log_host(&renderer->logger, NEEP_LOG_INFO,
                      "gfxstream: the host cannot make images of virgl format %u (the backend %s "
                      "on one): guests may not ask for it",
                      gfxstream_formats[run.trying].format, run.timed_out ? "hung" : "aborted");
        first = (uint32_t)run.trying + 1;
    }
    return 0;
}

bool gfxstream_instance_has_gles(void)
{
    return instance.flags & GFXSTREAM_FLAG_USE_GLES;
}

bool gfxstream_instance_format_usable(uint32_t index)
{
    return index < 64 && (instance.usable_formats & (1ull << index));
}

/*
 * At process exit the backend's threads keep running while the libraries under them (EGL) are
 * finalised, and one of them (its cleanup of a destroyed GLES context) then crashes the exiting
 * process. Its teardown, which waits for that work and stops those threads, runs first: this
 * handler is registered after the backend's own exit-time destructors, so it runs before them.
 */
static void teardown_at_exit(void)
{
    if (getpid() != instance.started_pid) {
        return; /* a child forked by the embedder, exiting: the backend is not its own */
    }
    pthread_mutex_lock(&instance.lock);
    if (instance.started && instance.teardown) {
        instance.teardown();
        instance.started = false;
        instance.failure = -ESHUTDOWN;
    }
    pthread_mutex_unlock(&instance.lock);
}

static int start_backend(struct neep_renderer *renderer, uint32_t flags)
{
    int ret = load_library(renderer);
    if (ret < 0) {
        return ret;
    }
    pthread_mutex_lock(&instance.callback_lock);
    route_backend_log(renderer);
    pthread_mutex_unlock(&instance.callback_lock);
    ret = probe_in_children(renderer, flags);
    if (ret == 0) {
        ret = init_backend(flags);
        ret = ret < 0 ? -ENODEV : 0;
        if (ret < 0) {
            neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                          "gfxstream: the backend's init failed here after it came through in "
                          "a child process");
        }
    }
    if (ret < 0) {
        pthread_mutex_lock(&instance.callback_lock);
        route_backend_log(NULL);
        pthread_mutex_unlock(&instance.callback_lock);
        return ret;
    }
    instance.started = true;
    instance.started_pid = getpid();
    *(void **)&instance.teardown = dlsym(instance.library, "stream_renderer_teardown");
    atexit(teardown_at_exit);
    instance.flags = flags;
    return 0;
}

int gfxstream_instance_acquire(struct neep_renderer *renderer)
{
    uint32_t flags = flags_for(renderer->capset_mask);
    pthread_mutex_lock(&instance.lock);
    int ret = 0;
    if (instance.owner && instance.owner != renderer) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "gfxstream: the backend already serves another renderer in this process "
                      "(it has one instance per process)");
        ret = -EBUSY;
    } else if (instance.owner) {
        ret = 0; /* another capset of the same renderer */
    } else if (instance.failure) {
        ret = instance.failure; /* said when it happened */
    } else if (instance.started && instance.flags != flags) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "gfxstream: the backend started in this process with flags 0x%x and "
                      "cannot start again (these capsets need 0x%x)",
                      instance.flags, flags);
        ret = -EBUSY;
    } else if (!instance.started) {
        ret = start_backend(renderer, flags);
        if (ret < 0 && ret != -ELIBACC) {
            instance.failure = ret; /* a hung or failed backend is not tried again */
        }
    }
    if (ret == 0 && !instance.owner) {
        id_table_init(&instance.contexts);
        gfxstream_resources_begin();
        pthread_mutex_lock(&instance.callback_lock);
        instance.callback_owner = renderer;
        route_backend_log(renderer);
        pthread_mutex_unlock(&instance.callback_lock);
        instance.owner = renderer;
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
        /* The renderer's contexts and resources are gone by now; the backend stays up. */
        renderer->resource_provider = NULL;
        pthread_mutex_lock(&instance.callback_lock);
        instance.callback_owner = NULL;
        id_table_finish(&instance.contexts);
        route_backend_log(NULL);
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
