/* The device model's private state, shared by the files of src/device/. */
#ifndef NEEP_DEVICE_INTERNAL_H
#define NEEP_DEVICE_INTERNAL_H

#include <linux/virtio_gpu.h>
#include <stdbool.h>
#include <stdint.h>

#include <neep/device.h>

#include "renderer/renderer_internal.h"
#include "util/id_table.h"
#include "util/iov.h"

/* Wire sizes from the virtio-gpu spec; the uapi header must agree. */
_Static_assert(sizeof(struct virtio_gpu_ctrl_hdr) == 24, "ctrl_hdr");
_Static_assert(sizeof(struct virtio_gpu_resource_create_2d) == 40, "create_2d");
_Static_assert(sizeof(struct virtio_gpu_set_scanout) == 48, "set_scanout");
_Static_assert(sizeof(struct virtio_gpu_transfer_to_host_2d) == 56, "transfer_2d");
_Static_assert(sizeof(struct virtio_gpu_resp_display_info) == 408, "display_info");
_Static_assert(sizeof(struct virtio_gpu_resp_edid) == 1056, "resp_edid");
_Static_assert(sizeof(struct virtio_gpu_resource_create_3d) == 72, "create_3d");
_Static_assert(sizeof(struct virtio_gpu_transfer_host_3d) == 72, "transfer_3d");
_Static_assert(sizeof(struct virtio_gpu_ctx_create) == 96, "ctx_create");
_Static_assert(sizeof(struct virtio_gpu_resource_create_blob) == 56, "create_blob");
_Static_assert(sizeof(struct virtio_gpu_set_scanout_blob) == 96, "set_scanout_blob");
_Static_assert(sizeof(struct virtio_gpu_update_cursor) == 56, "update_cursor");

#define CURSOR_SIZE_PX 64u
/* Largest response without capset data: GET_EDID's. */
#define MAX_FIXED_RESPONSE_BYTES sizeof(struct virtio_gpu_resp_edid)

struct device_scanout {
    uint32_t resource_id; /* 0 when off */
    struct virtio_gpu_rect rect;
    uint32_t width_px; /* mode size reported to the guest */
    uint32_t height_px;
    bool enabled;
    uint32_t cursor_x, cursor_y;
};

/* A fenced command waiting for its fence. */
struct pending_command {
    struct pending_command *next;
    uint32_t ctx_id;
    uint32_t ring_idx;
    bool on_ring;
    uint64_t fence_id;
    void *cookie;
    uint32_t response_bytes;
    neep_complete_fn complete;
    void *complete_user_data;
};

struct neep_device {
    struct neep_renderer *renderer;
    struct neep_logger *logger; /* the renderer's */
    const struct neep_display_ops *display;
    void *display_user_data;
    neep_translate_fn translate;
    void *translate_user_data;

    uint64_t features;
    uint64_t acked_features;

    uint32_t scanout_count;
    struct device_scanout scanouts[NEEP_MAX_SCANOUTS];

    struct id_table uuids; /* resource id -> uint8_t[16] */

    struct pending_command *pending_head;
    struct pending_command *pending_tail;
    struct pending_command *free_pending;

    /* x8r8g8b8 staging for formats the display cannot take as they are: as large as the
     * largest scanout showing such a format, and charged to the renderer's budget. */
    uint8_t *staging;
    size_t staging_bytes; /* allocated and charged */

    struct neep_device_stats stats;
};

/* The command being decoded: its bytes in guest memory and its header. */
struct command_context {
    struct neep_device *device;
    const struct neep_device_command *command;
    struct virtio_gpu_ctrl_hdr hdr;
    uint64_t request_bytes;
    /* Response under construction. */
    uint8_t *response;
    uint32_t response_bytes;
};

#define device_error(device, ...) neep_log_guest((device)->logger, NEEP_LOG_ERROR, __VA_ARGS__)

/* device.c: reading the rest of the request past the fixed struct. */
int command_read(struct command_context *cc, uint64_t offset, void *dst, size_t size);
/* Starts a zeroed response of `response_bytes` (header included) with the given type; returns
 * it. Responses longer than MAX_FIXED_RESPONSE_BYTES need a larger cc->response first. */
void *command_respond(struct command_context *cc, uint32_t type, uint32_t response_bytes);
/* Builds an iovec list for guest memory entries read from the request at `offset`. */
int command_read_mem_entries(struct command_context *cc, uint64_t offset, uint32_t count,
                             struct iovec **iov_out, size_t *iov_count_out);

/* device.c: completes the fenced commands still waiting on a destroyed context's rings. */
void device_complete_context_pending(struct neep_device *device, uint32_t ctx_id);

/* commands_2d.c, commands_3d.c: handlers take the copied fixed struct. */
typedef int (*command_handler)(struct command_context *cc, const void *request);
struct command_info {
    const char *name;
    command_handler handler;
    uint32_t request_bytes;    /* fixed part, header included */
    bool variable_length;      /* more bytes may follow the fixed part */
    uint64_t required_feature; /* 0, or NEEP_DEVICE_F_* that must have been negotiated */
};
const struct command_info *command_lookup(uint32_t type);

/* commands_3d.c: capsets, contexts, 3D resources, submission and blobs. */
int cmd_get_capset_info(struct command_context *cc, const void *request);
int cmd_get_capset(struct command_context *cc, const void *request);
int cmd_ctx_create(struct command_context *cc, const void *request);
int cmd_ctx_destroy(struct command_context *cc, const void *request);
int cmd_ctx_attach_resource(struct command_context *cc, const void *request);
int cmd_ctx_detach_resource(struct command_context *cc, const void *request);
int cmd_resource_create_3d(struct command_context *cc, const void *request);
int cmd_transfer_to_host_3d(struct command_context *cc, const void *request);
int cmd_transfer_from_host_3d(struct command_context *cc, const void *request);
int cmd_submit_3d(struct command_context *cc, const void *request);
int cmd_resource_create_blob(struct command_context *cc, const void *request);
int cmd_set_scanout_blob(struct command_context *cc, const void *request);
int cmd_resource_map_blob(struct command_context *cc, const void *request);
int cmd_resource_unmap_blob(struct command_context *cc, const void *request);

/* scanout.c */
int scanout_show(struct neep_device *device, uint32_t scanout_id, uint32_t resource_id,
                 const struct virtio_gpu_rect *rect);
int scanout_flush_resource(struct neep_device *device, uint32_t resource_id,
                           const struct virtio_gpu_rect *rect);
void scanout_forget_resource(struct neep_device *device, uint32_t resource_id);
/* Before what a resource holds changes without a flush (a transfer into it, its end; 0 for
 * every resource): lets the display take a copy of a flush it has not sent yet. */
void scanout_resource_changing(struct neep_device *device, uint32_t resource_id);
/* Frees the conversion staging and returns its charge (device reset and destroy). */
void scanout_release_staging(struct neep_device *device);
int cursor_update(struct neep_device *device, const struct virtio_gpu_update_cursor *cursor);
void cursor_move(struct neep_device *device, const struct virtio_gpu_update_cursor *cursor);

/* edid.c: writes a 128-byte EDID whose preferred mode is width x height. */
void edid_generate(uint8_t edid[128], uint32_t width_px, uint32_t height_px, uint32_t serial);

#endif
