/*
 * The renderer operations a guest drives the same way whatever the context type: unref,
 * backing attached anywhere in a fixed guest buffer and detached, transfers both ways,
 * context destroy, attach and detach, fences on every timeline, and map / map_info / export.
 * Shared by the targets that keep one renderer across inputs (fuzz_virgl.c, fuzz_gfxstream.c);
 * each brings its own resource, context, blob and command making.
 */
#ifndef NEEP_FUZZ_RENDERER_COMMON_H
#define NEEP_FUZZ_RENDERER_COMMON_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <neep/renderer.h>

#include "fuzz_input.h"

#include "renderer/renderer_internal.h"

/* The buffers the guest's memory and caller memory come from. */
struct fuzz_memory {
    uint8_t *guest;
    uint32_t guest_bytes;
    uint8_t *read_buffer;
    uint32_t read_bytes;
};

/* How a target draws a transfer box (the two target different limits). */
typedef void (*fuzz_take_transfer_fn)(struct input *in, struct neep_transfer *t);

enum fuzz_common_op {
    FUZZ_UNREF,
    FUZZ_ATTACH_BACKING,
    FUZZ_DETACH_BACKING,
    FUZZ_TRANSFER_WRITE,
    FUZZ_TRANSFER_READ,
    FUZZ_CONTEXT_DESTROY,
    FUZZ_CONTEXT_ATTACH_DETACH,
    FUZZ_FENCE,
    FUZZ_MAP_AND_EXPORT,
    FUZZ_COMMON_OP_COUNT,
};

/* The targets' opcode byte (mod FUZZ_OPS) as it has been since their corpora were made: 0, 6, 9
 * and 11 are each target's own (resource, context, submit, blob); the rest are these. */
#define FUZZ_OPS 13
static const enum fuzz_common_op fuzz_common_op_of[FUZZ_OPS] = {
    [1] = FUZZ_UNREF,
    [2] = FUZZ_ATTACH_BACKING,
    [3] = FUZZ_DETACH_BACKING,
    [4] = FUZZ_TRANSFER_WRITE,
    [5] = FUZZ_TRANSFER_READ,
    [7] = FUZZ_CONTEXT_DESTROY,
    [8] = FUZZ_CONTEXT_ATTACH_DETACH,
    [10] = FUZZ_FENCE,
    [12] = FUZZ_MAP_AND_EXPORT,
};

static inline void fuzz_common_op(struct neep_renderer *renderer, struct input *in,
                                  enum fuzz_common_op op, const struct fuzz_memory *memory,
                                  fuzz_take_transfer_fn take_transfer)
{
    struct iovec iov[8];
    uint32_t id;
    switch (op) {
    case FUZZ_UNREF:
        neep_resource_unref(renderer, take_id(in));
        break;
    case FUZZ_ATTACH_BACKING: {
        id = take_id(in);
        size_t count = take_backing(in, memory->guest, memory->guest_bytes, iov, 8);
        neep_resource_attach_backing(renderer, id, iov, count);
        break;
    }
    case FUZZ_DETACH_BACKING:
        neep_resource_detach_backing(renderer, take_id(in));
        break;
    case FUZZ_TRANSFER_WRITE: {
        struct neep_transfer t;
        id = take_id(in);
        take_transfer(in, &t);
        neep_resource_transfer_write(renderer, take(in, 1) % 3, id, &t);
        break;
    }
    case FUZZ_TRANSFER_READ: {
        struct neep_transfer t;
        id = take_id(in);
        take_transfer(in, &t);
        struct iovec dst = {memory->read_buffer, take(in, 4) % (memory->read_bytes + 1)};
        bool to_backing = take(in, 1) & 1;
        neep_resource_transfer_read(renderer, take(in, 1) % 3, id, &t, to_backing ? NULL : &dst,
                                    to_backing ? 0 : 1);
        break;
    }
    case FUZZ_CONTEXT_DESTROY:
        neep_context_destroy(renderer, take_id(in));
        break;
    case FUZZ_CONTEXT_ATTACH_DETACH:
        id = take_id(in);
        if (take(in, 1) & 1) {
            neep_context_attach_resource(renderer, id, take_id(in));
        } else {
            neep_context_detach_resource(renderer, id, take_id(in));
        }
        break;
    case FUZZ_FENCE: {
        struct neep_fence fence = {.flags = take(in, 1) % 4,
                                   .fence_id = take(in, 4),
                                   .ctx_id = take_id(in),
                                   .ring_idx = take(in, 1) % 3};
        neep_fence_create(renderer, &fence);
        break;
    }
    default: {
        void *ptr;
        uint64_t bytes;
        uint32_t map_info;
        id = take_id(in);
        if (neep_resource_map(renderer, id, &ptr, &bytes) == 0) {
            /* A guest may touch all of what is mapped into its window. */
            ((volatile uint8_t *)ptr)[bytes - 1] ^= 0;
            neep_resource_unmap(renderer, id);
        }
        neep_resource_map_info(renderer, id, &map_info);
        int fd;
        uint32_t type;
        if (neep_resource_export(renderer, id, &fd, &type) == 0) {
            close(fd);
        }
        break;
    }
    }
}

static inline void fuzz_ignore_fence(void *user_data, const struct neep_fence *fence)
{
    (void)user_data;
    (void)fence;
}

/* What the renderer holds charged between inputs, less the global fence timeline's room (which
 * keeps what it grew). */
static inline uint64_t fuzz_idle_memory_bytes(struct neep_renderer *renderer)
{
    return neep_renderer_memory_used_bytes(renderer) -
           (uint64_t)renderer->global_timeline.capacity * sizeof(struct neep_fence_entry);
}

/* Ends an input: destroys every context and resource it could have made (ids 0 to max_id);
 * then nothing may stay charged beyond `idle_bytes` and the fence timeline's room. */
static inline void fuzz_end_input(struct neep_renderer *renderer, uint32_t max_id,
                                  uint64_t idle_bytes, const char *target)
{
    for (uint32_t i = 0; i <= max_id; i++) {
        neep_context_destroy(renderer, i);
        neep_resource_unref(renderer, i);
    }
    neep_renderer_dispatch_fences(renderer, fuzz_ignore_fence, NULL);
    if (fuzz_idle_memory_bytes(renderer) != idle_bytes) {
        fprintf(stderr, "%s: %llu bytes still charged after the input, %llu expected\n", target,
                (unsigned long long)fuzz_idle_memory_bytes(renderer),
                (unsigned long long)idle_bytes);
        abort();
    }
}

#endif
