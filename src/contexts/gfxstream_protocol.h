/*
 * What neep and its gfxstream server (src/gfxstream_server/) say to each other. The backend
 * runs in that process of its own: it trusts its caller, reads guest rings without bounds and
 * aborts on much it dislikes, so a guest that trips it takes down the server, not the VMM.
 *
 * Two SOCK_SEQPACKET sockets the server finds as fds 3 and 4:
 *  - calls: neep sends one `struct gfxstream_call`, the server answers one `struct
 *    gfxstream_reply` (shorter when it carries no capset), with at most one fd either way;
 *  - events: the server sends `struct gfxstream_event`s (fences, log lines) on its own threads.
 *
 * Memory the two share is only ever memfds: the blobs the backend makes (it is started with
 * external and system blobs, so every mappable blob is one) and neep's staging copy of a
 * resource's guest backing. The server never sees guest memory itself.
 */
#ifndef NEEP_CONTEXTS_GFXSTREAM_PROTOCOL_H
#define NEEP_CONTEXTS_GFXSTREAM_PROTOCOL_H

#include <stdint.h>

#include "gfxstream_api.h"

#define GFXSTREAM_SERVER_CALL_FD  3
#define GFXSTREAM_SERVER_EVENT_FD 4

/* Capsets larger than this are not the backend's (its largest, Vulkan's, is 104 bytes). */
#define GFXSTREAM_MAX_CAPSET_BYTES 4096u
/* The longest control command the backend copies (RESOURCE_CREATE_3D, 56 bytes). */
#define GFXSTREAM_MAX_COMMAND_BYTES 64u
/* The longest context debug name on the wire. */
#define GFXSTREAM_MAX_NAME_BYTES 64u
/* The longest log line an event carries. */
#define GFXSTREAM_MAX_LOG_BYTES 480u

/* Flags the server adds to the renderer's: every mappable blob a memfd neep can map. */
#define GFXSTREAM_FLAG_USE_EXTERNAL_BLOB (1u << 6)
#define GFXSTREAM_FLAG_USE_SYSTEM_BLOB   (1u << 7)

enum gfxstream_call_op {
    /* flags, probe_timeout_ms, skip_probe -> ret, usable_formats (bit i: gfxstream_formats[i];
     * none when skip_probe) */
    GFXSTREAM_CALL_START = 1,
    GFXSTREAM_CALL_GET_CAPSET,      /* value: set -> ret, version, size, data */
    GFXSTREAM_CALL_CONTEXT_CREATE,  /* ctx_id, value: capset, name */
    GFXSTREAM_CALL_CONTEXT_DESTROY, /* ctx_id */
    GFXSTREAM_CALL_ATTACH_RESOURCE, /* ctx_id, resource_id */
    GFXSTREAM_CALL_DETACH_RESOURCE, /* ctx_id, resource_id */
    GFXSTREAM_CALL_SUBMIT,          /* ctx_id, command */
    GFXSTREAM_CALL_CREATE_FENCE,    /* fence */
    GFXSTREAM_CALL_RESOURCE_CREATE, /* create */
    GFXSTREAM_CALL_RESOURCE_UNREF,  /* resource_id */
    GFXSTREAM_CALL_ATTACH_BACKING,  /* resource_id, size_bytes + the staging memfd */
    GFXSTREAM_CALL_DETACH_BACKING,  /* resource_id */
    GFXSTREAM_CALL_TRANSFER,        /* resource_id, ctx_id, transfer [+ a memfd: its buffer] */
    GFXSTREAM_CALL_CREATE_BLOB,     /* ctx_id, resource_id, blob */
    GFXSTREAM_CALL_EXPORT_BLOB,     /* resource_id -> ret, handle type + the fd */
    GFXSTREAM_CALL_MAP_INFO,        /* resource_id -> ret, map info */
    GFXSTREAM_CALL_OP_END,
};

/* Set in a call's op: the server sends no reply (fences and most submits, the hot path); what
 * it refuses it logs, and a fence it refuses it completes. */
#define GFXSTREAM_CALL_NO_REPLY 0x80000000u

struct gfxstream_call {
    uint32_t op;
    uint32_t ctx_id;
    uint32_t resource_id;
    uint32_t value;
    uint64_t size_bytes;
    union {
        struct {
            uint32_t flags;
            uint32_t probe_timeout_ms;
            /* 1: an earlier server of this process probed the same backend with the same
             * flags; neep has what it found, the backend starts without the probe. */
            uint32_t skip_probe;
        } start;
        struct {
            uint32_t length;
            char bytes[GFXSTREAM_MAX_NAME_BYTES];
        } name;
        struct {
            uint32_t size_bytes;
            uint8_t bytes[GFXSTREAM_MAX_COMMAND_BYTES];
        } command;
        struct gfxstream_fence fence;
        struct gfxstream_resource_create_args create;
        struct gfxstream_create_blob blob;
        struct {
            uint32_t to_host;
            struct gfxstream_box box;
            uint64_t offset_bytes;
        } transfer;
    } u;
};

struct gfxstream_reply {
    uint32_t op;
    int32_t ret;
    uint32_t values[2];
    uint64_t value64;
    uint8_t data[GFXSTREAM_MAX_CAPSET_BYTES];
};
#define GFXSTREAM_REPLY_HEADER_BYTES offsetof(struct gfxstream_reply, data)

enum gfxstream_event_type {
    GFXSTREAM_EVENT_FENCE = 1,
    GFXSTREAM_EVENT_LOG, /* level: a GFXSTREAM_DEBUG_* from the backend, or the server's own */
};
/* The server's own lines (about the host: loading, starting) rather than the backend's. */
#define GFXSTREAM_LOG_FROM_SERVER 0x100u

struct gfxstream_event {
    uint32_t type;
    uint32_t level;
    struct gfxstream_fence fence;
    char text[GFXSTREAM_MAX_LOG_BYTES]; /* NUL-terminated within */
};

#endif
