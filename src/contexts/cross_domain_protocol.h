/*
 * The cross-domain wire protocol (capset 5): the commands a guest proxy sends in SUBMIT_3D
 * and the replies the host writes into the guest's ring blobs. Written here from the
 * protocol's published facts (rutabaga_gfx's implementation is its only specification).
 * Commands 1-7 and identifier types 1-4 are the common ground every guest proxy speaks.
 */
#ifndef NEEP_CONTEXTS_CROSS_DOMAIN_PROTOCOL_H
#define NEEP_CONTEXTS_CROSS_DOMAIN_PROTOCOL_H

#include <stdint.h>

enum cross_domain_command {
    CROSS_DOMAIN_CMD_INIT = 1,
    CROSS_DOMAIN_CMD_GET_IMAGE_REQUIREMENTS = 2,
    CROSS_DOMAIN_CMD_POLL = 3,
    CROSS_DOMAIN_CMD_SEND = 4,
    CROSS_DOMAIN_CMD_RECEIVE = 5, /* host to guest */
    CROSS_DOMAIN_CMD_READ = 6,    /* host to guest */
    CROSS_DOMAIN_CMD_WRITE = 7,
};

enum cross_domain_ring_index {
    CROSS_DOMAIN_QUERY_RING = 0,
    CROSS_DOMAIN_CHANNEL_RING = 1, /* or any other but 0, see CROSS_DOMAIN_NEEP_ANY_CHANNEL_RING */
};

enum cross_domain_id_type {
    CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB = 1,
    CROSS_DOMAIN_ID_TYPE_VIRTGPU_SYNC = 2,
    CROSS_DOMAIN_ID_TYPE_READ_PIPE = 3,
    CROSS_DOMAIN_ID_TYPE_WRITE_PIPE = 4,
};

/* DRM fourcc codes, as image requirements and wl_shm name formats. */
#define DRM_FOURCC(a, b, c, d)                                                                     \
    ((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))
/* The layout guest proxies ask for when they want plain shared memory: one row of R8. */
#define DRM_FORMAT_R8 DRM_FOURCC('R', '8', ' ', ' ')

#define CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND 1u
#define CROSS_DOMAIN_MAX_IDENTIFIERS      28u
#define CROSS_DOMAIN_PIPE_READ_START      0x80000000u
/* Data that fits a one-page channel ring after each reply's fixed part. */
#define CROSS_DOMAIN_RING_BYTES 4096u

struct cross_domain_header {
    uint8_t cmd;
    uint8_t ring_idx;
    uint16_t cmd_size; /* of the whole command, header and trailing data included */
    uint32_t pad;
};

struct cross_domain_capabilities {
    uint32_t version;
    uint32_t supported_channels; /* 1 << channel type, for each channel configured */
    uint32_t supports_dmabuf;
    uint32_t supports_external_gpu_memory;
    /* neep's addition; guests that read 16 bytes never see it. */
    uint32_t neep_features;
};
/* The channel ring may be any ring but the query ring. QEMU's virtio-gpu-rutabaga completes a
 * fence on ring N for every context's earlier fences on ring N, so two contexts polling ring
 * 1 wake each other with stale replies; a guest that gives each connection its own ring
 * avoids that. */
#define CROSS_DOMAIN_NEEP_ANY_CHANNEL_RING (1u << 0)
/* The capabilities every guest knows: the first four fields. */
#define CROSS_DOMAIN_CAPABILITIES_V1_BYTES 16u

/* Accepted at three sizes: 16 (legacy: no channel ring), 20, and 36 (with a socket UUID). */
struct cross_domain_init {
    struct cross_domain_header hdr;
    uint32_t query_ring_id;
    uint32_t channel_ring_id;
    uint32_t channel_type;
    uint8_t internal_socket_uuid[16];
};
#define CROSS_DOMAIN_INIT_LEGACY_BYTES 16u
#define CROSS_DOMAIN_INIT_V1_BYTES     20u

struct cross_domain_get_image_requirements {
    struct cross_domain_header hdr;
    uint32_t width;
    uint32_t height;
    uint32_t drm_format;
    uint32_t flags;
};

struct cross_domain_image_requirements {
    uint32_t strides[4];
    uint32_t offsets[4];
    uint64_t modifier;
    uint64_t size;
    uint32_t blob_id;
    uint32_t map_info;
    int32_t memory_idx;
    int32_t physical_device_idx;
};

struct cross_domain_poll {
    struct cross_domain_header hdr;
    uint64_t pad;
};

struct cross_domain_send_receive {
    struct cross_domain_header hdr;
    uint32_t num_identifiers;
    uint32_t opaque_data_size;
    uint32_t identifiers[CROSS_DOMAIN_MAX_IDENTIFIERS];
    uint32_t identifier_types[CROSS_DOMAIN_MAX_IDENTIFIERS];
    uint32_t identifier_sizes[CROSS_DOMAIN_MAX_IDENTIFIERS];
    /* opaque_data_size bytes follow */
};

struct cross_domain_read_write {
    struct cross_domain_header hdr;
    uint32_t identifier;
    uint32_t hang_up;
    uint32_t opaque_data_size;
    uint32_t pad;
    /* opaque_data_size bytes follow */
};

_Static_assert(sizeof(struct cross_domain_header) == 8, "header");
_Static_assert(sizeof(struct cross_domain_capabilities) == 20, "capabilities");
_Static_assert(sizeof(struct cross_domain_init) == 36, "init");
_Static_assert(sizeof(struct cross_domain_get_image_requirements) == 24, "image requirements");
_Static_assert(sizeof(struct cross_domain_image_requirements) == 64, "requirements reply");
_Static_assert(sizeof(struct cross_domain_poll) == 16, "poll");
_Static_assert(sizeof(struct cross_domain_send_receive) == 352, "send/receive");
_Static_assert(sizeof(struct cross_domain_read_write) == 24, "read/write");

#endif
