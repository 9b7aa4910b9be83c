/*
 * The guest's memory as the front-end shared it: regions of memfds, mapped here, with
 * bounds-checked translation of guest-physical and front-end virtual addresses.
 */
#ifndef NEEP_VHOST_USER_MEMORY_H
#define NEEP_VHOST_USER_MEMORY_H

#include <stdint.h>

#include "protocol.h"

struct vu_mapped_region {
    uint64_t gpa;
    uint64_t size;
    uint64_t uva;
    uint64_t mmap_offset;
    uint8_t *mmap_base; /* mmap of [0, mmap_offset + size) of the fd */
    uint64_t mmap_bytes;
    uint8_t *host; /* mmap_base + mmap_offset: guest address gpa lives here */
    uint64_t file_dev, file_ino;
};

struct vu_memory_table {
    struct vu_mapped_region regions[VU_MAX_MEM_REGIONS];
    uint32_t count;
    /* Mappings replaced by a later table stay until reset: resources may still point in. */
    struct vu_mapped_region *retired;
    uint32_t retired_count;
};

void vu_memory_init(struct vu_memory_table *table);
/* Unmaps everything, retired mappings included. */
void vu_memory_finish(struct vu_memory_table *table);
/* Drops retired mappings (after a device reset, nothing can point into them). */
void vu_memory_release_retired(struct vu_memory_table *table);

/* Installs a new table from SET_MEM_TABLE. Takes ownership of the fds in every case.
 * Returns 0 or a negative errno with *reason set. */
int vu_memory_set(struct vu_memory_table *table, const struct vu_memory *message, const int *fds,
                  int fd_count, const char **reason);

/* Host address of guest-physical `gpa`; *contiguous gets the bytes available there, capped
 * at `length`. NULL when `gpa` is outside guest memory. */
void *vu_memory_gpa(const struct vu_memory_table *table, uint64_t gpa, uint64_t length,
                    uint64_t *contiguous);
/* Host address for front-end virtual [uva, uva + length), which must lie in one region. */
void *vu_memory_uva(const struct vu_memory_table *table, uint64_t uva, uint64_t length);

#endif
