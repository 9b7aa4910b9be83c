/*
 * The gfxstream context types through neep's API on gfxstream's real backend, as a hostile
 * guest drives them: contexts, 3D resources of any shape, backing anywhere in a fixed guest
 * buffer, transfers both ways, host blobs (ring blobs, and ids nobody announced), attach and
 * detach, map, export, fences on every timeline, and gfxstream's control commands built from
 * templates with fuzzed fields (render threads started and pinged on any resource, images
 * announced with any shape, sync waits on made-up handles) or cut short. Everything neep checks
 * in front of the backend, its calls to the backend's server process and what it does when
 * that server dies are what is fuzzed here: a backend that aborts takes only its server (the
 * renderer is then made again, with a new one), never this process.
 *
 * The backend is named by NEEP_GFXSTREAM_LIBRARY (scripts/build-gfxstream.sh builds it), the
 * server by NEEP_GFXSTREAM_SERVER. One renderer serves every input while its server lives; each
 * input ends by destroying what it made, and the renderer's memory charge must then be back
 * where it started.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <neep/renderer.h>

#include "fuzz_input.h"
#include "fuzz_renderer_common.h"

#include "contexts/gfxstream_internal.h"
#include "renderer/renderer_internal.h"

#define GUEST_BYTES (1u << 20)
#define MAX_ID      8
static uint8_t guest_memory[GUEST_BYTES];
static uint8_t read_buffer[1u << 16];
static const struct fuzz_memory memory = {guest_memory, GUEST_BYTES, read_buffer,
                                          sizeof(read_buffer)};
static struct neep_renderer *renderer;
static uint64_t idle_memory_bytes;
static uint64_t ring_and_buffer_bytes;

/* The virgl formats gfxstream knows, and a few it does not. */
static const uint32_t formats[] = {1,  2,  7,  8,   16,  18,  19,  21,  48, 64, 65,
                                   66, 67, 94, 126, 134, 163, 166, 314, 0,  3,  200};

static void take_transfer(struct input *in, struct neep_transfer *t)
{
    t->x = take_dimension(in) % 512;
    t->y = take_dimension(in) % 512;
    t->z = take(in, 1) % 8 ? 0 : 1;
    t->width = take_dimension(in) % 512;
    t->height = take_dimension(in) % 512;
    t->depth = take(in, 1) % 8 ? 1 : take(in, 1) % 3;
    t->level = take(in, 1) % 8 ? 0 : 1;
    t->stride_bytes = take(in, 1) & 1 ? 0 : take_dimension(in);
    t->layer_stride_bytes = 0;
    t->offset_bytes = take(in, 1) & 1 ? 0 : take_dimension(in);
}

/* gfxstream's control commands: opcode and fields from templates, some cut short. */
static size_t take_command(struct input *in, uint32_t *words)
{
    static const uint32_t opcodes[] = {0x1001, 0x1002, 0x1003, 0x9000, 0xa000, 0xa001,
                                       0xa002, 0xa003, 0xa004, 0xf002, 0x9001, 0x4242};
    static const uint32_t sizes[] = {8, 8, 8, 12, 20, 20, 12, 56, 16, 12, 12, 16};
    uint32_t which = take(in, 1) % (sizeof(opcodes) / sizeof(opcodes[0]));
    memset(words, 0, 16 * sizeof(*words));
    words[0] = opcodes[which];
    if (opcodes[which] == 0xa003) { /* RESOURCE_CREATE_3D */
        words[1] = take(in, 1) % 8 ? 2 : take(in, 1) % 6;
        words[2] = formats[take(in, 1) % (sizeof(formats) / sizeof(formats[0]))];
        words[3] = take(in, 1) % 4 ? 2 : take(in, 4);
        words[4] = take_dimension(in) % 8192;
        words[5] = take_dimension(in) % 8192;
        words[6] = take(in, 1) % 4 ? 1 : take(in, 1);
        words[7] = take(in, 1) % 4 ? 1 : take(in, 1);
        words[8] = take(in, 1) % 8 ? 0 : take(in, 1);
        words[9] = take(in, 1) % 8 ? 0 : take(in, 1);
        uint64_t blob_id = take(in, 1) % 4;
        memcpy(&words[12], &blob_id, sizeof(blob_id));
    } else {
        /* Resource ids for the ASG commands, made-up handles for the sync ones. */
        words[1] = take(in, 1) % 2 ? take_id(in) : take(in, 4);
        for (int i = 2; i < 5; i++) {
            words[i] = take(in, 1) % 2 ? 0 : take(in, 4);
        }
    }
    size_t bytes = sizes[which];
    if (take(in, 1) % 8 == 0) {
        bytes = take(in, 1) % (bytes + 8); /* short, long, or not whole dwords */
    }
    return bytes;
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
        .capset_mask = 1ull << NEEP_CAPSET_GFXSTREAM_VULKAN,
        .memory_budget_bytes = 64u << 20,
        .log_fn = quiet_log,
    };
    if (neep_renderer_create(&config, &renderer) < 0 || neep_capset_count(renderer) != 1) {
        fprintf(stderr, "fuzz_gfxstream: no gfxstream backend: set NEEP_GFXSTREAM_LIBRARY to "
                        "the library scripts/build-gfxstream.sh prints, NEEP_GFXSTREAM_SERVER to "
                        "the build's neep-gfxstream-server\n");
        abort();
    }
    uint32_t caps[26] = {0};
    neep_capset_get(renderer, NEEP_CAPSET_GFXSTREAM_VULKAN, 0, caps, sizeof(caps));
    ring_and_buffer_bytes = (uint64_t)caps[1] + caps[2];
    idle_memory_bytes = fuzz_idle_memory_bytes(renderer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!renderer) {
        start_renderer();
    }
    struct input in = {data, size};
    struct iovec iov[8];
    uint32_t words[16];
    for (int ops = 0; in.size > 0 && ops < 128; ops++) {
        uint32_t id;
        uint32_t op = take(&in, 1) % FUZZ_OPS;
        switch (op) {
        case 0: {
            struct neep_resource_create_3d create = {
                .target = take(&in, 1) % 4 ? 2 : take(&in, 1) % 10,
                .format = formats[take(&in, 1) % (sizeof(formats) / sizeof(formats[0]))],
                .bind = take(&in, 1) % 4 ? 2 : take(&in, 4),
                .width = take_dimension(&in) % 2048,
                .height = take_dimension(&in) % 2048,
                .depth = take(&in, 1) % 4 ? 1 : take(&in, 1) % 3,
                .array_size = take(&in, 1) % 4 ? 1 : take(&in, 1) % 3,
                .last_level = take(&in, 1) % 8 ? 0 : 1,
                .nr_samples = take(&in, 1) % 8 ? 0 : take(&in, 1) % 5,
            };
            neep_resource_create_3d(renderer, take_id(&in), &create);
            break;
        }
        case 6:
            neep_context_create(renderer, take_id(&in), NEEP_CAPSET_GFXSTREAM_VULKAN, "fuzz",
                                take(&in, 1) % 5);
            break;
        case 9: {
            id = take_id(&in);
            size_t bytes = take_command(&in, words);
            neep_context_submit(renderer, id, words, bytes);
            break;
        }
        case 11: {
            /* Ring blobs big enough for a render thread, or any size; or ids nobody made. */
            uint64_t blob_size =
                take(&in, 1) % 2 ? ring_and_buffer_bytes : 1 + take_dimension(&in) % (2u << 20);
            struct neep_blob_create blob = {
                .blob_mem = take(&in, 1) % 4 ? NEEP_BLOB_MEM_HOST3D : 1 + take(&in, 1) % 3,
                .blob_flags = take(&in, 1) % 4 ? NEEP_BLOB_FLAG_USE_MAPPABLE : take(&in, 1) % 8,
                .blob_id = take(&in, 1) % 4 ? 0 : take(&in, 1) % 4,
                .size_bytes = blob_size,
            };
            id = take_id(&in);
            size_t count = blob.blob_mem == NEEP_BLOB_MEM_HOST3D
                               ? 0
                               : take_backing(&in, guest_memory, GUEST_BYTES, iov, 8);
            neep_resource_create_blob(renderer, take_id(&in), id, &blob, iov, count);
            break;
        }
        default:
            fuzz_common_op(renderer, &in, fuzz_common_op_of[op], &memory, take_transfer);
            break;
        }
        neep_renderer_dispatch_fences(renderer, fuzz_ignore_fence, NULL);
    }
    fuzz_end_input(renderer, MAX_ID, idle_memory_bytes, "fuzz_gfxstream");
    if (gfxstream_remote_lost()) {
        neep_renderer_destroy(renderer); /* the next input gets a new server */
        renderer = NULL;
    }
    return 0;
}
