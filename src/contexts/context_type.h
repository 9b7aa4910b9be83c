/*
 * The interface every context type implements.
 *
 * A context type is a `struct neep_context_type` (capset id, name, probe, create) listed in
 * the registry (registry.c). Each context it creates embeds `struct neep_context` as its first
 * member and points it at a `static const struct neep_context_ops` table; the table's address
 * doubles as the type tag for downcasts.
 */
#ifndef NEEP_CONTEXTS_CONTEXT_TYPE_H
#define NEEP_CONTEXTS_CONTEXT_TYPE_H

#include <stddef.h>
#include <stdint.h>

#include "renderer/renderer_internal.h"

/* Host memory a context hands out for a HOST3D blob. The renderer takes ownership of fd. */
struct neep_blob_storage {
    int fd;
    uint32_t handle_type; /* NEEP_HANDLE_MEM_* */
    uint64_t size_bytes;  /* the fd holds at least this many bytes */
    uint32_t map_info;    /* cache type | access bits, as in neep_resource_map_info */
};

struct neep_context_ops {
    /* Required. Stops all work of the context (joining its threads); after it returns the
     * context never signals a timeline again. Frees the implementation struct. */
    void (*destroy)(struct neep_context *ctx);

    /* Required. `commands` is a private copy the context may keep until it returns. */
    int (*submit)(struct neep_context *ctx, const uint8_t *commands, size_t size_bytes);

    /* Optional: the context starts or stops using a resource. */
    int (*attach_resource)(struct neep_context *ctx, struct neep_resource *resource);
    void (*detach_resource)(struct neep_context *ctx, struct neep_resource *resource);
    /* Optional: an attached resource's guest memory is about to go away (DETACH_BACKING);
     * after this returns the context must not touch it. */
    void (*release_backing)(struct neep_context *ctx, struct neep_resource *resource);

    /* Optional. Tracks a fence on `timeline`; the context calls neep_timeline_signal() once
     * the work before it is done. Without this hook fences complete at once. */
    int (*create_fence)(struct neep_context *ctx, struct neep_timeline *timeline,
                        uint64_t fence_id);

    /* Optional, for contexts that keep their own copies of resources' guest backing: report
     * every borrowed range they hold, or drop those overlapping [begin, begin + size_bytes)
     * (see neep_renderer_visit_borrowed_memory). */
    void (*visit_borrowed_memory)(struct neep_context *ctx, neep_borrowed_memory_fn visit,
                                  void *user_data);
    void (*forget_borrowed_memory)(struct neep_context *ctx, const void *begin, size_t size_bytes);

    /* Optional. Provides host memory for a HOST3D or HOST3D_GUEST blob. */
    int (*create_blob)(struct neep_context *ctx, uint32_t resource_id,
                       const struct neep_blob_create *create, struct neep_blob_storage *out);
};

struct neep_context {
    const struct neep_context_ops *ops;
    struct neep_renderer *renderer;
    uint32_t id;
    uint32_t capset_id;
    char debug_name[64];
    struct id_table attached_resources;
    struct neep_timeline *rings[NEEP_MAX_RINGS];
};

struct neep_context_type {
    uint32_t capset_id;
    const char *name;
    /* Fills the capset description; a negative errno means the type cannot run on this host.
     * `*data` is malloc'd and owned by the renderer afterwards. */
    int (*probe)(struct neep_renderer *renderer, uint32_t *max_version, uint32_t *size_bytes,
                 uint8_t **data);
    /* Allocates the context (base fields are filled in by the renderer afterwards). `name`
     * is the guest's debug name, not terminated, `name_len` bytes. */
    int (*create)(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t context_init,
                  const char *name, size_t name_len, struct neep_context **out);
    /* Optional: undoes a successful probe when the renderer goes, after its contexts and
     * resources are gone and before its fence timelines are. */
    void (*release)(struct neep_renderer *renderer);
};

/* NULL-terminated list of the context types built into this library. */
extern const struct neep_context_type *const neep_builtin_context_types[];

/* Thread-safe: marks the fence `fence_id` (and every fence created before it on the same
 * timeline) as complete. Unknown ids are ignored with a log line. */
void neep_timeline_signal(struct neep_timeline *timeline, uint64_t fence_id);

/* Logging for context types, through the renderer's logger. */
#define context_log(ctx, level, ...) renderer_log((ctx)->renderer, level, __VA_ARGS__)

#endif
