/* Handlers for capsets, contexts, 3D resources and transfers, submission and blobs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"

int cmd_get_capset_info(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_get_capset_info *cmd = request;
    uint32_t id, version, size;
    int ret = neep_capset_info(cc->device->renderer, cmd->capset_index, &id, &version, &size);
    if (ret < 0) {
        return ret;
    }
    struct virtio_gpu_resp_capset_info *resp =
        command_respond(cc, VIRTIO_GPU_RESP_OK_CAPSET_INFO, sizeof(*resp));
    resp->capset_id = id;
    resp->capset_max_version = version;
    resp->capset_max_size = size;
    return 0;
}

int cmd_get_capset(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_get_capset *cmd = request;
    struct neep_renderer *renderer = cc->device->renderer;
    for (uint32_t i = 0; i < neep_capset_count(renderer); i++) {
        uint32_t id, version, size;
        neep_capset_info(renderer, i, &id, &version, &size);
        if (id != cmd->capset_id) {
            continue;
        }
        size_t total = sizeof(struct virtio_gpu_resp_capset) + size;
        if (total > MAX_FIXED_RESPONSE_BYTES) {
            uint8_t *larger = malloc(total);
            if (!larger) {
                return -ENOMEM;
            }
            cc->response = larger; /* freed by the caller */
        }
        struct virtio_gpu_resp_capset *resp =
            command_respond(cc, VIRTIO_GPU_RESP_OK_CAPSET, (uint32_t)total);
        return neep_capset_get(renderer, id, cmd->capset_version, resp->capset_data, size);
    }
    device_error(cc->device, "GET_CAPSET: capset %u is not offered", cmd->capset_id);
    return -EINVAL;
}

int cmd_ctx_create(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_ctx_create *cmd = request;
    uint32_t name_len = cmd->nlen < sizeof(cmd->debug_name) ? cmd->nlen : sizeof(cmd->debug_name);
    uint32_t context_init = cmd->context_init;
    if (!(cc->device->acked_features & NEEP_DEVICE_F_CONTEXT_INIT)) {
        context_init = 0; /* the field is padding for drivers without context init */
    }
    return neep_context_create(cc->device->renderer, cc->hdr.ctx_id, context_init, cmd->debug_name,
                               name_len);
}

int cmd_ctx_destroy(struct command_context *cc, const void *request)
{
    int ret = neep_context_destroy(cc->device->renderer, cc->hdr.ctx_id);
    if (ret == 0) {
        device_complete_context_pending(cc->device, cc->hdr.ctx_id);
    }
    return ret;
}

int cmd_ctx_attach_resource(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_ctx_resource *cmd = request;
    return neep_context_attach_resource(cc->device->renderer, cc->hdr.ctx_id, cmd->resource_id);
}

int cmd_ctx_detach_resource(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_ctx_resource *cmd = request;
    return neep_context_detach_resource(cc->device->renderer, cc->hdr.ctx_id, cmd->resource_id);
}

int cmd_resource_create_3d(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_resource_create_3d *cmd = request;
    struct neep_resource_create_3d create = {
        .target = cmd->target,
        .format = cmd->format,
        .bind = cmd->bind,
        .width = cmd->width,
        .height = cmd->height,
        .depth = cmd->depth,
        .array_size = cmd->array_size,
        .last_level = cmd->last_level,
        .nr_samples = cmd->nr_samples,
        .flags = cmd->flags,
    };
    return neep_resource_create_3d(cc->device->renderer, cmd->resource_id, &create);
}

static void transfer_from_wire(const struct virtio_gpu_transfer_host_3d *cmd,
                               struct neep_transfer *transfer)
{
    *transfer = (struct neep_transfer){
        .x = cmd->box.x,
        .y = cmd->box.y,
        .z = cmd->box.z,
        .width = cmd->box.w,
        .height = cmd->box.h,
        .depth = cmd->box.d,
        .level = cmd->level,
        .stride_bytes = cmd->stride,
        .layer_stride_bytes = cmd->layer_stride,
        .offset_bytes = cmd->offset,
    };
}

int cmd_transfer_to_host_3d(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_transfer_host_3d *cmd = request;
    struct neep_transfer transfer;
    transfer_from_wire(cmd, &transfer);
    scanout_resource_changing(cc->device, cmd->resource_id);
    return neep_resource_transfer_write(cc->device->renderer, cc->hdr.ctx_id, cmd->resource_id,
                                        &transfer);
}

int cmd_transfer_from_host_3d(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_transfer_host_3d *cmd = request;
    struct neep_transfer transfer;
    transfer_from_wire(cmd, &transfer);
    return neep_resource_transfer_read(cc->device->renderer, cc->hdr.ctx_id, cmd->resource_id,
                                       &transfer, NULL, 0);
}

int cmd_submit_3d(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_cmd_submit *cmd = request;
    struct neep_device *device = cc->device;
    /* Check the claimed size against the bytes really there before allocating anything. */
    uint64_t available = cc->request_bytes - sizeof(*cmd);
    if (cmd->size != available) {
        device_error(device, "SUBMIT_3D claims %u bytes, the request carries %llu", cmd->size,
                     (unsigned long long)available);
        return -EINVAL;
    }
    if (cmd->size > NEEP_MAX_SUBMIT_BYTES) {
        device_error(device, "SUBMIT_3D of %u bytes, limit %u", cmd->size, NEEP_MAX_SUBMIT_BYTES);
        return -E2BIG;
    }
    uint8_t *commands = malloc(cmd->size ? cmd->size : 1);
    if (!commands) {
        return -ENOMEM;
    }
    int ret = command_read(cc, sizeof(*cmd), commands, cmd->size);
    if (ret == 0) {
        ret = neep_context_submit(device->renderer, cc->hdr.ctx_id, commands, cmd->size);
    }
    free(commands);
    return ret;
}

int cmd_resource_create_blob(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_resource_create_blob *cmd = request;
    struct neep_device *device = cc->device;
    struct iovec *iov = NULL;
    size_t iov_count = 0;
    int ret = command_read_mem_entries(cc, sizeof(*cmd), cmd->nr_entries, &iov, &iov_count);
    if (ret < 0) {
        return ret;
    }
    struct neep_blob_create create = {
        .blob_mem = cmd->blob_mem,
        .blob_flags = cmd->blob_flags,
        .blob_id = cmd->blob_id,
        .size_bytes = cmd->size,
    };
    ret = neep_resource_create_blob(device->renderer, cc->hdr.ctx_id, cmd->resource_id, &create,
                                    iov, iov_count);
    free(iov);
    return ret;
}

int cmd_set_scanout_blob(struct command_context *cc, const void *request)
{
    const struct virtio_gpu_set_scanout_blob *cmd = request;
    if (cmd->scanout_id >= cc->device->scanout_count) {
        device_error(cc->device, "SET_SCANOUT_BLOB: no scanout %u", cmd->scanout_id);
        return -ENXIO;
    }
    if (cmd->resource_id == 0) {
        return scanout_show(cc->device, cmd->scanout_id, 0, &cmd->r);
    }
    device_error(cc->device, "SET_SCANOUT_BLOB: scanning out blob resources is not supported");
    return -EOPNOTSUPP;
}

/* Mapping blobs needs a host-visible memory region, which this device does not offer. */
int cmd_resource_map_blob(struct command_context *cc, const void *request)
{
    device_error(cc->device, "RESOURCE_MAP_BLOB: this device has no host-visible region");
    return -EOPNOTSUPP;
}

int cmd_resource_unmap_blob(struct command_context *cc, const void *request)
{
    device_error(cc->device, "RESOURCE_UNMAP_BLOB: this device has no host-visible region");
    return -EOPNOTSUPP;
}
