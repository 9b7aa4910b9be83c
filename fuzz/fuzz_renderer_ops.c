/*
 * Drives the renderer's public API with a byte stream, as a hostile guest would through a
 * device model: every field of every call comes from the input. Guest memory is a fixed
 * buffer that backing entries point into.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <neep/renderer.h>

#include "fuzz_input.h"

#define GUEST_BYTES (1u << 20)
static uint8_t guest_memory[GUEST_BYTES];
static uint8_t read_buffer[1u << 16];

static void take_transfer(struct input *in, struct neep_transfer *t)
{
    t->x = take_dimension(in);
    t->y = take_dimension(in);
    t->z = take(in, 1) % 3;
    t->width = take_dimension(in);
    t->height = take_dimension(in);
    t->depth = take(in, 1) % 3;
    t->level = take(in, 1) % 2;
    t->stride_bytes = take_dimension(in);
    t->layer_stride_bytes = take_dimension(in);
    t->offset_bytes = ((uint64_t)take(in, 4) << 32 | take(in, 4)) >> (take(in, 1) % 64);
}

static void ignore_fence(void *user_data, const struct neep_fence *fence)
{
    (void)user_data;
    (void)fence;
}

/* Failures are expected by the thousand; the rate-limited log would only slow things down. */
static void quiet_log(void *user_data, enum neep_log_level level, const char *message)
{
    (void)user_data;
    (void)level;
    (void)message;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct neep_renderer_config config = {.memory_budget_bytes = 64u << 20, .log_fn = quiet_log};
    struct neep_renderer *renderer;
    if (neep_renderer_create(&config, &renderer) < 0) {
        abort();
    }
    struct input in = {data, size};
    struct iovec iov[16];
    while (in.size > 0) {
        uint32_t id = 0;
        switch (take(&in, 1) % 12) {
        case 0: {
            struct neep_resource_create_3d create = {
                .target = take(&in, 1) % 4,
                .format = take(&in, 1),
                .width = take_dimension(&in) % 2048,
                .height = take_dimension(&in) % 2048,
                .depth = take(&in, 1) % 2,
                .array_size = take(&in, 1) % 2,
            };
            id = take_id(&in);
            neep_resource_create_3d(renderer, id, &create);
            break;
        }
        case 1:
            neep_resource_unref(renderer, take_id(&in));
            break;
        case 2: {
            id = take_id(&in);
            size_t count = take_backing(&in, guest_memory, GUEST_BYTES, iov, 16);
            neep_resource_attach_backing(renderer, id, iov, count);
            break;
        }
        case 3:
            neep_resource_detach_backing(renderer, take_id(&in));
            break;
        case 4: {
            struct neep_transfer t;
            id = take_id(&in);
            take_transfer(&in, &t);
            neep_resource_transfer_write(renderer, take(&in, 1) % 2, id, &t);
            break;
        }
        case 5: {
            struct neep_transfer t;
            id = take_id(&in);
            take_transfer(&in, &t);
            struct iovec dst = {read_buffer, take(&in, 4) % (sizeof(read_buffer) + 1)};
            bool to_backing = take(&in, 1) & 1;
            neep_resource_transfer_read(renderer, 0, id, &t, to_backing ? NULL : &dst,
                                        to_backing ? 0 : 1);
            break;
        }
        case 6: {
            struct neep_blob_create blob = {
                .blob_mem = take(&in, 1) % 5,
                .blob_flags = take(&in, 1) % 16,
                .blob_id = take(&in, 4),
                .size_bytes = take_dimension(&in),
            };
            id = take_id(&in);
            size_t count = take_backing(&in, guest_memory, GUEST_BYTES, iov, 16);
            neep_resource_create_blob(renderer, take(&in, 1) % 3, id, &blob, iov, count);
            break;
        }
        case 7: {
            struct neep_fence fence = {.flags = take(&in, 1) % 8,
                                       .fence_id = take(&in, 4),
                                       .ctx_id = take(&in, 1) % 3,
                                       .ring_idx = take(&in, 1)};
            neep_fence_create(renderer, &fence);
            break;
        }
        case 8:
            neep_renderer_dispatch_fences(renderer, ignore_fence, NULL);
            break;
        case 9: {
            int fd;
            uint32_t type;
            if (neep_resource_export(renderer, take_id(&in), &fd, &type) == 0) {
                close(fd);
            }
            break;
        }
        case 10: {
            struct neep_resource_info info;
            neep_resource_get_info(renderer, take_id(&in), &info);
            void *ptr;
            uint64_t bytes;
            neep_resource_map(renderer, take_id(&in), &ptr, &bytes);
            break;
        }
        default:
            neep_context_create(renderer, take_id(&in), take(&in, 4), "fuzz", 4);
            break;
        }
    }
    neep_renderer_destroy(renderer);
    return 0;
}
