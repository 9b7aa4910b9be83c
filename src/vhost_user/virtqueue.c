#include "virtqueue.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "util/checked.h"

void vu_virtqueue_init(struct vu_virtqueue *vq, uint32_t index)
{
    memset(vq, 0, sizeof(*vq));
    vq->index = index;
    vq->kick_fd = -1;
    vq->call_fd = -1;
}

void vu_virtqueue_stop(struct vu_virtqueue *vq)
{
    if (vq->kick_fd >= 0) {
        close(vq->kick_fd);
    }
    if (vq->call_fd >= 0) {
        close(vq->call_fd);
    }
    vq->kick_fd = -1;
    vq->call_fd = -1;
    vq->started = false;
    memset(&vq->ring, 0, sizeof(vq->ring));
    vq->signalled_used_valid = false;
}

int vu_virtqueue_map(struct vu_virtqueue *vq, const struct vu_memory_table *memory,
                     const char **reason)
{
    memset(&vq->ring, 0, sizeof(vq->ring));
    if (!vq->addr_set || vq->size == 0) {
        *reason = "ring size or addresses were never set";
        return -EINVAL;
    }
    if (vq->size > VU_MAX_QUEUE_SIZE || (vq->size & (vq->size - 1))) {
        *reason = "ring size is not a power of two up to 32768";
        return -EINVAL;
    }
    uint64_t n = vq->size;
    /* Sizes include the event-index words, present whether or not they are used. */
    uint64_t desc_bytes = n * sizeof(struct vring_desc);
    uint64_t avail_bytes = 4 + 2 * n + 2;
    uint64_t used_bytes = 4 + sizeof(struct vring_used_elem) * n + 2;
    if (vq->addr.desc_user_addr % 16 || vq->addr.avail_user_addr % 2 ||
        vq->addr.used_user_addr % 4) {
        *reason = "ring addresses are misaligned";
        return -EINVAL;
    }
    struct vu_ring_mapping ring = {
        .desc = vu_memory_uva(memory, vq->addr.desc_user_addr, desc_bytes),
        .avail = vu_memory_uva(memory, vq->addr.avail_user_addr, avail_bytes),
        .used = vu_memory_uva(memory, vq->addr.used_user_addr, used_bytes),
        .size = vq->size,
    };
    if (!ring.desc || !ring.avail || !ring.used) {
        *reason = "ring lies outside guest memory";
        return -EINVAL;
    }
    /* Each part is the guest's or ours alone: a used ring over the available index would let
     * our own writes offer chains forever. (All three lie inside regions, so no sum wraps.) */
    const uint64_t starts[3] = {vq->addr.desc_user_addr, vq->addr.avail_user_addr,
                                vq->addr.used_user_addr};
    const uint64_t lengths[3] = {desc_bytes, avail_bytes, used_bytes};
    for (int i = 0; i < 3; i++) {
        for (int j = i + 1; j < 3; j++) {
            if (starts[i] < starts[j] + lengths[j] && starts[j] < starts[i] + lengths[i]) {
                *reason = "ring parts overlap";
                return -EINVAL;
            }
        }
    }
    vq->ring = ring;
    return 0;
}

static uint16_t load_u16(const volatile uint16_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Adds guest buffer [gpa, gpa + len) to the chain, split where guest memory is. */
static int add_buffer(const struct vu_memory_table *memory, struct vu_chain *chain, bool writable,
                      uint64_t gpa, uint32_t len, const char **reason)
{
    if (!writable && chain->in_count > 0) {
        *reason = "a readable descriptor follows a writable one";
        return -EINVAL;
    }
    uint64_t end;
    if (!checked_add_u64(gpa, len, &end)) {
        *reason = "descriptor address wraps";
        return -EINVAL;
    }
    while (len > 0) {
        size_t *count = writable ? &chain->in_count : &chain->out_count;
        struct iovec *iov = writable ? chain->in : chain->out;
        if (*count == VU_MAX_CHAIN_IOVECS) {
            *reason = "descriptor chain has too many pieces";
            return -E2BIG;
        }
        uint64_t contiguous = 0;
        void *host = vu_memory_gpa(memory, gpa, len, &contiguous);
        if (!host) {
            *reason = "descriptor points outside guest memory";
            return -EINVAL;
        }
        iov[*count].iov_base = host;
        iov[*count].iov_len = (size_t)contiguous;
        (*count)++;
        gpa += contiguous;
        len -= (uint32_t)contiguous;
    }
    return 0;
}

/* Copies an indirect table out of guest memory (it may straddle regions). */
static int read_indirect(const struct vu_memory_table *memory, uint64_t gpa, uint32_t len,
                         struct vring_desc *table, const char **reason)
{
    uint8_t *dst = (uint8_t *)table;
    while (len > 0) {
        uint64_t contiguous = 0;
        const void *host = vu_memory_gpa(memory, gpa, len, &contiguous);
        if (!host) {
            *reason = "indirect table lies outside guest memory";
            return -EINVAL;
        }
        memcpy(dst, host, contiguous);
        dst += contiguous;
        gpa += contiguous;
        len -= (uint32_t)contiguous;
    }
    return 0;
}

/* Walks one descriptor table (the ring's or an indirect one) from `first`. */
static int walk(const struct vu_memory_table *memory, struct vu_chain *chain,
                const volatile struct vring_desc *table, uint32_t table_size, uint32_t first,
                bool allow_indirect, const char **reason)
{
    uint32_t index = first;
    for (uint32_t visited = 0;; visited++) {
        if (visited >= table_size) {
            *reason = "descriptor chain loops or is longer than its table";
            return -EINVAL;
        }
        if (index >= table_size) {
            *reason = "descriptor index out of range";
            return -EINVAL;
        }
        struct vring_desc desc;
        desc.addr = table[index].addr;
        desc.len = table[index].len;
        desc.flags = table[index].flags;
        desc.next = table[index].next;

        if (desc.flags & VRING_DESC_F_INDIRECT) {
            if (!allow_indirect) {
                *reason = "nested indirect descriptors";
                return -EINVAL;
            }
            if (desc.flags & VRING_DESC_F_NEXT) {
                *reason = "indirect descriptor with a next";
                return -EINVAL;
            }
            if (desc.len == 0 || desc.len % sizeof(struct vring_desc) ||
                desc.len / sizeof(struct vring_desc) > VU_MAX_INDIRECT_DESCRIPTORS) {
                *reason = "indirect table has a bad length";
                return -EINVAL;
            }
            struct vring_desc indirect[VU_MAX_INDIRECT_DESCRIPTORS];
            int ret = read_indirect(memory, desc.addr, desc.len, indirect, reason);
            if (ret < 0) {
                return ret;
            }
            return walk(memory, chain, indirect, (uint32_t)(desc.len / sizeof(struct vring_desc)),
                        0, false, reason);
        }
        int ret =
            add_buffer(memory, chain, desc.flags & VRING_DESC_F_WRITE, desc.addr, desc.len, reason);
        if (ret < 0) {
            return ret;
        }
        if (!(desc.flags & VRING_DESC_F_NEXT)) {
            return 0;
        }
        index = desc.next;
    }
}

int vu_virtqueue_pop(struct vu_virtqueue *vq, const struct vu_memory_table *memory,
                     struct vu_chain *chain, const char **reason)
{
    const struct vu_ring_mapping *ring = &vq->ring;
    if (vq->broken || !ring->avail) {
        return 0;
    }
    uint16_t avail_idx = load_u16(&ring->avail->idx);
    uint16_t pending = (uint16_t)(avail_idx - vq->last_avail_idx);
    if (pending == 0) {
        return 0;
    }
    if (pending > ring->size) {
        *reason = "available index moved further than the ring is long";
        vq->broken = true;
        return -EINVAL;
    }
    uint16_t head = ring->avail->ring[vq->last_avail_idx % ring->size];
    chain->head = head;
    chain->out_count = 0;
    chain->in_count = 0;
    int ret = walk(memory, chain, ring->desc, ring->size, head, true, reason);
    if (ret < 0) {
        vq->broken = true;
        return ret;
    }
    vq->last_avail_idx++;
    return 1;
}

void vu_virtqueue_push(struct vu_virtqueue *vq, uint16_t head, uint32_t written_bytes)
{
    const struct vu_ring_mapping *ring = &vq->ring;
    if (!ring->used) {
        return;
    }
    volatile struct vring_used_elem *elem = &ring->used->ring[vq->used_idx % ring->size];
    elem->id = head;
    elem->len = written_bytes;
    vq->used_idx++;
    __atomic_store_n(&ring->used->idx, vq->used_idx, __ATOMIC_RELEASE);
}

uint16_t vu_virtqueue_published_used_idx(const struct vu_virtqueue *vq)
{
    return vq->ring.used ? load_u16(&vq->ring.used->idx) : 0;
}

void vu_virtqueue_notify(struct vu_virtqueue *vq)
{
    const struct vu_ring_mapping *ring = &vq->ring;
    if (vq->call_fd < 0 || !ring->avail) {
        return;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    bool signal;
    if (vq->event_idx) {
        uint16_t used_event = load_u16(&ring->avail->ring[ring->size]);
        uint16_t old = vq->signalled_used;
        signal = !vq->signalled_used_valid || vring_need_event(used_event, vq->used_idx, old);
        vq->signalled_used = vq->used_idx;
        vq->signalled_used_valid = true;
    } else {
        signal = !(load_u16(&ring->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
    }
    if (signal) {
        uint64_t one = 1;
        ssize_t ignored = write(vq->call_fd, &one, sizeof(one));
        (void)ignored;
    }
}

bool vu_virtqueue_rearm(struct vu_virtqueue *vq)
{
    const struct vu_ring_mapping *ring = &vq->ring;
    if (!ring->avail || vq->broken) {
        return false;
    }
    if (vq->event_idx) {
        /* avail_event lives just past the used ring's elements. */
        volatile uint16_t *avail_event = (volatile uint16_t *)&ring->used->ring[ring->size];
        __atomic_store_n(avail_event, vq->last_avail_idx, __ATOMIC_RELEASE);
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return load_u16(&ring->avail->idx) != vq->last_avail_idx;
}
