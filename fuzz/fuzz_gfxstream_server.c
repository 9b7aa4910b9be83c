/*
 * neep's side of the gfxstream server protocol (src/contexts/gfxstream_remote.c), against a
 * server that a guest has taken over: this harness plays the server on a thread of its own,
 * answering every call from the input — right or wrong op, any return value, short replies,
 * capsets of any size, with no fd, a sealed memfd, an unsealed one or a pipe — and sending
 * events between (fences with any context, ring and id; log lines without an end; messages of
 * the wrong size), or hanging up. The main thread meanwhile drives the renderer's API as a guest
 * would (contexts, blobs mapped and exported, 3D resources with backing and transfers, control
 * commands, fences). Each input makes and destroys one renderer; it must leave no fd open.
 *
 * Input: [n] then n bytes for the server, then the guest's operations.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <neep/renderer.h>

#include "contexts/gfxstream_internal.h"
#include "contexts/gfxstream_protocol.h"
#include "fuzz_input.h"
#include "open_fds.h"
#include "renderer/renderer_internal.h"
#include "util/fd_passing.h"

#define GUEST_BYTES (256u << 10)
static uint8_t guest_memory[GUEST_BYTES];

static struct input script; /* the server thread's bytes */
static int server_calls = -1, server_events = -1;
static pthread_t server_thread;
static bool server_running;

static uint8_t vulkan_caps[104];

/* An fd of the kind the script asks for, or -1. */
static int make_fd(uint32_t kind, uint32_t size_bytes)
{
    if (kind == 3) {
        int ends[2];
        if (pipe2(ends, O_CLOEXEC) < 0) {
            return -1;
        }
        close(ends[1]);
        return ends[0];
    }
    int fd = memfd_create("fuzz-blob", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        return -1;
    }
    if (ftruncate(fd, size_bytes) < 0) {
        close(fd);
        return -1;
    }
    if (kind == 1) {
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    }
    return fd;
}

static void send_events(uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        struct gfxstream_event event;
        memset(&event, 'x', sizeof(event)); /* a log line without its end */
        event.type = 1 + take(&script, 1) % 3;
        event.level = take(&script, 2);
        event.fence.flags = take(&script, 1) % 4;
        event.fence.fence_id = take(&script, 1) % 16;
        event.fence.ctx_id = take(&script, 1) % 4;
        event.fence.ring_idx = (uint8_t)take(&script, 1);
        size_t size = take(&script, 1) % 8 ? sizeof(event) : take(&script, 2) % sizeof(event);
        send(server_events, &event, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
}

/* One reply, as the script says; false once the server hangs up. */
static bool answer(const struct gfxstream_call *call)
{
    static struct gfxstream_reply reply;
    uint32_t how = take(&script, 1);
    send_events(how >> 6);
    if ((how & 7) == 7) {
        return false;
    }
    memset(&reply, 0, GFXSTREAM_REPLY_HEADER_BYTES);
    reply.op = how & 8 ? take(&script, 1) % GFXSTREAM_CALL_OP_END : call->op;
    reply.ret = how & 16 ? -(int32_t)(take(&script, 1) % 40) : 0;
    size_t length = GFXSTREAM_REPLY_HEADER_BYTES;
    int fd = -1;
    switch (call->op) {
    case GFXSTREAM_CALL_START:
        reply.value64 = how & 32 ? take(&script, 4) : (1ull << 19) - 1;
        break;
    case GFXSTREAM_CALL_GET_CAPSET: {
        uint32_t size =
            how & 32 ? take(&script, 2) % (GFXSTREAM_MAX_CAPSET_BYTES + 2) : sizeof(vulkan_caps);
        size = size > GFXSTREAM_MAX_CAPSET_BYTES ? GFXSTREAM_MAX_CAPSET_BYTES : size;
        memcpy(reply.data, vulkan_caps, sizeof(vulkan_caps));
        reply.values[1] = how & 32 && take(&script, 1) % 4 == 0 ? take(&script, 2) : size;
        length += size;
        break;
    }
    case GFXSTREAM_CALL_EXPORT_BLOB: {
        uint32_t kind = how & 32 ? take(&script, 1) % 4 : 1;
        uint32_t size = how & 32 ? take(&script, 2) * 16u : 65536;
        reply.values[0] = how & 32 && take(&script, 1) % 4 == 0 ? take(&script, 1) : 4;
        fd = kind ? make_fd(kind, size) : -1;
        break;
    }
    case GFXSTREAM_CALL_MAP_INFO:
        reply.values[0] = how & 32 ? take(&script, 1) : 1;
        break;
    }
    if (how & 32 && call->op != GFXSTREAM_CALL_GET_CAPSET && take(&script, 1) % 8 == 0) {
        length = take(&script, 1) % (GFXSTREAM_REPLY_HEADER_BYTES + 8);
    }
    union fd_passing_control control;
    struct iovec iov = {.iov_base = &reply, .iov_len = length};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    fd_passing_attach(&msg, &control, &fd, fd >= 0 ? 1 : 0);
    sendmsg(server_calls, &msg, MSG_NOSIGNAL);
    if (fd >= 0) {
        close(fd);
    }
    return true;
}

static void *serve(void *unused)
{
    (void)unused;
    for (;;) {
        struct gfxstream_call call;
        union fd_passing_control control;
        struct iovec iov = {.iov_base = &call, .iov_len = sizeof(call)};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.bytes,
                             .msg_controllen = sizeof(control.bytes)};
        ssize_t got = recvmsg(server_calls, &msg, MSG_CMSG_CLOEXEC);
        if (got <= 0) {
            break;
        }
        int fd = fd_passing_take_first(&msg);
        if (fd >= 0) {
            close(fd);
        }
        if (call.op & GFXSTREAM_CALL_NO_REPLY) {
            send_events(take(&script, 1) % 2);
            continue;
        }
        if (!answer(&call)) {
            break;
        }
    }
    close(server_calls);
    close(server_events);
    return NULL;
}

static int fake_spawn(int call_fd, int event_fd)
{
    server_calls = fcntl(call_fd, F_DUPFD_CLOEXEC, 0);
    server_events = fcntl(event_fd, F_DUPFD_CLOEXEC, 0);
    server_running = pthread_create(&server_thread, NULL, serve, NULL) == 0;
    return server_running ? 0 : -EAGAIN;
}

static void quiet_log(void *user_data, enum neep_log_level level, const char *message)
{
    (void)user_data, (void)level;
    if (getenv("NEEP_FUZZ_LOG")) {
        fprintf(stderr, "%s\n", message);
    }
}

static void ignore_fence(void *user_data, const struct neep_fence *fence)
{
    (void)user_data, (void)fence;
}

static void guest_op(struct neep_renderer *renderer, struct input *in)
{
    uint32_t id = take_id(in);
    switch (take(in, 1) % 12) {
    case 0:
        neep_context_create(renderer, id, NEEP_CAPSET_GFXSTREAM_VULKAN, "fuzz", 4);
        break;
    case 1: {
        struct neep_blob_create blob = {
            .blob_mem = NEEP_BLOB_MEM_HOST3D,
            .blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE | NEEP_BLOB_FLAG_USE_SHAREABLE,
            .blob_id = take(in, 1) % 4 ? 0 : take(in, 1),
            .size_bytes = take(in, 1) % 2 ? 65536 : 1 + take(in, 3),
        };
        neep_resource_create_blob(renderer, take_id(in), id, &blob, NULL, 0);
        break;
    }
    case 2: {
        void *mapping;
        uint64_t bytes;
        if (neep_resource_map(renderer, id, &mapping, &bytes) == 0) {
            ((volatile uint8_t *)mapping)[0] = 1;
            ((volatile uint8_t *)mapping)[bytes - 1] = 1;
        }
        break;
    }
    case 3:
        neep_resource_unmap(renderer, id);
        break;
    case 4: {
        int fd = -1;
        uint32_t type;
        if (neep_resource_export(renderer, id, &fd, &type) == 0) {
            close(fd);
        }
        break;
    }
    case 5: {
        struct neep_resource_create_3d create = {.target = 2,
                                                 .format = take(in, 1) % 2 ? 1 : 7,
                                                 .bind = 2,
                                                 .width = 1 + take(in, 1),
                                                 .height = 1 + take(in, 1),
                                                 .depth = 1,
                                                 .array_size = 1};
        neep_resource_create_3d(renderer, id, &create);
        break;
    }
    case 6: {
        uint32_t offset = take(in, 2) * 2u, size = 1 + take(in, 3) % GUEST_BYTES;
        offset %= GUEST_BYTES;
        size = size > GUEST_BYTES - offset ? GUEST_BYTES - offset : size;
        struct iovec backing = {guest_memory + offset, size};
        neep_resource_attach_backing(renderer, id, &backing, 1);
        break;
    }
    case 7: {
        struct neep_transfer box = {.x = take(in, 1),
                                    .y = take(in, 1),
                                    .width = take(in, 1),
                                    .height = take(in, 1),
                                    .depth = 1};
        if (take(in, 1) % 2) {
            neep_resource_transfer_write(renderer, 0, id, &box);
        } else {
            neep_resource_transfer_read(renderer, 0, id, &box, NULL, 0);
        }
        break;
    }
    case 8: {
        static const uint32_t ops[] = {0x1001, 0x1002, 0xa003, 0xf002, 0xa004};
        uint32_t words[14] = {ops[take(in, 1) % 5], take_id(in), 2, 1, 2, 16, 16, 1, 1};
        uint64_t blob_id = take(in, 1);
        memcpy(&words[12], &blob_id, sizeof(blob_id));
        neep_context_submit(renderer, id, words, words[0] == 0xa003 ? 56 : 16);
        break;
    }
    case 9: {
        struct neep_fence fence = {.flags = NEEP_FENCE_FLAG_FENCE |
                                            (take(in, 1) % 2 ? NEEP_FENCE_FLAG_RING_IDX : 0),
                                   .fence_id = take(in, 2),
                                   .ctx_id = id,
                                   .ring_idx = take(in, 1) % 4};
        neep_fence_create(renderer, &fence);
        break;
    }
    case 10:
        neep_context_attach_resource(renderer, take_id(in), id);
        break;
    case 11:
        if (take(in, 1) % 2) {
            neep_resource_unmap(renderer, id);
            neep_resource_unref(renderer, id);
        } else {
            neep_context_destroy(renderer, id);
        }
        break;
    }
    neep_renderer_dispatch_fences(renderer, ignore_fence, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setenv("NEEP_GFXSTREAM_TIMEOUT_MS", "1000", 1);
        gfxstream_remote_spawn_hook = fake_spawn;
        uint32_t header[3] = {1, 12288, 1u << 20}; /* protocol version, ring and buffer bytes */
        memcpy(vulkan_caps, header, sizeof(header));
        ready = true;
    }
    if (size < 1) {
        return 0;
    }
    size_t script_bytes = data[0] < size - 1 ? data[0] : size - 1;
    script = (struct input){data + 1, script_bytes};
    struct input ops = {data + 1 + script_bytes, size - 1 - script_bytes};
    int fds_before = count_open_fds();
    struct neep_renderer_config config = {
        .capset_mask = (1ull << NEEP_CAPSET_GFXSTREAM_VULKAN) | (1ull << NEEP_CAPSET_CROSS_DOMAIN),
        .memory_budget_bytes = 64u << 20,
        .log_fn = quiet_log,
    };
    struct neep_renderer *renderer = NULL;
    if (neep_renderer_create(&config, &renderer) == 0) {
        for (int i = 0; i < 64 && ops.size > 0; i++) {
            guest_op(renderer, &ops);
        }
        for (uint32_t id = 0; id <= 8; id++) {
            neep_context_destroy(renderer, id);
            neep_resource_unmap(renderer, id);
            neep_resource_unref(renderer, id);
        }
        neep_renderer_destroy(renderer);
    }
    if (server_running) {
        pthread_join(server_thread, NULL); /* it ends when neep closes its sockets */
        server_running = false;
    }
    if (count_open_fds() != fds_before) {
        fprintf(stderr, "fuzz_gfxstream_server: %d fds open before the input, %d after\n",
                fds_before, count_open_fds());
        abort();
    }
    return 0;
}
