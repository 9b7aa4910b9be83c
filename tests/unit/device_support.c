#include "device_support.h"

#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void *translate(void *user_data, uint64_t gpa, uint64_t length, uint64_t *contiguous)
{
    struct test_device *t = user_data;
    if (gpa < GUEST_BASE || gpa - GUEST_BASE >= GUEST_BYTES) {
        return NULL;
    }
    uint64_t within = gpa - GUEST_BASE;
    uint64_t available = GUEST_BYTES - within;
    *contiguous = available < length ? available : length;
    return t->guest + within;
}

static void on_scanout(void *user_data, uint32_t scanout_id, uint32_t width, uint32_t height)
{
    struct test_display *d = user_data;
    CHECK(scanout_id < NEEP_MAX_SCANOUTS);
    d->scanout_calls++;
    d->scanout_width[scanout_id] = width;
    d->scanout_height[scanout_id] = height;
    free(d->frame[scanout_id]);
    d->frame[scanout_id] = width ? calloc((size_t)width * height, 4) : NULL;
}

static void on_update(void *user_data, uint32_t scanout_id, uint32_t x, uint32_t y, uint32_t width,
                      uint32_t height, const uint8_t *pixels, uint32_t stride)
{
    struct test_display *d = user_data;
    CHECK(scanout_id < NEEP_MAX_SCANOUTS && d->frame[scanout_id]);
    CHECK((uint64_t)x + width <= d->scanout_width[scanout_id]);
    CHECK((uint64_t)y + height <= d->scanout_height[scanout_id]);
    for (uint32_t row = 0; row < height; row++) {
        memcpy(d->frame[scanout_id] + (size_t)(y + row) * d->scanout_width[scanout_id] + x,
               pixels + (size_t)row * stride, (size_t)width * 4);
    }
    d->update_count++;
    d->updated_pixels += (uint64_t)width * height;
    d->last_update = (struct recorded_update){scanout_id, x, y, width, height, 0};
    memcpy(&d->last_update.first_pixel, pixels, 4);
}

static void on_cursor_update(void *user_data, uint32_t scanout_id, uint32_t x, uint32_t y,
                             uint32_t hot_x, uint32_t hot_y, const uint32_t *pixels)
{
    struct test_display *d = user_data;
    d->cursor_updates++;
    d->cursor_x = x;
    d->cursor_y = y;
    d->cursor_hot_x = hot_x;
    d->cursor_hot_y = hot_y;
    d->cursor_visible = true;
    d->cursor_first_pixel = pixels[0];
    d->cursor_second_pixel = pixels[1];
}

static void on_cursor_move(void *user_data, uint32_t scanout_id, uint32_t x, uint32_t y,
                           bool visible)
{
    struct test_display *d = user_data;
    d->cursor_moves++;
    d->cursor_x = x;
    d->cursor_y = y;
    d->cursor_visible = visible;
}

static bool on_get_layout(void *user_data, struct neep_scanout_size sizes[NEEP_MAX_SCANOUTS],
                          uint32_t *count)
{
    struct test_display *d = user_data;
    if (!d->has_layout) {
        return false;
    }
    d->layout_requests++;
    memcpy(sizes, d->layout, sizeof(d->layout));
    *count = NEEP_MAX_SCANOUTS;
    return true;
}

static const struct neep_display_ops display_ops = {
    .get_layout = on_get_layout,
    .scanout = on_scanout,
    .update = on_update,
    .cursor_update = on_cursor_update,
    .cursor_move = on_cursor_move,
};

static void quiet(void *user_data, enum neep_log_level level, const char *message)
{
}

void test_device_init(struct test_device *t, uint32_t scanouts)
{
    test_device_init_with_capsets(t, scanouts, 0);
}

void test_device_init_with_capsets(struct test_device *t, uint32_t scanouts, uint64_t capset_mask)
{
    memset(t, 0, sizeof(*t));
    t->guest = calloc(1, GUEST_BYTES);
    CHECK(t->guest != NULL);
    struct neep_device_config config = {
        .renderer = {.capset_mask = capset_mask,
                     .memory_budget_bytes = 256u << 20,
                     .log_fn = quiet},
        .scanout_count = scanouts,
        .display = &display_ops,
        .display_user_data = &t->display,
        .translate = translate,
        .translate_user_data = t,
    };
    for (uint32_t i = 0; i < scanouts; i++) {
        config.scanouts[i] = (struct neep_scanout_size){1024, 768, true};
    }
    CHECK_EQ(neep_device_create(&config, &t->device), 0);
    neep_device_set_acked_features(t->device, neep_device_features(t->device));
}

void test_device_finish(struct test_device *t)
{
    neep_device_destroy(t->device);
    for (int i = 0; i < (int)NEEP_MAX_SCANOUTS; i++) {
        free(t->display.frame[i]);
    }
    free(t->guest);
}

void test_device_complete_for_tests(void *user_data, void *cookie, uint32_t response_bytes)
{
    struct test_device *t = user_data;
    CHECK(cookie == t);
    t->completions++;
    t->last_response_bytes = response_bytes;
}

uint32_t test_device_send_split(struct test_device *t, const void *request, size_t request_bytes,
                                size_t split)
{
    memset(t->response, 0xee, sizeof(t->response));
    struct iovec out[2] = {{(void *)request, split},
                           {(uint8_t *)request + split, request_bytes - split}};
    struct iovec in = {t->response, sizeof(t->response)};
    struct neep_device_command command = {out, split < request_bytes ? 2 : 1, &in, 1, t};
    uint32_t before = t->completions;
    neep_device_process(t->device, NEEP_QUEUE_CONTROL, &command, test_device_complete_for_tests, t);
    CHECK_EQ(t->completions, before + 1);
    CHECK(t->last_response_bytes >= sizeof(struct virtio_gpu_ctrl_hdr));
    return ((struct virtio_gpu_ctrl_hdr *)t->response)->type;
}

uint32_t test_device_send(struct test_device *t, const void *request, size_t request_bytes)
{
    return test_device_send_split(t, request, request_bytes, request_bytes);
}

void test_device_send_cursor(struct test_device *t, const struct virtio_gpu_update_cursor *cmd)
{
    struct iovec out = {(void *)cmd, sizeof(*cmd)};
    struct neep_device_command command = {&out, 1, NULL, 0, t};
    uint32_t before = t->completions;
    neep_device_process(t->device, NEEP_QUEUE_CURSOR, &command, test_device_complete_for_tests, t);
    CHECK_EQ(t->completions, before + 1);
    CHECK_EQ(t->last_response_bytes, 0);
}

uint32_t test_create_2d(struct test_device *t, uint32_t id, uint32_t format, uint32_t width,
                        uint32_t height)
{
    struct virtio_gpu_resource_create_2d cmd = {.hdr.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
                                                .resource_id = id,
                                                .format = format,
                                                .width = width,
                                                .height = height};
    return test_device_send(t, &cmd, sizeof(cmd));
}

uint32_t test_attach(struct test_device *t, uint32_t id, uint64_t guest_offset, uint64_t bytes)
{
    uint32_t entries = (uint32_t)((bytes + 4095) / 4096);
    size_t size = sizeof(struct virtio_gpu_resource_attach_backing) +
                  entries * sizeof(struct virtio_gpu_mem_entry);
    uint8_t *request = calloc(1, size);
    struct virtio_gpu_resource_attach_backing *cmd = (void *)request;
    cmd->hdr.type = VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING;
    cmd->resource_id = id;
    cmd->nr_entries = entries;
    struct virtio_gpu_mem_entry *entry = (void *)(request + sizeof(*cmd));
    for (uint32_t i = 0; i < entries; i++) {
        entry[i].addr = GUEST_BASE + guest_offset + (uint64_t)i * 4096;
        entry[i].length = 4096;
    }
    /* Like Linux: the command in one buffer, the entry array in another. */
    uint32_t type = test_device_send_split(t, request, size, sizeof(*cmd));
    free(request);
    return type;
}

uint32_t test_transfer(struct test_device *t, uint32_t id, uint32_t x, uint32_t y, uint32_t w,
                       uint32_t h, uint64_t offset)
{
    struct virtio_gpu_transfer_to_host_2d cmd = {.hdr.type = VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D,
                                                 .r = {x, y, w, h},
                                                 .offset = offset,
                                                 .resource_id = id};
    return test_device_send(t, &cmd, sizeof(cmd));
}

uint32_t test_set_scanout(struct test_device *t, uint32_t scanout, uint32_t id, uint32_t x,
                          uint32_t y, uint32_t w, uint32_t h)
{
    struct virtio_gpu_set_scanout cmd = {.hdr.type = VIRTIO_GPU_CMD_SET_SCANOUT,
                                         .r = {x, y, w, h},
                                         .scanout_id = scanout,
                                         .resource_id = id};
    return test_device_send(t, &cmd, sizeof(cmd));
}

uint32_t test_flush(struct test_device *t, uint32_t id, uint32_t x, uint32_t y, uint32_t w,
                    uint32_t h)
{
    struct virtio_gpu_resource_flush cmd = {
        .hdr.type = VIRTIO_GPU_CMD_RESOURCE_FLUSH, .r = {x, y, w, h}, .resource_id = id};
    return test_device_send(t, &cmd, sizeof(cmd));
}
