/*
 * QEMU's 2D sequence on the rutabaga ABI, written against the public header only, the way
 * hw/display/virtio-gpu-rutabaga.c drives it: init with a capset mask, RESOURCE_CREATE_2D as
 * create_3d, ATTACH_BACKING from guest pages, TRANSFER_TO_HOST_2D as transfer_write (offset
 * and stride 0), a fenced command, RESOURCE_FLUSH as transfer_read into QEMU's own image,
 * DETACH_BACKING, UNREF, finish. The pixels read back must be the ones written.
 *
 * Built twice: against the build tree, and (by install_consumer.sh) against an installed
 * copy through pkg-config.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rutabaga_gfx/rutabaga_gfx_ffi.h>

#define WIDTH       640
#define HEIGHT      480
#define PAGE        4096
#define RESOURCE_ID 7

static int fences_seen;
static uint64_t last_fence_id;

static void on_fence(uint64_t user_data, const struct rutabaga_fence *fence)
{
    (void)user_data;
    fences_seen++;
    last_fence_id = fence->fence_id;
}

static void on_debug(uint64_t user_data, const struct rutabaga_debug *debug)
{
    (void)user_data;
    fprintf(stderr, "debug %u: %s\n", debug->debug_type, debug->message);
}

#define EXPECT(call)                                                                               \
    do {                                                                                           \
        int32_t result_ = (call);                                                                  \
        if (result_ != 0) {                                                                        \
            fprintf(stderr, "%s:%d: %s returned %d\n", __FILE__, __LINE__, #call, result_);        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(void)
{
    uint64_t capset_mask = 0;
    EXPECT(rutabaga_calculate_capset_mask("", &capset_mask));

    struct rutabaga_builder builder = {
        .user_data = 0x1234,
        .capset_mask = capset_mask,
        .wsi = RUTABAGA_WSI_SURFACELESS,
        .fence_cb = on_fence,
        .debug_cb = on_debug,
    };
    struct rutabaga *rutabaga = NULL;
    EXPECT(rutabaga_init(&builder, &rutabaga));
    uint32_t num_capsets = 99;
    EXPECT(rutabaga_get_num_capsets(rutabaga, &num_capsets));

    /* RESOURCE_CREATE_2D */
    struct rutabaga_create_3d create = {
        .target = 2,
        .format = 1,
        .bind = 1 << 1,
        .width = WIDTH,
        .height = HEIGHT,
        .depth = 1,
        .array_size = 1,
        .last_level = 0,
        .nr_samples = 0,
        .flags = 1,
    };
    EXPECT(rutabaga_resource_create_3d(rutabaga, RESOURCE_ID, &create));

    /* ATTACH_BACKING: guest pages, mapped by QEMU one iovec per page. */
    size_t frame_bytes = (size_t)WIDTH * HEIGHT * 4;
    size_t pages = (frame_bytes + PAGE - 1) / PAGE;
    uint8_t *guest = aligned_alloc(PAGE, pages * PAGE);
    struct iovec *iov = calloc(pages, sizeof(*iov));
    for (size_t i = 0; i < pages; i++) {
        iov[i].iov_base = guest + i * PAGE;
        iov[i].iov_len = PAGE;
    }
    struct rutabaga_iovecs vecs = {.iovecs = iov, .num_iovecs = pages};
    EXPECT(rutabaga_resource_attach_backing(rutabaga, RESOURCE_ID, &vecs));

    /* The guest draws a pattern; first a damaged rectangle, then the full frame. */
    for (size_t i = 0; i < frame_bytes; i++) {
        guest[i] = (uint8_t)(i * 31 + (i >> 11));
    }
    struct rutabaga_transfer rect = {.x = 100, .y = 50, .w = 200, .h = 100, .d = 1};
    EXPECT(rutabaga_resource_transfer_write(rutabaga, 0, RESOURCE_ID, &rect));
    uint8_t *image = malloc(frame_bytes);
    struct iovec image_iov = {image, frame_bytes};
    struct rutabaga_transfer full = {.w = WIDTH, .h = HEIGHT, .d = 1};
    EXPECT(rutabaga_resource_transfer_read(rutabaga, 0, RESOURCE_ID, &full, &image_iov));
    for (size_t row = 0; row < HEIGHT; row++) {
        for (size_t col = 0; col < WIDTH; col++) {
            size_t at = (row * WIDTH + col) * 4;
            int inside = row >= 50 && row < 150 && col >= 100 && col < 300;
            for (int b = 0; b < 4; b++) {
                uint8_t expected = inside ? guest[at + b] : 0;
                if (image[at + b] != expected) {
                    fprintf(stderr, "damage: pixel (%zu,%zu) byte %d is %u, expected %u\n", col,
                            row, b, image[at + b], expected);
                    return 1;
                }
            }
        }
    }

    EXPECT(rutabaga_resource_transfer_write(rutabaga, 0, RESOURCE_ID, &full));
    struct rutabaga_fence fence = {.flags = RUTABAGA_FLAG_FENCE, .fence_id = 77};
    EXPECT(rutabaga_create_fence(rutabaga, &fence));
    if (fences_seen != 1 || last_fence_id != 77) {
        fprintf(stderr, "fence callback: %d calls, last id %llu\n", fences_seen,
                (unsigned long long)last_fence_id);
        return 1;
    }

    /* RESOURCE_FLUSH: read the whole resource into QEMU's own image. */
    memset(image, 0, frame_bytes);
    EXPECT(rutabaga_resource_transfer_read(rutabaga, 0, RESOURCE_ID, &full, &image_iov));
    if (memcmp(image, guest, frame_bytes) != 0) {
        fprintf(stderr, "flush: the pixels read back differ from those written\n");
        return 1;
    }

    EXPECT(rutabaga_resource_detach_backing(rutabaga, RESOURCE_ID));
    EXPECT(rutabaga_resource_unref(rutabaga, RESOURCE_ID));
    if (rutabaga_resource_unref(rutabaga, RESOURCE_ID) != -ENOENT) {
        fprintf(stderr, "a second unref did not fail with -ENOENT\n");
        return 1;
    }
    EXPECT(rutabaga_finish(&rutabaga));
    if (rutabaga != NULL) {
        fprintf(stderr, "finish left the pointer set\n");
        return 1;
    }
    free(image);
    free(iov);
    free(guest);
    printf("qemu_2d_sequence: %dx%d frame written and read back intact\n", WIDTH, HEIGHT);
    return 0;
}
