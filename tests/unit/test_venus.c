/*
 * The venus context type (capset 4) on the real libvirglrenderer and its render server.
 *
 * Run by meson twice: on Debian's libvirglrenderer (0.10.4, whose venus guest drivers refuse),
 * where a renderer asking for venus must fail with a clear reason; and, through
 * tests/with-virglrenderer.sh, on virglrenderer 1.2.0 (NEEP_TEST_VENUS=1), where venus runs
 * next to OpenGL and survives the loss of its render server.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "open_fds.h"
#include "renderer/renderer_internal.h"
#include "support.h"

#define VENUS_MASK (1ull << NEEP_CAPSET_VENUS)
#define GL_MASK    ((1ull << NEEP_CAPSET_VIRGL) | (1ull << NEEP_CAPSET_VIRGL2))

static bool venus_expected(void)
{
    const char *value = getenv("NEEP_TEST_VENUS");
    return value && strcmp(value, "1") == 0;
}

static int make_renderer(uint64_t mask, struct log_capture *log, struct neep_renderer **out)
{
    struct neep_renderer_config config = {.capset_mask = mask,
                                          .memory_budget_bytes = 64u << 20,
                                          .log_fn = support_log,
                                          .log_user_data = log};
    return neep_renderer_create(&config, out);
}

TEST(venus_runs_or_says_why_not)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    int ret = make_renderer(VENUS_MASK, &log, &renderer);
    if (!venus_expected()) {
        /* Debian's library: venus either does not start or speaks a wire format too old. */
        CHECK(ret < 0);
        CHECK(strstr(log.last_error, "venus") != NULL);
        return;
    }
    CHECK_EQ(ret, 0);
    CHECK_EQ(neep_capset_count(renderer), 1);
    uint32_t id, version, size;
    CHECK_EQ(neep_capset_info(renderer, 0, &id, &version, &size), 0);
    CHECK_EQ(id, NEEP_CAPSET_VENUS);
    uint8_t *caps = calloc(1, size);
    CHECK_EQ(neep_capset_get(renderer, id, version, caps, size), 0);
    uint32_t wire_format;
    memcpy(&wire_format, caps, sizeof(wire_format));
    CHECK(wire_format >= 1);
    free(caps);

    /* A venus context, fences on two rings, a submit virglrenderer cannot decode. */
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_VENUS, "vk", 2), 0);
    uint32_t garbage[4] = {0xffffffffu, 1, 2, 3};
    neep_context_submit(renderer, 1, garbage, sizeof(garbage)); /* refused or ignored */
    CHECK_EQ(neep_context_submit(renderer, 1, garbage, 6), -EINVAL);

    /* Without OpenGL the console's 3D resources stay the renderer's own. */
    struct neep_resource_create_3d create = {.target = NEEP_TARGET_TEXTURE_2D,
                                             .format = NEEP_FORMAT_B8G8R8X8_UNORM,
                                             .bind = 2,
                                             .width = 64,
                                             .height = 64,
                                             .depth = 1,
                                             .array_size = 1};
    CHECK_EQ(neep_resource_create_3d(renderer, 5, &create), 0);
    struct neep_resource_info info;
    CHECK_EQ(neep_resource_get_info(renderer, 5, &info), 0);
    CHECK(!info.is_3d_provided);

    /* A blob for memory the context never allocated is refused, with nothing charged. */
    uint64_t before = neep_renderer_memory_used_bytes(renderer);
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_HOST3D,
                                    .blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE,
                                    .blob_id = 99,
                                    .size_bytes = 1u << 20};
    CHECK(neep_resource_create_blob(renderer, 1, 6, &blob, NULL, 0) < 0);
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), before);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
    /* The server's exit at the end is no loss to report. */
    CHECK(strstr(log.last_error, "lost") == NULL);
}

/* The pid of a child of `parent` whose command name starts with `comm_prefix` and that is not
 * `skip` (0 if none). */
static pid_t find_child(pid_t parent, const char *comm_prefix, pid_t skip)
{
    DIR *proc = opendir("/proc");
    CHECK(proc != NULL);
    pid_t found = 0;
    char wanted[64];
    snprintf(wanted, sizeof(wanted), "(%s", comm_prefix);
    for (struct dirent *entry; !found && (entry = readdir(proc));) {
        pid_t pid = (pid_t)atoi(entry->d_name);
        if (pid <= 0 || pid == skip) {
            continue;
        }
        char path[64], stat[512] = {0};
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        FILE *file = fopen(path, "r");
        if (!file) {
            continue;
        }
        size_t length = fread(stat, 1, sizeof(stat) - 1, file);
        fclose(file);
        stat[length] = '\0';
        /* "pid (comm) state ppid ..." */
        char *close_paren = strrchr(stat, ')');
        int ppid = 0;
        if (strstr(stat, wanted) && close_paren && sscanf(close_paren + 2, "%*c %d", &ppid) == 1 &&
            ppid == parent) {
            found = pid;
        }
    }
    closedir(proc);
    return found;
}

/* The render server's pid: our child whose command name is virgl_render_server. */
/* A process's state letter from /proc (R, S, T, Z...), 0 if there is no such process. */
static char process_state(pid_t pid)
{
    char path[64], stat[512] = {0};
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *file = fopen(path, "r");
    if (!file) {
        return 0;
    }
    size_t length = fread(stat, 1, sizeof(stat) - 1, file);
    fclose(file);
    stat[length] = '\0';
    char *close_paren = strrchr(stat, ')');
    return close_paren && close_paren[1] == ' ' ? close_paren[2] : 0;
}

static pid_t find_render_server(void)
{
    return find_child(getpid(), "virgl_render_se", 0);
}

TEST(losing_the_render_server_loses_venus_only)
{
    if (!venus_expected()) {
        return;
    }
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(make_renderer(VENUS_MASK | GL_MASK, &log, &renderer), 0);
    CHECK_EQ(neep_capset_count(renderer), 3);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_VENUS, NULL, 0), 0);
    CHECK_EQ(neep_context_create(renderer, 2, NEEP_CAPSET_VIRGL2, NULL, 0), 0);
    /* A fence on a venus ring that no work will ever complete: the server dies first. */
    struct neep_fence fence = {.flags = NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX,
                               .fence_id = 9,
                               .ctx_id = 1,
                               .ring_idx = 1};
    pid_t server = find_render_server();
    CHECK(server > 0); /* neep's own child: neep started it */
    CHECK_EQ(kill(server, SIGSTOP), 0);
    CHECK_EQ(neep_fence_create(renderer, &fence), 0);
    CHECK_EQ(kill(server, SIGKILL), 0);
    /* The loss is seen, said, and the fence completes: no guest waits forever. */
    int delivered = 0;
    for (int i = 0; i < 500 && delivered == 0; i++) {
        delivered = neep_renderer_dispatch_fences(renderer, NULL, NULL);
        usleep(10000);
    }
    CHECK_EQ(delivered, 1);
    CHECK(strstr(log.last_error, "render server") != NULL);
    CHECK(strstr(log.last_error, "lost") != NULL);
    /* venus work is refused from now on; a new venus context too. */
    uint32_t words[2] = {0, 0};
    CHECK_EQ(neep_context_submit(renderer, 1, words, sizeof(words)), -EIO);
    CHECK_EQ(neep_context_create(renderer, 3, NEEP_CAPSET_VENUS, NULL, 0), -EIO);
    /* OpenGL goes on: a texture, a transfer, a context. */
    struct neep_resource_create_3d create = {.target = NEEP_TARGET_TEXTURE_2D,
                                             .format = NEEP_FORMAT_B8G8R8A8_UNORM,
                                             .bind = 2,
                                             .width = 8,
                                             .height = 8,
                                             .depth = 1,
                                             .array_size = 1};
    CHECK_EQ(neep_resource_create_3d(renderer, 7, &create), 0);
    CHECK_EQ(neep_context_attach_resource(renderer, 2, 7), 0);
    uint8_t pixels[8 * 8 * 4];
    memset(pixels, 0x5a, sizeof(pixels));
    struct iovec iov = {pixels, sizeof(pixels)};
    CHECK_EQ(neep_resource_attach_backing(renderer, 7, &iov, 1), 0);
    struct neep_transfer box = {.width = 8, .height = 8, .depth = 1};
    CHECK_EQ(neep_resource_transfer_write(renderer, 2, 7, &box), 0);
    uint8_t back[sizeof(pixels)] = {0};
    struct iovec out = {back, sizeof(back)};
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, 7, &box, &out, 1), 0);
    CHECK(memcmp(back, pixels, sizeof(back)) == 0);
    CHECK_EQ(neep_context_create(renderer, 4, NEEP_CAPSET_VIRGL2, NULL, 0), 0);
    neep_renderer_destroy(renderer);
    /* neep reaped it: no zombie is left. */
    CHECK(waitpid(server, NULL, WNOHANG) < 0 && errno == ECHILD);
}

/* ---- a hostile guest's blob requests ------------------------------------------------------ */

static int venus_blob(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t res_id,
                      uint32_t blob_mem, uint32_t flags, uint64_t blob_id, uint64_t size,
                      const struct iovec *backing, size_t backing_count)
{
    struct neep_blob_create blob = {
        .blob_mem = blob_mem, .blob_flags = flags, .blob_id = blob_id, .size_bytes = size};
    return neep_resource_create_blob(renderer, ctx_id, res_id, &blob, backing, backing_count);
}

/* Sizes and ids a guest makes up are refused with nothing charged or kept; a guest-memory blob
 * (the one kind that needs no Vulkan allocation) is kept by virglrenderer, which refuses to map
 * or export it; an OpenGL context next to venus is not disturbed. */
TEST(venus_refuses_made_up_blobs_cleanly)
{
    if (!venus_expected()) {
        return;
    }
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(make_renderer(VENUS_MASK | GL_MASK, &log, &renderer), 0);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_VENUS, NULL, 0), 0);
    CHECK_EQ(neep_context_create(renderer, 2, NEEP_CAPSET_VIRGL2, NULL, 0), 0);
    uint64_t base = neep_renderer_memory_used_bytes(renderer);
    int fds = count_open_fds();
    const uint32_t mappable = NEEP_BLOB_FLAG_USE_MAPPABLE | NEEP_BLOB_FLAG_USE_SHAREABLE;
    static uint8_t guest[1u << 16];
    struct iovec whole = {guest, sizeof(guest)};

    /* (1) size 0, a size past the budget, blob ids the context never allocated. */
    CHECK_EQ(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_HOST3D, mappable, 1, 0, NULL, 0), -EINVAL);
    CHECK_EQ(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_HOST3D, mappable, 1, UINT64_MAX, NULL, 0),
             -ENOMEM);
    CHECK_EQ(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_HOST3D, mappable, 1, 1ull << 62, NULL, 0),
             -ENOMEM);
    const uint64_t ids[] = {0, 1, 2, 0x7fffffffu, UINT64_MAX};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        CHECK(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_HOST3D, mappable, ids[i], 4096, NULL, 0) <
              0);
        /* The same made-up id twice: refused again, the resource id is free again. */
        CHECK(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_HOST3D, mappable, ids[i], 4096, NULL, 0) <
              0);
        CHECK(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_HOST3D_GUEST, mappable, ids[i], 4096,
                         &whole, 1) < 0);
    }
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), base);
    /* HOST3D with guest memory; guest memory shorter than the blob. */
    CHECK_EQ(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_HOST3D, mappable, 1, 4096, &whole, 1),
             -EINVAL);
    struct iovec short_backing = {guest, 4095};
    CHECK_EQ(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_GUEST, mappable, 0, 4096, &short_backing, 1),
             -EINVAL);
    CHECK_EQ(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_GUEST, mappable, 0, 4096, NULL, 0), -EINVAL);
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), base);
    CHECK_EQ(count_open_fds(), fds);

    /* A guest-memory blob of the venus context: virglrenderer keeps it (and refuses a second
     * with its resource id). */
    CHECK_EQ(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_GUEST, mappable, 0, 4096, &whole, 1), 0);
    struct neep_resource_info info;
    CHECK_EQ(neep_resource_get_info(renderer, 10, &info), 0);
    CHECK(info.is_3d_provided);
    CHECK_EQ(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_GUEST, mappable, 0, 4096, &whole, 1),
             -EEXIST);
    CHECK_EQ(venus_blob(renderer, 1, 11, NEEP_BLOB_MEM_GUEST, 0, 0, 4096, &whole, 1), 0);
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 10), 0); /* venus cannot import it */

    /* (2) maps: a blob not made mappable; one virglrenderer has nothing to map for; double
     * unmaps. Nothing is left mapped or charged. */
    void *ptr = NULL;
    uint64_t size = 0;
    CHECK_EQ(neep_resource_map(renderer, 11, &ptr, &size), -EOPNOTSUPP);
    CHECK(neep_resource_map(renderer, 10, &ptr, &size) < 0);
    CHECK(neep_resource_map(renderer, 10, &ptr, &size) < 0);
    CHECK_EQ(neep_resource_unmap(renderer, 10), -EINVAL);
    CHECK_EQ(neep_resource_unmap(renderer, 10), -EINVAL);
    CHECK_EQ(neep_resource_unmap(renderer, 11), -EOPNOTSUPP);
    uint32_t map_info = 0;
    neep_resource_map_info(renderer, 10, &map_info); /* cached guest memory: either answer */

    /* (4) exports: not shareable; shareable but guest memory virglrenderer cannot export. */
    int fd = -1;
    uint32_t handle_type = 0;
    CHECK_EQ(neep_resource_export(renderer, 11, &fd, &handle_type), -EOPNOTSUPP);
    CHECK(neep_resource_export(renderer, 10, &fd, &handle_type) < 0);
    CHECK_EQ(fd, -1);

    /* OpenGL beside it goes on. */
    struct neep_resource_create_3d create = {.target = NEEP_TARGET_TEXTURE_2D,
                                             .format = NEEP_FORMAT_B8G8R8A8_UNORM,
                                             .bind = 2,
                                             .width = 8,
                                             .height = 8,
                                             .depth = 1,
                                             .array_size = 1};
    CHECK_EQ(neep_resource_create_3d(renderer, 12, &create), 0);
    CHECK_EQ(neep_context_attach_resource(renderer, 2, 12), 0);

    /* A submit larger than the socket to the render server holds (it would go as one packet,
     * half sent, and the server would drop the context): refused before it is sent. */
    static uint32_t big[(1u << 20) / 4];
    CHECK_EQ(neep_context_submit(renderer, 1, big, sizeof(big)), -E2BIG);
    uint32_t words[2] = {0, 0};
    neep_context_submit(renderer, 1, words, sizeof(words)); /* whatever its context says */
    CHECK_EQ(neep_context_create(renderer, 3, NEEP_CAPSET_VENUS, NULL, 0), 0);
    CHECK_EQ(neep_context_destroy(renderer, 3), 0);

    CHECK_EQ(neep_resource_unref(renderer, 10), 0);
    CHECK_EQ(neep_resource_unref(renderer, 11), 0);
    CHECK_EQ(neep_resource_unref(renderer, 12), 0);
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), base);
    CHECK_EQ(count_open_fds(), fds);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    CHECK_EQ(neep_context_destroy(renderer, 2), 0);
    neep_renderer_destroy(renderer);
}

/* (3) A venus context's blobs outlive it: refused cleanly where they need it, freed with
 * nothing left; a blob asked of a destroyed context is refused. */
TEST(venus_blobs_outlive_their_context)
{
    if (!venus_expected()) {
        return;
    }
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(make_renderer(VENUS_MASK, &log, &renderer), 0);
    uint64_t base = neep_renderer_memory_used_bytes(renderer);
    int fds = count_open_fds();
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_VENUS, NULL, 0), 0);
    const uint32_t flags = NEEP_BLOB_FLAG_USE_MAPPABLE | NEEP_BLOB_FLAG_USE_SHAREABLE;
    static uint8_t guest[8192];
    struct iovec whole = {guest, sizeof(guest)};
    CHECK_EQ(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_GUEST, flags, 0, sizeof(guest), &whole, 1),
             0);
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 10), 0);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);

    void *ptr = NULL;
    uint64_t size = 0;
    CHECK(neep_resource_map(renderer, 10, &ptr, &size) < 0);
    CHECK_EQ(neep_resource_unmap(renderer, 10), -EINVAL);
    int fd = -1;
    uint32_t handle_type = 0;
    CHECK(neep_resource_export(renderer, 10, &fd, &handle_type) < 0);
    CHECK_EQ(neep_resource_detach_backing(renderer, 10), 0);
    CHECK_EQ(neep_resource_attach_backing(renderer, 10, &whole, 1), 0);
    CHECK_EQ(neep_resource_unref(renderer, 10), 0);
    CHECK_EQ(neep_resource_unref(renderer, 10), -ENOENT);

    /* Blobs of the context that is gone: a host blob is refused; a guest-memory blob is the
     * renderer's own then, as for a context that never existed. */
    CHECK_EQ(venus_blob(renderer, 1, 20, NEEP_BLOB_MEM_HOST3D, flags, 1, 4096, NULL, 0), -ESRCH);
    CHECK_EQ(venus_blob(renderer, 1, 21, NEEP_BLOB_MEM_GUEST, flags, 0, 4096, &whole, 1), 0);
    struct neep_resource_info info;
    CHECK_EQ(neep_resource_get_info(renderer, 21, &info), 0);
    CHECK(!info.is_3d_provided);
    CHECK_EQ(neep_resource_unref(renderer, 21), 0);

    /* The id again, a new venus context: it knows nothing of the old one's blob ids. */
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_VENUS, NULL, 0), 0);
    CHECK(venus_blob(renderer, 1, 22, NEEP_BLOB_MEM_HOST3D, flags, 1, 4096, NULL, 0) < 0);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), base);
    CHECK_EQ(count_open_fds(), fds);
    neep_renderer_destroy(renderer);
}

/* (6) What venus contexts and blobs charge: each context its fixed charge, each host blob the
 * size the guest claimed (given back when virglrenderer refuses it), all of it back at the
 * end; the budget stops contexts as it stops blobs. */
TEST(venus_budget_charges_contexts_and_blobs)
{
    if (!venus_expected()) {
        return;
    }
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    struct neep_renderer_config config = {.capset_mask = VENUS_MASK,
                                          .memory_budget_bytes = 4u << 20,
                                          .log_fn = support_log,
                                          .log_user_data = &log};
    CHECK_EQ(neep_renderer_create(&config, &renderer), 0);
    uint64_t base = neep_renderer_memory_used_bytes(renderer);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_VENUS, NULL, 0), 0);
    uint64_t per_context = neep_renderer_memory_used_bytes(renderer) - base;
    CHECK(per_context >= (1u << 20));
    uint32_t created = 1;
    while (neep_context_create(renderer, created + 1, NEEP_CAPSET_VENUS, NULL, 0) == 0) {
        created++;
        CHECK(created < 8);
    }
    CHECK(strstr(log.last_error, "budget") != NULL);
    uint64_t full = neep_renderer_memory_used_bytes(renderer);
    CHECK_EQ(full, base + created * per_context);
    /* A host blob larger than what is left never reaches virglrenderer. */
    uint64_t left = config.memory_budget_bytes - full;
    CHECK_EQ(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_HOST3D, NEEP_BLOB_FLAG_USE_MAPPABLE, 1,
                        left + 1, NULL, 0),
             -ENOMEM);
    CHECK(strstr(log.last_error, "budget") != NULL);
    /* One that fits is charged while virglrenderer looks, and given back when it refuses. */
    CHECK(venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_HOST3D, NEEP_BLOB_FLAG_USE_MAPPABLE, 1,
                     left / 2, NULL, 0) < 0);
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), full);
    for (uint32_t id = 1; id <= created; id++) {
        CHECK_EQ(neep_context_destroy(renderer, id), 0);
    }
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), base);
    neep_renderer_destroy(renderer);
}

/* ---- (5) a render server that stops answering ---------------------------------------------- */

enum stalled_op { STALLED_SUBMIT, STALLED_CREATE_BLOB, STALLED_CREATE_CONTEXT, STALLED_FENCE };

struct stalled_call {
    struct neep_renderer *renderer;
    enum stalled_op op;
    _Atomic pid_t tid;
    _Atomic unsigned calls; /* calls that returned */
    _Atomic bool stop;
    int last_ret;
};

static void *stalled_worker(void *arg)
{
    struct stalled_call *call = arg;
    atomic_store(&call->tid, (pid_t)gettid());
    static uint32_t words[1024]; /* zeros: venus's command 0, which the server never reads */
    for (uint32_t i = 0; !atomic_load(&call->stop); i++) {
        int ret = 0;
        switch (call->op) {
        case STALLED_SUBMIT:
            ret = neep_context_submit(call->renderer, 1, words, sizeof(words));
            break;
        case STALLED_CREATE_BLOB:
            ret = venus_blob(call->renderer, 1, 100 + i, NEEP_BLOB_MEM_HOST3D,
                             NEEP_BLOB_FLAG_USE_MAPPABLE, 1, 4096, NULL, 0);
            break;
        case STALLED_CREATE_CONTEXT:
            ret = neep_context_create(call->renderer, 100 + i, NEEP_CAPSET_VENUS, NULL, 0);
            break;
        case STALLED_FENCE: {
            struct neep_fence fence = {.flags = NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX,
                                       .fence_id = i + 1,
                                       .ctx_id = 1,
                                       .ring_idx = 0};
            ret = neep_fence_create(call->renderer, &fence);
            break;
        }
        }
        call->last_ret = ret;
        atomic_fetch_add(&call->calls, 1);
        if (ret < 0 || i >= 100000) {
            break;
        }
    }
    return NULL;
}

/*
 * The embedder's thread calls into a venus context while the render server and the context's
 * worker are stopped (SIGSTOP): virglrenderer waits on them in blocking socket I/O with no
 * timeout, so neep's watcher must kill them once a call has waited NEEP_VENUS_TIMEOUT_MS
 * (1 s here). The call then fails, the loss is said, venus is refused from then on, and the
 * thread was held about the timeout, not forever. (Submits first fill the socket's buffer.)
 */
static void call_with_stopped_server(enum stalled_op op, const char *what)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(setenv("NEEP_VENUS_TIMEOUT_MS", "1000", 1), 0);
    CHECK_EQ(make_renderer(VENUS_MASK, &log, &renderer), 0);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_VENUS, NULL, 0), 0);
    pid_t server = find_render_server();
    CHECK(server > 0);
    /* virglrenderer 1.2.0 forks a worker process per context (render-server-worker=process):
     * contexts' requests go to it, context creation to the server. Both stop. */
    pid_t worker = 0;
    for (int i = 0; i < 200 && !(worker = find_child(server, "", 0)); i++) {
        usleep(10000);
    }
    CHECK(worker > 0);
    CHECK_EQ(kill(worker, SIGSTOP), 0);
    CHECK_EQ(kill(server, SIGSTOP), 0);

    struct stalled_call call = {.renderer = renderer, .op = op};
    struct timespec began, ended;
    clock_gettime(CLOCK_MONOTONIC, &began);
    pthread_t thread;
    CHECK_EQ(pthread_create(&thread, NULL, stalled_worker, &call), 0);
    bool finished = false;
    for (int i = 0; i < 1500 && !finished; i++) { /* 15 s */
        usleep(10000);
        finished = pthread_tryjoin_np(thread, NULL) == 0;
    }
    if (!finished) {
        /* Do not leave a stuck thread and stopped processes behind a failed check. */
        kill(worker, SIGKILL);
        kill(server, SIGKILL);
        pthread_join(thread, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &ended);
    double held_s = (double)(ended.tv_sec - began.tv_sec) + (ended.tv_nsec - began.tv_nsec) / 1e9;
    fprintf(stderr, "venus %s with a stopped server: %u calls returned, the thread held %.2f s\n",
            what, atomic_load(&call.calls), held_s);
    CHECK(finished);
    CHECK(call.last_ret < 0);
    CHECK(held_s >= 0.9);
    /* The watcher says why venus is lost (it may finish just after the call returned). */
    bool said = false;
    for (int i = 0; i < 500 && !said; i++) {
        said = support_log_said(&log, "left a call unanswered");
        usleep(said ? 0 : 10000);
    }
    CHECK(said);
    CHECK(support_log_said(&log, "venus contexts are lost"));
    /* The worker went with the server (its process group), not left to hold the socket. */
    int gone = 0;
    for (int i = 0; i < 500 && !gone; i++) {
        gone = kill(worker, 0) < 0 || process_state(worker) == 'Z';
        usleep(gone ? 0 : 10000);
    }
    CHECK(gone);
    uint32_t words[2] = {0, 0};
    CHECK_EQ(neep_context_submit(renderer, 1, words, sizeof(words)), -EIO);
    CHECK_EQ(neep_context_create(renderer, 2, NEEP_CAPSET_VENUS, NULL, 0), -EIO);
    neep_renderer_destroy(renderer);
    CHECK_EQ(unsetenv("NEEP_VENUS_TIMEOUT_MS"), 0);
}

TEST(venus_submits_held_by_a_stopped_server_fail_once_it_dies)
{
    if (venus_expected()) {
        call_with_stopped_server(STALLED_SUBMIT, "SUBMIT_3D");
    }
}

TEST(venus_blobs_held_by_a_stopped_server_fail_once_it_dies)
{
    if (venus_expected()) {
        call_with_stopped_server(STALLED_CREATE_BLOB, "RESOURCE_CREATE_BLOB");
    }
}

TEST(venus_contexts_held_by_a_stopped_server_fail_once_it_dies)
{
    if (venus_expected()) {
        call_with_stopped_server(STALLED_CREATE_CONTEXT, "CTX_CREATE");
    }
}

TEST(venus_fences_held_by_a_stopped_server_fail_once_it_dies)
{
    if (venus_expected()) {
        call_with_stopped_server(STALLED_FENCE, "fenced command");
    }
}

static double cpu_seconds(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
           (double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

/* After the render server's loss, virglrenderer's thread of each venus context polls a socket
 * that has hung up, and spins: the next call into virgl's contexts destroys their
 * virglrenderer side, and the process is idle again though the guest keeps the contexts. */
TEST(lost_venus_contexts_stop_costing_cpu)
{
    if (!venus_expected()) {
        return;
    }
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(make_renderer(VENUS_MASK, &log, &renderer), 0);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_VENUS, NULL, 0), 0);
    CHECK_EQ(neep_context_create(renderer, 2, NEEP_CAPSET_VENUS, NULL, 0), 0);
    pid_t server = find_render_server();
    CHECK(server > 0);
    CHECK_EQ(kill(server, SIGKILL), 0);
    for (int i = 0; i < 500 && !support_log_said(&log, "venus contexts are lost"); i++) {
        usleep(10000);
    }
    CHECK(support_log_said(&log, "venus contexts are lost"));
    uint32_t words[2] = {0, 0};
    CHECK_EQ(neep_context_submit(renderer, 2, words, sizeof(words)), -EIO);
    double before = cpu_seconds();
    usleep(1000000);
    double spent = cpu_seconds() - before;
    fprintf(stderr, "CPU over 1 s after venus's loss, 2 lost contexts kept: %.2f s\n", spent);
    CHECK(spent < 0.3);
    /* The guest may still destroy them, and make new OpenGL-free calls. */
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    CHECK_EQ(neep_context_destroy(renderer, 2), 0);
    neep_renderer_destroy(renderer);
}

/* The watchdog times how long the server leaves a call unanswered: a VMM that is itself
 * stopped past the timeout (a debugger, a freezer) while a call is in flight must not find its
 * healthy server killed when it resumes. */
TEST(a_stopped_vmm_does_not_kill_a_healthy_render_server)
{
    if (!venus_expected()) {
        return;
    }
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(setenv("NEEP_VENUS_TIMEOUT_MS", "500", 1), 0);
    CHECK_EQ(make_renderer(VENUS_MASK, &log, &renderer), 0);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_VENUS, NULL, 0), 0);
    pid_t self = getpid();
    pid_t stopper = fork();
    CHECK(stopper >= 0);
    if (stopper == 0) {
        for (int round = 0; round < 3; round++) {
            usleep(200000);
            kill(self, SIGSTOP);
            usleep(900000); /* stopped well past the timeout; the server runs all along */
            kill(self, SIGCONT);
        }
        _exit(0);
    }
    unsigned calls = 0;
    int status = 0;
    while (waitpid(stopper, &status, WNOHANG) == 0) {
        /* A blob id venus never allocated: the worker answers no, at once. */
        venus_blob(renderer, 1, 10, NEEP_BLOB_MEM_HOST3D, NEEP_BLOB_FLAG_USE_MAPPABLE, 12345, 4096,
                   NULL, 0);
        calls++;
    }
    usleep(300000);
    fprintf(stderr, "%u venus calls across three stops of 0.9 s (timeout 0.5 s)\n", calls);
    CHECK(!support_log_said(&log, "unanswered"));
    uint32_t words[2] = {0, 0}; /* venus still takes work */
    CHECK_EQ(neep_context_submit(renderer, 1, words, sizeof(words)), 0);
    neep_renderer_destroy(renderer);
    CHECK_EQ(unsetenv("NEEP_VENUS_TIMEOUT_MS"), 0);
}

/* Each venus context is a process of virglrenderer's (a worker with its own Vulkan instance):
 * a guest may not multiply them without end. */
TEST(venus_contexts_are_capped)
{
    if (!venus_expected()) {
        return;
    }
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(make_renderer(VENUS_MASK, &log, &renderer), 0);
    uint32_t id = 1;
    int ret = 0;
    for (; id <= 64 && (ret = neep_context_create(renderer, id, NEEP_CAPSET_VENUS, NULL, 0)) == 0;
         id++) {
    }
    CHECK_EQ(ret, -E2BIG);
    CHECK_EQ(id, 17); /* 16 made, the 17th refused */
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    CHECK_EQ(neep_context_create(renderer, 100, NEEP_CAPSET_VENUS, NULL, 0), 0);
    neep_renderer_destroy(renderer);
}
