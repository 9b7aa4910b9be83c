/*
 * The guest's memory as the front-end shared it: regions of memfds, mapped here, with
 * bounds-checked translation of guest-physical and front-end virtual addresses.
 */
#ifndef NEEP_VHOST_USER_MEMORY_H
#define NEEP_VHOST_USER_MEMORY_H

#include <stdbool.h>
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
    int guard_slot;       /* in memory_guard.h's registry (the front-end may shrink the file) */
    bool broken_reported; /* vu_memory_take_broken() told of it */
};

/* Replaced mappings kept alive because the renderer may still point into them. The owner
 * releases each once nothing does, and never keeps more than this many: past it, the oldest
 * is taken from the renderer by force (see backend.c). */
#define VU_MAX_RETIRED_REGIONS 8u

struct vu_memory_table {
    struct vu_mapped_region regions[VU_MAX_MEM_REGIONS];
    uint32_t count;
    /* Oldest first. One SET_MEM_TABLE may push the count up to VU_MAX_MEM_REGIONS past
     * VU_MAX_RETIRED_REGIONS until the owner trims it. */
    struct vu_mapped_region retired[VU_MAX_RETIRED_REGIONS + VU_MAX_MEM_REGIONS];
    uint32_t retired_count;
};

void vu_memory_init(struct vu_memory_table *table);
/* Unmaps everything, retired mappings included. */
void vu_memory_finish(struct vu_memory_table *table);
/* Unmaps every retired mapping (after a device reset, nothing can point into them). */
void vu_memory_release_retired(struct vu_memory_table *table);
/* Unmaps retired mapping i for which in_use[i] is false, keeping the rest in order. */
void vu_memory_release_unused_retired(struct vu_memory_table *table, const bool *in_use);

/* Installs a new table from SET_MEM_TABLE. Mappings of the old table that the new one does
 * not repeat exactly (or that were found shrunk) are retired, not unmapped. Takes ownership
 * of the fds in every case. Returns 0 or a negative errno with *reason set. */
int vu_memory_set(struct vu_memory_table *table, const struct vu_memory *message, const int *fds,
                  int fd_count, const char **reason);

/* Calls `report` once for each mapping (current or retired) found shrunk by the front-end
 * since the last call: its pages read as zeros now (see memory_guard.h). `index` is the
 * region's place in the current table, or in the retired list when `retired`. Returns how
 * many it reported. */
typedef void vu_memory_broken_fn(void *user_data, const struct vu_mapped_region *region,
                                 uint32_t index, bool retired);
uint32_t vu_memory_take_broken(struct vu_memory_table *table, vu_memory_broken_fn *report,
                               void *user_data);
/* True if a region of the current table was found shrunk. */
bool vu_memory_broken(const struct vu_memory_table *table);

/* Host address of guest-physical `gpa`; *contiguous gets the bytes available there, capped
 * at `length`. NULL when `gpa` is outside guest memory. */
void *vu_memory_gpa(const struct vu_memory_table *table, uint64_t gpa, uint64_t length,
                    uint64_t *contiguous);
/* Host address for front-end virtual [uva, uva + length), which must lie in one region. */
void *vu_memory_uva(const struct vu_memory_table *table, uint64_t uva, uint64_t length);

#endif
