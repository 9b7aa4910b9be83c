/*
 * Reading a fuzzer's bytes as the fields of calls: each take consumes what it needs, and
 * missing bytes read as zero, so every input is a valid sequence. Shared by the targets that
 * drive the renderer's API (fuzz_renderer_ops.c, fuzz_virgl.c).
 */
#ifndef NEEP_FUZZ_INPUT_H
#define NEEP_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

struct input {
    const uint8_t *data;
    size_t size;
};

/* Up to 4 bytes, little-endian. */
static inline uint32_t take(struct input *in, size_t bytes)
{
    uint32_t value = 0;
    size_t n = in->size < bytes ? in->size : bytes;
    memcpy(&value, in->data, n);
    in->data += n;
    in->size -= n;
    return value;
}

/* Small ids collide often, which is where the interesting paths are. */
static inline uint32_t take_id(struct input *in)
{
    return take(in, 1) % 9;
}

/* A mix of small and wild values: edges matter more than uniform coverage. */
static inline uint32_t take_dimension(struct input *in)
{
    uint32_t raw = take(in, 4);
    switch (raw & 3) {
    case 0:
        return raw >> 2 & 0x3f;
    case 1:
        return raw >> 2 & 0x3ff;
    case 2:
        return 0xffffffffu - (raw >> 2 & 0xf);
    default:
        return raw;
    }
}

/* Up to `max` entries anywhere in `guest` (never past its end). */
static inline size_t take_backing(struct input *in, uint8_t *guest, uint32_t guest_bytes,
                                  struct iovec *iov, size_t max)
{
    size_t count = take(in, 1) % (max + 1);
    for (size_t i = 0; i < count; i++) {
        uint32_t offset = take(in, 4) % guest_bytes;
        uint32_t length = take(in, 4) % (guest_bytes - offset + 1);
        iov[i].iov_base = guest + offset;
        iov[i].iov_len = length;
    }
    return count;
}

#endif
