#include "iov.h"

#include <string.h>

#include "checked.h"

bool iov_total_bytes(const struct iovec *iov, size_t count, uint64_t *total)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < count; i++) {
        if (!checked_add_u64(sum, iov[i].iov_len, &sum)) {
            return false;
        }
    }
    *total = sum;
    return true;
}

void iov_cursor_init(struct iov_cursor *cursor, const struct iovec *iov, size_t count)
{
    cursor->iov = iov;
    cursor->count = count;
    cursor->index = 0;
    cursor->entry_start = 0;
    cursor->position = 0;
}

void iov_cursor_seek(struct iov_cursor *cursor, uint64_t position)
{
    if (position < cursor->entry_start) {
        cursor->index = 0;
        cursor->entry_start = 0;
    }
    while (cursor->index < cursor->count &&
           position - cursor->entry_start >= cursor->iov[cursor->index].iov_len) {
        cursor->entry_start += cursor->iov[cursor->index].iov_len;
        cursor->index++;
    }
    cursor->position = position;
}

/* Walks [position, position + size) entry by entry, copying in the given direction. */
static void cursor_copy(struct iov_cursor *cursor, uint8_t *flat, size_t size, bool to_iov)
{
    while (size > 0) {
        iov_cursor_seek(cursor, cursor->position);
        const struct iovec *entry = &cursor->iov[cursor->index];
        size_t within = (size_t)(cursor->position - cursor->entry_start);
        size_t chunk = entry->iov_len - within;
        if (chunk > size) {
            chunk = size;
        }
        uint8_t *mem = (uint8_t *)entry->iov_base + within;
        if (to_iov) {
            memcpy(mem, flat, chunk);
        } else {
            memcpy(flat, mem, chunk);
        }
        flat += chunk;
        size -= chunk;
        cursor->position += chunk;
    }
}

void iov_cursor_read(struct iov_cursor *cursor, void *dst, size_t size)
{
    cursor_copy(cursor, dst, size, false);
}

void iov_cursor_write(struct iov_cursor *cursor, const void *src, size_t size)
{
    cursor_copy(cursor, (uint8_t *)src, size, true);
}
