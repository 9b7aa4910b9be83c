/*
 * Loading and starting gfxstream's backend in the server. Its init is first tried in child
 * processes: an init whose renderer cannot start (GLES on a host without a display) never
 * returns, and the backend aborts on images of formats the host's driver cannot make. Only
 * once a child has come through does it run here.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

#define DEFAULT_LIBRARY "libgfxstream_backend.so.0"
/* The window size the backend is told (rutabaga's default); the guest sets its own modes. */
#define WINDOW_WIDTH_PX  1280u
#define WINDOW_HEIGHT_PX 1024u

struct gfxstream_api server_api;
static void *library;
static bool started;

#define RESOLVE(field, symbol)                                                                     \
    do {                                                                                           \
        *(void **)&server_api.field = dlsym(library, symbol);                                      \
        if (!server_api.field) {                                                                   \
            missing = symbol;                                                                      \
        }                                                                                          \
    } while (0)

static int load_library(void)
{
    const char *path = getenv("NEEP_GFXSTREAM_LIBRARY");
    if (!path || !*path) {
        path = DEFAULT_LIBRARY;
    }
    /* RTLD_LOCAL: the backend exports thousands of C++ symbols. */
    library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        server_log(GFXSTREAM_DEBUG_WARN,
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
        server_log(GFXSTREAM_DEBUG_ERROR, "gfxstream: %s is not gfxstream's host backend (no %s)",
                   path, missing);
        return -ELIBBAD;
    }
    return 0;
}

static int init_backend(uint32_t flags)
{
    struct gfxstream_param params[] = {
        {GFXSTREAM_PARAM_USER_DATA, 0},
        {GFXSTREAM_PARAM_RENDERER_FLAGS, flags},
        {GFXSTREAM_PARAM_FENCE_CALLBACK, (uint64_t)(uintptr_t)server_on_fence},
        {GFXSTREAM_PARAM_WIN0_WIDTH, WINDOW_WIDTH_PX},
        {GFXSTREAM_PARAM_WIN0_HEIGHT, WINDOW_HEIGHT_PX},
        {GFXSTREAM_PARAM_DEBUG_CALLBACK, (uint64_t)(uintptr_t)server_on_debug},
    };
    return server_api.init(params, sizeof(params) / sizeof(params[0]));
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

static _Noreturn void probe_child(int report, uint32_t flags, uint32_t first)
{
    server_events_off = true;
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
        if (server_api.resource_create(&args, NULL, 0) == 0) {
            server_api.resource_unref(1);
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
                           uint64_t *usable_formats, struct probe_run *run)
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
            *usable_formats |= 1ull << (byte & ~PROBE_MADE);
            run->trying = -1;
        } else if (byte < gfxstream_format_count) {
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

/* A child that dies on a format marks it unusable and the next one goes on after it. */
static int probe_in_children(uint32_t flags, uint32_t timeout_ms, uint64_t *usable_formats)
{
    *usable_formats = 0;
    for (uint32_t first = 0; first <= gfxstream_format_count;) {
        struct probe_run run;
        int ret = run_probe_child(flags, first, timeout_ms, usable_formats, &run);
        if (ret < 0) {
            return ret;
        }
        if (!run.started && run.timed_out) {
            server_log(GFXSTREAM_DEBUG_ERROR,
                       "gfxstream: the backend's init did not return within %u ms (tried in a "
                       "child process; flags 0x%x). With GLES on a host without a display, set "
                       "EGL_PLATFORM=surfaceless",
                       timeout_ms, flags);
            return -ETIMEDOUT;
        }
        if (!run.started) {
            server_log(GFXSTREAM_DEBUG_ERROR,
                       "gfxstream: the backend's init failed (tried in a child process; flags "
                       "0x%x: %s %d)",
                       flags, WIFSIGNALED(run.status) ? "killed by signal" : "exit status",
                       WIFSIGNALED(run.status) ? WTERMSIG(run.status) : WEXITSTATUS(run.status));
            return -ENODEV;
        }
        if (run.finished || run.trying < 0) {
            break;
        }
        server_log(GFXSTREAM_DEBUG_INFO,
                   "gfxstream: the host cannot make images of virgl format %u (the backend %s on "
                   "one): guests may not ask for it",
                   gfxstream_formats[run.trying].format, run.timed_out ? "hung" : "aborted");
        first = (uint32_t)run.trying + 1;
    }
    return 0;
}

int server_start(uint32_t flags, uint32_t probe_timeout_ms, bool skip_probe,
                 uint64_t *usable_formats)
{
    if (started || library) {
        return -EALREADY;
    }
    int ret = load_library();
    if (ret < 0) {
        return ret;
    }
    *usable_formats = 0;
    ret = skip_probe ? 0 : probe_in_children(flags, probe_timeout_ms, usable_formats);
    if (ret < 0) {
        return ret;
    }
    if (init_backend(flags) != 0) {
        server_log(GFXSTREAM_DEBUG_ERROR,
                   "gfxstream: the backend's init failed after it came through in a child");
        return -ENODEV;
    }
    started = true;
    return 0;
}

void server_teardown(void)
{
    void (*teardown)(void) = NULL;
    if (started) {
        *(void **)&teardown = dlsym(library, "stream_renderer_teardown");
    }
    if (teardown) {
        teardown();
    }
    started = false;
}
