/*
 * The vhost-user tests' rig: this process is the front-end (messages with memfds and eventfds,
 * over a real socket) and the guest driver (rings and commands in shared memory) of a real
 * back-end, whose callbacks it runs itself. Shared by the transport and display tests.
 */
#ifndef NEEP_TEST_VHOST_USER_RIG_H
#define NEEP_TEST_VHOST_USER_RIG_H

#include <linux/virtio_ring.h>
#include <stdint.h>

#include "support.h"
#include "vhost_user/memory.h"
#include "vhost_user_support.h"

#define GUEST_BYTES (4u << 20)
#define QUEUE_SIZE  8u
/* Guest-physical layout: each queue's rings, then command slots (cross-domain's rings at
 * QUERY_RING_GPA, pixel memory in a second region at PIXELS_REGION_GPA). */
#define RING_GPA(queue)    (0x4000ull * (queue))
#define DESC_OFFSET        0x0
#define AVAIL_OFFSET       0x1000
#define USED_OFFSET        0x2000
#define COMMAND_GPA        0x10000ull
#define COMMAND_SLOT_BYTES 0x1000u
#define RESPONSE_OFFSET    0x800u

struct guest_ring {
    uint32_t size;
    uint64_t gpa; /* desc at +0, avail at +0x1000, used at +0x2000 */
    uint16_t avail_idx;
};

struct rig {
    struct vu_test_frontend f;
    struct log_capture log;
    int guest_fd;
    uint8_t *guest; /* guest-physical 0 is here, and the front-end's address is this one */
    int kick[2], call[2];
    struct guest_ring rings[2];
    uint32_t next_slot;
};

uint64_t uva(const struct rig *rig, uint64_t gpa);
struct vring_avail *avail_of(struct rig *rig, uint32_t queue);
struct vring_used *used_of(struct rig *rig, uint32_t queue);
uint16_t used_idx(struct rig *rig, uint32_t queue);
void set_mem_table(struct rig *rig, const struct vu_memory_region *regions, const int *fds,
                   uint32_t count, int64_t expected_ack);
int64_t set_state(struct rig *rig, uint32_t request, uint32_t queue, uint32_t num);
int64_t set_addr(struct rig *rig, uint32_t queue, uint64_t ring_gpa);
/* Configures and starts a queue the way QEMU's vhost_virtqueue_start does. */
void start_queue(struct rig *rig, uint32_t queue, uint32_t size, uint64_t ring_gpa, uint16_t base);
/* Stops a queue as QEMU does; returns the index the back-end reports. */
uint32_t stop_queue(struct rig *rig, uint32_t queue);
void rig_init_with(struct rig *rig, const struct neep_renderer_config *renderer);
void rig_init(struct rig *rig);
void rig_finish(struct rig *rig);
/* Places a command on queue `queue` as the driver does (request, then a writable response
 * buffer) without kicking; returns the slot that holds the response. */
uint8_t *offer(struct rig *rig, uint32_t queue, const void *request, size_t bytes);
void kick(struct rig *rig, uint32_t queue);
/* Sends a control command and returns the response type (the command must be answered). */
uint32_t command(struct rig *rig, const void *request, size_t bytes);
uint32_t display_info(struct rig *rig);

#endif
