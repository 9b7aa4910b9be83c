/*
 * The split-ring walker against guest memory made of the input: descriptor tables, the
 * available ring and indirect tables are all whatever the fuzzer wrote. Every buffer the
 * walker hands out must lie inside guest memory.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhost_user/memory.h"
#include "vhost_user/virtqueue.h"

#define REGION_BYTES (64u << 10)
#define UVA_BASE     0x500000000ull

static struct vu_memory_table memory;
static uint8_t *guest;
static struct vu_chain chain;

static void setup(void)
{
    vu_memory_init(&memory);
    /* Two regions with a hole between them in guest-physical space. */
    struct vu_memory message = {.nregions = 2};
    message.regions[0] = (struct vu_memory_region){0, REGION_BYTES, UVA_BASE, 0};
    message.regions[1] =
        (struct vu_memory_region){REGION_BYTES * 2, REGION_BYTES, UVA_BASE + REGION_BYTES * 4, 0};
    int fds[2];
    for (int i = 0; i < 2; i++) {
        fds[i] = memfd_create("guest", MFD_CLOEXEC);
        if (fds[i] < 0 || ftruncate(fds[i], REGION_BYTES) < 0) {
            abort();
        }
    }
    const char *reason;
    if (vu_memory_set(&memory, &message, fds, 2, &reason) < 0) {
        abort();
    }
    uint64_t contiguous;
    guest = vu_memory_gpa(&memory, 0, REGION_BYTES, &contiguous);
}

static bool inside_guest(const struct iovec *iov)
{
    for (uint32_t i = 0; i < memory.count; i++) {
        const struct vu_mapped_region *region = &memory.regions[i];
        uint8_t *base = iov->iov_base;
        if (base >= region->host && base + iov->iov_len <= region->host + region->size) {
            return true;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!guest) {
        setup();
    }
    if (size < 4) {
        return 0;
    }
    memset(guest, 0, REGION_BYTES);
    memcpy(guest, data + 4, size - 4 < REGION_BYTES ? size - 4 : REGION_BYTES);

    struct vu_virtqueue vq;
    vu_virtqueue_init(&vq, 0);
    vq.size = 1u << (data[0] % 9); /* 1 to 256 */
    /* Ring parts at input-chosen, aligned places in the first region. */
    vq.addr.desc_user_addr = UVA_BASE + (uint64_t)(data[1] * 256u) % REGION_BYTES;
    vq.addr.avail_user_addr = UVA_BASE + (uint64_t)(data[2] * 256u) % REGION_BYTES;
    vq.addr.used_user_addr = UVA_BASE + (uint64_t)(data[3] * 256u) % REGION_BYTES;
    vq.addr_set = true;
    vq.event_idx = data[0] & 0x80;
    const char *reason;
    if (vu_virtqueue_map(&vq, &memory, &reason) < 0) {
        return 0;
    }
    for (int round = 0; round < 300; round++) {
        int got = vu_virtqueue_pop(&vq, &memory, &chain, &reason);
        if (got <= 0) {
            break;
        }
        for (size_t i = 0; i < chain.out_count; i++) {
            if (!inside_guest(&chain.out[i])) {
                abort();
            }
        }
        for (size_t i = 0; i < chain.in_count; i++) {
            if (!inside_guest(&chain.in[i])) {
                abort();
            }
        }
        vu_virtqueue_push(&vq, chain.head, 0);
        vu_virtqueue_notify(&vq);
        vu_virtqueue_rearm(&vq);
    }
    return 0;
}
