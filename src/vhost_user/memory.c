#include "memory.h"

#include <errno.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "memory_guard.h"
#include "util/checked.h"

#define RETIRED_CAPACITY                                                                           \
    (sizeof(((struct vu_memory_table *)0)->retired) / sizeof(struct vu_mapped_region))

void vu_memory_init(struct vu_memory_table *table)
{
    memset(table, 0, sizeof(*table));
}

static void unmap_region(struct vu_mapped_region *region)
{
    if (region->mmap_base) {
        vu_memory_guard_unregister(region->guard_slot); /* before the range can be reused */
        munmap(region->mmap_base, region->mmap_bytes);
        region->mmap_base = NULL;
    }
}

void vu_memory_release_retired(struct vu_memory_table *table)
{
    for (uint32_t i = 0; i < table->retired_count; i++) {
        unmap_region(&table->retired[i]);
    }
    table->retired_count = 0;
}

void vu_memory_release_unused_retired(struct vu_memory_table *table, const bool *in_use)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < table->retired_count; i++) {
        if (in_use[i]) {
            table->retired[kept++] = table->retired[i];
        } else {
            unmap_region(&table->retired[i]);
        }
    }
    table->retired_count = kept;
}

void vu_memory_finish(struct vu_memory_table *table)
{
    for (uint32_t i = 0; i < table->count; i++) {
        unmap_region(&table->regions[i]);
    }
    table->count = 0;
    vu_memory_release_retired(table);
}

static bool same_mapping(const struct vu_mapped_region *a, const struct vu_mapped_region *b)
{
    return a->gpa == b->gpa && a->size == b->size && a->uva == b->uva &&
           a->mmap_offset == b->mmap_offset && a->file_dev == b->file_dev &&
           a->file_ino == b->file_ino;
}

/* The granularity a fault on the file's mapping is patched at: its page size. */
static size_t page_bytes_of(int fd, const struct stat *st)
{
    struct statfs fs;
    if (fstatfs(fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC && st->st_blksize > 0) {
        return (size_t)st->st_blksize; /* hugetlbfs reports its huge page size there */
    }
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)page : 4096;
}

static int map_region(const struct vu_memory_region *wire, int fd, struct vu_mapped_region *out,
                      const char **reason)
{
    uint64_t end;
    if (wire->memory_size == 0 ||
        !checked_add_u64(wire->guest_phys_addr, wire->memory_size, &end) ||
        !checked_add_u64(wire->userspace_addr, wire->memory_size, &end) ||
        !checked_add_u64(wire->mmap_offset, wire->memory_size, &end) || end > SIZE_MAX) {
        *reason = "region is empty or its addresses overflow";
        return -EINVAL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        *reason = "region fd cannot be examined";
        return -EINVAL;
    }
    /* The file must really hold the bytes we are told to map, or we would fault later. */
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < end) {
        *reason = "region extends past the end of its file";
        return -EINVAL;
    }
    void *base = mmap(NULL, end, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        *reason = "region cannot be mapped";
        return -EINVAL;
    }
    int slot = vu_memory_guard_register(base, end, page_bytes_of(fd, &st));
    if (slot < 0) {
        munmap(base, end);
        *reason = "region cannot be guarded against the front-end shrinking it (too many "
                  "mappings)";
        return -EINVAL;
    }
    *out = (struct vu_mapped_region){
        .gpa = wire->guest_phys_addr,
        .size = wire->memory_size,
        .uva = wire->userspace_addr,
        .mmap_offset = wire->mmap_offset,
        .mmap_base = base,
        .mmap_bytes = end,
        .host = (uint8_t *)base + wire->mmap_offset,
        .file_dev = st.st_dev,
        .file_ino = st.st_ino,
        .guard_slot = slot,
    };
    return 0;
}

static bool overlaps(const struct vu_mapped_region *a, const struct vu_mapped_region *b)
{
    return a->gpa < b->gpa + b->size && b->gpa < a->gpa + a->size;
}

int vu_memory_set(struct vu_memory_table *table, const struct vu_memory *message, const int *fds,
                  int fd_count, const char **reason)
{
    struct vu_mapped_region fresh[VU_MAX_MEM_REGIONS];
    uint32_t mapped = 0;
    int ret = 0;
    if (message->nregions == 0 || message->nregions > VU_MAX_MEM_REGIONS ||
        (int)message->nregions != fd_count) {
        *reason = "region count does not match the fds sent";
        ret = -EINVAL;
    } else if (table->retired_count + table->count > RETIRED_CAPACITY) {
        /* Every current region might be retired below; never unmap one still in use. */
        *reason = "too many replaced regions are still in use";
        ret = -EBUSY;
    }
    for (uint32_t i = 0; ret == 0 && i < message->nregions; i++) {
        ret = map_region(&message->regions[i], fds[i], &fresh[i], reason);
        if (ret == 0) {
            mapped++;
            for (uint32_t j = 0; j < i; j++) {
                if (overlaps(&fresh[i], &fresh[j])) {
                    *reason = "regions overlap";
                    ret = -EINVAL;
                }
            }
        }
    }
    for (int i = 0; i < fd_count; i++) {
        close(fds[i]); /* the mappings keep the memory */
    }
    if (ret < 0) {
        for (uint32_t i = 0; i < mapped; i++) {
            unmap_region(&fresh[i]);
        }
        return ret;
    }
    /* Keep unchanged regions at their old addresses; retire the rest. */
    for (uint32_t old = 0; old < table->count; old++) {
        bool kept = false;
        for (uint32_t i = 0; i < mapped && !kept; i++) {
            /* A shrunk mapping holds zero pages now: the fresh one shows the file again. */
            if (same_mapping(&table->regions[old], &fresh[i]) &&
                !vu_memory_guard_broken(table->regions[old].guard_slot)) {
                unmap_region(&fresh[i]);
                fresh[i] = table->regions[old];
                kept = true;
            }
        }
        if (!kept) {
            table->retired[table->retired_count++] = table->regions[old];
        }
    }
    memcpy(table->regions, fresh, mapped * sizeof(fresh[0]));
    table->count = mapped;
    return 0;
}

static bool take_broken(struct vu_mapped_region *region)
{
    if (region->broken_reported || !vu_memory_guard_broken(region->guard_slot)) {
        return false;
    }
    region->broken_reported = true;
    return true;
}

uint32_t vu_memory_take_broken(struct vu_memory_table *table, vu_memory_broken_fn *report,
                               void *user_data)
{
    uint32_t found = 0;
    for (uint32_t i = 0; i < table->count; i++) {
        if (take_broken(&table->regions[i])) {
            report(user_data, &table->regions[i], i, false);
            found++;
        }
    }
    for (uint32_t i = 0; i < table->retired_count; i++) {
        if (take_broken(&table->retired[i])) {
            report(user_data, &table->retired[i], i, true);
            found++;
        }
    }
    return found;
}

bool vu_memory_broken(const struct vu_memory_table *table)
{
    for (uint32_t i = 0; i < table->count; i++) {
        if (vu_memory_guard_broken(table->regions[i].guard_slot)) {
            return true;
        }
    }
    return false;
}

void *vu_memory_gpa(const struct vu_memory_table *table, uint64_t gpa, uint64_t length,
                    uint64_t *contiguous)
{
    for (uint32_t i = 0; i < table->count; i++) {
        const struct vu_mapped_region *region = &table->regions[i];
        if (gpa >= region->gpa && gpa - region->gpa < region->size) {
            uint64_t within = gpa - region->gpa;
            uint64_t available = region->size - within;
            *contiguous = available < length ? available : length;
            return region->host + within;
        }
    }
    return NULL;
}

void *vu_memory_uva(const struct vu_memory_table *table, uint64_t uva, uint64_t length)
{
    for (uint32_t i = 0; i < table->count; i++) {
        const struct vu_mapped_region *region = &table->regions[i];
        if (uva >= region->uva && uva - region->uva < region->size &&
            length <= region->size - (uva - region->uva)) {
            return region->host + (uva - region->uva);
        }
    }
    return NULL;
}
