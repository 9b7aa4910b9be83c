/* Overflow-checked arithmetic for sizes that come from outside the process. */
#ifndef NEEP_UTIL_CHECKED_H
#define NEEP_UTIL_CHECKED_H

#include <stdbool.h>
#include <stdint.h>

/* Each returns false, leaving *out unspecified, when the exact result does not fit. */
static inline bool checked_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

static inline bool checked_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

static inline bool checked_add_u32(uint32_t a, uint32_t b, uint32_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

static inline bool checked_mul_u32(uint32_t a, uint32_t b, uint32_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* a * b + c, all in 64 bits. */
static inline bool checked_mul_add_u64(uint64_t a, uint64_t b, uint64_t c, uint64_t *out)
{
    uint64_t product;
    return checked_mul_u64(a, b, &product) && checked_add_u64(product, c, out);
}

#endif
