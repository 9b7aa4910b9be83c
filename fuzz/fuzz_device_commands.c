/*
 * Feeds the device model a stream of commands built from the input, the way a hostile
 * guest's driver could lay them out: each command's bytes are split into several
 * descriptors at input-chosen points, and guest memory holds input bytes too. The display
 * callbacks check that everything the device sends lies inside the scanout it announced.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <neep/device.h>

#define GUEST_BASE  0x10000ull
#define GUEST_BYTES (4u << 20)

static uint8_t *guest;
static uint32_t scanout_width[NEEP_MAX_SCANOUTS], scanout_height[NEEP_MAX_SCANOUTS];

static void *translate(void *user_data, uint64_t gpa, uint64_t length, uint64_t *contiguous)
{
    if (gpa < GUEST_BASE || gpa - GUEST_BASE >= GUEST_BYTES) {
        return NULL;
    }
    uint64_t within = gpa - GUEST_BASE;
    uint64_t available = GUEST_BYTES - within;
    *contiguous = available < length ? available : length;
    return guest + within;
}

static void on_scanout(void *user_data, uint32_t id, uint32_t width, uint32_t height)
{
    if (id >= NEEP_MAX_SCANOUTS) {
        abort();
    }
    scanout_width[id] = width;
    scanout_height[id] = height;
}

static void on_update(void *user_data, uint32_t id, uint32_t x, uint32_t y, uint32_t width,
                      uint32_t height, const uint8_t *pixels, uint32_t stride)
{
    if (id >= NEEP_MAX_SCANOUTS || (uint64_t)x + width > scanout_width[id] ||
        (uint64_t)y + height > scanout_height[id] || stride < width * 4u) {
        abort();
    }
    /* Touch the first and last byte so ASan sees any bad pointer. */
    volatile uint8_t sink = pixels[0];
    sink = pixels[(size_t)(height - 1) * stride + (size_t)width * 4 - 1];
    (void)sink;
}

static const struct neep_display_ops display = {.scanout = on_scanout, .update = on_update};

static void quiet(void *user_data, enum neep_log_level level, const char *message)
{
}

static void on_complete(void *user_data, void *cookie, uint32_t bytes)
{
    if (bytes > 4096) {
        abort(); /* larger than the response space given */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!guest) {
        guest = calloc(1, GUEST_BYTES);
    }
    memset(scanout_width, 0, sizeof(scanout_width));
    memset(scanout_height, 0, sizeof(scanout_height));
    struct neep_device_config config = {
        .renderer = {.memory_budget_bytes = 64u << 20, .log_fn = quiet},
        .scanout_count = 2,
        .scanouts = {{640, 480, true}, {320, 200, true}},
        .display = &display,
        .translate = translate,
    };
    struct neep_device *device;
    if (neep_device_create(&config, &device) < 0) {
        abort();
    }
    neep_device_set_acked_features(device, data[0] & 1 ? ~0ull : neep_device_features(device));
    /* The first 4 KiB of input also seeds guest memory (pixels and mem entries point there). */
    memcpy(guest, data, size < 4096 ? size : 4096);

    static uint8_t response[4096];
    size_t pos = 1;
    while (pos + 4 <= size) {
        /* [length u16][split u8][queue u8][command bytes...] */
        size_t length = (size_t)(data[pos] | data[pos + 1] << 8);
        size_t split = data[pos + 2];
        enum neep_queue queue = data[pos + 3] & 1 ? NEEP_QUEUE_CURSOR : NEEP_QUEUE_CONTROL;
        pos += 4;
        if (length > size - pos) {
            length = size - pos;
        }
        if (split > length) {
            split = length;
        }
        struct iovec out[3] = {
            {(void *)(data + pos), split / 2},
            {(void *)(data + pos + split / 2), split - split / 2},
            {(void *)(data + pos + split), length - split},
        };
        struct iovec in = {response, sizeof(response)};
        struct neep_device_command command = {out, 3, &in, queue == NEEP_QUEUE_CONTROL, NULL};
        neep_device_process(device, queue, &command, on_complete, NULL);
        pos += length;
    }
    neep_device_reset(device);
    neep_device_destroy(device);
    return 0;
}
