/*
 * The device model's core: command decoding, the one mapping of errors to
 * VIRTIO_GPU_RESP_ERR_*, responses and fenced completion.
 *
 * Every command is copied out of guest memory before it is looked at: the fixed struct into
 * a local, variable parts through an iov cursor, with every length checked against what the
 * guest actually supplied.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "util/checked.h"

#define MAX_COMMAND_BYTES 96 /* largest fixed request: ctx_create, set_scanout_blob */

int neep_device_create(const struct neep_device_config *config, struct neep_device **out)
{
    if (!config || !out || !config->display || !config->display->update || !config->translate) {
        return -EINVAL;
    }
    *out = NULL;
    if (config->scanout_count < 1 || config->scanout_count > NEEP_MAX_SCANOUTS) {
        return -EINVAL;
    }
    for (uint32_t i = 0; i < config->scanout_count; i++) {
        const struct neep_scanout_size *size = &config->scanouts[i];
        if (size->width_px == 0 || size->height_px == 0 ||
            size->width_px > NEEP_MAX_SCANOUT_DIMENSION_PX ||
            size->height_px > NEEP_MAX_SCANOUT_DIMENSION_PX) {
            return -EINVAL;
        }
    }
    struct neep_device *device = calloc(1, sizeof(*device));
    if (!device) {
        return -ENOMEM;
    }
    int ret = neep_renderer_create(&config->renderer, &device->renderer);
    if (ret < 0) {
        free(device);
        return ret;
    }
    device->logger = &device->renderer->logger;
    device->display = config->display;
    device->display_user_data = config->display_user_data;
    device->translate = config->translate;
    device->translate_user_data = config->translate_user_data;
    device->scanout_count = config->scanout_count;
    /* Scanouts past the configured ones take the first one's size, should a display that
     * owns the layout (see get_layout) bring more. */
    for (uint32_t i = 0; i < NEEP_MAX_SCANOUTS; i++) {
        const struct neep_scanout_size *size = &config->scanouts[i < config->scanout_count ? i : 0];
        device->scanouts[i].width_px = size->width_px;
        device->scanouts[i].height_px = size->height_px;
        device->scanouts[i].enabled = i < config->scanout_count && (size->enabled || i == 0);
    }
    id_table_init(&device->uuids);
    device->features = NEEP_DEVICE_F_EDID | NEEP_DEVICE_F_RESOURCE_UUID;
    if (neep_capset_count(device->renderer) > 0) {
        device->features |=
            NEEP_DEVICE_F_VIRGL | NEEP_DEVICE_F_CONTEXT_INIT | NEEP_DEVICE_F_RESOURCE_BLOB;
    }
    *out = device;
    return 0;
}

static void free_uuids(struct neep_device *device)
{
    for (size_t i = 0; i < device->uuids.capacity; i++) {
        if (device->uuids.keys[i]) {
            free(device->uuids.values[i]);
        }
    }
    id_table_finish(&device->uuids);
    id_table_init(&device->uuids);
}

/* Completes every pending command (their responses are already written). */
static void complete_all_pending(struct neep_device *device)
{
    while (device->pending_head) {
        struct pending_command *pending = device->pending_head;
        device->pending_head = pending->next;
        pending->complete(pending->complete_user_data, pending->cookie, pending->response_bytes);
        pending->next = device->free_pending;
        device->free_pending = pending;
    }
    device->pending_tail = NULL;
}

/* A destroyed context's timelines are gone without being signalled: its fenced commands
 * still waiting (a POLL, say) are completed now, or their chains would never go back to the
 * driver. Their responses are already written. */
/* Completes, in order, the pending commands `matches` picks (their responses are written). */
static void complete_pending_where(struct neep_device *device,
                                   bool (*matches)(const struct pending_command *pending,
                                                   const void *arg),
                                   const void *arg)
{
    struct pending_command **link = &device->pending_head;
    struct pending_command *previous = NULL;
    while (*link) {
        struct pending_command *pending = *link;
        if (matches(pending, arg)) {
            *link = pending->next;
            if (device->pending_tail == pending) {
                device->pending_tail = previous;
            }
            pending->complete(pending->complete_user_data, pending->cookie,
                              pending->response_bytes);
            pending->next = device->free_pending;
            device->free_pending = pending;
            continue;
        }
        previous = pending;
        link = &pending->next;
    }
}

static bool on_context_rings(const struct pending_command *pending, const void *arg)
{
    return pending->on_ring && pending->ctx_id == *(const uint32_t *)arg;
}

void device_complete_context_pending(struct neep_device *device, uint32_t ctx_id)
{
    complete_pending_where(device, on_context_rings, &ctx_id);
}

void neep_device_destroy(struct neep_device *device)
{
    if (!device) {
        return;
    }
    complete_all_pending(device);
    while (device->free_pending) {
        struct pending_command *next = device->free_pending->next;
        free(device->free_pending);
        device->free_pending = next;
    }
    free_uuids(device);
    id_table_finish(&device->uuids);
    scanout_release_staging(device);
    neep_renderer_destroy(device->renderer);
    free(device);
}

struct neep_renderer *neep_device_renderer(struct neep_device *device)
{
    return device->renderer;
}

uint64_t neep_device_features(const struct neep_device *device)
{
    return device->features;
}

void neep_device_set_acked_features(struct neep_device *device, uint64_t features)
{
    device->acked_features = features & device->features;
}

uint32_t neep_device_scanout_count(const struct neep_device *device)
{
    return device->scanout_count;
}

uint32_t neep_device_capset_count(const struct neep_device *device)
{
    return neep_capset_count(device->renderer);
}

void neep_device_get_stats(const struct neep_device *device, struct neep_device_stats *stats)
{
    *stats = device->stats;
}

void neep_device_reset(struct neep_device *device)
{
    complete_all_pending(device);
    for (uint32_t i = 0; i < device->scanout_count; i++) {
        struct device_scanout *scanout = &device->scanouts[i];
        if (scanout->resource_id != 0 && device->display->scanout) {
            device->display->scanout(device->display_user_data, i, 0, 0);
        }
        scanout->resource_id = 0;
    }
    scanout_release_staging(device);
    free_uuids(device);
    scanout_resource_changing(device, 0); /* every resource goes */
    neep_contexts_destroy_all(device->renderer);
    neep_resources_destroy_all(device->renderer);
    /* Fences of the old guest are of no interest to the new one, and the ones still pending
     * must not complete commands of the new one that reuse their ids. */
    neep_fences_drop_pending_global(device->renderer);
    neep_renderer_dispatch_fences(device->renderer, NULL, NULL);
    device->acked_features = 0;
}

/* ---- reading requests, writing responses ------------------------------------------------ */

int command_read(struct command_context *cc, uint64_t offset, void *dst, size_t size)
{
    uint64_t end;
    if (!checked_add_u64(offset, size, &end) || end > cc->request_bytes) {
        device_error(cc->device, "request of %llu bytes is too short for %zu bytes at %llu",
                     (unsigned long long)cc->request_bytes, size, (unsigned long long)offset);
        return -EINVAL;
    }
    struct iov_cursor cursor;
    iov_cursor_init(&cursor, cc->command->out, cc->command->out_count);
    iov_cursor_seek(&cursor, offset);
    iov_cursor_read(&cursor, dst, size);
    return 0;
}

void *command_respond(struct command_context *cc, uint32_t type, uint32_t response_bytes)
{
    memset(cc->response, 0, response_bytes);
    struct virtio_gpu_ctrl_hdr *hdr = (struct virtio_gpu_ctrl_hdr *)cc->response;
    hdr->type = type;
    cc->response_bytes = response_bytes;
    return cc->response;
}

int command_read_mem_entries(struct command_context *cc, uint64_t offset, uint32_t count,
                             struct iovec **iov_out, size_t *iov_count_out)
{
    struct neep_device *device = cc->device;
    *iov_out = NULL;
    *iov_count_out = 0;
    if (count == 0) {
        return 0;
    }
    if (count > NEEP_MAX_BACKING_ENTRIES) {
        device_error(device, "%u memory entries, limit %u", count, NEEP_MAX_BACKING_ENTRIES);
        return -E2BIG;
    }
    uint64_t entry_bytes = (uint64_t)count * sizeof(struct virtio_gpu_mem_entry);
    uint64_t end;
    if (!checked_add_u64(offset, entry_bytes, &end) || end != cc->request_bytes) {
        device_error(device, "%u memory entries need %llu bytes; the request has %llu", count,
                     (unsigned long long)entry_bytes,
                     (unsigned long long)(cc->request_bytes - offset));
        return -EINVAL;
    }
    /* An entry may straddle guest memory regions; leave room for a few splits. */
    size_t capacity = (size_t)count + 8;
    struct iovec *iov = malloc(capacity * sizeof(*iov));
    if (!iov) {
        return -ENOMEM;
    }
    struct iov_cursor cursor;
    iov_cursor_init(&cursor, cc->command->out, cc->command->out_count);
    iov_cursor_seek(&cursor, offset);
    size_t used = 0;
    int ret = 0;
    for (uint32_t i = 0; i < count && ret == 0; i++) {
        struct virtio_gpu_mem_entry entry;
        iov_cursor_read(&cursor, &entry, sizeof(entry));
        uint64_t gpa = entry.addr;
        uint64_t left = entry.length;
        uint64_t last;
        if (left == 0 || !checked_add_u64(gpa, left - 1, &last)) {
            device_error(device, "memory entry %u (0x%llx, %u bytes) is empty or wraps", i,
                         (unsigned long long)gpa, entry.length);
            ret = -EINVAL;
            break;
        }
        while (left > 0) {
            uint64_t contiguous = 0;
            void *host = device->translate(device->translate_user_data, gpa, left, &contiguous);
            if (!host || contiguous == 0) {
                device_error(device, "memory entry %u: 0x%llx is not guest memory", i,
                             (unsigned long long)gpa);
                ret = -EINVAL;
                break;
            }
            if (contiguous > left) {
                contiguous = left;
            }
            if (used == capacity) {
                size_t grown = capacity * 2;
                struct iovec *bigger =
                    grown <= NEEP_MAX_BACKING_ENTRIES ? realloc(iov, grown * sizeof(*iov)) : NULL;
                if (!bigger) {
                    device_error(device, "memory entries split into too many pieces");
                    ret = -E2BIG;
                    break;
                }
                iov = bigger;
                capacity = grown;
            }
            iov[used].iov_base = host;
            iov[used].iov_len = (size_t)contiguous;
            used++;
            gpa += contiguous;
            left -= contiguous;
        }
    }
    if (ret < 0) {
        free(iov);
        return ret;
    }
    *iov_out = iov;
    *iov_count_out = used;
    return 0;
}

/* The only place internal errors become wire errors. */
static uint32_t error_response_type(int error, uint32_t command_type)
{
    switch (error) {
    case -ENOENT:
        return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
    case -ESRCH:
        return VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID;
    case -EEXIST:
        return command_type == VIRTIO_GPU_CMD_CTX_CREATE ? VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID
                                                         : VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
    case -ENOMEM:
        return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
    case -ENXIO:
        return VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID;
    case -EOPNOTSUPP:
    case -ENOSYS:
        return VIRTIO_GPU_RESP_ERR_UNSPEC;
    default:
        return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
    }
}

/* ---- processing ------------------------------------------------------------------------- */

static void finish_command(struct neep_device *device, struct command_context *cc,
                           neep_complete_fn complete, void *complete_user_data)
{
    const struct neep_device_command *command = cc->command;
    uint64_t capacity = 0;
    uint32_t written = 0;
    if (cc->response_bytes > 0 && iov_total_bytes(command->in, command->in_count, &capacity) &&
        capacity >= cc->response_bytes) {
        struct virtio_gpu_ctrl_hdr *hdr = (struct virtio_gpu_ctrl_hdr *)cc->response;
        if (cc->hdr.flags & VIRTIO_GPU_FLAG_FENCE) {
            hdr->flags |= VIRTIO_GPU_FLAG_FENCE | (cc->hdr.flags & VIRTIO_GPU_FLAG_INFO_RING_IDX);
            hdr->fence_id = cc->hdr.fence_id;
            hdr->ctx_id = cc->hdr.ctx_id;
            hdr->ring_idx = cc->hdr.ring_idx;
        }
        struct iov_cursor cursor;
        iov_cursor_init(&cursor, command->in, command->in_count);
        iov_cursor_write(&cursor, cc->response, cc->response_bytes);
        written = cc->response_bytes;
    } else if (cc->response_bytes > 0) {
        device_error(device, "no room for a %u-byte response (%llu bytes given)",
                     cc->response_bytes, (unsigned long long)capacity);
    }

    /* Error responses wait on their timeline too, so fences still signal in order. */
    if (!(cc->hdr.flags & VIRTIO_GPU_FLAG_FENCE)) {
        complete(complete_user_data, command->cookie, written);
        return;
    }
    struct neep_fence fence = {
        .flags = NEEP_FENCE_FLAG_FENCE,
        .fence_id = cc->hdr.fence_id,
        .ctx_id = cc->hdr.ctx_id,
        .ring_idx = cc->hdr.ring_idx,
    };
    if ((cc->hdr.flags & VIRTIO_GPU_FLAG_INFO_RING_IDX) &&
        (device->acked_features & NEEP_DEVICE_F_CONTEXT_INIT)) {
        fence.flags |= NEEP_FENCE_FLAG_RING_IDX;
    }
    struct pending_command *pending = device->free_pending;
    if (pending) {
        device->free_pending = pending->next;
    } else if (!(pending = malloc(sizeof(*pending)))) {
        complete(complete_user_data, command->cookie, written);
        return;
    }
    *pending = (struct pending_command){
        .ctx_id = fence.ctx_id,
        .ring_idx = fence.ring_idx,
        .on_ring = fence.flags & NEEP_FENCE_FLAG_RING_IDX,
        .fence_id = fence.fence_id,
        .cookie = command->cookie,
        .response_bytes = written,
        .complete = complete,
        .complete_user_data = complete_user_data,
    };
    if (neep_fence_create(device->renderer, &fence) < 0) {
        /* No fence, no wait: the work itself is done, so answer now. */
        pending->next = device->free_pending;
        device->free_pending = pending;
        complete(complete_user_data, command->cookie, written);
        return;
    }
    if (device->pending_tail) {
        device->pending_tail->next = pending;
    } else {
        device->pending_head = pending;
    }
    device->pending_tail = pending;
}

void neep_device_process(struct neep_device *device, enum neep_queue queue,
                         const struct neep_device_command *command, neep_complete_fn complete,
                         void *complete_user_data)
{
    uint8_t response_storage[MAX_FIXED_RESPONSE_BYTES];
    struct command_context cc = {
        .device = device,
        .command = command,
        .response = response_storage,
    };
    device->stats.commands++;
    int ret = 0;
    const struct command_info *info = NULL;
    uint8_t request[MAX_COMMAND_BYTES];

    if (!iov_total_bytes(command->out, command->out_count, &cc.request_bytes)) {
        ret = -EINVAL;
    } else if (cc.request_bytes < sizeof(cc.hdr)) {
        device_error(device, "command of %llu bytes has no header",
                     (unsigned long long)cc.request_bytes);
        ret = -EINVAL;
    } else {
        command_read(&cc, 0, &cc.hdr, sizeof(cc.hdr));
        info = command_lookup(cc.hdr.type);
        bool cursor_command = cc.hdr.type == VIRTIO_GPU_CMD_UPDATE_CURSOR ||
                              cc.hdr.type == VIRTIO_GPU_CMD_MOVE_CURSOR;
        if (!info || cursor_command != (queue == NEEP_QUEUE_CURSOR)) {
            device_error(device, "command type 0x%x is not valid on the %s queue", cc.hdr.type,
                         queue == NEEP_QUEUE_CURSOR ? "cursor" : "control");
            ret = -EOPNOTSUPP;
        } else if (info->required_feature && !(device->acked_features & info->required_feature)) {
            device_error(device, "%s needs a feature the driver did not negotiate", info->name);
            ret = -EOPNOTSUPP;
        } else if (cc.request_bytes < info->request_bytes ||
                   (!info->variable_length && cc.request_bytes != info->request_bytes)) {
            device_error(device, "%s: %llu bytes, expected %u%s", info->name,
                         (unsigned long long)cc.request_bytes, info->request_bytes,
                         info->variable_length ? " or more" : "");
            ret = -EINVAL;
        } else {
            neep_log_host(device->logger, NEEP_LOG_DEBUG, "%s (%llu bytes, flags 0x%x)", info->name,
                          (unsigned long long)cc.request_bytes, cc.hdr.flags);
            command_read(&cc, 0, request, info->request_bytes);
            /* Handlers set an OK response; a plain OK_NODATA unless they say otherwise. */
            command_respond(&cc, VIRTIO_GPU_RESP_OK_NODATA, sizeof(cc.hdr));
            ret = info->handler(&cc, request);
        }
    }

    if (ret < 0) {
        device->stats.errors++;
        command_respond(&cc, error_response_type(ret, cc.hdr.type), sizeof(cc.hdr));
    }
    if (queue == NEEP_QUEUE_CURSOR) {
        cc.response_bytes = 0; /* the cursor queue carries no responses */
        cc.hdr.flags = 0;
    }
    finish_command(device, &cc, complete, complete_user_data);
    if (cc.response != response_storage) {
        free(cc.response);
    }
    /* Work here is synchronous, so fences created above are done already. */
    neep_device_dispatch(device);
}

int neep_device_fence_fd(const struct neep_device *device)
{
    return neep_renderer_fence_fd(device->renderer);
}

struct dispatch_state {
    struct neep_device *device;
};

/* A pending command a signalled fence releases: same timeline, fence id up to it. */
static bool released_by(const struct pending_command *pending, const void *arg)
{
    const struct neep_fence *fence = arg;
    bool on_ring = fence->flags & NEEP_FENCE_FLAG_RING_IDX;
    bool same_timeline =
        pending->on_ring == on_ring &&
        (!on_ring || (pending->ctx_id == fence->ctx_id && pending->ring_idx == fence->ring_idx));
    return same_timeline && pending->fence_id <= fence->fence_id;
}

static void on_fence(void *user_data, const struct neep_fence *fence)
{
    struct neep_device *device = ((struct dispatch_state *)user_data)->device;
    complete_pending_where(device, released_by, fence);
}

void neep_device_dispatch(struct neep_device *device)
{
    struct dispatch_state state = {device};
    neep_renderer_dispatch_fences(device->renderer, on_fence, &state);
}
