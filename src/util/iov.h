/* Copies between a flat buffer and a scatter list, by absolute byte position. */
#ifndef NEEP_UTIL_IOV_H
#define NEEP_UTIL_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Sums the lengths; false if the sum overflows 64 bits. */
bool iov_total_bytes(const struct iovec *iov, size_t count, uint64_t *total);

/*
 * A read/write position in a scatter list. Seeks are cheap when they move forward, which is
 * how row-by-row transfers walk guest memory.
 */
struct iov_cursor {
    const struct iovec *iov;
    size_t count;
    size_t index;         /* entry holding `position` */
    uint64_t entry_start; /* absolute position of iov[index] */
    uint64_t position;
};

void iov_cursor_init(struct iov_cursor *cursor, const struct iovec *iov, size_t count);
void iov_cursor_seek(struct iov_cursor *cursor, uint64_t position);

/* The caller has checked that [position, position + size) lies within the list. */
void iov_cursor_read(struct iov_cursor *cursor, void *dst, size_t size);
void iov_cursor_write(struct iov_cursor *cursor, const void *src, size_t size);

#endif
