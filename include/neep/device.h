/*
 * neep device model: a complete virtio-gpu device on top of the renderer.
 *
 * The device turns virtio-gpu command bytes into renderer calls and keeps the display state
 * (scanouts, cursor, EDID, resource UUIDs). It is transport-agnostic: it sees a command as
 * scatter lists of guest memory (what the guest wrote, where the response goes) and guest
 * addresses through a translate callback. A VMM embeds it in-process; neep-gpu drives it
 * from vhost-user.
 *
 * Threading: all calls on one thread. Output leaves through the display callbacks, on that
 * same thread.
 */
#ifndef NEEP_DEVICE_H
#define NEEP_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <neep/renderer.h>

#ifdef __cplusplus
extern "C" {
#endif

struct neep_device;

#define NEEP_MAX_SCANOUTS 16u
/* EDID detailed timings hold 12-bit sizes. */
#define NEEP_MAX_SCANOUT_DIMENSION_PX 4095u
/* Largest scanout rectangle a guest may show, per side (Linux's virtio-gpu driver allows modes
 * up to 8192 x 8192). Larger SET_SCANOUT rectangles are refused: they bound the host memory a
 * scanout needs for conversion (at most 256 MiB, charged to the renderer's budget). */
#define NEEP_MAX_SCANOUT_RECT_PX 8192u

struct neep_scanout_size {
    uint32_t width_px;
    uint32_t height_px;
    bool enabled;
};

/*
 * Where the device's output goes. Every callback is optional except `update`. Pixels are
 * always x8r8g8b8 in memory order B, G, R, X (pixman's PIXMAN_x8r8g8b8 on little-endian).
 */
struct neep_display_ops {
    /* A scanout now shows a `width_px` x `height_px` image; 0 x 0 turns it off. */
    void (*scanout)(void *user_data, uint32_t scanout_id, uint32_t width_px, uint32_t height_px);
    /* The rectangle (x, y, width, height) of the scanout changed; rows are `stride_bytes`
     * apart starting at `pixels`, valid only during the call. */
    void (*update)(void *user_data, uint32_t scanout_id, uint32_t x, uint32_t y, uint32_t width,
                   uint32_t height, const uint8_t *pixels, uint32_t stride_bytes);
    /* A new 64x64 cursor image, with its hot spot, at (x, y). */
    void (*cursor_update)(void *user_data, uint32_t scanout_id, uint32_t x, uint32_t y,
                          uint32_t hot_x, uint32_t hot_y, const uint32_t *pixels);
    /* The cursor moved, or (visible false) was hidden. */
    void (*cursor_move)(void *user_data, uint32_t scanout_id, uint32_t x, uint32_t y, bool visible);
    /* Optional: what resource `resource_id` holds (0: every resource) is about to change
     * without a flush (a transfer into it, its end), or may change at any time from now on
     * (resources whose provider draws into them unseen). A display still sending pixels of it
     * from earlier updates must copy them now if it is to send them as they were flushed. */
    void (*changing)(void *user_data, uint32_t resource_id);
    /* Optional: the display's current layout, asked before each GET_DISPLAY_INFO; returns
     * false to keep the device's own. */
    bool (*get_layout)(void *user_data, struct neep_scanout_size sizes[NEEP_MAX_SCANOUTS],
                       uint32_t *scanout_count);
};

/* Translates a guest-physical range to host memory: returns the host address of `gpa` and
 * sets *contiguous_bytes to how much of [gpa, gpa + length) is contiguous there (at least 1),
 * or returns NULL if `gpa` is not guest memory. */
typedef void *(*neep_translate_fn)(void *user_data, uint64_t gpa, uint64_t length,
                                   uint64_t *contiguous_bytes);

/* virtio-gpu feature bits the device can offer. */
#define NEEP_DEVICE_F_VIRGL         (1ull << 0)
#define NEEP_DEVICE_F_EDID          (1ull << 1)
#define NEEP_DEVICE_F_RESOURCE_UUID (1ull << 2)
#define NEEP_DEVICE_F_RESOURCE_BLOB (1ull << 3)
#define NEEP_DEVICE_F_CONTEXT_INIT  (1ull << 4)

struct neep_device_config {
    struct neep_renderer_config renderer;
    uint32_t scanout_count; /* 1 to 16 */
    struct neep_scanout_size scanouts[NEEP_MAX_SCANOUTS];
    const struct neep_display_ops *display;
    void *display_user_data;
    neep_translate_fn translate;
    void *translate_user_data;
};

int neep_device_create(const struct neep_device_config *config, struct neep_device **out);
/* Copies rectangle (x, y, width, height) of what scanout `scanout_id` shows now into `dst`
 * as x8r8g8b8 rows `dst_stride_bytes` apart. For displays that send later than the update
 * callback (on the device's thread only). Returns 0, -ENXIO (no such scanout), -ENOENT
 * (it shows nothing) or -EINVAL (the rectangle leaves it). */
int neep_device_read_scanout(struct neep_device *device, uint32_t scanout_id, uint32_t x,
                             uint32_t y, uint32_t width, uint32_t height, uint8_t *dst,
                             uint32_t dst_stride_bytes);
/* The resource scanout `scanout_id` shows (0: none). */
uint32_t neep_device_scanout_resource(const struct neep_device *device, uint32_t scanout_id);
/* Where rectangle (x, y, width, height) of what the scanout shows lies in its resource's
 * storage, when the display can take it from there as it is (x8r8g8b8): valid until the
 * display's `changing` callback names that resource. -EOPNOTSUPP when the pixels need a
 * read-back or a conversion (neep_device_read_scanout then). */
int neep_device_scanout_view(struct neep_device *device, uint32_t scanout_id, uint32_t x,
                             uint32_t y, uint32_t width, uint32_t height, const uint8_t **pixels,
                             uint32_t *stride_bytes);
void neep_device_destroy(struct neep_device *device);

/* The renderer the device drives (owned by the device). */
struct neep_renderer *neep_device_renderer(struct neep_device *device);

/* Features this device offers; the transport negotiates and reports what the guest took. */
uint64_t neep_device_features(const struct neep_device *device);
void neep_device_set_acked_features(struct neep_device *device, uint64_t features);

/* virtio_gpu_config as the device would expose it (num_scanouts, num_capsets). */
uint32_t neep_device_scanout_count(const struct neep_device *device);
uint32_t neep_device_capset_count(const struct neep_device *device);

enum neep_queue {
    NEEP_QUEUE_CONTROL = 0,
    NEEP_QUEUE_CURSOR = 1,
};

/*
 * Called when a command is done: `response_bytes` were written to its `in` list. `cookie`
 * is what the transport passed with the command.
 */
typedef void (*neep_complete_fn)(void *user_data, void *cookie, uint32_t response_bytes);

struct neep_device_command {
    const struct iovec *out; /* what the guest wrote: header and arguments */
    size_t out_count;
    const struct iovec *in; /* where the response goes */
    size_t in_count;
    void *cookie;
};

/*
 * Processes one command. Unfenced commands complete before this returns; fenced ones once
 * their fence signals (from neep_device_dispatch, or before this returns when the work was
 * synchronous). Every failure is a VIRTIO_GPU_RESP_ERR_* response; nothing the guest sends
 * stops the device.
 */
void neep_device_process(struct neep_device *device, enum neep_queue queue,
                         const struct neep_device_command *command, neep_complete_fn complete,
                         void *complete_user_data);

/* An fd that polls readable when fenced commands may be ready; then call dispatch. */
int neep_device_fence_fd(const struct neep_device *device);
void neep_device_dispatch(struct neep_device *device);

/* Releases every guest resource and context and blanks the scanouts (device reset). Commands
 * still waiting on fences are completed with their responses as written. */
void neep_device_reset(struct neep_device *device);

/* Sends every active scanout to the display again, in full (a new display connection). */
void neep_device_refresh_display(struct neep_device *device);

/* Counters for tests and benchmarks. */
struct neep_device_stats {
    uint64_t commands;
    uint64_t errors;
    uint64_t flushed_bytes;
};
void neep_device_get_stats(const struct neep_device *device, struct neep_device_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
