#include "gfxstream_formats.h"

/* Others the backend would take for RGBA with only a log line. Which of them the host's driver
 * can make images of, the server's probe finds out (the backend aborts on the others). */
const struct gfxstream_format gfxstream_formats[] = {
    {1, 4},   /* B8G8R8A8_UNORM */
    {2, 4},   /* B8G8R8X8_UNORM */
    {7, 2},   /* B5G6R5_UNORM */
    {8, 4},   /* R10G10B10A2_UNORM */
    {16, 2},  /* Z16_UNORM */
    {18, 4},  /* Z32_FLOAT */
    {19, 4},  /* Z24_UNORM_S8_UINT */
    {21, 4},  /* Z24X8_UNORM */
    {48, 2},  /* R16_UNORM */
    {64, 1},  /* R8_UNORM */
    {65, 2},  /* R8G8_UNORM */
    {66, 3},  /* R8G8B8_UNORM */
    {67, 4},  /* R8G8B8A8_UNORM */
    {94, 8},  /* R16G16B16A16_FLOAT */
    {126, 8}, /* Z32_FLOAT_S8X24_UINT */
    {134, 4}, /* R8G8B8X8_UNORM */
    {163, 0}, /* YV12 */
    {166, 0}, /* NV12 */
    {314, 0}, /* P010 */
};
const uint32_t gfxstream_format_count = sizeof(gfxstream_formats) / sizeof(gfxstream_formats[0]);

uint32_t gfxstream_format_bytes_per_pixel(uint32_t format)
{
    for (uint32_t i = 0; i < gfxstream_format_count; i++) {
        if (gfxstream_formats[i].format == format) {
            return gfxstream_formats[i].bytes_per_pixel;
        }
    }
    return 0;
}
