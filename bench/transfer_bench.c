/*
 * The device's full-frame copy path on its own: TRANSFER_TO_HOST_2D of a 1920x1080 frame
 * from page-scattered guest backing into the resource, against memcpy of the same bytes,
 * both measured in this run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <neep/renderer.h>

#define WIDTH       1920
#define HEIGHT      1080
#define FRAME_BYTES ((size_t)WIDTH * HEIGHT * 4)
#define PAGE        4096

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    struct neep_renderer_config config = {0};
    struct neep_renderer *renderer;
    if (neep_renderer_create(&config, &renderer) < 0) {
        return 1;
    }
    struct neep_resource_create_3d create = {
        .target = 2, .format = 2, .width = WIDTH, .height = HEIGHT, .depth = 1, .array_size = 1};
    neep_resource_create_3d(renderer, 1, &create);
    /* Pages in a shuffled order, as a guest's memory gives them. */
    size_t pages = FRAME_BYTES / PAGE;
    uint8_t *memory = aligned_alloc(PAGE, FRAME_BYTES);
    memset(memory, 0x5a, FRAME_BYTES);
    struct iovec *iov = malloc(pages * sizeof(*iov));
    for (size_t i = 0; i < pages; i++) {
        size_t page = (i * 7919) % pages;
        iov[i] = (struct iovec){memory + page * PAGE, PAGE};
    }
    neep_resource_attach_backing(renderer, 1, iov, pages);
    struct neep_transfer full = {.width = WIDTH, .height = HEIGHT, .depth = 1};

    uint8_t *a = malloc(FRAME_BYTES), *b = malloc(FRAME_BYTES);
    memset(a, 1, FRAME_BYTES);
    memset(b, 2, FRAME_BYTES);
    double results[2];
    for (int which = 0; which < 2; which++) {
        int rounds = 0;
        double started = now_seconds();
        while (now_seconds() - started < 2.0) {
            if (which == 0) {
                memcpy(b, a, FRAME_BYTES);
            } else {
                neep_resource_transfer_write(renderer, 0, 1, &full);
            }
            rounds++;
        }
        results[which] = (double)FRAME_BYTES * rounds / (now_seconds() - started) / 1e9;
    }
    printf("memcpy: %.2f GB/s\n", results[0]);
    printf("transfer_write, 1920x1080 from 4 KiB scattered pages: %.2f GB/s (%.2fx memcpy)\n",
           results[1], results[1] / results[0]);
    neep_renderer_destroy(renderer);
    free(a);
    free(b);
    free(memory);
    free(iov);
    return 0;
}
