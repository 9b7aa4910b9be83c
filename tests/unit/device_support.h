/*
 * A device under test: guest memory as one flat buffer at a fixed guest-physical base, a
 * display that records what it is sent, and helpers that send commands the way Linux's
 * virtio-gpu driver lays them out.
 */
#ifndef NEEP_TEST_DEVICE_SUPPORT_H
#define NEEP_TEST_DEVICE_SUPPORT_H

#include <linux/virtio_gpu.h>
#include <stdbool.h>
#include <stdint.h>

#include <neep/device.h>

#define GUEST_BASE  0x100000ull
#define GUEST_BYTES (64u << 20)

struct recorded_update {
    uint32_t scanout_id, x, y, width, height;
    uint32_t first_pixel; /* x8r8g8b8 of the top-left pixel */
};

struct test_display {
    uint32_t scanout_calls;
    uint32_t scanout_width[NEEP_MAX_SCANOUTS], scanout_height[NEEP_MAX_SCANOUTS];
    uint32_t update_count;
    struct recorded_update last_update;
    uint64_t updated_pixels;
    /* A copy of what each scanout shows, built from the updates. */
    uint32_t *frame[NEEP_MAX_SCANOUTS];
    uint32_t cursor_updates, cursor_moves;
    uint32_t cursor_x, cursor_y, cursor_hot_x, cursor_hot_y;
    bool cursor_visible;
    uint32_t cursor_first_pixel, cursor_second_pixel;
    /* When set, the display owns the layout (as QEMU's front-end does). */
    bool has_layout;
    struct neep_scanout_size layout[NEEP_MAX_SCANOUTS];
    uint32_t layout_requests;
};

struct test_device {
    struct neep_device *device;
    struct test_display display;
    uint8_t *guest; /* GUEST_BYTES of guest memory at GUEST_BASE */
    uint32_t completions;
    uint32_t last_response_bytes;
    uint8_t response[4096];
};

/* Creates a device with `scanouts` scanouts of 1024x768 and every feature acked. */
void test_device_init(struct test_device *t, uint32_t scanouts);
/* Same, with the context types of `capset_mask` enabled. */
void test_device_init_with_capsets(struct test_device *t, uint32_t scanouts, uint64_t capset_mask);
void test_device_finish(struct test_device *t);

/* Sends a control command (request bytes as given) and returns the response type. */
uint32_t test_device_send(struct test_device *t, const void *request, size_t request_bytes);
/* Same, split into two descriptors at `split` (the driver's header + payload layout). */
uint32_t test_device_send_split(struct test_device *t, const void *request, size_t request_bytes,
                                size_t split);
void test_device_send_cursor(struct test_device *t, const struct virtio_gpu_update_cursor *cmd);

/* The completion callback the helpers pass, for tests that call the device directly. */
void test_device_complete_for_tests(void *user_data, void *cookie, uint32_t response_bytes);

/* Common sequences. */
uint32_t test_create_2d(struct test_device *t, uint32_t id, uint32_t format, uint32_t width,
                        uint32_t height);
/* Backs the resource with guest memory at `guest_offset`, in page-sized entries. */
uint32_t test_attach(struct test_device *t, uint32_t id, uint64_t guest_offset, uint64_t bytes);
uint32_t test_transfer(struct test_device *t, uint32_t id, uint32_t x, uint32_t y, uint32_t w,
                       uint32_t h, uint64_t offset);
uint32_t test_set_scanout(struct test_device *t, uint32_t scanout, uint32_t id, uint32_t x,
                          uint32_t y, uint32_t w, uint32_t h);
uint32_t test_flush(struct test_device *t, uint32_t id, uint32_t x, uint32_t y, uint32_t w,
                    uint32_t h);

#endif
