/* The virgl formats gfxstream's backend knows, shared by neep and its gfxstream server. */
#ifndef NEEP_CONTEXTS_GFXSTREAM_FORMATS_H
#define NEEP_CONTEXTS_GFXSTREAM_FORMATS_H

#include <stdint.h>

struct gfxstream_format {
    uint32_t format;
    uint32_t bytes_per_pixel; /* 0: YUV, whose planes take at most 2 bytes a pixel */
};
extern const struct gfxstream_format gfxstream_formats[];
extern const uint32_t gfxstream_format_count;

/* The bytes a pixel of `format` takes in the backend's linear copy: 0 for YUV and for formats
 * it does not know. */
uint32_t gfxstream_format_bytes_per_pixel(uint32_t format);

#endif
