/*
 * The renderer's private structures, shared by the files of src/renderer/ and by the context
 * types in src/contexts/ (through context_type.h).
 */
#ifndef NEEP_RENDERER_INTERNAL_H
#define NEEP_RENDERER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <neep/renderer.h>

#include "util/id_table.h"
#include "util/log.h"

struct neep_context;
struct neep_context_type;
struct cross_domain_reactor;

/* Budget charged per resource or context for bookkeeping beyond its payload. */
#define NEEP_OBJECT_OVERHEAD_BYTES 512u

enum neep_resource_kind {
    NEEP_RESOURCE_2D,       /* host pixel storage, transfers to and from guest backing */
    NEEP_RESOURCE_BLOB,     /* guest memory, or host memory handed out by a context */
    NEEP_RESOURCE_PROVIDED, /* kept by the renderer's resource provider (virgl): see below */
};

struct neep_resource;

/*
 * A context type that keeps 3D resources itself (virglrenderer does: its command streams
 * name resources by id) becomes the renderer's resource provider while it is enabled.
 * RESOURCE_CREATE_3D then makes a NEEP_RESOURCE_PROVIDED resource: the renderer still owns
 * the id, the budget charge and the copied, checked backing list; the provider holds the
 * pixels, and moves them only for boxes and memory the renderer has checked. Global fences
 * go through it too, since they must wait for its work. Embedder thread only, except where
 * noted.
 */
struct neep_resource_provider_ops {
    const char *name;
    /* Optional (a provider of blobs only has none): the resource's id and create_3d fields
     * are filled in; returns 0 or a negative errno. */
    int (*create_3d)(struct neep_renderer *renderer, struct neep_resource *resource);
    void (*destroy)(struct neep_renderer *renderer, struct neep_resource *resource);
    /* resource->backing was just set (or is about to be dropped). */
    int (*attach_backing)(struct neep_renderer *renderer, struct neep_resource *resource);
    void (*detach_backing)(struct neep_renderer *renderer, struct neep_resource *resource);
    /* Moves a box between the resource and `buffer` (the resource's backing or caller memory),
     * whose size the renderer checked against the box where it knows the format. */
    int (*transfer)(struct neep_renderer *renderer, struct neep_resource *resource, uint32_t ctx_id,
                    const struct neep_transfer *transfer, const struct iovec *buffer,
                    size_t buffer_count, bool to_host);
    /* Optional: tracks a fence of the global timeline under `seq`, a number the renderer gives each
     * such fence and never reuses (a guest's fence ids start over after a reset); the
     * provider signals it (on any thread) with neep_timeline_signal_seq once the work before
     * it is done. */
    int (*create_global_fence)(struct neep_renderer *renderer, const struct neep_fence *fence,
                               uint32_t seq);

    /* Blobs of the provider's own contexts live in it too. */
    bool (*serves_context)(const struct neep_context *ctx);
    /* The resource's blob fields and backing (if any) are set. */
    int (*create_blob)(struct neep_renderer *renderer, struct neep_resource *resource,
                       uint32_t ctx_id);
    int (*map)(struct neep_renderer *renderer, struct neep_resource *resource, void **ptr,
               uint64_t *size_bytes);
    int (*unmap)(struct neep_renderer *renderer, struct neep_resource *resource);
    int (*map_info)(struct neep_renderer *renderer, struct neep_resource *resource,
                    uint32_t *map_info);
    int (*export_blob)(struct neep_renderer *renderer, struct neep_resource *resource, int *fd,
                       uint32_t *handle_type);
};

/* Host memory behind a resource: an fd (memfd or imported) and a mapping of it. */
struct neep_host_storage {
    int fd;               /* -1 when there is none */
    uint32_t handle_type; /* NEEP_HANDLE_MEM_* for export */
    uint8_t *mapping;     /* mmap of the fd, or NULL */
    uint64_t mapping_bytes;
};

struct neep_resource {
    uint32_t id;
    enum neep_resource_kind kind;

    /* 2D: pixels = storage.mapping + offset, rows stride_bytes apart. */
    uint32_t format;
    uint32_t width_px;
    uint32_t height_px;
    uint32_t stride_bytes;
    uint64_t size_bytes;
    uint8_t *pixels;
    struct neep_host_storage storage;

    /* Guest memory, copied iovec array. */
    struct iovec *backing;
    size_t backing_count;
    uint64_t backing_bytes;

    /* Blob parameters. */
    uint32_t blob_mem;
    uint32_t blob_flags;
    uint64_t blob_id;
    uint32_t map_info;
    void *host_map; /* neep_resource_map's mapping, separate from storage.mapping */
    uint64_t host_map_bytes;

    /* RESOURCE_CREATE_3D's fields, as the guest gave them (provided resources). */
    struct neep_resource_create_3d create_3d;
    /* The resource provider's own marks (virgl: whether venus's render server knows it). */
    uint32_t provider_flags;

    uint64_t charged_bytes;         /* storage and bookkeeping */
    uint64_t extra_charged_bytes;   /* of those: a provided blob's memory past its claimed size */
    uint64_t backing_charged_bytes; /* the copied iovec array */
};

/* One pending fence on a timeline. */
struct neep_fence_entry {
    struct neep_fence fence; /* as the caller gave it, delivered back unchanged */
    uint32_t seq;            /* the renderer's own number for provider fences, else 0 */
};

/*
 * A fence timeline: the global one, or one per (context, ring). Pending fences sit in a ring
 * buffer in creation order; the first `completed_count` of them are done and await dispatch.
 * All fields below `renderer` are guarded by renderer->fence_lock.
 */
struct neep_timeline {
    struct neep_renderer *renderer;
    uint32_t ctx_id;
    uint32_t ring_idx;
    bool is_global;

    struct neep_fence_entry *entries;
    uint32_t capacity;
    uint32_t head;
    uint32_t count;
    uint32_t completed_count;
    bool on_ready_list;
    struct neep_timeline *ready_next;
};

struct neep_capset {
    const struct neep_context_type *type;
    uint32_t capset_id;
    uint32_t max_version;
    uint32_t size_bytes;
    uint8_t *data;
};

struct neep_renderer {
    struct neep_logger logger;
    uint64_t capset_mask;

    _Atomic uint64_t memory_used_bytes;
    uint64_t memory_budget_bytes;

    struct id_table resources;
    struct id_table contexts;

    struct neep_capset capsets[NEEP_CAPSET_ID_MAX];
    uint32_t capset_count;

    /* Counts drops of references into borrowed memory (see neep_renderer_visit_borrowed_memory),
     * so the lender need look again only after one. Embedder thread only. */
    uint64_t borrowed_memory_releases;

    struct neep_channel *channels; /* owned copies, paths strdup'd */
    size_t channel_count;
    char *render_node_path; /* owned copy, or NULL */

    /* Fences: see fence.c. */
    pthread_mutex_t fence_lock;
    pthread_mutex_t dispatch_lock;
    int fence_event_fd;
    struct neep_timeline global_timeline;
    uint32_t next_global_seq; /* for provider fences; embedder thread */
    struct neep_timeline *ready_head;
    struct neep_timeline *ready_tail;
    neep_fence_notify_fn fence_notify;
    void *fence_notify_user_data;
    /* The embedder's thread (the renderer's creator), and what a context type needs done on it
     * when the fence fd wakes it: dispatches there run `embedder_poll` (virglrenderer's poll,
     * which its fence thread may wait for). */
    pthread_t embedder_thread;
    void (*embedder_poll)(struct neep_renderer *renderer);

    /* Set by a context type that keeps 3D resources (see neep_resource_provider_ops). */
    const struct neep_resource_provider_ops *resource_provider;

    /* Cross-domain's event thread, shared by its contexts (contexts/cross_domain_reactor.c);
     * tests may pump it by hand instead. */
    struct cross_domain_reactor *cross_domain_reactor;
    bool cross_domain_manual_pump;
};

#define renderer_log(renderer, level, ...) neep_log_guest(&(renderer)->logger, level, __VA_ARGS__)
#define renderer_error(renderer, ...)      renderer_log(renderer, NEEP_LOG_ERROR, __VA_ARGS__)

/* renderer.c */
int neep_renderer_create_with_types(const struct neep_renderer_config *config,
                                    const struct neep_context_type *const *types, size_t type_count,
                                    struct neep_renderer **out);
int neep_budget_charge(struct neep_renderer *renderer, uint64_t bytes);
void neep_budget_release(struct neep_renderer *renderer, uint64_t bytes);

/*
 * Borrowed memory: host memory the renderer points into without owning it, lent by the
 * embedder (guest memory behind resource backing, and contexts' copies of such backing, like
 * cross-domain's rings). A transport that maps guest memory asks, before it unmaps a region,
 * whether anything still points into it; a transport that must unmap regardless makes the
 * renderer forget those pointers first.
 */
typedef void (*neep_borrowed_memory_fn)(void *user_data, const void *base, size_t size_bytes);
/* Calls `visit` for every borrowed range the renderer and its contexts hold. */
void neep_renderer_visit_borrowed_memory(struct neep_renderer *renderer,
                                         neep_borrowed_memory_fn visit, void *user_data);
/* Drops every reference that overlaps [begin, begin + size_bytes): resources lose their
 * backing, contexts the rings made from it; each loss is logged. */
void neep_renderer_forget_borrowed_memory(struct neep_renderer *renderer, const void *begin,
                                          size_t size_bytes);
/* True if [base, base + size_bytes) overlaps [begin, begin + range_bytes). */
bool neep_ranges_overlap(const void *base, size_t size_bytes, const void *begin,
                         size_t range_bytes);

/* resource.c */
struct neep_resource *neep_resource_lookup(const struct neep_renderer *renderer, uint32_t id);
/* Like lookup, logging a miss; `what` names the operation for the log line. */
struct neep_resource *neep_resource_find(struct neep_renderer *renderer, uint32_t id,
                                         const char *what);
/* A new resource's id must be neither 0 nor taken. */
int neep_resource_check_new_id(struct neep_renderer *renderer, uint32_t id, const char *what);
/* A resource with its bookkeeping charged, not yet in the table. */
struct neep_resource *neep_resource_alloc(struct neep_renderer *renderer, uint32_t id,
                                          enum neep_resource_kind kind);
/* Copies a guest iovec list after checking its shape, charging the copy to the budget. */
int neep_resource_take_backing(struct neep_renderer *renderer, struct neep_resource *resource,
                               const struct iovec *backing, size_t backing_count);
int neep_resource_insert(struct neep_renderer *renderer, struct neep_resource *resource);
void neep_resource_free(struct neep_renderer *renderer, struct neep_resource *resource);
void neep_resources_destroy_all(struct neep_renderer *renderer);
int neep_resource_create_2d_storage(struct neep_renderer *renderer, uint32_t id, uint32_t format,
                                    uint32_t width_px, uint32_t height_px,
                                    struct neep_resource **out);
void neep_host_storage_release(struct neep_host_storage *storage);

/* formats.c */
bool neep_format_is_valid(uint32_t format);
uint32_t neep_format_from_drm_fourcc(uint32_t fourcc); /* 0 if unknown */
#define NEEP_BYTES_PER_PIXEL 4u

/* context.c */
struct neep_context *neep_context_lookup(const struct neep_renderer *renderer, uint32_t ctx_id);
void neep_contexts_destroy_all(struct neep_renderer *renderer);
void neep_contexts_detach_resource_everywhere(struct neep_renderer *renderer,
                                              struct neep_resource *resource);
/* Tells every context the resource is attached to that its guest memory goes away. */
void neep_contexts_release_backing(struct neep_renderer *renderer, struct neep_resource *resource);

/* fence.c */
int neep_fences_init(struct neep_renderer *renderer);
/* Makes the fence fd readable (and calls the fence notify): from any thread. */
void neep_renderer_wake_dispatcher(struct neep_renderer *renderer);
void neep_fences_finish(struct neep_renderer *renderer);
void neep_timeline_init(struct neep_timeline *timeline, struct neep_renderer *renderer,
                        uint32_t ctx_id, uint32_t ring_idx, bool is_global);
/* Drops pending fences and unlinks the timeline; it can then be freed. */
void neep_timeline_finish(struct neep_timeline *timeline);
/* Queues a fence; with `complete_now` it is done at once. */
int neep_timeline_push(struct neep_timeline *timeline, const struct neep_fence *fence,
                       bool complete_now);
/* Thread-safe: like neep_timeline_signal, for fences pushed with a renderer sequence number
 * (the provider's global fences). A number no fence pending has is ignored quietly: it belongs
 * to a fence dropped by a reset. */
void neep_timeline_signal_seq(struct neep_timeline *timeline, uint32_t seq);
/* Thread-safe: completes every fence pending on the timeline (work that will never finish,
 * as a dead render server's). */
void neep_timeline_complete_all(struct neep_timeline *timeline);
/* Drops every global fence not yet complete (device reset): the old guest's, which the new
 * one must not see complete. */
void neep_fences_drop_pending_global(struct neep_renderer *renderer);

#endif
