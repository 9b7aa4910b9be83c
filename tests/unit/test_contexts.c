/*
 * Contexts, capsets and fences, driven through a context type that exists only in this test
 * ("probe"): it completes fences from a worker thread and hands out memfd blobs, which is
 * what real context types do, so the renderer's plumbing can be checked on its own.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "contexts/context_type.h"
#include "harness.h"
#include "renderer/renderer_internal.h"
#include "support.h"

#define PROBE_CAPSET_ID NEEP_CAPSET_DRM
#define PROBE_QUEUE     4096
static const uint8_t probe_capset_bytes[12] = {'p', 'r', 'o', 'b', 'e', 0, 1, 2, 3, 4, 5, 6};

struct probe_job {
    struct neep_timeline *timeline;
    uint64_t fence_id;
};

struct probe_context {
    struct neep_context base;
    pthread_t worker;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct probe_job jobs[PROBE_QUEUE];
    size_t job_head, job_count;
    bool stopping;
    bool hold_fences;   /* never signal: for the pending-limit test */
    bool refuse_fences; /* fail create_fence */
    size_t submitted_bytes;
    int attached;
};

static const struct neep_context_ops probe_ops;

static struct probe_context *probe_from(struct neep_context *ctx)
{
    CHECK(ctx->ops == &probe_ops);
    return (struct probe_context *)ctx;
}

static void *probe_worker(void *arg)
{
    struct probe_context *probe = arg;
    pthread_mutex_lock(&probe->lock);
    for (;;) {
        while (!probe->stopping && probe->job_count == 0) {
            pthread_cond_wait(&probe->wake, &probe->lock);
        }
        if (probe->stopping) {
            break;
        }
        struct probe_job job = probe->jobs[probe->job_head];
        probe->job_head = (probe->job_head + 1) % PROBE_QUEUE;
        probe->job_count--;
        pthread_mutex_unlock(&probe->lock);
        neep_timeline_signal(job.timeline, job.fence_id);
        pthread_mutex_lock(&probe->lock);
    }
    pthread_mutex_unlock(&probe->lock);
    return NULL;
}

static void probe_destroy(struct neep_context *ctx)
{
    struct probe_context *probe = probe_from(ctx);
    pthread_mutex_lock(&probe->lock);
    probe->stopping = true;
    pthread_cond_signal(&probe->wake);
    pthread_mutex_unlock(&probe->lock);
    pthread_join(probe->worker, NULL);
    pthread_mutex_destroy(&probe->lock);
    pthread_cond_destroy(&probe->wake);
    free(probe);
}

static int probe_submit(struct neep_context *ctx, const uint8_t *commands, size_t size_bytes)
{
    struct probe_context *probe = probe_from(ctx);
    if (size_bytes >= 4 && memcmp(commands, "HOLD", 4) == 0) {
        probe->hold_fences = true;
    }
    if (size_bytes >= 6) {
        if (memcmp(commands, "REFUSE", 6) == 0) {
            probe->refuse_fences = true;
        } else if (memcmp(commands, "ACCEPT", 6) == 0) {
            probe->refuse_fences = false;
        }
    }
    probe->submitted_bytes += size_bytes;
    return 0;
}

static int probe_attach(struct neep_context *ctx, struct neep_resource *resource)
{
    probe_from(ctx)->attached++;
    return 0;
}

static void probe_detach(struct neep_context *ctx, struct neep_resource *resource)
{
    probe_from(ctx)->attached--;
}

static int probe_create_fence(struct neep_context *ctx, struct neep_timeline *timeline,
                              uint64_t fence_id)
{
    struct probe_context *probe = probe_from(ctx);
    if (probe->refuse_fences) {
        return -EBUSY;
    }
    if (probe->hold_fences) {
        return 0;
    }
    pthread_mutex_lock(&probe->lock);
    if (probe->job_count == PROBE_QUEUE) {
        pthread_mutex_unlock(&probe->lock);
        return -EBUSY;
    }
    probe->jobs[(probe->job_head + probe->job_count) % PROBE_QUEUE] =
        (struct probe_job){timeline, fence_id};
    probe->job_count++;
    pthread_cond_signal(&probe->wake);
    pthread_mutex_unlock(&probe->lock);
    return 0;
}

static int probe_create_blob(struct neep_context *ctx, uint32_t resource_id,
                             const struct neep_blob_create *create, struct neep_blob_storage *out)
{
    int fd = memfd_create("probe-blob", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)create->size_bytes) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -ENOMEM;
    }
    out->fd = fd;
    out->handle_type = NEEP_HANDLE_MEM_SHM;
    out->size_bytes = create->size_bytes;
    out->map_info = 0x01 | 0x30; /* cached, read-write */
    return 0;
}

static const struct neep_context_ops probe_ops = {
    .destroy = probe_destroy,
    .submit = probe_submit,
    .attach_resource = probe_attach,
    .detach_resource = probe_detach,
    .create_fence = probe_create_fence,
    .create_blob = probe_create_blob,
};

static int probe_probe(struct neep_renderer *renderer, uint32_t *max_version, uint32_t *size_bytes,
                       uint8_t **data)
{
    *max_version = 2;
    *size_bytes = sizeof(probe_capset_bytes);
    *data = malloc(sizeof(probe_capset_bytes));
    memcpy(*data, probe_capset_bytes, sizeof(probe_capset_bytes));
    return 0;
}

static int probe_create(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t context_init,
                        const char *name, size_t name_len, struct neep_context **out)
{
    struct probe_context *probe = calloc(1, sizeof(*probe));
    if (!probe) {
        return -ENOMEM;
    }
    probe->base.ops = &probe_ops;
    pthread_mutex_init(&probe->lock, NULL);
    pthread_cond_init(&probe->wake, NULL);
    pthread_create(&probe->worker, NULL, probe_worker, probe);
    *out = &probe->base;
    return 0;
}

static const struct neep_context_type probe_type = {
    .capset_id = PROBE_CAPSET_ID,
    .name = "probe",
    .probe = probe_probe,
    .create = probe_create,
};

static struct neep_renderer *probe_renderer(struct log_capture *log)
{
    const struct neep_context_type *types[] = {&probe_type};
    struct neep_renderer_config config = {
        .capset_mask = 1ull << PROBE_CAPSET_ID,
        .log_fn = support_log,
        .log_user_data = log,
    };
    struct neep_renderer *renderer;
    CHECK_EQ(neep_renderer_create_with_types(&config, types, 1, &renderer), 0);
    return renderer;
}

/* ---- capsets and creation ---------------------------------------------------------------- */

TEST(capsets_are_enumerated_and_copied)
{
    struct neep_renderer *renderer = probe_renderer(NULL);
    CHECK_EQ(neep_capset_count(renderer), 1);
    uint32_t id, version, size;
    CHECK_EQ(neep_capset_info(renderer, 0, &id, &version, &size), 0);
    CHECK_EQ(id, PROBE_CAPSET_ID);
    CHECK_EQ(version, 2);
    CHECK_EQ(size, sizeof(probe_capset_bytes));
    uint8_t buf[sizeof(probe_capset_bytes)];
    CHECK_EQ(neep_capset_get(renderer, id, 1, buf, sizeof(buf)), 0);
    CHECK(memcmp(buf, probe_capset_bytes, sizeof(buf)) == 0);

    CHECK_EQ(neep_capset_info(renderer, 1, &id, &version, &size), -EINVAL);
    CHECK_EQ(neep_capset_get(renderer, PROBE_CAPSET_ID, 3, buf, sizeof(buf)), -EINVAL);
    CHECK_EQ(neep_capset_get(renderer, PROBE_CAPSET_ID, 0, buf, sizeof(buf) - 1), -EINVAL);
    CHECK_EQ(neep_capset_get(renderer, NEEP_CAPSET_VIRGL, 0, buf, sizeof(buf)), -EINVAL);
    neep_renderer_destroy(renderer);
}

TEST(unavailable_or_invalid_capsets_fail_creation)
{
    struct neep_renderer *renderer = NULL;
    /* A context type neep has no code for (DRM native contexts). */
    struct neep_renderer_config config = {.capset_mask = 1ull << NEEP_CAPSET_DRM,
                                          .log_fn = support_log};
    CHECK_EQ(neep_renderer_create(&config, &renderer), -EOPNOTSUPP);
    CHECK(renderer == NULL);
    config.capset_mask = 1ull << 0;
    CHECK_EQ(neep_renderer_create(&config, &renderer), -EINVAL);
    config.capset_mask = 1ull << 10;
    CHECK_EQ(neep_renderer_create(&config, &renderer), -EINVAL);
    CHECK_EQ(neep_renderer_create(NULL, &renderer), -EINVAL);
    /* A 2D-only renderer has no capsets and no context types. */
    config.capset_mask = 0;
    CHECK_EQ(neep_renderer_create(&config, &renderer), 0);
    CHECK_EQ(neep_capset_count(renderer), 0);
    CHECK_EQ(neep_context_create(renderer, 1, 0, NULL, 0), -EINVAL);
    neep_renderer_destroy(renderer);
}

TEST(contexts_are_created_by_capset_and_checked)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = probe_renderer(&log);
    CHECK_EQ(neep_context_create(renderer, 1, PROBE_CAPSET_ID, "one", 3), 0);
    CHECK_EQ(neep_context_create(renderer, 2, 0, NULL, 0), 0); /* default type */
    CHECK_EQ(neep_context_create(renderer, 1, PROBE_CAPSET_ID, NULL, 0), -EEXIST);
    CHECK_EQ(neep_context_create(renderer, 0, PROBE_CAPSET_ID, NULL, 0), -EINVAL);
    CHECK_EQ(neep_context_create(renderer, 3, NEEP_CAPSET_VENUS, NULL, 0), -EINVAL);
    CHECK(strstr(log.last_error, "capset 4") != NULL);
    /* Bits above the capset id are flags, not part of the id. */
    CHECK_EQ(neep_context_create(renderer, 4, PROBE_CAPSET_ID | 0x100, NULL, 0), 0);
    /* A name longer than the field is cut, not overrun. */
    char long_name[300];
    memset(long_name, 'n', sizeof(long_name));
    CHECK_EQ(neep_context_create(renderer, 5, PROBE_CAPSET_ID, long_name, sizeof(long_name)), 0);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    CHECK_EQ(neep_context_destroy(renderer, 1), -ESRCH);
    CHECK_EQ(neep_context_destroy(renderer, 99), -ESRCH);
    neep_renderer_destroy(renderer);
}

TEST(resources_attach_and_detach_from_contexts)
{
    struct neep_renderer *renderer = probe_renderer(NULL);
    CHECK_EQ(neep_context_create(renderer, 1, PROBE_CAPSET_ID, NULL, 0), 0);
    support_create_2d(renderer, 10, 4, 4);
    support_create_2d(renderer, 11, 4, 4);
    struct probe_context *probe = probe_from(neep_context_lookup(renderer, 1));

    CHECK_EQ(neep_context_attach_resource(renderer, 1, 10), 0);
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 10), 0); /* twice is harmless */
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 11), 0);
    CHECK_EQ(probe->attached, 2);
    CHECK_EQ(neep_context_attach_resource(renderer, 2, 10), -ESRCH);
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 12), -ENOENT);
    CHECK_EQ(neep_context_detach_resource(renderer, 1, 12), -ENOENT);
    CHECK_EQ(neep_context_detach_resource(renderer, 2, 10), -ESRCH);
    CHECK_EQ(neep_context_detach_resource(renderer, 1, 10), 0);
    CHECK_EQ(probe->attached, 1);
    /* Unref detaches the resource from every context that still holds it. */
    CHECK_EQ(neep_resource_unref(renderer, 11), 0);
    CHECK_EQ(probe->attached, 0);
    CHECK_EQ(neep_context_detach_resource(renderer, 1, 11), -ENOENT);
    neep_renderer_destroy(renderer);
}

TEST(submit_copies_and_bounds_commands)
{
    struct neep_renderer *renderer = probe_renderer(NULL);
    CHECK_EQ(neep_context_create(renderer, 1, PROBE_CAPSET_ID, NULL, 0), 0);
    uint8_t commands[64] = {0};
    CHECK_EQ(neep_context_submit(renderer, 1, commands, sizeof(commands)), 0);
    CHECK_EQ(neep_context_submit(renderer, 1, NULL, 0), 0);
    CHECK_EQ(neep_context_submit(renderer, 2, commands, sizeof(commands)), -ESRCH);
    CHECK_EQ(neep_context_submit(renderer, 1, commands, NEEP_MAX_SUBMIT_BYTES + 1), -E2BIG);
    CHECK_EQ(neep_context_submit(renderer, 1, NULL, 8), -EINVAL);
    CHECK_EQ(probe_from(neep_context_lookup(renderer, 1))->submitted_bytes, 64);
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), NEEP_OBJECT_OVERHEAD_BYTES);
    neep_renderer_destroy(renderer);
}

/* ---- fences ------------------------------------------------------------------------------ */

struct fence_log {
    struct neep_fence fences[4096];
    size_t count;
};

static void record_fence(void *user_data, const struct neep_fence *fence)
{
    struct fence_log *log = user_data;
    CHECK(log->count < 4096);
    log->fences[log->count++] = *fence;
}

static bool fence_fd_readable(struct neep_renderer *renderer, int timeout_ms)
{
    struct pollfd pfd = {.fd = neep_renderer_fence_fd(renderer), .events = POLLIN};
    return poll(&pfd, 1, timeout_ms) == 1;
}

/* Dispatches until `want` fences arrived, waiting on the fence fd between rounds. */
static void collect(struct neep_renderer *renderer, struct fence_log *log, size_t want)
{
    while (log->count < want) {
        CHECK(fence_fd_readable(renderer, 5000));
        neep_renderer_dispatch_fences(renderer, record_fence, log);
    }
}

TEST(global_fences_complete_at_once_and_echo_the_caller)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    CHECK(!fence_fd_readable(renderer, 0));
    struct neep_fence fence = {
        .flags = NEEP_FENCE_FLAG_FENCE, .fence_id = 42, .ctx_id = 7, .ring_idx = 0};
    CHECK_EQ(neep_fence_create(renderer, &fence), 0);
    CHECK(fence_fd_readable(renderer, 0));
    static struct fence_log log;
    log.count = 0;
    CHECK_EQ(neep_renderer_dispatch_fences(renderer, record_fence, &log), 1);
    CHECK_EQ(log.fences[0].fence_id, 42);
    CHECK_EQ(log.fences[0].ctx_id, 7);
    CHECK_EQ(log.fences[0].flags, NEEP_FENCE_FLAG_FENCE);
    CHECK(!fence_fd_readable(renderer, 0));
    CHECK_EQ(neep_renderer_dispatch_fences(renderer, record_fence, &log), 0);
    neep_renderer_destroy(renderer);
}

TEST(bad_fences_are_rejected)
{
    struct neep_renderer *renderer = probe_renderer(NULL);
    CHECK_EQ(neep_context_create(renderer, 1, PROBE_CAPSET_ID, NULL, 0), 0);
    struct neep_fence fence = {.flags = NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX,
                               .fence_id = 1,
                               .ctx_id = 1,
                               .ring_idx = NEEP_MAX_RINGS};
    CHECK_EQ(neep_fence_create(renderer, &fence), -EINVAL);
    fence.ring_idx = 0;
    fence.ctx_id = 2;
    CHECK_EQ(neep_fence_create(renderer, &fence), -ESRCH);
    fence.ctx_id = 1;
    fence.flags |= 0x80;
    CHECK_EQ(neep_fence_create(renderer, &fence), -EINVAL);
    CHECK_EQ(neep_fence_create(renderer, NULL), -EINVAL);
    neep_renderer_destroy(renderer);
}

TEST(ring_fences_complete_from_a_worker_in_order_per_timeline)
{
    struct neep_renderer *renderer = probe_renderer(NULL);
    CHECK_EQ(neep_context_create(renderer, 1, PROBE_CAPSET_ID, NULL, 0), 0);
    CHECK_EQ(neep_context_create(renderer, 2, PROBE_CAPSET_ID, NULL, 0), 0);
    static struct fence_log log;
    log.count = 0;
    /* Interleave three timelines; each numbers its fences from 1. */
    for (uint64_t n = 1; n <= 300; n++) {
        struct neep_fence fence = {.flags = NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX,
                                   .fence_id = n,
                                   .ctx_id = 1 + (uint32_t)(n % 2),
                                   .ring_idx = (n % 3 == 0) ? 63 : 0};
        CHECK_EQ(neep_fence_create(renderer, &fence), 0);
        if (n % 50 == 0) {
            neep_renderer_dispatch_fences(renderer, record_fence, &log);
        }
    }
    collect(renderer, &log, 300);
    uint64_t last[3][64] = {{0}};
    for (size_t i = 0; i < log.count; i++) {
        const struct neep_fence *fence = &log.fences[i];
        CHECK(fence->flags & NEEP_FENCE_FLAG_RING_IDX);
        CHECK(fence->fence_id > last[fence->ctx_id][fence->ring_idx]);
        last[fence->ctx_id][fence->ring_idx] = fence->fence_id;
    }
    CHECK_EQ(log.count, 300);
    neep_renderer_destroy(renderer);
}

TEST(signalling_a_later_fence_completes_the_earlier_ones)
{
    struct neep_renderer *renderer = probe_renderer(NULL);
    CHECK_EQ(neep_context_create(renderer, 1, PROBE_CAPSET_ID, NULL, 0), 0);
    CHECK_EQ(neep_context_submit(renderer, 1, "HOLD", 4), 0);
    for (uint64_t n = 10; n < 15; n++) {
        struct neep_fence fence = {.flags = NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX,
                                   .fence_id = n,
                                   .ctx_id = 1,
                                   .ring_idx = 2};
        CHECK_EQ(neep_fence_create(renderer, &fence), 0);
    }
    CHECK(!fence_fd_readable(renderer, 0));
    struct neep_context *ctx = neep_context_lookup(renderer, 1);
    neep_timeline_signal(ctx->rings[2], 12);
    static struct fence_log log;
    log.count = 0;
    CHECK_EQ(neep_renderer_dispatch_fences(renderer, record_fence, &log), 3);
    CHECK(log.fences[0].fence_id == 10 && log.fences[2].fence_id == 12);
    neep_timeline_signal(ctx->rings[2], 999); /* unknown: ignored */
    CHECK_EQ(neep_renderer_dispatch_fences(renderer, record_fence, &log), 0);
    neep_timeline_signal(ctx->rings[2], 14);
    CHECK_EQ(neep_renderer_dispatch_fences(renderer, record_fence, &log), 2);
    neep_renderer_destroy(renderer);
}

TEST(a_refused_fence_is_reported_and_never_delivered)
{
    struct neep_renderer *renderer = probe_renderer(NULL);
    CHECK_EQ(neep_context_create(renderer, 1, PROBE_CAPSET_ID, NULL, 0), 0);
    struct neep_fence fence = {
        .flags = NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX, .fence_id = 1, .ctx_id = 1};
    CHECK_EQ(neep_context_submit(renderer, 1, "REFUSE", 6), 0);
    CHECK_EQ(neep_fence_create(renderer, &fence), -EBUSY);
    CHECK_EQ(neep_context_submit(renderer, 1, "ACCEPT", 6), 0);
    fence.fence_id = 2;
    CHECK_EQ(neep_fence_create(renderer, &fence), 0);
    static struct fence_log log;
    log.count = 0;
    collect(renderer, &log, 1);
    CHECK_EQ(log.count, 1);
    CHECK_EQ(log.fences[0].fence_id, 2);
    neep_renderer_destroy(renderer);
}

TEST(pending_fences_are_capped_per_timeline)
{
    struct neep_renderer *renderer = probe_renderer(NULL);
    CHECK_EQ(neep_context_create(renderer, 1, PROBE_CAPSET_ID, NULL, 0), 0);
    CHECK_EQ(neep_context_submit(renderer, 1, "HOLD", 4), 0);
    struct neep_fence fence = {.flags = NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX,
                               .ctx_id = 1};
    for (uint32_t n = 0; n < NEEP_MAX_PENDING_FENCES_PER_TIMELINE; n++) {
        fence.fence_id = n;
        CHECK_EQ(neep_fence_create(renderer, &fence), 0);
    }
    CHECK_EQ(neep_fence_create(renderer, &fence), -E2BIG);
    /* Other timelines are unaffected. */
    fence.ring_idx = 1;
    CHECK_EQ(neep_fence_create(renderer, &fence), 0);
    /* Destroying the context with all of these pending frees them. */
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    CHECK_EQ(neep_renderer_dispatch_fences(renderer, NULL, NULL), 0);
    neep_renderer_destroy(renderer);
}

struct dispatcher {
    struct neep_renderer *renderer;
    struct fence_log *log;
    size_t want;
};

static void *dispatch_thread(void *arg)
{
    struct dispatcher *d = arg;
    collect(d->renderer, d->log, d->want);
    return NULL;
}

TEST(dispatch_runs_on_another_thread)
{
    struct neep_renderer *renderer = probe_renderer(NULL);
    CHECK_EQ(neep_context_create(renderer, 1, PROBE_CAPSET_ID, NULL, 0), 0);
    static struct fence_log log;
    log.count = 0;
    struct dispatcher d = {renderer, &log, 2000};
    pthread_t thread;
    CHECK_EQ(pthread_create(&thread, NULL, dispatch_thread, &d), 0);
    for (uint64_t n = 1; n <= 2000; n++) {
        struct neep_fence fence = {.flags = NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX,
                                   .fence_id = n,
                                   .ctx_id = 1,
                                   .ring_idx = (uint32_t)(n % 4)};
        CHECK_EQ(neep_fence_create(renderer, &fence), 0);
    }
    pthread_join(thread, NULL);
    uint64_t last[4] = {0};
    for (size_t i = 0; i < log.count; i++) {
        CHECK(log.fences[i].fence_id > last[log.fences[i].ring_idx]);
        last[log.fences[i].ring_idx] = log.fences[i].fence_id;
    }
    neep_renderer_destroy(renderer);
}

/* ---- host blobs -------------------------------------------------------------------------- */

TEST(host_blobs_map_share_and_unmap)
{
    struct neep_renderer *renderer = probe_renderer(NULL);
    CHECK_EQ(neep_context_create(renderer, 1, PROBE_CAPSET_ID, NULL, 0), 0);
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_HOST3D,
                                    .blob_flags =
                                        NEEP_BLOB_FLAG_USE_MAPPABLE | NEEP_BLOB_FLAG_USE_SHAREABLE,
                                    .blob_id = 1,
                                    .size_bytes = 65536};
    CHECK_EQ(neep_resource_create_blob(renderer, 1, 20, &blob, NULL, 0), 0);
    CHECK(neep_renderer_memory_used_bytes(renderer) >= 65536);
    uint32_t map_info;
    CHECK_EQ(neep_resource_map_info(renderer, 20, &map_info), 0);
    CHECK_EQ(map_info, 0x31);
    void *ptr;
    uint64_t size;
    CHECK_EQ(neep_resource_map(renderer, 20, &ptr, &size), 0);
    CHECK_EQ(size, 65536);
    memset(ptr, 0x5a, 65536);
    CHECK_EQ(neep_resource_map(renderer, 20, &ptr, &size), -EEXIST);

    int fd;
    uint32_t type;
    CHECK_EQ(neep_resource_export(renderer, 20, &fd, &type), 0);
    uint8_t byte = 0;
    CHECK_EQ(pread(fd, &byte, 1, 65535), 1);
    CHECK_EQ(byte, 0x5a);
    close(fd);
    CHECK_EQ(neep_resource_unmap(renderer, 20), 0);
    CHECK_EQ(neep_resource_unmap(renderer, 20), -EINVAL);

    /* Not shareable: no export; not mappable: no map. */
    blob.blob_flags = 0;
    CHECK_EQ(neep_resource_create_blob(renderer, 1, 21, &blob, NULL, 0), 0);
    CHECK_EQ(neep_resource_export(renderer, 21, &fd, &type), -EOPNOTSUPP);
    CHECK_EQ(neep_resource_map(renderer, 21, &ptr, &size), -EOPNOTSUPP);
    CHECK_EQ(neep_resource_map_info(renderer, 21, &map_info), -EOPNOTSUPP);
    CHECK_EQ(neep_resource_map(renderer, 22, &ptr, &size), -ENOENT);
    /* A mapped blob stays until it is unmapped: the VMM maps it into the guest's window, and
     * freed under that mapping its memory would go on serving the guest. */
    CHECK_EQ(neep_resource_map(renderer, 20, &ptr, &size), 0);
    CHECK_EQ(neep_resource_unref(renderer, 20), -EBUSY);
    CHECK_EQ(neep_resource_unmap(renderer, 20), 0);
    CHECK_EQ(neep_resource_unref(renderer, 20), 0);
    /* The renderer's end still cleans up a blob left mapped. */
    blob.blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE;
    CHECK_EQ(neep_resource_create_blob(renderer, 1, 23, &blob, NULL, 0), 0);
    CHECK_EQ(neep_resource_map(renderer, 23, &ptr, &size), 0);
    neep_renderer_destroy(renderer);
}

TEST(host_blobs_are_charged_to_the_budget)
{
    const struct neep_context_type *types[] = {&probe_type};
    struct neep_renderer_config config = {.capset_mask = 1ull << PROBE_CAPSET_ID,
                                          .memory_budget_bytes = 1 << 20,
                                          .log_fn = support_log};
    struct neep_renderer *renderer;
    CHECK_EQ(neep_renderer_create_with_types(&config, types, 1, &renderer), 0);
    CHECK_EQ(neep_context_create(renderer, 1, PROBE_CAPSET_ID, NULL, 0), 0);
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_HOST3D, .size_bytes = 2 << 20};
    CHECK_EQ(neep_resource_create_blob(renderer, 1, 5, &blob, NULL, 0), -ENOMEM);
    blob.size_bytes = UINT64_MAX;
    CHECK_EQ(neep_resource_create_blob(renderer, 1, 5, &blob, NULL, 0), -ENOMEM);
    blob.size_bytes = 4096;
    CHECK_EQ(neep_resource_create_blob(renderer, 1, 5, &blob, NULL, 0), 0);
    neep_renderer_destroy(renderer);
}

/* ---- global fences kept by a resource provider (virgl's, played here) ---------------------- */

static uint32_t provider_seqs[8];
static size_t provider_seq_count;

static int record_global_fence(struct neep_renderer *renderer, const struct neep_fence *fence,
                               uint32_t seq)
{
    CHECK(provider_seq_count < 8);
    provider_seqs[provider_seq_count++] = seq;
    return 0;
}

static const struct neep_resource_provider_ops recording_provider = {
    .name = "recording",
    .create_global_fence = record_global_fence,
};

/* A guest's fence ids start over after a reset, while the provider may still complete the old
 * guest's fences: those must not complete the new guest's fences of the same ids. */
TEST(provider_fences_dropped_by_a_reset_do_not_complete_new_ones)
{
    struct neep_renderer *renderer = probe_renderer(NULL);
    renderer->resource_provider = &recording_provider;
    struct neep_fence fence = {.flags = NEEP_FENCE_FLAG_FENCE, .fence_id = 5};
    CHECK_EQ(neep_fence_create(renderer, &fence), 0);
    neep_fences_drop_pending_global(renderer);
    CHECK_EQ(neep_fence_create(renderer, &fence), 0);
    CHECK_EQ(provider_seq_count, 2);
    CHECK(provider_seqs[0] != provider_seqs[1]);
    struct fence_log log = {0};
    neep_timeline_signal_seq(&renderer->global_timeline, provider_seqs[0]);
    CHECK_EQ(neep_renderer_dispatch_fences(renderer, record_fence, &log), 0);
    neep_timeline_signal_seq(&renderer->global_timeline, provider_seqs[1]);
    CHECK_EQ(neep_renderer_dispatch_fences(renderer, record_fence, &log), 1);
    CHECK_EQ(log.fences[0].fence_id, 5);
    renderer->resource_provider = NULL;
    neep_renderer_destroy(renderer);
}

/* The guest decides how many fences wait: their room is charged to the budget. */
TEST(waiting_fences_are_charged_to_the_budget)
{
    struct neep_renderer_config config = {.memory_budget_bytes = 16u << 10};
    struct neep_renderer *renderer;
    CHECK_EQ(neep_renderer_create(&config, &renderer), 0);
    int created = 0, ret = 0;
    for (uint64_t id = 1; id <= 4096 && ret == 0; id++) {
        struct neep_fence fence = {.flags = NEEP_FENCE_FLAG_FENCE, .fence_id = id};
        ret = neep_fence_create(renderer, &fence);
        created += ret == 0;
    }
    CHECK_EQ(ret, -ENOMEM);
    CHECK(created >= 128 && created < 4096);
    CHECK(neep_renderer_memory_used_bytes(renderer) <= neep_renderer_memory_budget_bytes(renderer));
    CHECK_EQ(neep_renderer_dispatch_fences(renderer, NULL, NULL), created);
    neep_renderer_destroy(renderer);
}
