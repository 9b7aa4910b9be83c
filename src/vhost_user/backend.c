/*
 * vhost-user back-end: message handling, queue processing and the device behind them.
 *
 * Each message is read whole (header, bounded payload, ancillary fds), checked against a
 * table of exact payload sizes and fd counts, and handled; fds a message does not consume are
 * closed. A front-end that breaks the protocol is disconnected; the guest's resources are
 * released with the backend.
 */
#include "backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "display.h"
#include "memory.h"
#include "protocol.h"
#include "renderer/renderer_internal.h"
#include "virtqueue.h"
#include <linux/virtio_gpu.h>

#define QUEUE_COUNT 2

/* A chain's completion kept while its ring is paused, pushed when the ring resumes. */
struct parked_completion {
    uint16_t head;
    uint32_t written_bytes;
};

/*
 * What the transport knows of a queue across stops and starts.
 *
 * Each chain handed to the device carries its queue's generation. The generation changes
 * whenever the ring the chain came from stops existing for the driver: a device reset, the
 * ring restarted anywhere but where it was paused, or its memory gone from the table. A
 * completion from another generation belongs to a driver (or a ring) that is gone and is
 * dropped, never pushed into the new ring. A pause (GET_VRING_BASE, then the same ring started
 * again at the same index, as QEMU does around a VM stop) keeps the generation: completions
 * that arrive meanwhile are parked and pushed on resume.
 */
struct queue_lifecycle {
    uint32_t generation;
    bool paused; /* stopped by GET_VRING_BASE; the fields below describe the ring then */
    uint32_t paused_size;
    struct vhost_vring_addr paused_addr;
    uint16_t paused_avail_idx;
    struct parked_completion *parked;
    uint32_t parked_count;
    uint32_t parked_capacity;
};

struct vu_backend {
    int socket_fd;
    bool alive;
    const struct vu_watch_ops *watch;
    void *watch_user_data;
    struct neep_logger *logger;

    uint64_t features;
    uint64_t acked_features;
    uint64_t protocol_features;
    uint64_t acked_protocol_features;

    struct vu_memory_table memory;
    /* The renderer's borrowed_memory_releases when retired mappings were last checked. */
    uint64_t releases_checked;
    struct vu_virtqueue queues[QUEUE_COUNT];
    struct queue_lifecycle lifecycle[QUEUE_COUNT];
    struct vu_chain *chain; /* scratch for one descriptor chain */
    bool notify_pending[QUEUE_COUNT];

    struct neep_device *device;
    struct vu_display display;
};

#define backend_error(backend, ...) neep_log_guest((backend)->logger, NEEP_LOG_ERROR, __VA_ARGS__)

static void *translate(void *user_data, uint64_t gpa, uint64_t length, uint64_t *contiguous)
{
    struct vu_backend *backend = user_data;
    return vu_memory_gpa(&backend->memory, gpa, length, contiguous);
}

/* ---- guest memory lent to the renderer ---------------------------------------------------- */

/*
 * A memory table replaced by SET_MEM_TABLE may still hold resources' backing (and copies of
 * it, like cross-domain's rings): those mappings are retired, not unmapped. Rather than
 * tracking every reference, the renderer is asked which borrowed ranges it still holds; a
 * retired mapping none of them touches is unmapped. That is checked when a table is replaced
 * and after each batch of commands that dropped a reference (the renderer counts those), so a
 * mapping goes as soon as nothing can point into it. At most VU_MAX_RETIRED_REGIONS stay:
 * past that the oldest is taken from the renderer by force (the resources in it lose their
 * backing, with a log line), so a front-end replacing tables in a loop cannot pile up
 * mappings.
 */
struct retired_use {
    const struct vu_memory_table *memory;
    bool in_use[VU_MAX_RETIRED_REGIONS + VU_MAX_MEM_REGIONS];
};

static void mark_retired_use(void *user_data, const void *base, size_t size_bytes)
{
    struct retired_use *use = user_data;
    for (uint32_t i = 0; i < use->memory->retired_count; i++) {
        const struct vu_mapped_region *region = &use->memory->retired[i];
        if (neep_ranges_overlap(base, size_bytes, region->mmap_base, region->mmap_bytes)) {
            use->in_use[i] = true;
        }
    }
}

static void release_unused_memory(struct vu_backend *backend)
{
    struct neep_renderer *renderer = neep_device_renderer(backend->device);
    backend->releases_checked = renderer->borrowed_memory_releases;
    if (backend->memory.retired_count == 0) {
        return;
    }
    struct retired_use use = {.memory = &backend->memory};
    neep_renderer_visit_borrowed_memory(renderer, mark_retired_use, &use);
    vu_memory_release_unused_retired(&backend->memory, use.in_use);
    while (backend->memory.retired_count > VU_MAX_RETIRED_REGIONS) {
        const struct vu_mapped_region *oldest = &backend->memory.retired[0];
        backend_error(backend,
                      "the front-end replaced guest memory still in use more than %u times; "
                      "the oldest replaced region (guest 0x%llx, %llu bytes) is released",
                      VU_MAX_RETIRED_REGIONS, (unsigned long long)oldest->gpa,
                      (unsigned long long)oldest->size);
        neep_renderer_forget_borrowed_memory(renderer, oldest->mmap_base, oldest->mmap_bytes);
        memset(use.in_use, 0, sizeof(use.in_use));
        for (uint32_t i = 1; i < backend->memory.retired_count; i++) {
            use.in_use[i] = true;
        }
        vu_memory_release_unused_retired(&backend->memory, use.in_use);
    }
    backend->releases_checked = renderer->borrowed_memory_releases;
}

/* After commands: look again only if one of them dropped a reference. */
static void release_memory_if_dropped(struct vu_backend *backend)
{
    if (backend->memory.retired_count > 0 &&
        neep_device_renderer(backend->device)->borrowed_memory_releases !=
            backend->releases_checked) {
        release_unused_memory(backend);
    }
}

/* ---- guest memory shrunk by the front-end ----------------------------------------------- */

/*
 * A front-end that truncates a region's file after SET_MEM_TABLE would kill us with SIGBUS on
 * the next access; memory_guard patches zero pages over the vanished ones instead and flags
 * the mapping. After each message, queue pass and fence dispatch the flags are looked at: a
 * newly broken region is logged once and breaks the device, as a ring that lies does. Every
 * started queue stops, and none starts again until a new memory table (which maps the file
 * afresh, or refuses it if it is still short) replaces the region.
 */
static void report_broken_region(void *user_data, const struct vu_mapped_region *region,
                                 uint32_t index, bool retired)
{
    struct vu_backend *backend = user_data;
    backend_error(backend,
                  "the front-end shrank %sguest memory region %u (guest 0x%llx, %llu bytes) "
                  "under the back-end: its vanished pages read as zeros; the device is broken "
                  "and its queues stay stopped until a new memory table",
                  retired ? "replaced " : "", index, (unsigned long long)region->gpa,
                  (unsigned long long)region->size);
}

/* Returns true if a region broke since the last look (the queues are stopped then). */
static bool check_guest_memory(struct vu_backend *backend)
{
    if (vu_memory_take_broken(&backend->memory, report_broken_region, backend) == 0) {
        return false;
    }
    for (uint32_t i = 0; i < QUEUE_COUNT; i++) {
        backend->queues[i].broken = true;
    }
    return true;
}

/* ---- queue processing ------------------------------------------------------------------- */

/* A cookie is the chain's head, its queue and its queue's generation (as many bits of it as
 * fit in a pointer: 47 on 64-bit hosts). */
#define COOKIE_QUEUE_SHIFT      16
#define COOKIE_GENERATION_SHIFT 17
#define COOKIE_GENERATION_MASK  (UINTPTR_MAX >> COOKIE_GENERATION_SHIFT)
_Static_assert(QUEUE_COUNT <= 2, "one cookie bit names the queue");

static void *pack_cookie(uint32_t queue, uint16_t head, uint32_t generation)
{
    uintptr_t packed = ((uintptr_t)generation & COOKIE_GENERATION_MASK) << COOKIE_GENERATION_SHIFT |
                       (uintptr_t)queue << COOKIE_QUEUE_SHIFT | head;
    return (void *)packed;
}

static void park_completion(struct vu_backend *backend, uint32_t queue, uint16_t head,
                            uint32_t written_bytes)
{
    struct queue_lifecycle *life = &backend->lifecycle[queue];
    if (life->parked_count == life->parked_capacity) {
        /* A ring holds at most VU_MAX_QUEUE_SIZE chains in flight (a guest offering one head
         * twice gets no more). */
        uint32_t grown = life->parked_capacity ? life->parked_capacity * 2 : 16;
        struct parked_completion *bigger =
            grown <= VU_MAX_QUEUE_SIZE ? realloc(life->parked, grown * sizeof(*bigger)) : NULL;
        if (!bigger) {
            backend_error(backend, "queue %u: too many completions while paused; dropping one",
                          queue);
            return;
        }
        life->parked = bigger;
        life->parked_capacity = grown;
    }
    life->parked[life->parked_count++] = (struct parked_completion){head, written_bytes};
}

/* The queue's ring is gone for the driver: nothing handed out before may come back to it. */
static void new_generation(struct vu_backend *backend, uint32_t queue)
{
    struct queue_lifecycle *life = &backend->lifecycle[queue];
    life->generation++;
    life->parked_count = 0;
}

static void on_complete(void *user_data, void *cookie, uint32_t response_bytes)
{
    struct vu_backend *backend = user_data;
    uintptr_t packed = (uintptr_t)cookie;
    uint32_t queue = (uint32_t)(packed >> COOKIE_QUEUE_SHIFT) & 1;
    uint16_t head = (uint16_t)packed;
    uintptr_t generation = packed >> COOKIE_GENERATION_SHIFT;
    struct vu_virtqueue *vq = &backend->queues[queue];
    if (generation != (backend->lifecycle[queue].generation & COOKIE_GENERATION_MASK)) {
        neep_log_guest(backend->logger, NEEP_LOG_DEBUG,
                       "queue %u: dropping the completion of chain %u from a ring since reset",
                       queue, head);
        return;
    }
    if (!vq->started) {
        park_completion(backend, queue, head, response_bytes);
        return;
    }
    vu_virtqueue_push(vq, head, response_bytes);
    backend->notify_pending[queue] = true;
}

static void flush_notifications(struct vu_backend *backend)
{
    for (uint32_t i = 0; i < QUEUE_COUNT; i++) {
        if (backend->notify_pending[i]) {
            backend->notify_pending[i] = false;
            vu_virtqueue_notify(&backend->queues[i]);
        }
    }
}

static void process_queue(struct vu_backend *backend, uint32_t index)
{
    struct vu_virtqueue *vq = &backend->queues[index];
    if (!vq->started || !vq->enabled || vq->broken) {
        return;
    }
    /* At most a ring's worth of chains per call: a guest that keeps offering chains (or whose
     * ring aliases itself so our used writes offer more) cannot hold the embedder's thread. */
    uint32_t budget = vq->ring.size;
    bool more;
    do {
        for (; budget > 0; budget--) {
            const char *reason = NULL;
            int got = vu_virtqueue_pop(vq, &backend->memory, backend->chain, &reason);
            if (got < 0) {
                backend_error(backend, "queue %u is broken: %s; it stays stopped", index, reason);
                break;
            }
            if (got == 0) {
                break;
            }
            struct neep_device_command command = {
                .out = backend->chain->out,
                .out_count = backend->chain->out_count,
                .in = backend->chain->in,
                .in_count = backend->chain->in_count,
                .cookie =
                    pack_cookie(index, backend->chain->head, backend->lifecycle[index].generation),
            };
            neep_device_process(backend->device,
                                index == 0 ? NEEP_QUEUE_CONTROL : NEEP_QUEUE_CURSOR, &command,
                                on_complete, backend);
            if (check_guest_memory(backend)) {
                break;
            }
        }
        flush_notifications(backend);
        more = vu_virtqueue_rearm(vq);
    } while (more && budget > 0);
    if (more) {
        /* Yield: signal our own kick so the embedder comes back after serving its other fds. */
        uint64_t one = 1;
        if (write(vq->kick_fd, &one, sizeof(one)) != sizeof(one)) {
            backend_error(backend,
                          "queue %u: chains are left and its kick fd cannot be signalled; "
                          "they wait for the next kick",
                          index);
        }
    }
    release_memory_if_dropped(backend);
}

static void on_kick(void *arg)
{
    struct vu_virtqueue *vq = arg;
    struct vu_backend *backend = vq->owner;
    uint64_t count;
    ssize_t ignored = read(vq->kick_fd, &count, sizeof(count));
    (void)ignored;
    process_queue(backend, vq->index);
}

static void on_fences(void *arg)
{
    struct vu_backend *backend = arg;
    neep_device_dispatch(backend->device);
    flush_notifications(backend);
    check_guest_memory(backend);
}

/* ---- queue lifecycle -------------------------------------------------------------------- */

static void stop_queue(struct vu_backend *backend, struct vu_virtqueue *vq)
{
    if (vq->kick_fd >= 0) {
        backend->watch->remove(backend->watch_user_data, vq->kick_fd);
    }
    vu_virtqueue_stop(vq);
}

/* The guest reset the device (or the front-end did): every chain in flight is forgotten. */
static void reset_device(struct vu_backend *backend)
{
    for (uint32_t i = 0; i < QUEUE_COUNT; i++) {
        new_generation(backend, i);
        backend->lifecycle[i].paused = false;
    }
    neep_device_reset(backend->device);
    vu_memory_release_retired(&backend->memory);
    backend->releases_checked = neep_device_renderer(backend->device)->borrowed_memory_releases;
}

/* True if the queue restarts exactly as GET_VRING_BASE left it. */
static bool resumes_paused_ring(const struct vu_backend *backend, const struct vu_virtqueue *vq)
{
    const struct queue_lifecycle *life = &backend->lifecycle[vq->index];
    return life->paused && vq->size == life->paused_size &&
           vq->addr.desc_user_addr == life->paused_addr.desc_user_addr &&
           vq->addr.avail_user_addr == life->paused_addr.avail_user_addr &&
           vq->addr.used_user_addr == life->paused_addr.used_user_addr &&
           vq->last_avail_idx == life->paused_avail_idx;
}

static int start_queue(struct vu_backend *backend, struct vu_virtqueue *vq, int kick_fd)
{
    const char *reason = NULL;
    if (vu_memory_broken(&backend->memory)) {
        reason = "the front-end shrank guest memory (send a new memory table first)";
    }
    if (reason || vu_virtqueue_map(vq, &backend->memory, &reason) < 0) {
        backend_error(backend, "queue %u cannot start: %s", vq->index, reason);
        close(kick_fd);
        vq->started = false;
        return -EINVAL;
    }
    struct queue_lifecycle *life = &backend->lifecycle[vq->index];
    /* A control ring at a fresh index (0) is never a pause: the driver starts from scratch. */
    bool resumed = resumes_paused_ring(backend, vq) && !(vq->index == 0 && vq->last_avail_idx == 0);
    if (vq->index == 0 && life->paused && !resumed) {
        /* The control ring came back somewhere else: the guest reset the device. */
        neep_log_host(backend->logger, NEEP_LOG_INFO,
                      "guest restarted the device: releasing the guest's resources");
        reset_device(backend);
    } else if (!resumed) {
        new_generation(backend, vq->index);
    }
    life->paused = false;
    vq->event_idx = backend->acked_features & (1ull << VU_F_RING_EVENT_IDX);
    vq->kick_fd = kick_fd;
    vq->started = true;
    vq->broken = false;
    vq->signalled_used_valid = false;
    /* Continue from what the driver has seen, as Linux's vhost does: chains in flight over a
     * pause are still to be used, so SET_VRING_BASE (the next avail index) may run ahead. */
    vq->used_idx = vu_virtqueue_published_used_idx(vq);
    if (!(backend->acked_features & (1ull << VU_F_PROTOCOL_FEATURES))) {
        vq->enabled = true; /* without protocol features rings start enabled */
    }
    int ret = backend->watch->add(backend->watch_user_data, kick_fd, on_kick, vq);
    if (ret < 0) {
        close(kick_fd);
        vq->kick_fd = -1;
        vq->started = false;
        memset(&vq->ring, 0, sizeof(vq->ring));
        return ret;
    }
    for (uint32_t i = 0; i < life->parked_count; i++) {
        vu_virtqueue_push(vq, life->parked[i].head, life->parked[i].written_bytes);
        backend->notify_pending[vq->index] = true;
    }
    life->parked_count = 0;
    flush_notifications(backend);
    process_queue(backend, vq->index);
    return 0;
}

/* ---- messages --------------------------------------------------------------------------- */

struct message {
    struct vu_header header;
    union vu_payload payload;
    int fds[VU_MAX_FDS];
    int fd_count;
    /* Reply, if the handler produced one. */
    bool has_reply;
    uint32_t reply_size;
    union vu_payload reply;
};

static struct vu_virtqueue *queue_for(struct vu_backend *backend, uint32_t index)
{
    index &= VU_VRING_INDEX_MASK;
    if (index >= QUEUE_COUNT) {
        backend_error(backend, "the front-end named queue %u; there are %d", index, QUEUE_COUNT);
        return NULL;
    }
    return &backend->queues[index];
}

static void reply_u64(struct message *msg, uint64_t value)
{
    msg->has_reply = true;
    msg->reply_size = sizeof(uint64_t);
    msg->reply.u64 = value;
}

static int take_fd(struct message *msg)
{
    if (msg->fd_count < 1) {
        return -1;
    }
    int fd = msg->fds[0];
    msg->fds[0] = -1;
    return fd;
}

static int handle_get_features(struct vu_backend *backend, struct message *msg)
{
    reply_u64(msg, backend->features);
    return 0;
}

static int handle_set_features(struct vu_backend *backend, struct message *msg)
{
    if (msg->payload.u64 & ~backend->features) {
        neep_log_host(backend->logger, NEEP_LOG_WARN,
                      "front-end acked features 0x%llx that were not offered; ignoring them",
                      (unsigned long long)(msg->payload.u64 & ~backend->features));
    }
    backend->acked_features = msg->payload.u64 & backend->features;
    /* Bits 0 to 23 are the device's own; the rest belong to the transport. */
    neep_device_set_acked_features(backend->device, backend->acked_features & 0xffffffull);
    return 0;
}

static int handle_get_protocol_features(struct vu_backend *backend, struct message *msg)
{
    reply_u64(msg, backend->protocol_features);
    return 0;
}

static int handle_set_protocol_features(struct vu_backend *backend, struct message *msg)
{
    backend->acked_protocol_features = msg->payload.u64 & backend->protocol_features;
    return 0;
}

static int handle_nothing(struct vu_backend *backend, struct message *msg)
{
    return 0;
}

static int handle_reset(struct vu_backend *backend, struct message *msg)
{
    neep_log_host(backend->logger, NEEP_LOG_INFO,
                  "front-end reset the device: releasing the guest's resources");
    for (uint32_t i = 0; i < QUEUE_COUNT; i++) {
        stop_queue(backend, &backend->queues[i]);
        backend->queues[i].enabled = false;
        backend->queues[i].last_avail_idx = 0;
        backend->queues[i].used_idx = 0;
    }
    reset_device(backend);
    return 0;
}

static int handle_set_mem_table(struct vu_backend *backend, struct message *msg)
{
    const char *reason = NULL;
    uint64_t expected =
        8 + (uint64_t)msg->payload.memory.nregions * sizeof(struct vu_memory_region);
    if (msg->header.size != expected) {
        backend_error(backend, "SET_MEM_TABLE of %u regions in %u bytes",
                      msg->payload.memory.nregions, msg->header.size);
        return -EPROTO;
    }
    int ret =
        vu_memory_set(&backend->memory, &msg->payload.memory, msg->fds, msg->fd_count, &reason);
    msg->fd_count = 0; /* vu_memory_set took them */
    if (ret < 0) {
        backend_error(backend, "SET_MEM_TABLE refused: %s", reason);
        return ret;
    }
    /* Running rings move with the memory, re-validated against the new table. */
    for (uint32_t i = 0; i < QUEUE_COUNT; i++) {
        struct vu_virtqueue *vq = &backend->queues[i];
        if (vq->started && vu_virtqueue_map(vq, &backend->memory, &reason) < 0) {
            backend_error(backend, "queue %u lost its ring: %s; it stays stopped", i, reason);
            stop_queue(backend, vq);
            new_generation(backend, i);
        }
    }
    release_unused_memory(backend);
    return 0;
}

/*
 * The vhost-user spec lets ring configuration (SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE)
 * change only a stopped ring, as QEMU only ever sends it before SET_VRING_KICK starts one or
 * after GET_VRING_BASE stops it. A started ring's geometry is what its mapping was validated
 * for, so a change is refused (a repeat of the current value is harmless and accepted).
 */
static bool refuse_on_started_ring(struct vu_backend *backend, const struct vu_virtqueue *vq,
                                   const char *what)
{
    if (!vq->started) {
        return false;
    }
    backend_error(backend,
                  "%s on queue %u while it runs is refused: ring configuration applies to "
                  "stopped rings (stop it with GET_VRING_BASE first)",
                  what, vq->index);
    return true;
}

static int handle_set_vring_num(struct vu_backend *backend, struct message *msg)
{
    struct vu_virtqueue *vq = queue_for(backend, msg->payload.state.index);
    uint32_t num = msg->payload.state.num;
    if (!vq || num == 0 || num > VU_MAX_QUEUE_SIZE || (num & (num - 1))) {
        backend_error(backend, "bad queue size %u", num);
        return -EINVAL;
    }
    if (num != vq->size && refuse_on_started_ring(backend, vq, "SET_VRING_NUM")) {
        return -EBUSY;
    }
    vq->size = num;
    return 0;
}

static int handle_set_vring_addr(struct vu_backend *backend, struct message *msg)
{
    struct vu_virtqueue *vq = queue_for(backend, msg->payload.addr.index);
    if (!vq) {
        return -EINVAL;
    }
    const struct vhost_vring_addr *addr = &msg->payload.addr;
    bool same_place = vq->addr_set && addr->desc_user_addr == vq->addr.desc_user_addr &&
                      addr->avail_user_addr == vq->addr.avail_user_addr &&
                      addr->used_user_addr == vq->addr.used_user_addr;
    if (!same_place && refuse_on_started_ring(backend, vq, "SET_VRING_ADDR")) {
        return -EBUSY;
    }
    vq->addr = *addr;
    vq->addr_set = true;
    return 0;
}

static int handle_set_vring_base(struct vu_backend *backend, struct message *msg)
{
    struct vu_virtqueue *vq = queue_for(backend, msg->payload.state.index);
    if (!vq || msg->payload.state.num > 0xffff) {
        return -EINVAL;
    }
    if (msg->payload.state.num != vq->last_avail_idx &&
        refuse_on_started_ring(backend, vq, "SET_VRING_BASE")) {
        return -EBUSY;
    }
    vq->last_avail_idx = (uint16_t)msg->payload.state.num; /* used_idx comes from the ring */
    return 0;
}

static int handle_get_vring_base(struct vu_backend *backend, struct message *msg)
{
    struct vu_virtqueue *vq = queue_for(backend, msg->payload.state.index);
    if (!vq) {
        return -EINVAL;
    }
    struct queue_lifecycle *life = &backend->lifecycle[vq->index];
    life->paused = true;
    life->paused_size = vq->size;
    life->paused_addr = vq->addr;
    life->paused_avail_idx = vq->last_avail_idx;
    stop_queue(backend, vq);
    vq->enabled = false;
    msg->has_reply = true;
    msg->reply_size = sizeof(struct vhost_vring_state);
    msg->reply.state.index = vq->index;
    msg->reply.state.num = vq->last_avail_idx;
    return 0;
}

static int handle_set_vring_kick(struct vu_backend *backend, struct message *msg)
{
    struct vu_virtqueue *vq = queue_for(backend, (uint32_t)msg->payload.u64);
    if (!vq) {
        return -EINVAL;
    }
    if ((msg->payload.u64 & VU_VRING_NOFD_MASK) || msg->fd_count != 1) {
        backend_error(backend, "queue %u: polling without a kick fd is not supported", vq->index);
        return -EINVAL;
    }
    if (vq->started) {
        /* A new kick fd for a running ring: only the fd changes, not the ring. */
        int kick_fd = take_fd(msg);
        backend->watch->remove(backend->watch_user_data, vq->kick_fd);
        close(vq->kick_fd);
        vq->kick_fd = kick_fd;
        int ret = backend->watch->add(backend->watch_user_data, kick_fd, on_kick, vq);
        if (ret < 0) {
            stop_queue(backend, vq);
            return ret;
        }
        process_queue(backend, vq->index);
        return 0;
    }
    /* The call fd (possibly sent first) stays. */
    return start_queue(backend, vq, take_fd(msg));
}

static int handle_set_vring_call(struct vu_backend *backend, struct message *msg)
{
    struct vu_virtqueue *vq = queue_for(backend, (uint32_t)msg->payload.u64);
    if (!vq) {
        return -EINVAL;
    }
    if (vq->call_fd >= 0) {
        close(vq->call_fd);
    }
    vq->call_fd = (msg->payload.u64 & VU_VRING_NOFD_MASK) ? -1 : take_fd(msg);
    return 0;
}

static int handle_set_vring_enable(struct vu_backend *backend, struct message *msg)
{
    struct vu_virtqueue *vq = queue_for(backend, msg->payload.state.index);
    if (!vq || msg->payload.state.num > 1) {
        return -EINVAL;
    }
    vq->enabled = msg->payload.state.num == 1;
    if (vq->enabled) {
        process_queue(backend, vq->index);
    }
    return 0;
}

static int handle_get_config(struct vu_backend *backend, struct message *msg)
{
    const struct vu_config *request = &msg->payload.config;
    struct virtio_gpu_config config = {
        .num_scanouts = neep_device_scanout_count(backend->device),
        .num_capsets = neep_device_capset_count(backend->device),
    };
    if (request->size > sizeof(config) || request->offset > sizeof(config) - request->size) {
        backend_error(backend, "GET_CONFIG of %u bytes at %u is outside the %zu-byte config",
                      request->size, request->offset, sizeof(config));
        return -EINVAL;
    }
    msg->has_reply = true;
    msg->reply_size = 12 + request->size;
    msg->reply.config.offset = request->offset;
    msg->reply.config.size = request->size;
    msg->reply.config.flags = 0;
    memcpy(msg->reply.config.region, (uint8_t *)&config + request->offset, request->size);
    return 0;
}

static int handle_set_config(struct vu_backend *backend, struct message *msg)
{
    /* The front-end owns events_read/events_clear; nothing here is writable. */
    return 0;
}

static int handle_gpu_set_socket(struct vu_backend *backend, struct message *msg)
{
    int fd = take_fd(msg);
    if (fd < 0) {
        backend_error(backend, "GPU_SET_SOCKET came without a socket");
        return -EINVAL;
    }
    vu_display_set_socket(&backend->display, fd);
    neep_device_refresh_display(backend->device);
    return 0;
}

struct message_info {
    const char *name;
    int (*handler)(struct vu_backend *backend, struct message *msg);
    uint32_t min_size;
    uint32_t max_size;
    int max_fds;
    bool replies; /* sends its own reply; others answer REPLY_ACK when asked */
};

#define STATE_SIZE      sizeof(struct vhost_vring_state)
#define MEMORY_MIN_SIZE 8u
static const struct message_info messages[VU_REQUEST_LIMIT] = {
    [VU_GET_FEATURES] = {"GET_FEATURES", handle_get_features, 0, 0, 0, true},
    [VU_SET_FEATURES] = {"SET_FEATURES", handle_set_features, 8, 8, 0, false},
    [VU_SET_OWNER] = {"SET_OWNER", handle_nothing, 0, 0, 0, false},
    [VU_RESET_OWNER] = {"RESET_OWNER", handle_reset, 0, 0, 0, false},
    [VU_SET_MEM_TABLE] = {"SET_MEM_TABLE", handle_set_mem_table, MEMORY_MIN_SIZE,
                          sizeof(struct vu_memory), VU_MAX_MEM_REGIONS, false},
    [VU_SET_VRING_NUM] = {"SET_VRING_NUM", handle_set_vring_num, STATE_SIZE, STATE_SIZE, 0, false},
    [VU_SET_VRING_ADDR] = {"SET_VRING_ADDR", handle_set_vring_addr, sizeof(struct vhost_vring_addr),
                           sizeof(struct vhost_vring_addr), 0, false},
    [VU_SET_VRING_BASE] = {"SET_VRING_BASE", handle_set_vring_base, STATE_SIZE, STATE_SIZE, 0,
                           false},
    [VU_GET_VRING_BASE] = {"GET_VRING_BASE", handle_get_vring_base, STATE_SIZE, STATE_SIZE, 0,
                           true},
    [VU_SET_VRING_KICK] = {"SET_VRING_KICK", handle_set_vring_kick, 8, 8, 1, false},
    [VU_SET_VRING_CALL] = {"SET_VRING_CALL", handle_set_vring_call, 8, 8, 1, false},
    [VU_SET_VRING_ERR] = {"SET_VRING_ERR", handle_nothing, 8, 8, 1, false},
    [VU_GET_PROTOCOL_FEATURES] = {"GET_PROTOCOL_FEATURES", handle_get_protocol_features, 0, 0, 0,
                                  true},
    [VU_SET_PROTOCOL_FEATURES] = {"SET_PROTOCOL_FEATURES", handle_set_protocol_features, 8, 8, 0,
                                  false},
    [VU_SET_VRING_ENABLE] = {"SET_VRING_ENABLE", handle_set_vring_enable, STATE_SIZE, STATE_SIZE, 0,
                             false},
    [VU_GET_CONFIG] = {"GET_CONFIG", handle_get_config, 12, sizeof(struct vu_config), 0, true},
    [VU_SET_CONFIG] = {"SET_CONFIG", handle_set_config, 12, sizeof(struct vu_config), 0, false},
    [VU_GPU_SET_SOCKET] = {"GPU_SET_SOCKET", handle_gpu_set_socket, 0, 0, 1, false},
    [VU_RESET_DEVICE] = {"RESET_DEVICE", handle_reset, 0, 0, 0, false},
};

/* Reads exactly `size` bytes; false on EOF or error. */
static bool read_exact(int fd, void *buf, size_t size)
{
    uint8_t *dst = buf;
    while (size > 0) {
        ssize_t got = recv(fd, dst, size, 0);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return false;
        }
        dst += got;
        size -= (size_t)got;
    }
    return true;
}

/* Reads one message; the fds arrive with its first byte. Returns false on hang-up. */
static bool receive(struct vu_backend *backend, struct message *msg)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
    } control;
    struct iovec iov = {&msg->header, sizeof(msg->header)};
    struct msghdr hdr = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = &control,
                         .msg_controllen = sizeof(control)};
    ssize_t got;
    do {
        got = recvmsg(backend->socket_fd, &hdr, MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    msg->fd_count = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&hdr); c; c = CMSG_NXTHDR(&hdr, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < n; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (msg->fd_count < VU_MAX_FDS) {
                    msg->fds[msg->fd_count++] = fd;
                } else {
                    close(fd);
                }
            }
        }
    }
    if (got <= 0) {
        return false;
    }
    if ((size_t)got < sizeof(msg->header) &&
        !read_exact(backend->socket_fd, (uint8_t *)&msg->header + got,
                    sizeof(msg->header) - (size_t)got)) {
        return false;
    }
    if (msg->header.size > sizeof(msg->payload)) {
        backend_error(backend, "message %u carries %u bytes, more than any message may",
                      msg->header.request, msg->header.size);
        return false;
    }
    memset(&msg->payload, 0, sizeof(msg->payload));
    return read_exact(backend->socket_fd, &msg->payload, msg->header.size);
}

static bool send_reply(struct vu_backend *backend, const struct message *msg)
{
    struct vu_header header = {
        .request = msg->header.request,
        .flags = VU_FLAG_VERSION | VU_FLAG_REPLY,
        .size = msg->reply_size,
    };
    struct iovec iov[2] = {{&header, sizeof(header)}, {(void *)&msg->reply, msg->reply_size}};
    struct msghdr hdr = {.msg_iov = iov, .msg_iovlen = msg->reply_size ? 2 : 1};
    size_t total = sizeof(header) + msg->reply_size;
    ssize_t sent;
    do {
        sent = sendmsg(backend->socket_fd, &hdr, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent == (ssize_t)total;
}

static void close_fds(struct message *msg)
{
    for (int i = 0; i < msg->fd_count; i++) {
        if (msg->fds[i] >= 0) {
            close(msg->fds[i]);
        }
    }
    msg->fd_count = 0;
}

static void disconnect(struct vu_backend *backend)
{
    if (backend->alive) {
        backend->alive = false;
        backend->watch->remove(backend->watch_user_data, backend->socket_fd);
    }
}

static void on_socket(void *arg)
{
    struct vu_backend *backend = arg;
    struct message msg;
    if (!receive(backend, &msg)) {
        close_fds(&msg);
        neep_log_host(backend->logger, NEEP_LOG_INFO, "front-end disconnected");
        disconnect(backend);
        return;
    }
    uint32_t request = msg.header.request;
    const struct message_info *info = request < VU_REQUEST_LIMIT ? &messages[request] : NULL;
    int ret;
    msg.has_reply = false;
    if ((msg.header.flags & VU_FLAG_VERSION_MASK) != VU_FLAG_VERSION) {
        backend_error(backend, "message %u has protocol version %u", request,
                      msg.header.flags & VU_FLAG_VERSION_MASK);
        ret = -EPROTO;
    } else if (!info || !info->handler) {
        backend_error(backend, "message %u is not supported", request);
        ret = -EOPNOTSUPP;
    } else if (msg.header.size < info->min_size || msg.header.size > info->max_size ||
               msg.fd_count > info->max_fds) {
        backend_error(backend, "%s: %u bytes and %d fds are not what it carries", info->name,
                      msg.header.size, msg.fd_count);
        ret = -EPROTO;
    } else {
        ret = info->handler(backend, &msg);
    }
    close_fds(&msg);
    check_guest_memory(backend);

    bool reply_ack = (backend->acked_protocol_features & (1ull << VU_PROTOCOL_F_REPLY_ACK)) &&
                     (msg.header.flags & VU_FLAG_NEED_REPLY);
    if (!msg.has_reply && reply_ack && !(info && info->replies)) {
        reply_u64(&msg, ret < 0 ? 1 : 0);
    }
    if (msg.has_reply && !send_reply(backend, &msg)) {
        disconnect(backend);
        return;
    }
    if (ret == -EPROTO || (ret < 0 && info && info->replies && !msg.has_reply)) {
        /* The stream can no longer be trusted, or the front-end waits for an answer we lack. */
        disconnect(backend);
    }
}

/* ---- lifetime --------------------------------------------------------------------------- */

int vu_backend_create(const struct vu_backend_config *config, int socket_fd,
                      struct vu_backend **out)
{
    *out = NULL;
    struct vu_backend *backend = calloc(1, sizeof(*backend));
    struct vu_chain *chain = malloc(sizeof(*chain));
    if (!backend || !chain) {
        free(backend);
        free(chain);
        close(socket_fd);
        return -ENOMEM;
    }
    backend->chain = chain;
    backend->socket_fd = socket_fd;
    backend->watch = config->watch;
    backend->watch_user_data = config->watch_user_data;
    vu_memory_init(&backend->memory);
    for (uint32_t i = 0; i < QUEUE_COUNT; i++) {
        vu_virtqueue_init(&backend->queues[i], i);
        backend->queues[i].owner = backend;
    }
    vu_display_init(&backend->display, backend->watch, backend->watch_user_data);

    struct neep_device_config device_config = config->device;
    device_config.display = &vu_display_ops;
    device_config.display_user_data = &backend->display;
    device_config.translate = translate;
    device_config.translate_user_data = backend;
    int ret = neep_device_create(&device_config, &backend->device);
    if (ret < 0) {
        vu_backend_destroy(backend);
        return ret;
    }
    backend->logger = &neep_device_renderer(backend->device)->logger;
    backend->display.logger = backend->logger;
    vu_display_set_device(&backend->display, backend->device);
    backend->features = neep_device_features(backend->device) | (1ull << VU_F_VERSION_1) |
                        (1ull << VU_F_RING_INDIRECT_DESC) | (1ull << VU_F_RING_EVENT_IDX) |
                        (1ull << VU_F_PROTOCOL_FEATURES);
    backend->protocol_features = (1ull << VU_PROTOCOL_F_REPLY_ACK) |
                                 (1ull << VU_PROTOCOL_F_CONFIG) |
                                 (1ull << VU_PROTOCOL_F_RESET_DEVICE);

    ret = backend->watch->add(backend->watch_user_data, socket_fd, on_socket, backend);
    if (ret == 0) {
        ret = backend->watch->add(backend->watch_user_data, neep_device_fence_fd(backend->device),
                                  on_fences, backend);
        if (ret < 0) {
            backend->watch->remove(backend->watch_user_data, socket_fd);
        }
    }
    if (ret < 0) {
        vu_backend_destroy(backend);
        return ret;
    }
    backend->alive = true;
    *out = backend;
    return 0;
}

void vu_backend_destroy(struct vu_backend *backend)
{
    if (!backend) {
        return;
    }
    disconnect(backend);
    for (uint32_t i = 0; i < QUEUE_COUNT; i++) {
        stop_queue(backend, &backend->queues[i]);
        new_generation(backend, i); /* what the device still completes goes nowhere */
    }
    /* What the display holds is charged to the device's renderer: it goes first. */
    vu_display_close(&backend->display);
    vu_display_set_device(&backend->display, NULL);
    if (backend->device) {
        backend->watch->remove(backend->watch_user_data, neep_device_fence_fd(backend->device));
        neep_device_destroy(backend->device);
    }
    vu_memory_finish(&backend->memory);
    if (backend->socket_fd >= 0) {
        close(backend->socket_fd);
    }
    for (uint32_t i = 0; i < QUEUE_COUNT; i++) {
        free(backend->lifecycle[i].parked);
    }
    free(backend->chain);
    free(backend);
}

bool vu_backend_alive(const struct vu_backend *backend)
{
    return backend->alive;
}

void vu_backend_display_stats(const struct vu_backend *backend, struct vu_display_stats *out)
{
    *out = backend->display.stats;
}

struct neep_device *vu_backend_device(struct vu_backend *backend)
{
    return backend->device;
}
