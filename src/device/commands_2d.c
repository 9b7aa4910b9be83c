/* Handlers for the 2D commands and the cursor queue, and the command table. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "device_internal.h"

/* Takes the display's current layout, when it has one (the VMM's outputs, say): it says which
 * scanouts are on, and the sizes of those it knows; others keep the device's own size. */
static void refresh_layout(struct neep_device *device)
{
    const struct neep_display_ops *display = device->display;
    struct neep_scanout_size sizes[NEEP_MAX_SCANOUTS];
    uint32_t count = 0;
    if (display->get_layout && display->get_layout(device->display_user_data, sizes, &count) &&
        count >= 1 && count <= NEEP_MAX_SCANOUTS) {
        if (count > device->scanout_count) {
            device->scanout_count = count;
        }
        for (uint32_t i = 0; i < count; i++) {
            device->scanouts[i].enabled = sizes[i].enabled;
            if (sizes[i].width_px > 0 && sizes[i].height_px > 0 &&
                sizes[i].width_px <= NEEP_MAX_SCANOUT_DIMENSION_PX &&
                sizes[i].height_px <= NEEP_MAX_SCANOUT_DIMENSION_PX) {
                device->scanouts[i].width_px = sizes[i].width_px;
                device->scanouts[i].height_px = sizes[i].height_px;
            }
        }
    }
}

static int cmd_get_display_info(struct command_context *cc, const void *request)
{
    struct neep_device *device = cc->device;
    refresh_layout(device);
    struct virtio_gpu_resp_display_info *resp =
        command_respond(cc, VIRTIO_GPU_RESP_OK_DISPLAY_INFO, sizeof(*resp));
    for (uint32_t i = 0; i < device->scanout_count; i++) {
        const struct device_scanout *scanout = &device->scanouts[i];
        resp->pmodes[i].r.width = scanout->width_px;
        resp->pmodes[i].r.height = scanout->height_px;
        resp->pmodes[i].enabled = scanout->enabled;
        if (scanout->enabled) {
            neep_log_host(device->logger, NEEP_LOG_DEBUG, "display %u: %ux%u", i, scanout->width_px,
                          scanout->height_px);
        }
    }
    return 0;
}

static int cmd_get_edid(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_cmd_get_edid *cmd = request;
    struct neep_device *device = cc->device;
    /* Linux asks for EDIDs before display info: the preferred mode must already be the
     * display's size, or the driver rejects it against the display info that follows. */
    refresh_layout(device);
    if (cmd->scanout >= device->scanout_count) {
        device_error(device, "GET_EDID: no scanout %u", cmd->scanout);
        return -ENXIO;
    }
    const struct device_scanout *scanout = &device->scanouts[cmd->scanout];
    struct virtio_gpu_resp_edid *resp = command_respond(cc, VIRTIO_GPU_RESP_OK_EDID, sizeof(*resp));
    resp->size = 128;
    edid_generate(resp->edid, scanout->width_px, scanout->height_px, cmd->scanout);
    return 0;
}

static int cmd_resource_create_2d(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_resource_create_2d *cmd = request;
    struct neep_resource_create_3d create = {
        .target = NEEP_TARGET_TEXTURE_2D,
        .format = cmd->format,
        .bind = 1u << 1,
        .width = cmd->width,
        .height = cmd->height,
        .depth = 1,
        .array_size = 1,
    };
    return neep_resource_create_3d(cc->device->renderer, cmd->resource_id, &create);
}

static int cmd_resource_unref(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_resource_unref *cmd = request;
    struct neep_device *device = cc->device;
    if (neep_resource_lookup(device->renderer, cmd->resource_id)) {
        scanout_resource_changing(device, cmd->resource_id); /* its storage goes */
    }
    int ret = neep_resource_unref(device->renderer, cmd->resource_id);
    if (ret == 0) {
        scanout_forget_resource(device, cmd->resource_id);
        free(id_table_remove(&device->uuids, cmd->resource_id));
    }
    return ret;
}

static int cmd_set_scanout(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_set_scanout *cmd = request;
    return scanout_show(cc->device, cmd->scanout_id, cmd->resource_id, &cmd->r);
}

static int cmd_resource_flush(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_resource_flush *cmd = request;
    return scanout_flush_resource(cc->device, cmd->resource_id, &cmd->r);
}

static int cmd_transfer_to_host_2d(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_transfer_to_host_2d *cmd = request;
    /* The guest's offset is where the rectangle starts in its backing. */
    struct neep_transfer transfer = {
        .x = cmd->r.x,
        .y = cmd->r.y,
        .width = cmd->r.width,
        .height = cmd->r.height,
        .depth = 1,
        .offset_bytes = cmd->offset,
    };
    scanout_resource_changing(cc->device, cmd->resource_id);
    return neep_resource_transfer_write(cc->device->renderer, 0, cmd->resource_id, &transfer);
}

static int cmd_attach_backing(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_resource_attach_backing *cmd = request;
    struct neep_device *device = cc->device;
    if (!neep_resource_lookup(device->renderer, cmd->resource_id)) {
        device_error(device, "ATTACH_BACKING: no resource %u", cmd->resource_id);
        return -ENOENT;
    }
    struct iovec *iov;
    size_t iov_count;
    int ret = command_read_mem_entries(cc, sizeof(*cmd), cmd->nr_entries, &iov, &iov_count);
    if (ret < 0) {
        return ret;
    }
    if (iov_count == 0) {
        device_error(device, "ATTACH_BACKING: resource %u given no memory", cmd->resource_id);
        return -EINVAL;
    }
    ret = neep_resource_attach_backing(device->renderer, cmd->resource_id, iov, iov_count);
    free(iov);
    return ret;
}

static int cmd_detach_backing(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_resource_detach_backing *cmd = request;
    return neep_resource_detach_backing(cc->device->renderer, cmd->resource_id);
}

static int cmd_assign_uuid(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_resource_assign_uuid *cmd = request;
    struct neep_device *device = cc->device;
    if (!neep_resource_lookup(device->renderer, cmd->resource_id)) {
        device_error(device, "ASSIGN_UUID: no resource %u", cmd->resource_id);
        return -ENOENT;
    }
    uint8_t *uuid = id_table_get(&device->uuids, cmd->resource_id);
    if (!uuid) {
        uuid = malloc(16);
        if (!uuid || getrandom(uuid, 16, 0) != 16) {
            free(uuid);
            return -ENOMEM;
        }
        uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* version 4: random */
        uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        int ret = id_table_insert(&device->uuids, cmd->resource_id, uuid);
        if (ret < 0) {
            free(uuid);
            return ret;
        }
    }
    struct virtio_gpu_resp_resource_uuid *resp =
        command_respond(cc, VIRTIO_GPU_RESP_OK_RESOURCE_UUID, sizeof(*resp));
    memcpy(resp->uuid, uuid, 16);
    return 0;
}

static int cmd_update_cursor(struct command_context *cc, const void *request)
{
    return cursor_update(cc->device, request);
}

static int cmd_move_cursor(struct command_context *cc, const void *request)
{
    cursor_move(cc->device, request);
    return 0;
}

#define FIXED(type, fn, feature)                                                                   \
    {                                                                                              \
#type, fn, sizeof(struct type), false, feature                                             \
    }
#define VARIABLE(type, fn, feature)                                                                \
    {                                                                                              \
#type, fn, sizeof(struct type), true, feature                                              \
    }

static const struct command_info commands_2d[] = {
    [VIRTIO_GPU_CMD_GET_DISPLAY_INFO - 0x100] = FIXED(virtio_gpu_ctrl_hdr, cmd_get_display_info, 0),
    [VIRTIO_GPU_CMD_RESOURCE_CREATE_2D - 0x100] =
        FIXED(virtio_gpu_resource_create_2d, cmd_resource_create_2d, 0),
    [VIRTIO_GPU_CMD_RESOURCE_UNREF - 0x100] =
        FIXED(virtio_gpu_resource_unref, cmd_resource_unref, 0),
    [VIRTIO_GPU_CMD_SET_SCANOUT - 0x100] = FIXED(virtio_gpu_set_scanout, cmd_set_scanout, 0),
    [VIRTIO_GPU_CMD_RESOURCE_FLUSH - 0x100] =
        FIXED(virtio_gpu_resource_flush, cmd_resource_flush, 0),
    [VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D - 0x100] =
        FIXED(virtio_gpu_transfer_to_host_2d, cmd_transfer_to_host_2d, 0),
    [VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING - 0x100] =
        VARIABLE(virtio_gpu_resource_attach_backing, cmd_attach_backing, 0),
    [VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING - 0x100] =
        FIXED(virtio_gpu_resource_detach_backing, cmd_detach_backing, 0),
    [VIRTIO_GPU_CMD_GET_CAPSET_INFO - 0x100] =
        FIXED(virtio_gpu_get_capset_info, cmd_get_capset_info, NEEP_DEVICE_F_VIRGL),
    [VIRTIO_GPU_CMD_GET_CAPSET - 0x100] =
        FIXED(virtio_gpu_get_capset, cmd_get_capset, NEEP_DEVICE_F_VIRGL),
    [VIRTIO_GPU_CMD_GET_EDID - 0x100] =
        FIXED(virtio_gpu_cmd_get_edid, cmd_get_edid, NEEP_DEVICE_F_EDID),
    [VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID - 0x100] =
        FIXED(virtio_gpu_resource_assign_uuid, cmd_assign_uuid, NEEP_DEVICE_F_RESOURCE_UUID),
    [VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB - 0x100] = VARIABLE(
        virtio_gpu_resource_create_blob, cmd_resource_create_blob, NEEP_DEVICE_F_RESOURCE_BLOB),
    [VIRTIO_GPU_CMD_SET_SCANOUT_BLOB - 0x100] =
        FIXED(virtio_gpu_set_scanout_blob, cmd_set_scanout_blob, NEEP_DEVICE_F_RESOURCE_BLOB),
};

static const struct command_info commands_3d[] = {
    [VIRTIO_GPU_CMD_CTX_CREATE - 0x200] =
        FIXED(virtio_gpu_ctx_create, cmd_ctx_create, NEEP_DEVICE_F_VIRGL),
    [VIRTIO_GPU_CMD_CTX_DESTROY - 0x200] =
        FIXED(virtio_gpu_ctx_destroy, cmd_ctx_destroy, NEEP_DEVICE_F_VIRGL),
    [VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE - 0x200] =
        FIXED(virtio_gpu_ctx_resource, cmd_ctx_attach_resource, NEEP_DEVICE_F_VIRGL),
    [VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE - 0x200] =
        FIXED(virtio_gpu_ctx_resource, cmd_ctx_detach_resource, NEEP_DEVICE_F_VIRGL),
    [VIRTIO_GPU_CMD_RESOURCE_CREATE_3D - 0x200] =
        FIXED(virtio_gpu_resource_create_3d, cmd_resource_create_3d, NEEP_DEVICE_F_VIRGL),
    [VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D - 0x200] =
        FIXED(virtio_gpu_transfer_host_3d, cmd_transfer_to_host_3d, NEEP_DEVICE_F_VIRGL),
    [VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D - 0x200] =
        FIXED(virtio_gpu_transfer_host_3d, cmd_transfer_from_host_3d, NEEP_DEVICE_F_VIRGL),
    [VIRTIO_GPU_CMD_SUBMIT_3D - 0x200] =
        VARIABLE(virtio_gpu_cmd_submit, cmd_submit_3d, NEEP_DEVICE_F_VIRGL),
    [VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB - 0x200] =
        FIXED(virtio_gpu_resource_map_blob, cmd_resource_map_blob, NEEP_DEVICE_F_RESOURCE_BLOB),
    [VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB - 0x200] =
        FIXED(virtio_gpu_resource_unmap_blob, cmd_resource_unmap_blob, NEEP_DEVICE_F_RESOURCE_BLOB),
};

static const struct command_info commands_cursor[] = {
    [VIRTIO_GPU_CMD_UPDATE_CURSOR - 0x300] = FIXED(virtio_gpu_update_cursor, cmd_update_cursor, 0),
    [VIRTIO_GPU_CMD_MOVE_CURSOR - 0x300] = FIXED(virtio_gpu_update_cursor, cmd_move_cursor, 0),
};

#define LOOKUP(table, base)                                                                        \
    if (type >= (base) && type - (base) < sizeof(table) / sizeof(table[0]) &&                      \
        table[type - (base)].handler) {                                                            \
        return &table[type - (base)];                                                              \
    }

const struct command_info *command_lookup(uint32_t type)
{
    LOOKUP(commands_2d, 0x100);
    LOOKUP(commands_3d, 0x200);
    LOOKUP(commands_cursor, 0x300);
    return NULL;
}
