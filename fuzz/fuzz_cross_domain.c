/*
 * The cross-domain command decoder with hostile SUBMIT_3D streams: after an optional valid
 * INIT (so the deeper commands are reachable), the input is submitted as commands, with
 * fences on both rings, while a compositor stand-in on a UNIX socket answers with bytes.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <neep/renderer.h>

#include "contexts/cross_domain_protocol.h"

static char socket_path[108];
static int listener = -1;
static uint8_t rings[2][4096] __attribute__((aligned(4096)));

static void quiet_log(void *user_data, enum neep_log_level level, const char *message)
{
    (void)user_data;
    (void)level;
    (void)message;
}

static void remove_socket(void)
{
    unlink(socket_path);
}

static void setup(void)
{
    snprintf(socket_path, sizeof(socket_path), "/tmp/neep-fuzz-cd-%d", getpid());
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, socket_path);
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    unlink(socket_path);
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) < 0 ||
        listen(listener, 16) < 0) {
        abort();
    }
    atexit(remove_socket);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (listener < 0) {
        setup();
    }
    struct neep_channel channel = {socket_path, CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    struct neep_renderer_config config = {.capset_mask = 1ull << NEEP_CAPSET_CROSS_DOMAIN,
                                          .memory_budget_bytes = 64u << 20,
                                          .log_fn = quiet_log,
                                          .channels = &channel,
                                          .channel_count = 1};
    struct neep_renderer *renderer;
    if (neep_renderer_create(&config, &renderer) < 0) {
        abort();
    }
    neep_context_create(renderer, 1, NEEP_CAPSET_CROSS_DOMAIN, NULL, 0);
    for (uint32_t i = 0; i < 2; i++) {
        struct iovec iov = {rings[i], sizeof(rings[i])};
        struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_GUEST, .size_bytes = 4096};
        neep_resource_create_blob(renderer, 1, 10 + i, &blob, &iov, 1);
        neep_context_attach_resource(renderer, 1, 10 + i);
    }
    int compositor = -1;
    if (size > 0 && (data[0] & 1)) {
        struct cross_domain_init init = {.hdr = {.cmd = CROSS_DOMAIN_CMD_INIT, .cmd_size = 20},
                                         .query_ring_id = 10,
                                         .channel_ring_id = 11,
                                         .channel_type = CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
        if (neep_context_submit(renderer, 1, &init, 20) == 0) {
            compositor = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        }
    }
    if (compositor >= 0 && size > 1 && (data[0] & 2)) {
        /* Something for a POLL to pick up. */
        ssize_t ignored = write(compositor, data, size < 64 ? size : 64);
        (void)ignored;
    }
    if (size > 1) {
        neep_context_submit(renderer, 1, data + 1, size - 1);
        /* Fences on both rings, in whatever state the stream left the context. */
        for (uint32_t ring = 0; ring < 2; ring++) {
            struct neep_fence fence = {.flags = NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX,
                                       .fence_id = ring + 1,
                                       .ctx_id = 1,
                                       .ring_idx = ring};
            neep_fence_create(renderer, &fence);
        }
        neep_renderer_dispatch_fences(renderer, NULL, NULL);
    }
    neep_renderer_destroy(renderer);
    if (compositor >= 0) {
        close(compositor);
    }
    return 0;
}
