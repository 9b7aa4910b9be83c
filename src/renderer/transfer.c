/* Copies between a 2D resource's host pixels and guest (or caller) memory; checks and hands
 * on transfers of resources the renderer's provider keeps. */
#include <errno.h>

#include "renderer_internal.h"
#include "util/checked.h"
#include "util/iov.h"

/* A validated transfer: every offset below is known to lie inside its memory. */
struct transfer_plan {
    uint64_t host_offset;   /* box origin in the resource's pixels */
    uint64_t buffer_offset; /* box origin in the linear buffer */
    uint64_t buffer_stride;
    uint64_t row_bytes;
    uint32_t rows;
};

static int plan_transfer(struct neep_renderer *renderer, const struct neep_resource *resource,
                         const struct neep_transfer *transfer, uint64_t buffer_bytes,
                         const char *what, struct transfer_plan *plan)
{
    uint32_t id = resource->id;
    if (resource->kind != NEEP_RESOURCE_2D) {
        renderer_error(renderer, "%s: resource %u is a blob without host pixels", what, id);
        return -EOPNOTSUPP;
    }
    if (transfer->level != 0) {
        renderer_error(renderer, "%s: resource %u has no mip level %u", what, id, transfer->level);
        return -EINVAL;
    }
    plan->rows = 0;
    if (transfer->width == 0 || transfer->height == 0 || transfer->depth == 0) {
        return 0; /* an empty box moves nothing */
    }
    uint64_t right = (uint64_t)transfer->x + transfer->width;
    uint64_t bottom = (uint64_t)transfer->y + transfer->height;
    uint64_t back = (uint64_t)transfer->z + transfer->depth;
    if (right > resource->width_px || bottom > resource->height_px || back > 1) {
        renderer_error(renderer, "%s: box %ux%ux%u at (%u,%u,%u) leaves resource %u of %ux%ux1",
                       what, transfer->width, transfer->height, transfer->depth, transfer->x,
                       transfer->y, transfer->z, id, resource->width_px, resource->height_px);
        return -EINVAL;
    }
    uint64_t row_bytes = (uint64_t)transfer->width * NEEP_BYTES_PER_PIXEL;
    /* Linear memory holds the image without host padding: a zero stride means width * 4. */
    uint64_t linear_stride = (uint64_t)resource->width_px * NEEP_BYTES_PER_PIXEL;
    uint64_t stride = transfer->stride_bytes ? transfer->stride_bytes : linear_stride;
    if (stride < row_bytes) {
        renderer_error(renderer, "%s: stride %llu is under the row size %llu (resource %u)", what,
                       (unsigned long long)stride, (unsigned long long)row_bytes, id);
        return -EINVAL;
    }
    uint64_t end;
    if (!checked_mul_add_u64(transfer->height - 1u, stride, transfer->offset_bytes, &end) ||
        !checked_add_u64(end, row_bytes, &end)) {
        renderer_error(renderer, "%s: offset %llu with stride %llu overflows (resource %u)", what,
                       (unsigned long long)transfer->offset_bytes, (unsigned long long)stride, id);
        return -EINVAL;
    }
    if (end > buffer_bytes) {
        renderer_error(renderer,
                       "%s: transfer needs %llu bytes of memory, only %llu there (resource %u)",
                       what, (unsigned long long)end, (unsigned long long)buffer_bytes, id);
        return -EINVAL;
    }
    plan->host_offset = (uint64_t)transfer->y * resource->stride_bytes +
                        (uint64_t)transfer->x * NEEP_BYTES_PER_PIXEL;
    plan->buffer_offset = transfer->offset_bytes;
    plan->buffer_stride = stride;
    plan->row_bytes = row_bytes;
    plan->rows = transfer->height;
    return 0;
}

static void run_plan(const struct neep_resource *resource, const struct transfer_plan *plan,
                     const struct iovec *buffer, size_t buffer_count, bool to_host)
{
    struct iov_cursor cursor;
    iov_cursor_init(&cursor, buffer, buffer_count);
    uint8_t *host = resource->pixels + plan->host_offset;

    /* Whole rows on both sides: one contiguous run, the full-frame fast path. */
    bool contiguous =
        plan->buffer_stride == plan->row_bytes && resource->stride_bytes == plan->row_bytes;
    if (contiguous) {
        iov_cursor_seek(&cursor, plan->buffer_offset);
        size_t total = (size_t)(plan->row_bytes * plan->rows);
        if (to_host) {
            iov_cursor_read(&cursor, host, total);
        } else {
            iov_cursor_write(&cursor, host, total);
        }
        return;
    }
    for (uint32_t row = 0; row < plan->rows; row++) {
        iov_cursor_seek(&cursor, plan->buffer_offset + row * plan->buffer_stride);
        uint8_t *host_row = host + (uint64_t)row * resource->stride_bytes;
        if (to_host) {
            iov_cursor_read(&cursor, host_row, (size_t)plan->row_bytes);
        } else {
            iov_cursor_write(&cursor, host_row, (size_t)plan->row_bytes);
        }
    }
}

#define PIPE_BUFFER_TARGET 0u
#define PIPE_TEXTURE_2D    2u
#define PIPE_TEXTURE_RECT  5u

static uint32_t minify(uint32_t size, uint32_t level)
{
    uint32_t smaller = level < 32 ? size >> level : 0;
    return smaller ? smaller : 1;
}

/*
 * Checks a transfer of a provided resource as far as the renderer knows its layout: the box
 * must not overflow, and for buffers and single-layer textures of 4-byte formats it must lie
 * inside the image and its bytes inside `buffer_bytes`. Other layouts are the provider's to
 * check, but the box must still start inside the buffer.
 */
static int check_provided_transfer(struct neep_renderer *renderer,
                                   const struct neep_resource *resource,
                                   const struct neep_transfer *transfer, uint64_t buffer_bytes,
                                   const char *what)
{
    const struct neep_resource_create_3d *create = &resource->create_3d;
    uint32_t id = resource->id;
    uint64_t right = (uint64_t)transfer->x + transfer->width;
    uint64_t bottom = (uint64_t)transfer->y + transfer->height;
    uint64_t back = (uint64_t)transfer->z + transfer->depth;
    if (transfer->level > create->last_level || right > UINT32_MAX || bottom > UINT32_MAX ||
        back > UINT32_MAX) {
        renderer_error(renderer, "%s: box %ux%ux%u at (%u,%u,%u) level %u does not fit resource %u",
                       what, transfer->width, transfer->height, transfer->depth, transfer->x,
                       transfer->y, transfer->z, transfer->level, id);
        return -EINVAL;
    }
    if (transfer->width == 0 || transfer->height == 0 || transfer->depth == 0) {
        return 0;
    }
    if (transfer->offset_bytes >= buffer_bytes) {
        renderer_error(renderer, "%s: offset %llu is past the %llu bytes of memory (resource %u)",
                       what, (unsigned long long)transfer->offset_bytes,
                       (unsigned long long)buffer_bytes, id);
        return -EINVAL;
    }
    if (resource->blob_mem != 0) {
        return 0; /* a blob's layout is the provider's to know */
    }
    bool is_buffer = create->target == PIPE_BUFFER_TARGET;
    bool is_plain_2d = (create->target == PIPE_TEXTURE_2D || create->target == PIPE_TEXTURE_RECT) &&
                       create->array_size <= 1 && neep_format_is_valid(create->format);
    if (!is_buffer && !is_plain_2d) {
        return 0;
    }
    uint32_t texel_bytes = is_buffer ? 1 : NEEP_BYTES_PER_PIXEL;
    uint32_t level_width = is_buffer ? create->width : minify(create->width, transfer->level);
    uint32_t level_height = is_buffer ? 1 : minify(create->height, transfer->level);
    if (right > level_width || bottom > level_height || back > 1) {
        renderer_error(renderer,
                       "%s: box %ux%ux%u at (%u,%u,%u) leaves level %u of resource %u "
                       "(%ux%ux1)",
                       what, transfer->width, transfer->height, transfer->depth, transfer->x,
                       transfer->y, transfer->z, transfer->level, id, level_width, level_height);
        return -EINVAL;
    }
    uint64_t row_bytes = (uint64_t)transfer->width * texel_bytes;
    uint64_t stride =
        transfer->stride_bytes ? transfer->stride_bytes : (uint64_t)level_width * texel_bytes;
    uint64_t end;
    if (stride < row_bytes ||
        !checked_mul_add_u64(transfer->height - 1u, stride, transfer->offset_bytes, &end) ||
        !checked_add_u64(end, row_bytes, &end) || end > buffer_bytes) {
        renderer_error(renderer,
                       "%s: %ux%u box with stride %llu at offset %llu does not fit the "
                       "%llu bytes of memory (resource %u)",
                       what, transfer->width, transfer->height, (unsigned long long)stride,
                       (unsigned long long)transfer->offset_bytes, (unsigned long long)buffer_bytes,
                       id);
        return -EINVAL;
    }
    return 0;
}

static int transfer_provided(struct neep_renderer *renderer, struct neep_resource *resource,
                             uint32_t ctx_id, const struct neep_transfer *transfer,
                             const struct iovec *buffer, size_t buffer_count, uint64_t buffer_bytes,
                             bool to_host)
{
    const char *what = to_host ? "transfer_write" : "transfer_read";
    int ret = check_provided_transfer(renderer, resource, transfer, buffer_bytes, what);
    if (ret < 0 || transfer->width == 0 || transfer->height == 0 || transfer->depth == 0) {
        return ret;
    }
    return renderer->resource_provider->transfer(renderer, resource, ctx_id, transfer, buffer,
                                                 buffer_count, to_host);
}

static int check_transfer_target(struct neep_renderer *renderer, uint32_t ctx_id,
                                 uint32_t resource_id, const struct neep_transfer *transfer,
                                 const char *what, struct neep_resource **out)
{
    if (!transfer) {
        return -EINVAL;
    }
    if (ctx_id != 0 && !neep_context_lookup(renderer, ctx_id)) {
        renderer_error(renderer, "%s: no context %u", what, ctx_id);
        return -ESRCH;
    }
    *out = neep_resource_lookup(renderer, resource_id);
    if (!*out) {
        renderer_error(renderer, "%s: no resource %u", what, resource_id);
        return -ENOENT;
    }
    return 0;
}

int neep_resource_transfer_write(struct neep_renderer *renderer, uint32_t ctx_id,
                                 uint32_t resource_id, const struct neep_transfer *transfer)
{
    struct neep_resource *resource;
    int ret =
        check_transfer_target(renderer, ctx_id, resource_id, transfer, "transfer_write", &resource);
    if (ret < 0) {
        return ret;
    }
    if (resource->kind != NEEP_RESOURCE_BLOB && !resource->backing) {
        renderer_error(renderer, "transfer_write: resource %u has no backing", resource_id);
        return -EINVAL;
    }
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        return transfer_provided(renderer, resource, ctx_id, transfer, resource->backing,
                                 resource->backing_count, resource->backing_bytes, true);
    }
    struct transfer_plan plan;
    ret = plan_transfer(renderer, resource, transfer, resource->backing_bytes, "transfer_write",
                        &plan);
    if (ret == 0 && plan.rows > 0) {
        run_plan(resource, &plan, resource->backing, resource->backing_count, true);
    }
    return ret;
}

int neep_resource_transfer_read(struct neep_renderer *renderer, uint32_t ctx_id,
                                uint32_t resource_id, const struct neep_transfer *transfer,
                                const struct iovec *dst, size_t dst_count)
{
    struct neep_resource *resource;
    int ret =
        check_transfer_target(renderer, ctx_id, resource_id, transfer, "transfer_read", &resource);
    if (ret < 0) {
        return ret;
    }
    uint64_t dst_bytes;
    if (!dst) {
        if (resource->kind != NEEP_RESOURCE_BLOB && !resource->backing) {
            renderer_error(renderer, "transfer_read: resource %u has no backing", resource_id);
            return -EINVAL;
        }
        dst = resource->backing;
        dst_count = resource->backing_count;
        dst_bytes = resource->backing_bytes;
    } else if (!iov_total_bytes(dst, dst_count, &dst_bytes)) {
        renderer_error(renderer, "transfer_read: destination length overflows");
        return -EINVAL;
    }
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        return transfer_provided(renderer, resource, ctx_id, transfer, dst, dst_count, dst_bytes,
                                 false);
    }
    struct transfer_plan plan;
    ret = plan_transfer(renderer, resource, transfer, dst_bytes, "transfer_read", &plan);
    if (ret == 0 && plan.rows > 0) {
        run_plan(resource, &plan, dst, dst_count, false);
    }
    return ret;
}
