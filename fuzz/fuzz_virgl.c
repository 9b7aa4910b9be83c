/*
 * The virgl context types through neep's API, as a hostile guest drives them: contexts of both
 * capsets, 3D resources with any parameters, backing anywhere in a fixed guest buffer,
 * transfers both ways, blobs, attach and detach, fences on both timelines, and submits of GL
 * work built from templates with fuzzed fields (resource ids, formats, levels, colours), plus
 * command words virglrenderer must refuse. The command stream's own decoding is
 * virglrenderer's; what is fuzzed here is everything neep puts around it.
 *
 * virglrenderer is one instance per process and slow to start (EGL), so one renderer serves
 * every input; each input ends by destroying what it made, and the renderer's memory charge
 * must then be back where it started.
 *
 * Under ASan, nine tenths of the time goes to Mesa making each context (perf: page faults
 * and unmaps of large allocations, each a fresh mapping in ASan's allocator). Long campaigns
 * may run on Mesa's no-op wrapper (GALLIUM_NOOP=1, scripts/fuzz-campaign.sh's
 * NEEP_FUZZ_VIRGL_NOOP): the same screen answers for caps and formats and virglrenderer
 * decodes as before, but nothing draws; 6x the inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <neep/renderer.h>

#include "fuzz_input.h"
#include "fuzz_renderer_common.h"

#include "contexts/virgl_internal.h"
#include "renderer/renderer_internal.h"

#define GUEST_BYTES (1u << 20)
#define MAX_ID      8
static uint8_t guest_memory[GUEST_BYTES];
static uint8_t read_buffer[1u << 16];
static const struct fuzz_memory memory = {guest_memory, GUEST_BYTES, read_buffer,
                                          sizeof(read_buffer)};
static struct neep_renderer *renderer;
static uint64_t idle_memory_bytes;

static void take_transfer(struct input *in, struct neep_transfer *t)
{
    t->x = take_dimension(in);
    t->y = take_dimension(in);
    t->z = take(in, 1) % 3;
    t->width = take_dimension(in);
    t->height = take_dimension(in);
    t->depth = take(in, 1) % 3;
    t->level = take(in, 1) % 3;
    t->stride_bytes = take(in, 1) & 1 ? 0 : take_dimension(in);
    t->layer_stride_bytes = take(in, 1) & 1 ? 0 : take_dimension(in);
    t->offset_bytes = take(in, 1) & 1 ? 0 : take_dimension(in);
}

/* virgl protocol words (virglrenderer's virgl_protocol.h). */
#define VIRGL_CMD(cmd, object, length) ((cmd) | ((object) << 8) | ((uint32_t)(length) << 16))

/* GL work: a surface on a fuzzed resource, bound as the framebuffer, cleared; or words
 * virglrenderer must refuse (unknown commands, lengths past the end). */
static size_t take_commands(struct input *in, uint32_t *words, size_t max_words)
{
    size_t n = 0;
    switch (take(in, 1) % 3) {
    case 0: {
        uint32_t surface = 1 + take(in, 1) % 4;
        words[n++] = VIRGL_CMD(1, 8, 5); /* CREATE_OBJECT surface */
        words[n++] = surface;
        words[n++] = take_id(in);
        words[n++] = take(in, 1) % 8 ? 1 : take(in, 1); /* format */
        words[n++] = take(in, 1) % 4 ? 0 : take(in, 1); /* level */
        words[n++] = take(in, 1) % 4 ? 0 : take(in, 4); /* layers */
        words[n++] = VIRGL_CMD(5, 0, 3);                /* SET_FRAMEBUFFER_STATE */
        words[n++] = 1;
        words[n++] = 0;
        words[n++] = surface;
        words[n++] = VIRGL_CMD(7, 0, 8); /* CLEAR */
        words[n++] = 4;
        for (int i = 0; i < 7; i++) {
            words[n++] = take(in, 1) % 2 ? 0x3f800000u : 0;
        }
        break;
    }
    case 1:
        words[n++] = VIRGL_CMD(0x80 + take(in, 1) % 0x7f, take(in, 1), take(in, 1) % 4);
        break;
    default:
        /* A header whose length runs past the end of the stream. */
        words[n++] = VIRGL_CMD(7, 0, 8 + take(in, 1));
        words[n++] = 4;
        break;
    }
    (void)max_words;
    return n;
}

static void quiet_log(void *user_data, enum neep_log_level level, const char *message)
{
    (void)user_data;
    (void)level;
    if (getenv("NEEP_FUZZ_LOG")) {
        fprintf(stderr, "%s\n", message);
    }
}

static void start_renderer(void)
{
    struct neep_renderer_config config = {
        .capset_mask = (1ull << NEEP_CAPSET_VIRGL) | (1ull << NEEP_CAPSET_VIRGL2),
        .memory_budget_bytes = 64u << 20,
        .log_fn = quiet_log,
    };
    if (neep_renderer_create(&config, &renderer) < 0) {
        fprintf(stderr, "fuzz_virgl: no virgl renderer on this host\n");
        abort();
    }
    idle_memory_bytes = fuzz_idle_memory_bytes(renderer);
}

/* Contexts destroyed while OpenGL fences are in flight stay (and stay charged) until
 * virglrenderer's thread has completed them all: microseconds on the no-op driver, so waited
 * for in 50 us steps. */
static void end_input(void)
{
    for (uint32_t i = 0; i <= MAX_ID; i++) {
        neep_context_destroy(renderer, i);
        neep_resource_unref(renderer, i);
    }
    for (uint32_t waited_us = 0;; waited_us += 50) {
        virgl_reap_retired_contexts();
        if (fuzz_idle_memory_bytes(renderer) == idle_memory_bytes) {
            break;
        }
        if (waited_us > 10u * 1000 * 1000) {
            fprintf(stderr, "fuzz_virgl: a destroyed context's fences did not complete in 10 s\n");
            abort();
        }
        usleep(50);
    }
    fuzz_end_input(renderer, MAX_ID, idle_memory_bytes, "fuzz_virgl");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!renderer) {
        start_renderer();
    }
    struct input in = {data, size};
    struct iovec iov[8];
    uint32_t words[32];
    for (int ops = 0; in.size > 0 && ops < 256; ops++) {
        uint32_t id;
        uint32_t op = take(&in, 1) % FUZZ_OPS;
        switch (op) {
        case 0: {
            struct neep_resource_create_3d create = {
                .target = take(&in, 1) % 10,
                .format = take(&in, 1) % 4 ? 1 + take(&in, 1) % 4 : take(&in, 2),
                .bind = take(&in, 4),
                .width = take_dimension(&in) % 4096,
                .height = take_dimension(&in) % 4096,
                .depth = take(&in, 1) % 3,
                .array_size = take(&in, 1) % 3,
                .last_level = take(&in, 1) % 3,
                .nr_samples = take(&in, 1) % 5,
                .flags = take(&in, 1),
            };
            neep_resource_create_3d(renderer, take_id(&in), &create);
            break;
        }
        case 6:
            neep_context_create(renderer, take_id(&in), take(&in, 1) % 4, "fuzz", take(&in, 1) % 5);
            break;
        case 9: {
            id = take_id(&in);
            size_t count = take_commands(&in, words, 32);
            size_t bytes = count * 4 - (take(&in, 1) % 8 == 0 ? take(&in, 1) % 4 : 0);
            neep_context_submit(renderer, id, words, bytes);
            break;
        }
        case 11: {
            struct neep_blob_create blob = {
                .blob_mem = 1 + take(&in, 1) % 3,
                .blob_flags = take(&in, 1) % 8,
                .blob_id = take(&in, 1),
                .size_bytes = take_dimension(&in),
            };
            id = take_id(&in);
            size_t count = take_backing(&in, guest_memory, GUEST_BYTES, iov, 8);
            neep_resource_create_blob(renderer, take_id(&in), id, &blob, iov, count);
            break;
        }
        default:
            fuzz_common_op(renderer, &in, fuzz_common_op_of[op], &memory, take_transfer);
            break;
        }
        neep_renderer_dispatch_fences(renderer, fuzz_ignore_fence, NULL);
    }
    end_input();
    return 0;
}
