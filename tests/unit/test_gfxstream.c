/*
 * The gfxstream context types on gfxstream's real host backend, on lavapipe and llvmpipe.
 * tests/with-gfxstream.sh builds the backend from ../shared/deps (cached) and names it in
 * NEEP_GFXSTREAM_LIBRARY; without ../shared it reports the test skipped. The backend runs in
 * neep's gfxstream server (NEEP_GFXSTREAM_SERVER names the build's). Each test runs in a
 * process of its own (the harness forks).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "renderer/renderer_internal.h"
#include "support.h"

#define VULKAN_MASK       (1ull << NEEP_CAPSET_GFXSTREAM_VULKAN)
#define GLES_MASK         (1ull << NEEP_CAPSET_GFXSTREAM_GLES)
#define CROSS_DOMAIN_MASK (1ull << NEEP_CAPSET_CROSS_DOMAIN)

/* gfxstream's control commands (little-endian dwords, the first the opcode). */
#define CMD_CONTEXT_CREATE         0x1001u
#define CMD_CONTEXT_PING           0x1002u
#define CMD_CREATE_EXPORT_SYNC_VK  0xa000u
#define CMD_RESOURCE_CREATE_3D     0xa003u
#define CMD_PLACEHOLDER_COMMAND_VK 0xf002u

#define FORMAT_B8G8R8A8_UNORM     1u
#define FORMAT_R16G16B16A16_FLOAT 94u
#define BIND_RENDER_TARGET        2u

static int make_renderer(uint64_t mask, uint64_t budget_bytes, struct log_capture *log,
                         struct neep_renderer **out)
{
    struct neep_renderer_config config = {.capset_mask = mask,
                                          .memory_budget_bytes = budget_bytes,
                                          .log_fn = support_log,
                                          .log_user_data = log};
    return neep_renderer_create(&config, out);
}

static struct neep_renderer *vulkan_renderer(struct log_capture *log)
{
    struct neep_renderer *renderer = NULL;
    int ret = make_renderer(VULKAN_MASK | CROSS_DOMAIN_MASK, 256u << 20, log, &renderer);
    if (ret != 0) {
        fprintf(stderr, "renderer: %d, %s\n", ret, log->last_error);
    }
    CHECK_EQ(ret, 0);
    return renderer;
}

static uint64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

/* The ring and buffer an ASG needs, from the Vulkan capset. */
static uint64_t asg_bytes(struct neep_renderer *renderer)
{
    uint32_t caps[26] = {0};
    CHECK_EQ(neep_capset_get(renderer, NEEP_CAPSET_GFXSTREAM_VULKAN, 0, caps, sizeof(caps)), 0);
    return (uint64_t)caps[1] + caps[2];
}

struct fence_log {
    int count;
    uint64_t ids[16];
};

static void record_fence(void *user_data, const struct neep_fence *fence)
{
    struct fence_log *log = user_data;
    if (log->count < 16) {
        log->ids[log->count] = fence->fence_id;
    }
    log->count++;
}

static void wait_fences(struct neep_renderer *renderer, struct fence_log *log, int count)
{
    uint64_t deadline = now_ms() + 10000;
    while (log->count < count && now_ms() < deadline) {
        neep_renderer_dispatch_fences(renderer, record_fence, log);
        if (log->count < count) {
            usleep(1000);
        }
    }
    CHECK_EQ(log->count, count);
}

TEST(capsets_come_from_the_backend)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    CHECK_EQ(neep_capset_count(renderer), 2); /* and cross-domain */
    uint32_t id, version, size;
    CHECK_EQ(neep_capset_info(renderer, 0, &id, &version, &size), 0);
    CHECK_EQ(id, NEEP_CAPSET_GFXSTREAM_VULKAN);
    CHECK_EQ(version, 0); /* the backend never reports one, as rutabaga passes on */
    CHECK_EQ(size, 104);
    uint32_t caps[26];
    CHECK_EQ(neep_capset_get(renderer, id, 0, caps, sizeof(caps)), 0);
    CHECK_EQ(caps[0], 1);              /* protocol version */
    CHECK(caps[1] > 0 && caps[2] > 0); /* ring and buffer sizes */
    neep_renderer_destroy(renderer);
}

TEST(gles_starts_with_surfaceless_egl)
{
    setenv("EGL_PLATFORM", "surfaceless", 1);
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(make_renderer(VULKAN_MASK | GLES_MASK | (1ull << NEEP_CAPSET_GFXSTREAM_COMPOSER),
                           64u << 20, &log, &renderer),
             0);
    CHECK_EQ(neep_capset_count(renderer), 3);
    uint32_t id, version, size;
    CHECK_EQ(neep_capset_info(renderer, 1, &id, &version, &size), 0);
    CHECK_EQ(id, NEEP_CAPSET_GFXSTREAM_GLES);
    CHECK_EQ(size, 16);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_GLES, "gles", 4), 0);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

TEST(a_missing_library_leaves_the_capsets_absent)
{
    setenv("NEEP_GFXSTREAM_LIBRARY", "/nonexistent/libgfxstream_backend.so.0", 1);
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(
        make_renderer(VULKAN_MASK | (1ull << NEEP_CAPSET_CROSS_DOMAIN), 64u << 20, &log, &renderer),
        0);
    /* The rest of the device is there; the gfxstream capset is not, and the log says why. */
    CHECK_EQ(neep_capset_count(renderer), 1);
    uint32_t id, version, size;
    CHECK_EQ(neep_capset_info(renderer, 0, &id, &version, &size), 0);
    CHECK_EQ(id, NEEP_CAPSET_CROSS_DOMAIN);
    CHECK(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, NULL, 0) < 0);
    /* Said by the server, in the log by the time the renderer is made. */
    CHECK(support_log_warned(&log, "cannot load /nonexistent/libgfxstream_backend.so.0"));
    neep_renderer_destroy(renderer);
}

TEST(a_missing_server_program_leaves_the_capsets_absent)
{
    setenv("NEEP_GFXSTREAM_SERVER", "/nonexistent/neep-gfxstream-server", 1);
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(make_renderer(VULKAN_MASK | CROSS_DOMAIN_MASK, 64u << 20, &log, &renderer), 0);
    CHECK_EQ(neep_capset_count(renderer), 1);
    CHECK(support_log_warned(&log, "cannot start /nonexistent/neep-gfxstream-server"));
    neep_renderer_destroy(renderer);
}

TEST(a_library_that_is_not_the_backend_is_refused)
{
    setenv("NEEP_GFXSTREAM_LIBRARY", "libz.so.1", 1);
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK(make_renderer(VULKAN_MASK, 64u << 20, &log, &renderer) < 0);
    CHECK(support_log_said(&log, "is not gfxstream's host backend"));
}

TEST(an_init_that_hangs_is_refused_in_time)
{
    /* GLES without a display to start EGL on: the backend's init waits forever. */
    unsetenv("EGL_PLATFORM");
    unsetenv("DISPLAY");
    unsetenv("WAYLAND_DISPLAY");
    setenv("NEEP_GFXSTREAM_PROBE_TIMEOUT_MS", "3000", 1);
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    uint64_t started = now_ms();
    CHECK(make_renderer(GLES_MASK, 64u << 20, &log, &renderer) < 0);
    uint64_t took = now_ms() - started;
    CHECK(took >= 3000 && took < 8000);
    CHECK(support_log_said(&log, "did not return within 3000 ms"));
    CHECK(support_log_said(&log, "EGL_PLATFORM=surfaceless"));
    /* The server and its child that hung are gone, and asking again fails at once. */
    CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
    started = now_ms();
    CHECK(make_renderer(GLES_MASK, 64u << 20, &log, &renderer) < 0);
    CHECK(now_ms() - started < 1000);
}

TEST(fences_complete_on_every_timeline)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    /* Ring 0 and 1 of the context (the backend may complete them inside create_fence, on
     * this thread), and the global timeline. */
    struct neep_fence fences[] = {
        {NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX, 10, 1, 0},
        {NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX, 11, 1, 1},
        {NEEP_FENCE_FLAG_FENCE, 12, 0, 0},
    };
    uint32_t placeholder[3] = {CMD_PLACEHOLDER_COMMAND_VK, 0, 0};
    CHECK_EQ(neep_context_submit(renderer, 1, placeholder, sizeof(placeholder)), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(neep_fence_create(renderer, &fences[i]), 0);
    }
    struct fence_log done = {0};
    wait_fences(renderer, &done, 3);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

TEST(commands_are_checked_before_the_backend_copies_them)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    uint32_t words[16] = {0};
    CHECK_EQ(neep_context_submit(renderer, 1, words, 6), -EINVAL); /* not whole dwords */
    words[0] = 0x1234;
    CHECK_EQ(neep_context_submit(renderer, 1, words, 16), -EINVAL); /* unknown command */
    CHECK(support_log_said(&log, "unknown command 0x1234"));
    /* Short forms of commands the backend would read past: each is refused. */
    words[0] = CMD_CREATE_EXPORT_SYNC_VK;
    CHECK_EQ(neep_context_submit(renderer, 1, words, 8), -EINVAL);
    CHECK(support_log_said(&log, "cut short"));
    words[0] = CMD_RESOURCE_CREATE_3D;
    CHECK_EQ(neep_context_submit(renderer, 1, words, 52), -EINVAL);
    words[0] = CMD_CONTEXT_CREATE;
    CHECK_EQ(neep_context_submit(renderer, 1, words, 4), -EINVAL);
    /* The whole of a known no-op passes. */
    words[0] = CMD_PLACEHOLDER_COMMAND_VK;
    CHECK_EQ(neep_context_submit(renderer, 1, words, 12), 0);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

static void create_ring_blob(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t id,
                             uint64_t size)
{
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_HOST3D,
                                    .blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE,
                                    .blob_id = 0,
                                    .size_bytes = size};
    CHECK_EQ(neep_resource_create_blob(renderer, ctx_id, id, &blob, NULL, 0), 0);
}

TEST(render_threads_run_only_on_attached_blobs_big_enough)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    uint64_t needed = asg_bytes(renderer);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    /* A blob smaller than the ring and buffer: the backend would abort the process. */
    create_ring_blob(renderer, 1, 10, 4096);
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 10), 0);
    uint32_t create[2] = {CMD_CONTEXT_CREATE, 10};
    CHECK_EQ(neep_context_submit(renderer, 1, create, sizeof(create)), -EINVAL);
    CHECK(support_log_said(&log, "its ring and buffer need"));
    /* Big enough but not attached: its thread would outlive its memory. */
    create_ring_blob(renderer, 1, 11, needed);
    create[1] = 11;
    CHECK_EQ(neep_context_submit(renderer, 1, create, sizeof(create)), -EINVAL);
    /* A resource that is no blob at all. */
    support_create_2d(renderer, 12, 16, 16);
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 12), 0);
    create[1] = 12;
    CHECK_EQ(neep_context_submit(renderer, 1, create, sizeof(create)), -EINVAL);

    /* The real thing: mapped, attached, started, pinged; a second start on it refused. */
    void *mapping;
    uint64_t mapped_bytes;
    CHECK_EQ(neep_resource_map(renderer, 11, &mapping, &mapped_bytes), 0);
    CHECK(mapped_bytes >= needed);
    uint32_t map_info;
    CHECK_EQ(neep_resource_map_info(renderer, 11, &map_info), 0);
    CHECK_EQ(map_info & 0xf, 1); /* cached */
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 11), 0);
    create[1] = 11;
    CHECK_EQ(neep_context_submit(renderer, 1, create, sizeof(create)), 0);
    CHECK_EQ(neep_context_submit(renderer, 1, create, sizeof(create)), -EEXIST);
    uint32_t ping[2] = {CMD_CONTEXT_PING, 11};
    CHECK_EQ(neep_context_submit(renderer, 1, ping, sizeof(ping)), 0);
    ping[1] = 10;
    CHECK_EQ(neep_context_submit(renderer, 1, ping, sizeof(ping)), -EINVAL);
    /* The guest lets go of the blob while its thread runs; then of the context. */
    CHECK_EQ(neep_resource_unmap(renderer, 11), 0);
    CHECK_EQ(neep_resource_unref(renderer, 11), 0);
    create_ring_blob(renderer, 1, 13, needed);
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 13), 0);
    create[1] = 13;
    CHECK_EQ(neep_context_submit(renderer, 1, create, sizeof(create)), 0);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    /* The device goes on. */
    CHECK_EQ(neep_context_create(renderer, 2, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    CHECK_EQ(neep_context_destroy(renderer, 2), 0);
    neep_renderer_destroy(renderer);
}

TEST(render_threads_are_capped)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(make_renderer(VULKAN_MASK, 512u << 20, &log, &renderer), 0);
    uint64_t needed = asg_bytes(renderer);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    int started = 0;
    for (uint32_t id = 100; id < 112; id++) {
        create_ring_blob(renderer, 1, id, needed);
        CHECK_EQ(neep_context_attach_resource(renderer, 1, id), 0);
        uint32_t create[2] = {CMD_CONTEXT_CREATE, id};
        int ret = neep_context_submit(renderer, 1, create, sizeof(create));
        CHECK(ret == 0 || ret == -E2BIG);
        started += ret == 0;
    }
    CHECK_EQ(started, 8);
    CHECK(support_log_said(&log, "too many render threads"));
    /* Detaching one makes room again. */
    CHECK_EQ(neep_context_detach_resource(renderer, 1, 100), 0);
    uint32_t create[2] = {CMD_CONTEXT_CREATE, 111};
    CHECK_EQ(neep_context_submit(renderer, 1, create, sizeof(create)), 0);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

TEST(images_round_trip_through_the_backend)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    struct neep_resource_create_3d create = {.target = NEEP_TARGET_TEXTURE_2D,
                                             .format = FORMAT_B8G8R8A8_UNORM,
                                             .bind = BIND_RENDER_TARGET,
                                             .width = 64,
                                             .height = 48,
                                             .depth = 1,
                                             .array_size = 1};
    CHECK_EQ(neep_resource_create_3d(renderer, 1, &create), 0);
    struct neep_resource_info info;
    CHECK_EQ(neep_resource_get_info(renderer, 1, &info), 0);
    CHECK(info.is_3d_provided);
    size_t size = 64 * 48 * 4;
    uint8_t *memory = malloc(size), *expected = malloc(size);
    support_fill_pattern(expected, size, 7);
    memcpy(memory, expected, size);
    struct iovec iov[64];
    size_t count = support_split(memory, size, iov, 64);
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, iov, count), 0);
    struct neep_transfer whole = {.width = 64, .height = 48, .depth = 1};
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &whole), 0);
    memset(memory, 0, size);
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, 1, &whole, NULL, 0), 0);
    CHECK(memcmp(memory, expected, size) == 0);
    /* What the backend would put somewhere else, or cannot hold, is refused. */
    struct neep_transfer level1 = {.width = 32, .height = 24, .depth = 1, .level = 1};
    CHECK(neep_resource_transfer_write(renderer, 0, 1, &level1) < 0);
    struct neep_transfer outside = {.x = 60, .width = 8, .height = 1, .depth = 1};
    CHECK(neep_resource_transfer_write(renderer, 0, 1, &outside) < 0);
    struct neep_resource_create_3d odd = create;
    odd.format = 200; /* no format of the backend's */
    CHECK_EQ(neep_resource_create_3d(renderer, 2, &odd), -EOPNOTSUPP);
    odd = create;
    odd.target = 3; /* 3D texture */
    odd.depth = 4;
    CHECK_EQ(neep_resource_create_3d(renderer, 2, &odd), -EOPNOTSUPP);
    CHECK_EQ(neep_resource_unref(renderer, 1), 0);
    free(memory);
    free(expected);
    neep_renderer_destroy(renderer);
}

TEST(blobs_the_backend_did_not_make_are_refused)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    uint64_t before = neep_renderer_memory_used_bytes(renderer);
    /* The backend answers 0 for a blob id nobody made: neep finds out. */
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_HOST3D,
                                    .blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE,
                                    .blob_id = 1234,
                                    .size_bytes = 1u << 20};
    CHECK_EQ(neep_resource_create_blob(renderer, 1, 5, &blob, NULL, 0), -EINVAL);
    CHECK(support_log_said(&log, "was not made"));
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), before);
    /* Guest-memory blobs are not the backend's (it ignores the memory). */
    uint8_t page[4096];
    struct iovec iov = {page, sizeof(page)};
    blob = (struct neep_blob_create){.blob_mem = NEEP_BLOB_MEM_GUEST,
                                     .blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE,
                                     .size_bytes = sizeof(page)};
    CHECK(neep_resource_create_blob(renderer, 1, 6, &blob, &iov, 1) < 0);
    /* A ring blob cannot be exported without the backend's external blobs: a clean error. */
    create_ring_blob(renderer, 1, 7, 65536);
    int fd = -1;
    uint32_t handle_type;
    CHECK(neep_resource_export(renderer, 7, &fd, &handle_type) < 0);
    CHECK_EQ(fd, -1);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

TEST(announced_images_are_charged_when_made)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(make_renderer(VULKAN_MASK, 96u << 20, &log, &renderer), 0);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    /* 4096 x 4096 of RGBA16F is 128 MiB: more than the budget, whatever the blob claims. */
    struct gfxstream_cmd {
        uint32_t op, target, format, bind, width, height, depth, array_size, last_level, nr_samples,
            flags, pad;
        uint64_t blob_id;
    } announce = {CMD_RESOURCE_CREATE_3D,
                  NEEP_TARGET_TEXTURE_2D,
                  FORMAT_R16G16B16A16_FLOAT,
                  BIND_RENDER_TARGET,
                  4096,
                  4096,
                  1,
                  1,
                  0,
                  0,
                  0,
                  0,
                  77};
    CHECK_EQ(sizeof(announce), 56);
    CHECK_EQ(neep_context_submit(renderer, 1, &announce, sizeof(announce)), 0);
    uint64_t before = neep_renderer_memory_used_bytes(renderer);
    struct neep_blob_create blob = {
        .blob_mem = NEEP_BLOB_MEM_HOST3D, .blob_id = 77, .size_bytes = 4096};
    CHECK_EQ(neep_resource_create_blob(renderer, 1, 8, &blob, NULL, 0), -ENOMEM);
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), before);
    /* Announcements of shapes the backend cannot hold, or of id 0, are refused. */
    announce.width = 1u << 20;
    CHECK_EQ(neep_context_submit(renderer, 1, &announce, sizeof(announce)), -EOPNOTSUPP);
    announce.width = 64;
    announce.blob_id = 0;
    CHECK_EQ(neep_context_submit(renderer, 1, &announce, sizeof(announce)), -EINVAL);
    /* At most a few announcements wait at a time. */
    int accepted = 0;
    for (uint64_t id = 1000; id < 1040; id++) {
        announce.blob_id = id;
        accepted += neep_context_submit(renderer, 1, &announce, sizeof(announce)) == 0;
    }
    CHECK_EQ(accepted, 32);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

TEST(virgl_and_gfxstream_do_not_share_a_device)
{
    setenv("EGL_PLATFORM", "surfaceless", 1);
    struct log_capture log = {0};
    struct neep_renderer *renderer = NULL;
    int ret = make_renderer(VULKAN_MASK | (1ull << NEEP_CAPSET_VIRGL2), 64u << 20, &log, &renderer);
    if (ret == -EOPNOTSUPP) {
        return; /* a build without virgl: nothing to share */
    }
    CHECK(ret < 0);
    CHECK(support_log_said(&log, "cannot share a device"));
}

/* Every format the backend knows (virgl numbers). */
static const uint32_t backend_formats[] = {1,  2,  7,  8,  16,  18,  19,  21,  48, 64,
                                           65, 66, 67, 94, 126, 134, 163, 166, 314};
#define BACKEND_FORMAT_COUNT (sizeof(backend_formats) / sizeof(backend_formats[0]))

/* Which of backend_formats `renderer` makes a 32x32 image of (bit i: backend_formats[i]);
 * each of the others must be refused, and the log say why. */
static uint32_t formats_made(struct neep_renderer *renderer, struct log_capture *log)
{
    uint32_t made = 0;
    for (size_t i = 0; i < BACKEND_FORMAT_COUNT; i++) {
        struct neep_resource_create_3d create = {.target = NEEP_TARGET_TEXTURE_2D,
                                                 .format = backend_formats[i],
                                                 .bind = BIND_RENDER_TARGET,
                                                 .width = 32,
                                                 .height = 32,
                                                 .depth = 1,
                                                 .array_size = 1};
        int ret = neep_resource_create_3d(renderer, 1, &create);
        if (ret == 0) {
            CHECK_EQ(neep_resource_unref(renderer, 1), 0);
            made |= 1u << i;
            continue;
        }
        char said[96];
        snprintf(said, sizeof(said), "cannot make images of format %u ", backend_formats[i]);
        CHECK_EQ(ret, -EOPNOTSUPP);
        CHECK(support_log_said(log, said));
    }
    return made;
}

TEST(formats_the_host_cannot_make_are_refused_not_fatal)
{
    /* The backend aborts the process on an image its host driver cannot make. Every format
     * it knows is asked for here, in this process: each must be made, or refused because the
     * probe found the host cannot make it (lavapipe cannot make R8G8, for one). */
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    int made = __builtin_popcount(formats_made(renderer, &log));
    fprintf(stderr, "%d formats made, %d refused\n", made, (int)BACKEND_FORMAT_COUNT - made);
    CHECK(made >= 4);
    neep_renderer_destroy(renderer);
}

/* Waits until the server's line about a refused command has come: every line it sent before
 * (its probe's among them) has come by then, on the same socket. */
static void wait_for_a_later_server_line(struct neep_renderer *renderer, struct log_capture *log)
{
    CHECK_EQ(neep_context_create(renderer, 9, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    uint32_t acquire[4] = {0xa004u, 0, 12345, 0}; /* ACQUIRE_SYNC of a sync nobody made */
    CHECK_EQ(neep_context_submit(renderer, 9, acquire, sizeof(acquire)), 0);
    for (int i = 0; i < 500 && !support_log_informed(log, "command 0xa004 refused"); i++) {
        usleep(10000);
    }
    CHECK(support_log_informed(log, "command 0xa004 refused"));
    CHECK_EQ(neep_context_destroy(renderer, 9), 0);
}

TEST(a_renderer_made_again_starts_its_server_without_the_probe)
{
    /* The probe starts the backend once more for each format it aborts on (four on lavapipe
     * here). A renderer made again in the same process (a device reset, or after a guest
     * crashed the server) starts its server on what the first probe found: no probe, and the
     * same formats made and refused. */
    struct log_capture first_log = {0};
    struct neep_renderer *first = vulkan_renderer(&first_log);
    uint32_t first_made = formats_made(first, &first_log);
    wait_for_a_later_server_line(first, &first_log);
    CHECK(support_log_informed(&first_log, "cannot make images of virgl format"));
    neep_renderer_destroy(first);

    struct log_capture again_log = {0};
    struct neep_renderer *again = vulkan_renderer(&again_log);
    CHECK_EQ(formats_made(again, &again_log), first_made);
    wait_for_a_later_server_line(again, &again_log);
    CHECK(!support_log_informed(&again_log, "cannot make images of virgl format"));
    neep_renderer_destroy(again);
}

TEST(transfers_need_backing_as_large_as_the_image)
{
    /* The backend copies the whole image through a host copy of the backing as large as the
     * backing: with less (or none) it would write past that copy's end. */
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    struct neep_resource_create_3d create = {.target = NEEP_TARGET_TEXTURE_2D,
                                             .format = FORMAT_B8G8R8A8_UNORM,
                                             .bind = BIND_RENDER_TARGET,
                                             .width = 64,
                                             .height = 48,
                                             .depth = 1,
                                             .array_size = 1};
    CHECK_EQ(neep_resource_create_3d(renderer, 1, &create), 0);
    struct neep_transfer corner = {.width = 4, .height = 4, .depth = 1, .stride_bytes = 16};
    uint8_t out[64];
    struct iovec dst = {out, sizeof(out)};
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, 1, &corner, &dst, 1), -EINVAL);
    CHECK(support_log_said(&log, "needs backing of at least 12288 bytes (it has 0)"));
    static uint8_t small[1000];
    struct iovec backing = {small, sizeof(small)};
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, &backing, 1), 0);
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &corner), -EINVAL);
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, 1, &corner, NULL, 0), -EINVAL);
    CHECK(support_log_said(&log, "(it has 1000)"));
    CHECK_EQ(neep_resource_unref(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

TEST(render_threads_need_a_ring_blob_within_the_block_size)
{
    /* Past the backend's 16 MiB block it aborts the process. */
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    create_ring_blob(renderer, 1, 10, (16u << 20) + 4096);
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 10), 0);
    uint32_t create[2] = {CMD_CONTEXT_CREATE, 10};
    CHECK_EQ(neep_context_submit(renderer, 1, create, sizeof(create)), -EINVAL);
    CHECK(support_log_said(&log, "at most 16777216"));
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

TEST(render_threads_need_a_ring_blob_of_whole_pages)
{
    /* The backend sub-allocates the ring from the blob's whole 4 KiB pages; a blob whose last
     * page is short fails that, and the backend aborts the process. */
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    uint64_t needed = asg_bytes(renderer);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    create_ring_blob(renderer, 1, 10, needed + 4096 + 100);
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 10), 0);
    uint32_t create[2] = {CMD_CONTEXT_CREATE, 10};
    CHECK_EQ(neep_context_submit(renderer, 1, create, sizeof(create)), -EINVAL);
    CHECK(support_log_said(&log, "of whole 4096-byte pages"));
    CHECK(!support_log_said(&log, "gfxstream contexts are lost"));
    /* Whole pages past what the ring and buffer need: a render thread runs. */
    create_ring_blob(renderer, 1, 11, needed + 4096);
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 11), 0);
    create[1] = 11;
    CHECK_EQ(neep_context_submit(renderer, 1, create, sizeof(create)), 0);
    /* A call with an answer: the server lives. */
    CHECK_EQ(neep_context_create(renderer, 2, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    CHECK_EQ(neep_context_destroy(renderer, 2), 0);
    CHECK(!support_log_said(&log, "gfxstream contexts are lost"));
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

TEST(a_mapped_blob_is_not_freed_under_its_mapping)
{
    /* The VMM maps a blob into the guest's window until it is unmapped: freed before, its
     * memory (the host's heap, reused) would stay in the guest's hands. */
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    create_ring_blob(renderer, 1, 10, 65536);
    void *mapping;
    uint64_t bytes;
    CHECK_EQ(neep_resource_map(renderer, 10, &mapping, &bytes), 0);
    CHECK_EQ(neep_resource_unref(renderer, 10), -EBUSY);
    CHECK(support_log_said(&log, "still mapped"));
    ((volatile uint8_t *)mapping)[bytes - 1] = 1; /* still the guest's */
    CHECK_EQ(neep_resource_unmap(renderer, 10), 0);
    CHECK_EQ(neep_resource_unref(renderer, 10), 0);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

TEST(announcements_the_backend_would_not_keep_are_refused)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    struct gfxstream_cmd {
        uint32_t op, target, format, bind, width, height, depth, array_size, last_level, nr_samples,
            flags, pad;
        uint64_t blob_id;
    } announce = {CMD_RESOURCE_CREATE_3D,
                  NEEP_TARGET_TEXTURE_2D,
                  FORMAT_B8G8R8A8_UNORM,
                  BIND_RENDER_TARGET,
                  64,
                  64,
                  1,
                  1,
                  0,
                  0,
                  0,
                  0,
                  78};
    CHECK_EQ(neep_context_submit(renderer, 1, &announce, sizeof(announce)), 0);
    /* The backend keeps the first of two; and its ids are 32 bits. */
    announce.width = 4096;
    CHECK_EQ(neep_context_submit(renderer, 1, &announce, sizeof(announce)), -EEXIST);
    announce.blob_id = (1ull << 32) + 79;
    CHECK_EQ(neep_context_submit(renderer, 1, &announce, sizeof(announce)), -EINVAL);
    struct neep_blob_create blob = {
        .blob_mem = NEEP_BLOB_MEM_HOST3D, .blob_id = (1ull << 32) + 78, .size_bytes = 4096};
    CHECK_EQ(neep_resource_create_blob(renderer, 1, 5, &blob, NULL, 0), -EINVAL);
    /* A GLES sync on a device without GLES would stall the context's ring for good. */
    uint32_t sync[3] = {0x9000, 1, 2};
    CHECK_EQ(neep_context_submit(renderer, 1, sync, sizeof(sync)), -EINVAL);
    CHECK(support_log_said(&log, "has no GLES"));
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

/* The process of that name whose parent is `parent` (the one found last), or -1. */
static pid_t child_named(pid_t parent, const char *prefix)
{
    pid_t found = -1;
    DIR *proc = opendir("/proc");
    CHECK(proc != NULL);
    for (struct dirent *entry; (entry = readdir(proc));) {
        char path[300], stat_line[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", entry->d_name);
        FILE *file = fopen(path, "r");
        if (!file) {
            continue;
        }
        char *line = fgets(stat_line, sizeof(stat_line), file);
        fclose(file);
        int pid = 0, ppid = 0;
        char name[64] = "";
        char state;
        if (line && sscanf(line, "%d (%63[^)]) %c %d", &pid, name, &state, &ppid) == 4 &&
            ppid == parent && strncmp(name, prefix, strlen(prefix)) == 0) {
            found = pid;
        }
    }
    closedir(proc);
    return found;
}

/* The gfxstream server this process started, or -1. */
static pid_t server_pid(void)
{
    return child_named(getpid(), "neep-gfxstream");
}

static void wait_for_log(struct log_capture *log, const char *text, uint32_t timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    while (!support_log_said(log, text) && now_ms() < deadline) {
        usleep(10000);
    }
    if (!support_log_said(log, text)) {
        fprintf(stderr, "never logged \"%s\"; last error: %s\n", text, log->last_error);
    }
    CHECK(support_log_said(log, text));
}

/* After the server is lost: gfxstream's work is refused, its fences complete at once, the
 * rest of the device goes on, and everything is freed cleanly. */
static void check_lost(struct neep_renderer *renderer, struct log_capture *log)
{
    uint32_t placeholder[3] = {CMD_PLACEHOLDER_COMMAND_VK, 0, 0};
    CHECK_EQ(neep_context_submit(renderer, 1, placeholder, sizeof(placeholder)), -ENODEV);
    CHECK_EQ(neep_context_create(renderer, 2, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), -ENODEV);
    struct neep_fence fences[] = {
        {NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX, 20, 1, 0},
        {NEEP_FENCE_FLAG_FENCE, 21, 0, 0},
    };
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(neep_fence_create(renderer, &fences[i]), 0);
    }
    struct fence_log done = {0};
    wait_fences(renderer, &done, 2);
    /* Other context types go on. */
    CHECK_EQ(neep_context_create(renderer, 3, NEEP_CAPSET_CROSS_DOMAIN, "wl", 2), 0);
    CHECK_EQ(neep_context_destroy(renderer, 3), 0);
    CHECK(support_log_said(log, "gfxstream contexts are lost"));
}

TEST(a_guest_ring_that_crashes_the_backend_takes_only_its_server)
{
    /* The backend reads a type-1 transfer at whatever offset into its buffer the guest's ring
     * names. In the VMM's process that read would crash the VM; here it crashes the server. */
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    pid_t server = server_pid();
    CHECK(server > 0);
    uint64_t needed = asg_bytes(renderer);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    create_ring_blob(renderer, 1, 10, needed);
    void *mapping;
    uint64_t mapped_bytes;
    CHECK_EQ(neep_resource_map(renderer, 10, &mapping, &mapped_bytes), 0);
    CHECK_EQ(neep_context_attach_resource(renderer, 1, 10), 0);
    uint32_t create[2] = {CMD_CONTEXT_CREATE, 10};
    CHECK_EQ(neep_context_submit(renderer, 1, create, sizeof(create)), 0);
    /* The to-host ring at the blob's start: write position at byte 8, entries from byte 128,
     * the transfer mode in config[4] (byte 2196). One entry: {offset 3.75 GiB, 64 MiB}: a read
     * that runs into unmapped memory (SIGSEGV) wherever the buffer lies. */
    volatile uint8_t *ring = mapping;
    uint64_t deadline = now_ms() + 15000;
    while (!support_log_said(&log, "gfxstream contexts are lost") && now_ms() < deadline) {
        uint32_t entry[2] = {0xf0000000u, 64u << 20};
        uint32_t write_pos = 8, mode = 1;
        memcpy((uint8_t *)ring + 128, entry, sizeof(entry));
        memcpy((uint8_t *)ring + 2196, &mode, sizeof(mode));
        __atomic_store_n((uint32_t *)(ring + 8), write_pos, __ATOMIC_SEQ_CST);
        uint32_t ping[2] = {CMD_CONTEXT_PING, 10};
        int ret = neep_context_submit(renderer, 1, ping, sizeof(ping));
        CHECK(ret == 0 || ret == -ENODEV);
        usleep(50000);
    }
    wait_for_log(&log, "was killed by signal", 1000);
    CHECK(kill(server, 0) < 0 && errno == ESRCH); /* reaped */
    ring[mapped_bytes - 1] = 1;                   /* the guest's mapping stays whole */
    check_lost(renderer, &log);
    CHECK_EQ(neep_resource_unmap(renderer, 10), 0);
    CHECK_EQ(neep_resource_unref(renderer, 10), 0);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

TEST(a_server_that_stops_answering_is_killed_in_time)
{
    setenv("NEEP_GFXSTREAM_TIMEOUT_MS", "1000", 1);
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    pid_t server = server_pid();
    CHECK(server > 0);
    CHECK_EQ(kill(-server, SIGSTOP), 0); /* its process group: both its processes */
    /* Fences and most commands go without waiting for an answer; a context does not. */
    uint32_t placeholder[3] = {CMD_PLACEHOLDER_COMMAND_VK, 0, 0};
    CHECK_EQ(neep_context_submit(renderer, 1, placeholder, sizeof(placeholder)), 0);
    uint64_t started = now_ms();
    CHECK(neep_context_create(renderer, 2, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2) < 0);
    uint64_t took = now_ms() - started;
    CHECK(took >= 1000 && took < 3000);
    CHECK(support_log_said(&log, "unanswered for 1000 ms"));
    /* Killed, and reaped by neep's event thread. */
    for (uint64_t deadline = now_ms() + 2000; kill(server, 0) == 0 && now_ms() < deadline;) {
        usleep(10000);
    }
    CHECK(kill(server, 0) < 0 && errno == ESRCH);
    check_lost(renderer, &log);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
    /* The next device gets a server of its own. */
    renderer = vulkan_renderer(&log);
    CHECK(server_pid() > 0 && server_pid() != server);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
    CHECK_EQ(server_pid(), -1); /* ended with its device */
}

TEST(the_server_cannot_name_the_vmm)
{
    /* A guest that takes over the backend has the server's uid, the VMM's: it must not be able
     * to reach the VMM (ptrace, /proc/PID/mem). The server serves from a PID namespace of its
     * own, whose /proc holds only itself, under a seccomp filter. */
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    pid_t outer = server_pid();
    CHECK(outer > 0);
    pid_t inner = child_named(outer, "neep-gfxstream");
    CHECK(inner > 0);
    char path[64], ours[64] = "", theirs[64] = "";
    CHECK(readlink("/proc/self/ns/pid", ours, sizeof(ours) - 1) > 0);
    snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)inner);
    CHECK(readlink(path, theirs, sizeof(theirs) - 1) > 0);
    CHECK(strcmp(ours, theirs) != 0);
    /* Its /proc, as it sees it: itself alone (the probe children are gone). */
    snprintf(path, sizeof(path), "/proc/%d/root/proc", (int)inner);
    DIR *proc = opendir(path);
    CHECK(proc != NULL);
    int processes = 0;
    for (struct dirent *entry; (entry = readdir(proc));) {
        processes += entry->d_name[0] >= '1' && entry->d_name[0] <= '9';
    }
    closedir(proc);
    CHECK_EQ(processes, 1);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)inner);
    FILE *status = fopen(path, "r");
    CHECK(status != NULL);
    bool filtered = false;
    for (char line[256]; fgets(line, sizeof(line), status);) {
        filtered |= strcmp(line, "Seccomp:\t2\n") == 0;
    }
    fclose(status);
    CHECK(filtered);
    CHECK(!support_log_warned(&log, "less isolation"));
    neep_renderer_destroy(renderer);
}

TEST(transfers_of_boxes_outside_the_image_are_refused_at_once)
{
    /* A 1x1 image of a format the renderer does not know the layout of, with 1 MiB of backing:
     * a box of 2^31 x 2^31 texels once made neep copy a megabyte for each of a million rows on
     * the VMM's thread (minutes) before the backend refused it. */
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    struct neep_resource_create_3d create = {.target = NEEP_TARGET_TEXTURE_2D,
                                             .format = 7, /* B5G6R5 */
                                             .bind = BIND_RENDER_TARGET,
                                             .width = 1,
                                             .height = 1,
                                             .depth = 1,
                                             .array_size = 1};
    CHECK_EQ(neep_resource_create_3d(renderer, 1, &create), 0);
    static uint8_t backing_bytes[1u << 20];
    struct iovec backing = {backing_bytes, sizeof(backing_bytes)};
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, &backing, 1), 0);
    struct neep_transfer huge = {.width = 0x7fffffff, .height = 0x7fffffff, .depth = 1};
    struct neep_transfer wide = {.width = 2, .height = 1, .depth = 1};
    struct neep_transfer low = {.y = 1, .width = 1, .height = 1, .depth = 1};
    uint64_t started = now_ms();
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &huge), -EINVAL);
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, 1, &huge, NULL, 0), -EINVAL);
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &wide), -EINVAL);
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &low), -EINVAL);
    CHECK(now_ms() - started < 500);
    CHECK(support_log_said(&log, "only boxes within level 0"));
    struct neep_transfer whole = {.width = 1, .height = 1, .depth = 1};
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &whole), 0);
    CHECK_EQ(neep_resource_unref(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

TEST(what_the_backend_refuses_does_not_flood_the_log)
{
    /* Commands go without waiting for their answer; the server's line about each one it
     * refuses is the guest's doing, and rate-limited as such. */
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    int before = __atomic_load_n(&log.line_count, __ATOMIC_RELAXED);
    uint32_t acquire[4] = {0xa004u, 0, 12345, 0}; /* ACQUIRE_SYNC of a sync nobody made */
    for (int i = 0; i < 2000; i++) {
        CHECK_EQ(neep_context_submit(renderer, 1, acquire, sizeof(acquire)), 0);
    }
    /* A call with an answer: everything before it was served, its lines sent. */
    CHECK_EQ(neep_context_create(renderer, 2, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
    usleep(200000);
    int lines = __atomic_load_n(&log.line_count, __ATOMIC_RELAXED) - before;
    fprintf(stderr, "%d lines for 2000 refused commands\n", lines);
    CHECK(lines < 100);
    CHECK_EQ(neep_context_destroy(renderer, 2), 0);
    CHECK_EQ(neep_context_destroy(renderer, 1), 0);
    neep_renderer_destroy(renderer);
}

TEST(the_server_inherits_none_of_the_vmms_fds)
{
    /* A VMM's guest memory, devices and sockets it left without close-on-exec must not reach a
     * process a guest may take over. */
    int guest_memory = memfd_create("guest-ram-of-the-vmm", 0);
    CHECK(guest_memory >= 0);
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    pid_t inner = child_named(server_pid(), "neep-gfxstream");
    CHECK(inner > 0);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)inner);
    DIR *fds = opendir(path);
    CHECK(fds != NULL);
    int count = 0;
    for (struct dirent *entry; (entry = readdir(fds));) {
        char link[PATH_MAX] = "", fd_path[400];
        snprintf(fd_path, sizeof(fd_path), "%s/%s", path, entry->d_name);
        if (entry->d_name[0] == '.' || readlink(fd_path, link, sizeof(link) - 1) < 0) {
            continue;
        }
        CHECK(strstr(link, "guest-ram-of-the-vmm") == NULL);
        count += atoi(entry->d_name) > 4;
    }
    closedir(fds);
    CHECK_EQ(count, 0); /* only stdio and its two sockets, between calls */
    close(guest_memory);
    neep_renderer_destroy(renderer);
}

/* A renderer on tests/unit/hostile_gfxstream_server.py, which answers EXPORT_BLOB with `kind`. */
static struct neep_renderer *hostile_renderer(struct log_capture *log, const char *kind)
{
    char path[PATH_MAX];
    CHECK(getenv("NEEP_TEST_SOURCE_DIR") != NULL);
    snprintf(path, sizeof(path), "%s/tests/unit/hostile_gfxstream_server.py",
             getenv("NEEP_TEST_SOURCE_DIR"));
    setenv("NEEP_GFXSTREAM_SERVER", path, 1);
    setenv("HOSTILE_EXPORT", kind, 1);
    return vulkan_renderer(log);
}

TEST(the_server_speaks_into_neeps_log_not_the_vmms_terminal)
{
    /* Its standard output and error are a pipe neep reads (a terminal could be taken over, a
     * log file truncated); it has no input, and a session of its own. */
    struct log_capture log = {0};
    struct neep_renderer *renderer = vulkan_renderer(&log);
    pid_t server = server_pid();
    CHECK(server > 0);
    CHECK_EQ(getsid(server), server);
    static const char *const expected[] = {"/dev/null", "pipe:", "pipe:"};
    for (int fd = 0; fd < 3; fd++) {
        char path[64], link[PATH_MAX] = "", ours[PATH_MAX] = "";
        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)server, fd);
        CHECK(readlink(path, link, sizeof(link) - 1) > 0);
        CHECK(strncmp(link, expected[fd], strlen(expected[fd])) == 0);
        /* Not this process's own (under meson, a pipe too). */
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        CHECK(readlink(path, ours, sizeof(ours) - 1) < 0 || fd == 0 || strcmp(link, ours) != 0);
    }
    neep_renderer_destroy(renderer);
    /* What a server writes there reaches neep's log (a warning, as the guest's doing). */
    struct log_capture hostile_log = {0};
    renderer = hostile_renderer(&hostile_log, "pipe");
    uint64_t deadline = now_ms() + 5000;
    while (!support_log_warned(&hostile_log, "hostile server: started") && now_ms() < deadline) {
        usleep(10000);
    }
    CHECK(support_log_warned(&hostile_log, "hostile server: started"));
    neep_renderer_destroy(renderer);
}

TEST(a_taken_over_server_cannot_hand_the_vmm_what_it_would_fault_on)
{
    /* The VMM maps and hands out a blob's fd: only a memfd on tmpfs sealed against shrinking
     * will do. A pipe, a file on a disk (truncatable, not sealable) are refused; a memfd the
     * server left unsealed is sealed by neep before it maps it. */
    static const char *const kinds[] = {"pipe", "file", "unsealed"};
    for (int i = 0; i < 3; i++) {
        struct log_capture log = {0};
        struct neep_renderer *renderer = hostile_renderer(&log, kinds[i]);
        CHECK_EQ(neep_context_create(renderer, 1, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2), 0);
        struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_HOST3D,
                                        .blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE |
                                                      NEEP_BLOB_FLAG_USE_SHAREABLE,
                                        .size_bytes = 65536};
        CHECK_EQ(neep_resource_create_blob(renderer, 1, 10, &blob, NULL, 0), 0);
        void *mapping = NULL;
        uint64_t bytes = 0;
        int fd = -1;
        uint32_t handle_type = 0;
        int mapped = neep_resource_map(renderer, 10, &mapping, &bytes);
        int exported = neep_resource_export(renderer, 10, &fd, &handle_type);
        if (i < 2) {
            CHECK(mapped < 0 && exported < 0);
        } else {
            CHECK_EQ(mapped, 0);
            CHECK_EQ(exported, 0);
            usleep(100000); /* the server tries to shrink it meanwhile */
            ((volatile uint8_t *)mapping)[bytes - 1] = 1; /* no SIGBUS */
            CHECK(fcntl(fd, F_GET_SEALS) & F_SEAL_SHRINK);
            close(fd);
            CHECK_EQ(neep_resource_unmap(renderer, 10), 0);
        }
        CHECK_EQ(neep_resource_unref(renderer, 10), 0);
        CHECK_EQ(neep_context_destroy(renderer, 1), 0);
        neep_renderer_destroy(renderer);
    }
}

TEST(a_server_that_answers_just_in_time_is_lost_all_the_same)
{
    /* Each answer 400 ms late, under the 1 s timeout: the VMM's thread would be held most of
     * the time. After a second's waiting in all (beyond 100 ms a call), the server is lost. */
    setenv("NEEP_GFXSTREAM_TIMEOUT_MS", "1000", 1);
    setenv("HOSTILE_DELAY_MS", "400", 1);
    struct log_capture log = {0};
    struct neep_renderer *renderer = hostile_renderer(&log, "pipe");
    uint64_t started = now_ms();
    int created = 0;
    for (uint32_t id = 1;
         id <= 10 && neep_context_create(renderer, id, NEEP_CAPSET_GFXSTREAM_VULKAN, "vk", 2) == 0;
         id++) {
        created++;
    }
    CHECK(created >= 3 && created <= 4);
    CHECK(now_ms() - started < 2500);
    CHECK(support_log_said(&log, "kept neep waiting"));
    CHECK(support_log_said(&log, "gfxstream contexts are lost"));
    for (int id = 1; id <= created; id++) {
        CHECK_EQ(neep_context_destroy(renderer, (uint32_t)id), 0);
    }
    neep_renderer_destroy(renderer);
}
