/*
 * Scanouts and the cursor: which resource each display shows, and pushing exactly the
 * damaged rectangle to the display. Resources already in the display's pixel layout go out
 * straight from their storage; other formats are converted through pixman first. Resources
 * the renderer's provider keeps (virgl) have no storage here: the damaged rectangle is read
 * back first.
 */
#include <errno.h>
#include <pixman.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"

static pixman_format_code_t pixman_format_for(uint32_t format)
{
    switch (format) {
    case NEEP_FORMAT_B8G8R8A8_UNORM:
        return PIXMAN_a8r8g8b8;
    case NEEP_FORMAT_B8G8R8X8_UNORM:
        return PIXMAN_x8r8g8b8;
    case NEEP_FORMAT_A8R8G8B8_UNORM:
        return PIXMAN_b8g8r8a8;
    case NEEP_FORMAT_X8R8G8B8_UNORM:
        return PIXMAN_b8g8r8x8;
    case NEEP_FORMAT_R8G8B8A8_UNORM:
        return PIXMAN_a8b8g8r8;
    case NEEP_FORMAT_X8B8G8R8_UNORM:
        return PIXMAN_r8g8b8x8;
    case NEEP_FORMAT_A8B8G8R8_UNORM:
        return PIXMAN_r8g8b8a8;
    case NEEP_FORMAT_R8G8B8X8_UNORM:
        return PIXMAN_x8b8g8r8;
    }
    return 0;
}

/* Cursors keep the fourth byte as alpha even in X formats: QEMU's devices pass the bytes on
 * as they are, and guests (Linux included) draw cursors in dumb buffers made as XRGB. */
static pixman_format_code_t cursor_pixman_format_for(uint32_t format)
{
    switch (format) {
    case NEEP_FORMAT_B8G8R8X8_UNORM:
        return PIXMAN_a8r8g8b8;
    case NEEP_FORMAT_X8R8G8B8_UNORM:
        return PIXMAN_b8g8r8a8;
    case NEEP_FORMAT_X8B8G8R8_UNORM:
        return PIXMAN_r8g8b8a8;
    case NEEP_FORMAT_R8G8B8X8_UNORM:
        return PIXMAN_a8b8g8r8;
    }
    return pixman_format_for(format);
}

static bool display_native(uint32_t format)
{
    return format == NEEP_FORMAT_B8G8R8A8_UNORM || format == NEEP_FORMAT_B8G8R8X8_UNORM;
}

static uint64_t rect_bytes(const struct virtio_gpu_rect *rect)
{
    return (uint64_t)rect->width * rect->height * 4;
}

/* Staging a scanout of `resource` needs: a read-back copy of the rectangle for resources the
 * renderer's provider keeps, and room for the conversion of formats the display cannot
 * take. */
static uint64_t staging_needed(const struct neep_resource *resource,
                               const struct virtio_gpu_rect *rect)
{
    uint64_t copies = (resource->kind == NEEP_RESOURCE_PROVIDED ? 1 : 0) +
                      (display_native(resource->format) ? 0 : 1);
    return copies * rect_bytes(rect);
}

/* Grows the staging to `needed_bytes`, charging the growth to the budget first. */
static int reserve_staging(struct neep_device *device, uint64_t needed_bytes)
{
    if (needed_bytes <= device->staging_bytes) {
        return 0;
    }
    if (needed_bytes > SIZE_MAX) {
        return -ENOMEM;
    }
    uint64_t growth_bytes = needed_bytes - device->staging_bytes;
    int ret = neep_budget_charge(device->renderer, growth_bytes);
    if (ret < 0) {
        device_error(device, "no budget for %llu bytes of scanout conversion staging",
                     (unsigned long long)needed_bytes);
        return ret;
    }
    uint8_t *staging = realloc(device->staging, (size_t)needed_bytes);
    if (!staging) {
        neep_budget_release(device->renderer, growth_bytes);
        return -ENOMEM;
    }
    device->staging = staging;
    device->staging_bytes = (size_t)needed_bytes;
    return 0;
}

void scanout_release_staging(struct neep_device *device)
{
    free(device->staging);
    device->staging = NULL;
    neep_budget_release(device->renderer, device->staging_bytes);
    device->staging_bytes = 0;
}

/* Shrinks the staging to what the scanouts still showing converted formats need. */
static void trim_staging(struct neep_device *device)
{
    uint64_t needed_bytes = 0;
    for (uint32_t i = 0; i < device->scanout_count; i++) {
        const struct device_scanout *scanout = &device->scanouts[i];
        const struct neep_resource *resource =
            scanout->resource_id ? neep_resource_lookup(device->renderer, scanout->resource_id)
                                 : NULL;
        if (resource && staging_needed(resource, &scanout->rect) > needed_bytes) {
            needed_bytes = staging_needed(resource, &scanout->rect);
        }
    }
    if (needed_bytes == 0) {
        scanout_release_staging(device);
    } else if (needed_bytes < device->staging_bytes) {
        uint8_t *smaller = realloc(device->staging, (size_t)needed_bytes);
        if (smaller) {
            neep_budget_release(device->renderer, device->staging_bytes - needed_bytes);
            device->staging = smaller;
            device->staging_bytes = (size_t)needed_bytes;
        }
    }
}

/* True if the rectangle is non-empty and lies inside width x height. */
static bool rect_inside(const struct virtio_gpu_rect *rect, uint32_t width, uint32_t height)
{
    return rect->width > 0 && rect->height > 0 && (uint64_t)rect->x + rect->width <= width &&
           (uint64_t)rect->y + rect->height <= height;
}

/* Pixels of a resource the device can read: its host storage, or a read-back copy. */
struct pixel_view {
    uint32_t format;
    const uint8_t *pixels; /* pixel (x, y) of the view's image is at y * stride + x * 4 */
    uint32_t stride_bytes;
    uint32_t width_px, height_px;
};

/* Reads rectangle (x, y, width, height) of a provided resource into the staging's start. */
static int read_back(struct neep_device *device, const struct neep_resource *resource, uint32_t x,
                     uint32_t y, uint32_t width, uint32_t height, struct pixel_view *view)
{
    uint64_t bytes = (uint64_t)width * height * 4;
    if (bytes > device->staging_bytes) {
        return -ENOMEM; /* SET_SCANOUT reserved it; a cursor never needs this */
    }
    struct iovec iov = {device->staging, (size_t)bytes};
    struct neep_transfer box = {
        .x = x, .y = y, .width = width, .height = height, .depth = 1, .stride_bytes = width * 4};
    int ret = neep_resource_transfer_read(device->renderer, 0, resource->id, &box, &iov, 1);
    if (ret < 0) {
        return ret;
    }
    *view = (struct pixel_view){resource->format, device->staging, width * 4, width, height};
    return 0;
}

/* Converts rectangle (x, y, width, height) of `view` into `out` as tightly packed x8r8g8b8. */
static int convert_rect(const struct pixel_view *view, uint32_t x, uint32_t y, uint32_t width,
                        uint32_t height, uint8_t *out)
{
    pixman_image_t *src = pixman_image_create_bits(
        pixman_format_for(view->format), (int)view->width_px, (int)view->height_px,
        (uint32_t *)view->pixels, (int)view->stride_bytes);
    pixman_image_t *dst = pixman_image_create_bits(PIXMAN_x8r8g8b8, (int)width, (int)height,
                                                   (uint32_t *)out, (int)width * 4);
    if (!src || !dst) {
        if (src) {
            pixman_image_unref(src);
        }
        if (dst) {
            pixman_image_unref(dst);
        }
        return -ENOMEM;
    }
    pixman_image_composite(PIXMAN_OP_SRC, src, NULL, dst, (int16_t)x, (int16_t)y, 0, 0, 0, 0,
                           (uint16_t)width, (uint16_t)height);
    pixman_image_unref(src);
    pixman_image_unref(dst);
    return 0;
}

/* Rectangle (x, y, width, height) of `resource` as the display takes it (x8r8g8b8 rows,
 * `*stride` apart): straight from the resource's storage, or read back and converted into the
 * staging, valid until the staging's next use. */
static int display_pixels(struct neep_device *device, const struct neep_resource *resource,
                          uint32_t x, uint32_t y, uint32_t width, uint32_t height,
                          const uint8_t **pixels, uint32_t *stride)
{
    struct pixel_view view = {resource->format, resource->pixels, resource->stride_bytes,
                              resource->width_px, resource->height_px};
    uint64_t converted_offset = 0;
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        int ret = read_back(device, resource, x, y, width, height, &view);
        if (ret < 0) {
            return ret;
        }
        x = y = 0;
        converted_offset = (uint64_t)width * height * 4;
    }
    if (display_native(resource->format)) {
        *pixels = view.pixels + (size_t)y * view.stride_bytes + (size_t)x * 4;
        *stride = view.stride_bytes;
        return 0;
    }
    if (converted_offset + (uint64_t)width * height * 4 > device->staging_bytes) {
        return -ENOMEM; /* reserved at SET_SCANOUT, so this does not happen */
    }
    int ret = convert_rect(&view, x, y, width, height, device->staging + converted_offset);
    if (ret < 0) {
        return ret;
    }
    *pixels = device->staging + converted_offset;
    *stride = width * 4;
    return 0;
}

/* Tells the display that what resource `resource_id` holds (0: every resource) is about to
 * change without a flush, or (resources the device cannot watch) may change at any time from
 * now: a display still sending an earlier flush of it takes its copy first. */
void scanout_resource_changing(struct neep_device *device, uint32_t resource_id)
{
    if (device->display->changing) {
        device->display->changing(device->display_user_data, resource_id);
    }
}

/* Sends rectangle (x, y, width, height) of the resource to the scanout at (dst_x, dst_y). */
static int push_rect(struct neep_device *device, uint32_t scanout_id,
                     const struct neep_resource *resource, uint32_t x, uint32_t y, uint32_t width,
                     uint32_t height, uint32_t dst_x, uint32_t dst_y)
{
    const uint8_t *pixels;
    uint32_t stride;
    int ret = display_pixels(device, resource, x, y, width, height, &pixels, &stride);
    if (ret < 0) {
        return ret;
    }
    device->display->update(device->display_user_data, scanout_id, dst_x, dst_y, width, height,
                            pixels, stride);
    device->stats.flushed_bytes += (uint64_t)width * height * 4;
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        /* Its provider draws into it with no command the device sees. */
        scanout_resource_changing(device, resource->id);
    }
    return 0;
}

int neep_device_read_scanout(struct neep_device *device, uint32_t scanout_id, uint32_t x,
                             uint32_t y, uint32_t width, uint32_t height, uint8_t *dst,
                             uint32_t dst_stride_bytes)
{
    if (scanout_id >= device->scanout_count) {
        return -ENXIO;
    }
    const struct device_scanout *scanout = &device->scanouts[scanout_id];
    struct neep_resource *resource =
        scanout->resource_id ? neep_resource_lookup(device->renderer, scanout->resource_id) : NULL;
    struct virtio_gpu_rect rect = {.x = x, .y = y, .width = width, .height = height};
    if (!resource) {
        return -ENOENT;
    }
    if (!rect_inside(&rect, scanout->rect.width, scanout->rect.height) ||
        (uint64_t)width * 4 > dst_stride_bytes) {
        return -EINVAL;
    }
    const uint8_t *pixels;
    uint32_t stride;
    int ret = display_pixels(device, resource, scanout->rect.x + x, scanout->rect.y + y, width,
                             height, &pixels, &stride);
    if (ret < 0) {
        return ret;
    }
    for (uint32_t row = 0; row < height; row++) {
        memcpy(dst + (size_t)row * dst_stride_bytes, pixels + (size_t)row * stride,
               (size_t)width * 4);
    }
    return 0;
}

uint32_t neep_device_scanout_resource(const struct neep_device *device, uint32_t scanout_id)
{
    return scanout_id < device->scanout_count ? device->scanouts[scanout_id].resource_id : 0;
}

int neep_device_scanout_view(struct neep_device *device, uint32_t scanout_id, uint32_t x,
                             uint32_t y, uint32_t width, uint32_t height, const uint8_t **pixels,
                             uint32_t *stride_bytes)
{
    if (scanout_id >= device->scanout_count) {
        return -ENXIO;
    }
    const struct device_scanout *scanout = &device->scanouts[scanout_id];
    const struct neep_resource *resource =
        scanout->resource_id ? neep_resource_lookup(device->renderer, scanout->resource_id) : NULL;
    struct virtio_gpu_rect rect = {.x = x, .y = y, .width = width, .height = height};
    if (!resource) {
        return -ENOENT;
    }
    if (!rect_inside(&rect, scanout->rect.width, scanout->rect.height)) {
        return -EINVAL;
    }
    if (resource->kind != NEEP_RESOURCE_2D || !display_native(resource->format)) {
        return -EOPNOTSUPP;
    }
    *pixels = resource->pixels + (size_t)(scanout->rect.y + y) * resource->stride_bytes +
              (size_t)(scanout->rect.x + x) * 4;
    *stride_bytes = resource->stride_bytes;
    return 0;
}

static int find_shown_resource(struct neep_device *device, uint32_t resource_id, const char *what,
                               struct neep_resource **out)
{
    struct neep_resource *resource = neep_resource_lookup(device->renderer, resource_id);
    if (!resource) {
        device_error(device, "%s: no resource %u", what, resource_id);
        return -ENOENT;
    }
    if (resource->kind == NEEP_RESOURCE_BLOB) {
        device_error(device, "%s: resource %u has no host pixels to show", what, resource_id);
        return -EINVAL;
    }
    /* The provider takes any format it knows (R8, floats, ...) even from RESOURCE_CREATE_2D;
     * only the 4-byte formats below have pixman codes and the read-back's texel size. */
    if (!neep_format_is_valid(resource->format)) {
        device_error(device, "%s: resource %u has format %u, which no display takes", what,
                     resource_id, resource->format);
        return -EINVAL;
    }
    /* Read-back takes a rectangle of the first layer and level of a 2D image; a buffer, a
     * 3D texture or a provider's blob has no such image. */
    const uint32_t texture_2d = 2, texture_rect = 5;
    if (resource->kind == NEEP_RESOURCE_PROVIDED &&
        (resource->blob_mem != 0 || (resource->create_3d.target != texture_2d &&
                                     resource->create_3d.target != texture_rect))) {
        device_error(device, "%s: resource %u is not a 2D image (target %u%s)", what, resource_id,
                     resource->create_3d.target, resource->blob_mem ? ", a blob" : "");
        return -EINVAL;
    }
    *out = resource;
    return 0;
}

int scanout_show(struct neep_device *device, uint32_t scanout_id, uint32_t resource_id,
                 const struct virtio_gpu_rect *rect)
{
    if (scanout_id >= device->scanout_count) {
        device_error(device, "SET_SCANOUT: no scanout %u (there are %u)", scanout_id,
                     device->scanout_count);
        return -ENXIO;
    }
    struct device_scanout *scanout = &device->scanouts[scanout_id];
    if (resource_id == 0) {
        if (scanout->resource_id != 0 && device->display->scanout) {
            device->display->scanout(device->display_user_data, scanout_id, 0, 0);
        }
        scanout->resource_id = 0;
        trim_staging(device);
        return 0;
    }
    struct neep_resource *resource;
    int ret = find_shown_resource(device, resource_id, "SET_SCANOUT", &resource);
    if (ret < 0) {
        return ret;
    }
    if (!rect_inside(rect, resource->width_px, resource->height_px)) {
        device_error(device, "SET_SCANOUT: %ux%u at (%u,%u) is empty or leaves resource %u (%ux%u)",
                     rect->width, rect->height, rect->x, rect->y, resource_id, resource->width_px,
                     resource->height_px);
        return -EINVAL;
    }
    if (rect->width > NEEP_MAX_SCANOUT_RECT_PX || rect->height > NEEP_MAX_SCANOUT_RECT_PX) {
        device_error(device, "SET_SCANOUT: %ux%u is larger than a scanout may be (%ux%u)",
                     rect->width, rect->height, NEEP_MAX_SCANOUT_RECT_PX, NEEP_MAX_SCANOUT_RECT_PX);
        return -EINVAL;
    }
    /* Read-back and conversion need staging the size of the rectangle: have it first. */
    ret = reserve_staging(device, staging_needed(resource, rect));
    if (ret < 0) {
        return ret;
    }
    bool resized = scanout->resource_id == 0 || scanout->rect.width != rect->width ||
                   scanout->rect.height != rect->height;
    scanout->resource_id = resource_id;
    scanout->rect = *rect;
    trim_staging(device); /* this scanout may have shown a larger converted image before */
    if (resized && device->display->scanout) {
        device->display->scanout(device->display_user_data, scanout_id, rect->width, rect->height);
    }
    /* Show what the resource holds now; later flushes send only the damage. */
    return push_rect(device, scanout_id, resource, rect->x, rect->y, rect->width, rect->height, 0,
                     0);
}

int scanout_flush_resource(struct neep_device *device, uint32_t resource_id,
                           const struct virtio_gpu_rect *rect)
{
    struct neep_resource *resource;
    int ret = find_shown_resource(device, resource_id, "RESOURCE_FLUSH", &resource);
    if (ret < 0) {
        return ret;
    }
    if (!rect_inside(rect, resource->width_px, resource->height_px)) {
        if (rect->width == 0 || rect->height == 0) {
            return 0; /* nothing damaged */
        }
        device_error(device, "RESOURCE_FLUSH: %ux%u at (%u,%u) leaves resource %u (%ux%u)",
                     rect->width, rect->height, rect->x, rect->y, resource_id, resource->width_px,
                     resource->height_px);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < device->scanout_count && ret == 0; i++) {
        const struct device_scanout *scanout = &device->scanouts[i];
        if (scanout->resource_id != resource_id) {
            continue;
        }
        /* Only the part of the damage this scanout shows. */
        uint32_t left = rect->x > scanout->rect.x ? rect->x : scanout->rect.x;
        uint32_t top = rect->y > scanout->rect.y ? rect->y : scanout->rect.y;
        uint64_t right = (uint64_t)rect->x + rect->width;
        uint64_t scanout_right = (uint64_t)scanout->rect.x + scanout->rect.width;
        uint64_t bottom = (uint64_t)rect->y + rect->height;
        uint64_t scanout_bottom = (uint64_t)scanout->rect.y + scanout->rect.height;
        right = right < scanout_right ? right : scanout_right;
        bottom = bottom < scanout_bottom ? bottom : scanout_bottom;
        if (right <= left || bottom <= top) {
            continue;
        }
        ret = push_rect(device, i, resource, left, top, (uint32_t)(right - left),
                        (uint32_t)(bottom - top), left - scanout->rect.x, top - scanout->rect.y);
    }
    return ret;
}

void scanout_forget_resource(struct neep_device *device, uint32_t resource_id)
{
    /* The display keeps the last image it was sent; the scanout just stops following. */
    for (uint32_t i = 0; i < device->scanout_count; i++) {
        if (device->scanouts[i].resource_id == resource_id) {
            device->scanouts[i].resource_id = 0;
        }
    }
    trim_staging(device);
}

int cursor_update(struct neep_device *device, const struct virtio_gpu_update_cursor *cursor)
{
    uint32_t scanout_id = cursor->pos.scanout_id;
    if (scanout_id >= device->scanout_count) {
        device_error(device, "UPDATE_CURSOR: no scanout %u", scanout_id);
        return -ENXIO;
    }
    device->scanouts[scanout_id].cursor_x = cursor->pos.x;
    device->scanouts[scanout_id].cursor_y = cursor->pos.y;
    if (cursor->resource_id == 0) {
        if (device->display->cursor_move) {
            device->display->cursor_move(device->display_user_data, scanout_id, cursor->pos.x,
                                         cursor->pos.y, false);
        }
        return 0;
    }
    struct neep_resource *resource;
    int ret = find_shown_resource(device, cursor->resource_id, "UPDATE_CURSOR", &resource);
    if (ret < 0) {
        return ret;
    }
    if (cursor->hot_x >= CURSOR_SIZE_PX || cursor->hot_y >= CURSOR_SIZE_PX) {
        device_error(device, "UPDATE_CURSOR: hot spot (%u,%u) outside the 64x64 cursor",
                     cursor->hot_x, cursor->hot_y);
        return -EINVAL;
    }
    /* The cursor is the top-left 64x64 of the resource, transparent where it is smaller. */
    uint32_t image[CURSOR_SIZE_PX * CURSOR_SIZE_PX];
    memset(image, 0, sizeof(image));
    uint32_t width = resource->width_px < CURSOR_SIZE_PX ? resource->width_px : CURSOR_SIZE_PX;
    uint32_t height = resource->height_px < CURSOR_SIZE_PX ? resource->height_px : CURSOR_SIZE_PX;
    struct pixel_view view = {resource->format, resource->pixels, resource->stride_bytes,
                              resource->width_px, resource->height_px};
    uint32_t read_back_pixels[CURSOR_SIZE_PX * CURSOR_SIZE_PX];
    if (resource->kind == NEEP_RESOURCE_PROVIDED) {
        struct iovec iov = {read_back_pixels, sizeof(read_back_pixels)};
        struct neep_transfer box = {
            .width = width, .height = height, .depth = 1, .stride_bytes = CURSOR_SIZE_PX * 4};
        ret = neep_resource_transfer_read(device->renderer, 0, resource->id, &box, &iov, 1);
        if (ret < 0) {
            return ret;
        }
        view = (struct pixel_view){resource->format, (uint8_t *)read_back_pixels,
                                   CURSOR_SIZE_PX * 4, width, height};
    }
    pixman_image_t *src = pixman_image_create_bits(cursor_pixman_format_for(view.format),
                                                   (int)view.width_px, (int)view.height_px,
                                                   (uint32_t *)view.pixels, (int)view.stride_bytes);
    pixman_image_t *dst = pixman_image_create_bits(PIXMAN_a8r8g8b8, CURSOR_SIZE_PX, CURSOR_SIZE_PX,
                                                   image, CURSOR_SIZE_PX * 4);
    if (src && dst) {
        pixman_image_composite(PIXMAN_OP_SRC, src, NULL, dst, 0, 0, 0, 0, 0, 0, (uint16_t)width,
                               (uint16_t)height);
    }
    if (src) {
        pixman_image_unref(src);
    }
    if (dst) {
        pixman_image_unref(dst);
    }
    if (device->display->cursor_update) {
        device->display->cursor_update(device->display_user_data, scanout_id, cursor->pos.x,
                                       cursor->pos.y, cursor->hot_x, cursor->hot_y, image);
    }
    return 0;
}

void cursor_move(struct neep_device *device, const struct virtio_gpu_update_cursor *cursor)
{
    uint32_t scanout_id = cursor->pos.scanout_id;
    if (scanout_id >= device->scanout_count) {
        device_error(device, "MOVE_CURSOR: no scanout %u", scanout_id);
        return;
    }
    device->scanouts[scanout_id].cursor_x = cursor->pos.x;
    device->scanouts[scanout_id].cursor_y = cursor->pos.y;
    if (device->display->cursor_move) {
        device->display->cursor_move(device->display_user_data, scanout_id, cursor->pos.x,
                                     cursor->pos.y, true);
    }
}

void neep_device_refresh_display(struct neep_device *device)
{
    for (uint32_t i = 0; i < device->scanout_count; i++) {
        struct device_scanout *scanout = &device->scanouts[i];
        struct neep_resource *resource =
            neep_resource_lookup(device->renderer, scanout->resource_id);
        if (scanout->resource_id == 0 || !resource) {
            continue;
        }
        if (device->display->scanout) {
            device->display->scanout(device->display_user_data, i, scanout->rect.width,
                                     scanout->rect.height);
        }
        push_rect(device, i, resource, scanout->rect.x, scanout->rect.y, scanout->rect.width,
                  scanout->rect.height, 0, 0);
    }
}
