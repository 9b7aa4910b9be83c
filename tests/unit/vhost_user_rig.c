#include "vhost_user_rig.h"

#include <linux/virtio_gpu.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

uint64_t uva(const struct rig *rig, uint64_t gpa)
{
    return (uint64_t)(uintptr_t)rig->guest + gpa;
}

struct vring_avail *avail_of(struct rig *rig, uint32_t queue)
{
    return (struct vring_avail *)(rig->guest + rig->rings[queue].gpa + AVAIL_OFFSET);
}

struct vring_used *used_of(struct rig *rig, uint32_t queue)
{
    return (struct vring_used *)(rig->guest + rig->rings[queue].gpa + USED_OFFSET);
}

uint16_t used_idx(struct rig *rig, uint32_t queue)
{
    return __atomic_load_n(&used_of(rig, queue)->idx, __ATOMIC_ACQUIRE);
}

void set_mem_table(struct rig *rig, const struct vu_memory_region *regions, const int *fds,
                   uint32_t count, int64_t expected_ack)
{
    struct vu_memory memory = {.nregions = count};
    memcpy(memory.regions, regions, count * sizeof(regions[0]));
    CHECK_EQ(vu_test_request(&rig->f, VU_SET_MEM_TABLE, &memory,
                             8 + count * (uint32_t)sizeof(regions[0]), fds, (int)count),
             expected_ack);
}

int64_t set_state(struct rig *rig, uint32_t request, uint32_t queue, uint32_t num)
{
    struct vhost_vring_state state = {queue, num};
    return vu_test_request(&rig->f, request, &state, sizeof(state), NULL, 0);
}

int64_t set_addr(struct rig *rig, uint32_t queue, uint64_t ring_gpa)
{
    struct vhost_vring_addr addr = {
        .index = queue,
        .desc_user_addr = uva(rig, ring_gpa + DESC_OFFSET),
        .avail_user_addr = uva(rig, ring_gpa + AVAIL_OFFSET),
        .used_user_addr = uva(rig, ring_gpa + USED_OFFSET),
    };
    return vu_test_request(&rig->f, VU_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0);
}

/* Configures and starts a queue the way QEMU's vhost_virtqueue_start does. */
void start_queue(struct rig *rig, uint32_t queue, uint32_t size, uint64_t ring_gpa, uint16_t base)
{
    rig->rings[queue] = (struct guest_ring){size, ring_gpa, base};
    CHECK_EQ(set_state(rig, VU_SET_VRING_NUM, queue, size), 0);
    CHECK_EQ(set_state(rig, VU_SET_VRING_BASE, queue, base), 0);
    CHECK_EQ(set_addr(rig, queue, ring_gpa), 0);
    uint64_t index = queue;
    CHECK_EQ(vu_test_request(&rig->f, VU_SET_VRING_CALL, &index, 8, &rig->call[queue], 1), 0);
    CHECK_EQ(vu_test_request(&rig->f, VU_SET_VRING_KICK, &index, 8, &rig->kick[queue], 1), 0);
    CHECK_EQ(set_state(rig, VU_SET_VRING_ENABLE, queue, 1), 0);
}

/* Stops a queue as QEMU does; returns the index the back-end reports. */
uint32_t stop_queue(struct rig *rig, uint32_t queue)
{
    struct vhost_vring_state state = {queue, 0};
    vu_test_drain_replies(&rig->f);
    CHECK(
        vu_test_send(&rig->f, VU_GET_VRING_BASE, VU_FLAG_VERSION, &state, sizeof(state), NULL, 0));
    struct vu_header header;
    CHECK(vu_test_read_reply(&rig->f, &header, &state, sizeof(state)));
    CHECK_EQ(state.index, queue);
    return state.num;
}

void rig_init_with(struct rig *rig, const struct neep_renderer_config *renderer)
{
    memset(rig, 0, sizeof(*rig));
    rig->guest_fd = vu_test_memfd("vu-test-guest", GUEST_BYTES);
    CHECK(rig->guest_fd >= 0);
    rig->guest = mmap(NULL, GUEST_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, rig->guest_fd, 0);
    CHECK(rig->guest != MAP_FAILED);
    for (int i = 0; i < 2; i++) {
        rig->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        rig->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    struct vu_backend_config config = {
        .device = {.renderer = *renderer, .scanout_count = 1, .scanouts = {{1024, 768, true}}},
    };
    config.device.renderer.log_fn = support_log;
    config.device.renderer.log_user_data = &rig->log;
    CHECK_EQ(vu_test_frontend_init(&rig->f, &config), 0);

    int64_t features = vu_test_get_u64(&rig->f, VU_GET_FEATURES);
    CHECK(features > 0 && (features & (1ll << VU_F_PROTOCOL_FEATURES)));
    int64_t protocol = vu_test_get_u64(&rig->f, VU_GET_PROTOCOL_FEATURES);
    CHECK(protocol > 0 && (protocol & (1ll << VU_PROTOCOL_F_REPLY_ACK)));
    CHECK(vu_test_send(&rig->f, VU_SET_PROTOCOL_FEATURES, VU_FLAG_VERSION, &protocol, 8, NULL, 0));
    CHECK_EQ(vu_test_request(&rig->f, VU_SET_FEATURES, &features, 8, NULL, 0), 0);
    CHECK_EQ(vu_test_request(&rig->f, VU_SET_OWNER, NULL, 0, NULL, 0), 0);
    struct vu_memory_region region = {0, GUEST_BYTES, uva(rig, 0), 0};
    set_mem_table(rig, &region, &rig->guest_fd, 1, 0);
    start_queue(rig, 0, QUEUE_SIZE, RING_GPA(0), 0);
    start_queue(rig, 1, QUEUE_SIZE, RING_GPA(1), 0);
}

void rig_init(struct rig *rig)
{
    struct neep_renderer_config renderer = {.memory_budget_bytes = 64u << 20};
    rig_init_with(rig, &renderer);
}

void rig_finish(struct rig *rig)
{
    vu_test_frontend_finish(&rig->f);
    for (int i = 0; i < 2; i++) {
        close(rig->kick[i]);
        close(rig->call[i]);
    }
    munmap(rig->guest, GUEST_BYTES);
    close(rig->guest_fd);
}

/* Places a command on queue `queue` as the driver does (request, then a writable response
 * buffer) without kicking; returns the slot that holds the response. */
uint8_t *offer(struct rig *rig, uint32_t queue, const void *request, size_t bytes)
{
    struct guest_ring *ring = &rig->rings[queue];
    uint64_t slot = COMMAND_GPA + (uint64_t)(rig->next_slot++ % 64) * COMMAND_SLOT_BYTES;
    CHECK(bytes <= RESPONSE_OFFSET);
    memcpy(rig->guest + slot, request, bytes);
    memset(rig->guest + slot + RESPONSE_OFFSET, 0xee, COMMAND_SLOT_BYTES - RESPONSE_OFFSET);
    uint16_t head = (uint16_t)((ring->avail_idx * 2u) % ring->size);
    struct vring_desc *desc = (struct vring_desc *)(rig->guest + ring->gpa + DESC_OFFSET);
    desc[head] = (struct vring_desc){slot, (uint32_t)bytes, VRING_DESC_F_NEXT,
                                     (uint16_t)((head + 1) % ring->size)};
    desc[(head + 1) % ring->size] = (struct vring_desc){
        slot + RESPONSE_OFFSET, COMMAND_SLOT_BYTES - RESPONSE_OFFSET, VRING_DESC_F_WRITE, 0};
    struct vring_avail *avail = avail_of(rig, queue);
    avail->ring[ring->avail_idx % ring->size] = head;
    ring->avail_idx++;
    __atomic_store_n(&avail->idx, ring->avail_idx, __ATOMIC_RELEASE);
    return rig->guest + slot + RESPONSE_OFFSET;
}

void kick(struct rig *rig, uint32_t queue)
{
    uint64_t one = 1;
    CHECK_EQ(write(rig->kick[queue], &one, sizeof(one)), sizeof(one));
    vu_test_loop_run(&rig->f.loop);
}

/* Sends a control command and returns the response type (the command must be answered). */
uint32_t command(struct rig *rig, const void *request, size_t bytes)
{
    uint16_t before = used_idx(rig, 0);
    const struct virtio_gpu_ctrl_hdr *response = (void *)offer(rig, 0, request, bytes);
    kick(rig, 0);
    CHECK_EQ(used_idx(rig, 0), (uint16_t)(before + 1));
    return response->type;
}

uint32_t display_info(struct rig *rig)
{
    struct virtio_gpu_ctrl_hdr info = {.type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO};
    return command(rig, &info, sizeof(info));
}
