/*
 * vhost-user wire definitions (QEMU docs/interop/vhost-user.rst and vhost-user-gpu.rst),
 * written here from the protocol's published facts. Linux's uapi provides the vring state
 * and address structs; everything else is defined below.
 */
#ifndef NEEP_VHOST_USER_PROTOCOL_H
#define NEEP_VHOST_USER_PROTOCOL_H

#include <linux/vhost_types.h>
#include <stdint.h>

/* ---- front-end <-> back-end socket ---- */

enum vu_request {
    VU_GET_FEATURES = 1,
    VU_SET_FEATURES = 2,
    VU_SET_OWNER = 3,
    VU_RESET_OWNER = 4,
    VU_SET_MEM_TABLE = 5,
    VU_SET_LOG_BASE = 6,
    VU_SET_LOG_FD = 7,
    VU_SET_VRING_NUM = 8,
    VU_SET_VRING_ADDR = 9,
    VU_SET_VRING_BASE = 10,
    VU_GET_VRING_BASE = 11,
    VU_SET_VRING_KICK = 12,
    VU_SET_VRING_CALL = 13,
    VU_SET_VRING_ERR = 14,
    VU_GET_PROTOCOL_FEATURES = 15,
    VU_SET_PROTOCOL_FEATURES = 16,
    VU_GET_QUEUE_NUM = 17,
    VU_SET_VRING_ENABLE = 18,
    VU_GET_CONFIG = 24,
    VU_SET_CONFIG = 25,
    VU_GPU_SET_SOCKET = 33,
    VU_RESET_DEVICE = 34,
    VU_REQUEST_LIMIT = 64,
};

#define VU_FLAG_VERSION      0x1u
#define VU_FLAG_VERSION_MASK 0x3u
#define VU_FLAG_REPLY        0x4u
#define VU_FLAG_NEED_REPLY   0x8u

/* Virtio and vhost-user feature bits (GET_FEATURES). */
#define VU_F_RING_INDIRECT_DESC 28
#define VU_F_RING_EVENT_IDX     29
#define VU_F_PROTOCOL_FEATURES  30
#define VU_F_VERSION_1          32

/* Protocol feature bits (GET_PROTOCOL_FEATURES). */
#define VU_PROTOCOL_F_REPLY_ACK    3
#define VU_PROTOCOL_F_CONFIG       9
#define VU_PROTOCOL_F_RESET_DEVICE 13

#define VU_MAX_MEM_REGIONS  8
#define VU_MAX_FDS          8
#define VU_VRING_INDEX_MASK 0xffu
#define VU_VRING_NOFD_MASK  0x100u
#define VU_MAX_CONFIG_BYTES 256u

struct vu_header {
    uint32_t request;
    uint32_t flags;
    uint32_t size; /* payload bytes after the header */
};

struct vu_memory_region {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
};

struct vu_memory {
    uint32_t nregions;
    uint32_t padding;
    struct vu_memory_region regions[VU_MAX_MEM_REGIONS];
};

struct vu_config {
    uint32_t offset;
    uint32_t size;
    uint32_t flags;
    uint8_t region[VU_MAX_CONFIG_BYTES];
};

union vu_payload {
    uint64_t u64;
    struct vhost_vring_state state;
    struct vhost_vring_addr addr;
    struct vu_memory memory;
    struct vu_config config;
};

_Static_assert(sizeof(struct vu_header) == 12, "vhost-user header");
_Static_assert(sizeof(struct vu_memory_region) == 32, "memory region");
_Static_assert(sizeof(struct vhost_vring_addr) == 40, "vring addr");

/* ---- vhost-user-gpu display socket (back-end sends requests) ---- */

enum vu_gpu_request {
    VU_GPU_GET_PROTOCOL_FEATURES = 1,
    VU_GPU_SET_PROTOCOL_FEATURES = 2,
    VU_GPU_GET_DISPLAY_INFO = 3,
    VU_GPU_CURSOR_POS = 4,
    VU_GPU_CURSOR_POS_HIDE = 5,
    VU_GPU_CURSOR_UPDATE = 6,
    VU_GPU_SCANOUT = 7,
    VU_GPU_UPDATE = 8,
    VU_GPU_GET_EDID = 11,
};

#define VU_GPU_FLAG_REPLY 0x4u

struct __attribute__((packed)) vu_gpu_header {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
};

struct __attribute__((packed)) vu_gpu_cursor_pos {
    uint32_t scanout_id;
    uint32_t x;
    uint32_t y;
};

struct __attribute__((packed)) vu_gpu_cursor_update {
    struct vu_gpu_cursor_pos pos;
    uint32_t hot_x;
    uint32_t hot_y;
    uint32_t data[64 * 64];
};

struct __attribute__((packed)) vu_gpu_scanout {
    uint32_t scanout_id;
    uint32_t width;
    uint32_t height;
};

struct __attribute__((packed)) vu_gpu_update {
    uint32_t scanout_id;
    uint32_t x;
    uint32_t y;
    uint32_t width;
    uint32_t height;
};

_Static_assert(sizeof(struct vu_gpu_header) == 12, "gpu header");
_Static_assert(sizeof(struct vu_gpu_cursor_update) == 16404, "cursor update");
_Static_assert(sizeof(struct vu_gpu_update) == 20, "update");

#endif
