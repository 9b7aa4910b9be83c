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
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
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
}

/* The render server's pid: our child whose command name is virgl_render_server. */
static pid_t find_render_server(void)
{
    DIR *proc = opendir("/proc");
    CHECK(proc != NULL);
    pid_t found = 0;
    for (struct dirent *entry; !found && (entry = readdir(proc));) {
        pid_t pid = (pid_t)atoi(entry->d_name);
        if (pid <= 0) {
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
        if (strstr(stat, "(virgl_render_se") && close_paren &&
            sscanf(close_paren + 2, "%*c %d", &ppid) == 1 && ppid == getpid()) {
            found = pid;
        }
    }
    closedir(proc);
    return found;
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
