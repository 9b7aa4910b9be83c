#include <stddef.h>

#include "renderer_internal.h"

#define FOURCC(a, b, c, d)                                                                         \
    ((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))

/* virtio-gpu formats name bytes in memory order; DRM fourccs name a little-endian word. */
static const struct {
    uint32_t virtio_format;
    uint32_t drm_fourcc;
} formats[] = {
    {NEEP_FORMAT_B8G8R8A8_UNORM, FOURCC('A', 'R', '2', '4')},
    {NEEP_FORMAT_B8G8R8X8_UNORM, FOURCC('X', 'R', '2', '4')},
    {NEEP_FORMAT_A8R8G8B8_UNORM, FOURCC('B', 'A', '2', '4')},
    {NEEP_FORMAT_X8R8G8B8_UNORM, FOURCC('B', 'X', '2', '4')},
    {NEEP_FORMAT_R8G8B8A8_UNORM, FOURCC('A', 'B', '2', '4')},
    {NEEP_FORMAT_X8B8G8R8_UNORM, FOURCC('R', 'X', '2', '4')},
    {NEEP_FORMAT_A8B8G8R8_UNORM, FOURCC('R', 'A', '2', '4')},
    {NEEP_FORMAT_R8G8B8X8_UNORM, FOURCC('X', 'B', '2', '4')},
};

bool neep_format_is_valid(uint32_t format)
{
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        if (formats[i].virtio_format == format) {
            return true;
        }
    }
    return false;
}

uint32_t neep_format_from_drm_fourcc(uint32_t fourcc)
{
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        if (formats[i].drm_fourcc == fourcc) {
            return formats[i].virtio_format;
        }
    }
    return 0;
}
