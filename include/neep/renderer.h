/*
 * neep renderer: resources, contexts, capsets, fences and blobs.
 *
 * The renderer is the heart of neep, the C counterpart of rutabaga_gfx. It knows nothing of
 * virtqueues or wire layouts: a device model or the rutabaga ABI shim calls it with typed
 * arguments. Everything hangs off one `struct neep_renderer`; there is no global state, so
 * several renderers can live in one process.
 *
 * Threading: every function here is called from one embedder thread, except
 * neep_renderer_fence_fd() and neep_renderer_dispatch_fences(), which may also run on another
 * thread (dispatches are serialised internally, so delivery order holds).
 *
 * Errors: every function that can fail returns 0 or a negative errno, and says why through
 * the log callback (rate-limited, since a guest can trigger most failures):
 *   -EINVAL     a malformed argument (zero or inconsistent sizes, a box outside the
 *               resource, a stride too small, an arithmetic overflow, missing backing)
 *   -ENOENT     no resource with that id
 *   -ESRCH      no context with that id
 *   -EEXIST     the id is already in use
 *   -ENOMEM     the host-memory budget (or the host) cannot cover the request
 *   -E2BIG      a count or dimension over a fixed limit
 *   -EOPNOTSUPP the operation does not apply to this kind of resource or context
 *   -EIO        a host-side failure (a file, an fd)
 * Nothing a caller passes makes the renderer abort; after any error it stays usable.
 */
#ifndef NEEP_RENDERER_H
#define NEEP_RENDERER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct neep_renderer;

/* Capset ids (virtio-gpu spec plus rutabaga's own). */
enum neep_capset_id {
    NEEP_CAPSET_VIRGL = 1,
    NEEP_CAPSET_VIRGL2 = 2,
    NEEP_CAPSET_GFXSTREAM_VULKAN = 3,
    NEEP_CAPSET_VENUS = 4,
    NEEP_CAPSET_CROSS_DOMAIN = 5,
    NEEP_CAPSET_DRM = 6,
    NEEP_CAPSET_GFXSTREAM_MAGMA = 7,
    NEEP_CAPSET_GFXSTREAM_GLES = 8,
    NEEP_CAPSET_GFXSTREAM_COMPOSER = 9,
};
#define NEEP_CAPSET_ID_MAX 9

/* virtio-gpu pixel formats; all are 4 bytes per pixel. */
enum neep_format {
    NEEP_FORMAT_B8G8R8A8_UNORM = 1,
    NEEP_FORMAT_B8G8R8X8_UNORM = 2,
    NEEP_FORMAT_A8R8G8B8_UNORM = 3,
    NEEP_FORMAT_X8R8G8B8_UNORM = 4,
    NEEP_FORMAT_R8G8B8A8_UNORM = 67,
    NEEP_FORMAT_X8B8G8R8_UNORM = 68,
    NEEP_FORMAT_A8B8G8R8_UNORM = 121,
    NEEP_FORMAT_R8G8B8X8_UNORM = 134,
};

/* Gallium texture target used by virtio-gpu for 2D resources. */
#define NEEP_TARGET_TEXTURE_2D 2

/* Limits on guest-chosen values; anything over them is refused with -E2BIG. */
#define NEEP_MAX_DIMENSION_PX                16384u
#define NEEP_MAX_BACKING_ENTRIES             (1u << 18)
#define NEEP_MAX_RINGS                       64u
#define NEEP_MAX_PENDING_FENCES_PER_TIMELINE 65536u
#define NEEP_MAX_SUBMIT_BYTES                (16u << 20)
#define NEEP_MAX_CONTEXTS                    1024u

enum neep_log_level {
    NEEP_LOG_ERROR = 1,
    NEEP_LOG_WARN = 2,
    NEEP_LOG_INFO = 3,
    NEEP_LOG_DEBUG = 4,
};

/* Receives one log line (no trailing newline). `message` lives only during the call. */
typedef void (*neep_log_fn)(void *user_data, enum neep_log_level level, const char *message);

/* Where a cross-domain context reaches a host service (Wayland compositor and others). */
struct neep_channel {
    const char *path; /* copied at create time */
    uint32_t type;    /* 1 = Wayland (rutabaga's channel types) */
};

struct neep_renderer_config {
    /* Bit (1 << capset_id) for each context type to enable; 0 gives a 2D-only renderer. */
    uint64_t capset_mask;
    /* Host memory the guest may make the renderer allocate; 0 selects the default (1 GiB). */
    uint64_t memory_budget_bytes;
    /* Optional; without one, errors and warnings go to stderr. */
    neep_log_fn log_fn;
    void *log_user_data;
    /* Most detailed level passed to log_fn; 0 means NEEP_LOG_INFO. */
    enum neep_log_level log_level;
    /* Optional channels for the cross-domain context type; copied at create time. */
    const struct neep_channel *channels;
    size_t channel_count;
    /* Optional DRM render node for the virgl context types (as Debian's vhost-user-gpu takes
     * it); NULL renders through surfaceless EGL (Mesa's llvmpipe without a GPU). Copied. */
    const char *render_node_path;
};

#define NEEP_DEFAULT_MEMORY_BUDGET_BYTES (1ull << 30)

/* Creates a renderer. Fails with -EOPNOTSUPP if the mask names a context type this build or
 * this host cannot provide, -EINVAL for bits that name no capset. */
int neep_renderer_create(const struct neep_renderer_config *config, struct neep_renderer **out);

/* Destroys every context and resource, then the renderer. Accepts NULL. */
void neep_renderer_destroy(struct neep_renderer *renderer);

/* Bytes currently charged against the budget, and the budget itself. */
uint64_t neep_renderer_memory_used_bytes(const struct neep_renderer *renderer);
uint64_t neep_renderer_memory_budget_bytes(const struct neep_renderer *renderer);

/* ---- capsets ---------------------------------------------------------------------------- */

uint32_t neep_capset_count(const struct neep_renderer *renderer);
int neep_capset_info(const struct neep_renderer *renderer, uint32_t index, uint32_t *capset_id,
                     uint32_t *max_version, uint32_t *size_bytes);
/* Copies the capset into `buf`; `buf_size_bytes` must equal the size neep_capset_info gave. */
int neep_capset_get(const struct neep_renderer *renderer, uint32_t capset_id, uint32_t version,
                    void *buf, size_t buf_size_bytes);

/* ---- resources -------------------------------------------------------------------------- */

/* Same fields as virtio-gpu RESOURCE_CREATE_3D; 2D resources use target 2, depth 1. */
struct neep_resource_create_3d {
    uint32_t target;
    uint32_t format;
    uint32_t bind;
    uint32_t width;
    uint32_t height;
    uint32_t depth;
    uint32_t array_size;
    uint32_t last_level;
    uint32_t nr_samples;
    uint32_t flags;
};

enum neep_blob_mem {
    NEEP_BLOB_MEM_GUEST = 1,
    NEEP_BLOB_MEM_HOST3D = 2,
    NEEP_BLOB_MEM_HOST3D_GUEST = 3,
};

enum neep_blob_flags {
    NEEP_BLOB_FLAG_USE_MAPPABLE = 1,
    NEEP_BLOB_FLAG_USE_SHAREABLE = 2,
    NEEP_BLOB_FLAG_USE_CROSS_DEVICE = 4,
};

struct neep_blob_create {
    uint32_t blob_mem;
    uint32_t blob_flags;
    uint64_t blob_id;
    uint64_t size_bytes;
};

/*
 * A box of a resource and where it sits in a linear buffer (guest backing or caller memory).
 * `offset_bytes` is the position of the box's first pixel in the buffer; row y of the box
 * starts `stride_bytes` further per row, layer z `layer_stride_bytes` further per layer.
 * A zero stride means the image's linear row size (resource width * 4); a zero layer stride
 * means stride * box height.
 */
struct neep_transfer {
    uint32_t x, y, z;
    uint32_t width, height, depth;
    uint32_t level;
    uint32_t stride_bytes;
    uint32_t layer_stride_bytes;
    uint64_t offset_bytes;
};

struct neep_resource_info {
    uint32_t format;
    uint32_t width;
    uint32_t height;
    uint32_t stride_bytes;
    uint64_t size_bytes;
    bool is_blob;
    uint32_t blob_mem;
    uint32_t blob_flags;
    bool has_backing;
    /* Kept by a 3D context type's renderer (virglrenderer), not by neep's own 2D storage. */
    bool is_3d_provided;
};

/* Creates a resource with host pixel storage (zeroed). */
int neep_resource_create_3d(struct neep_renderer *renderer, uint32_t resource_id,
                            const struct neep_resource_create_3d *create);

/*
 * Creates a blob resource. GUEST blobs take `backing` (which may be empty and attached later);
 * HOST3D blobs come from the context `ctx_id`. The iovec array is copied, the memory it points
 * to must stay valid until detach or unref.
 */
int neep_resource_create_blob(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t resource_id,
                              const struct neep_blob_create *create, const struct iovec *backing,
                              size_t backing_count);

/* Drops the resource (detaching it from every context). */
int neep_resource_unref(struct neep_renderer *renderer, uint32_t resource_id);

/* Attaches guest memory. The iovec array is copied; the memory must stay valid until detach,
 * unref or a new attach. Attaching to a resource that has backing is -EEXIST. */
int neep_resource_attach_backing(struct neep_renderer *renderer, uint32_t resource_id,
                                 const struct iovec *backing, size_t backing_count);
int neep_resource_detach_backing(struct neep_renderer *renderer, uint32_t resource_id);

/* Guest backing -> host pixels. */
int neep_resource_transfer_write(struct neep_renderer *renderer, uint32_t ctx_id,
                                 uint32_t resource_id, const struct neep_transfer *transfer);

/* Host pixels -> `dst` (caller memory), or -> the guest backing when `dst` is NULL. */
int neep_resource_transfer_read(struct neep_renderer *renderer, uint32_t ctx_id,
                                uint32_t resource_id, const struct neep_transfer *transfer,
                                const struct iovec *dst, size_t dst_count);

int neep_resource_get_info(const struct neep_renderer *renderer, uint32_t resource_id,
                           struct neep_resource_info *info);

/*
 * Returns a duplicate fd of the resource's host memory (caller closes it) and its type
 * (NEEP_HANDLE_MEM_SHM for memfd-backed pixel storage and blobs).
 */
#define NEEP_HANDLE_MEM_OPAQUE_FD 0x1u
#define NEEP_HANDLE_MEM_DMABUF    0x2u
#define NEEP_HANDLE_MEM_SHM       0x4u
int neep_resource_export(struct neep_renderer *renderer, uint32_t resource_id, int *fd,
                         uint32_t *handle_type);

/* Maps a mappable host blob into this process. The mapping stays until unmap or unref. */
int neep_resource_map(struct neep_renderer *renderer, uint32_t resource_id, void **ptr,
                      uint64_t *size_bytes);
int neep_resource_unmap(struct neep_renderer *renderer, uint32_t resource_id);
/* Cache type (low nibble, virtio map_info) and access bits (0x10 read, 0x20 write). */
int neep_resource_map_info(const struct neep_renderer *renderer, uint32_t resource_id,
                           uint32_t *map_info);

/*
 * Creates (or, with NEEP_IMPORT_RESOURCE_EXISTS, refreshes) a 2D resource whose pixels live
 * in `fd` (a memfd or other mappable file). Takes ownership of `fd` in every case.
 */
#define NEEP_IMPORT_RESOURCE_EXISTS  (1u << 30)
#define NEEP_IMPORT_PRESERVE_CONTENT (1u << 31)
struct neep_import {
    uint32_t flags;
    uint32_t width;
    uint32_t height;
    uint32_t drm_fourcc;
    uint32_t stride_bytes;
    uint32_t offset_bytes;
};
int neep_resource_import(struct neep_renderer *renderer, uint32_t resource_id, int fd,
                         const struct neep_import *import);

/* ---- contexts --------------------------------------------------------------------------- */

/* `context_init & 0xff` selects the capset (context type); 0 picks the first enabled one. */
int neep_context_create(struct neep_renderer *renderer, uint32_t ctx_id, uint32_t context_init,
                        const char *name, size_t name_len);
int neep_context_destroy(struct neep_renderer *renderer, uint32_t ctx_id);
int neep_context_attach_resource(struct neep_renderer *renderer, uint32_t ctx_id,
                                 uint32_t resource_id);
int neep_context_detach_resource(struct neep_renderer *renderer, uint32_t ctx_id,
                                 uint32_t resource_id);
/* Sends an opaque command stream (copied before use) to the context. */
int neep_context_submit(struct neep_renderer *renderer, uint32_t ctx_id, const void *commands,
                        size_t size_bytes);

/* ---- fences ----------------------------------------------------------------------------- */

#define NEEP_FENCE_FLAG_FENCE     (1u << 0)
#define NEEP_FENCE_FLAG_RING_IDX  (1u << 1)
#define NEEP_FENCE_FLAG_SHAREABLE (1u << 2)

struct neep_fence {
    uint32_t flags;
    uint64_t fence_id;
    uint32_t ctx_id;
    uint32_t ring_idx;
};

/*
 * Creates a fence. With NEEP_FENCE_FLAG_RING_IDX it goes on the (ctx_id, ring_idx) timeline
 * of that context, otherwise on the global timeline. It completes once all work submitted
 * before it on its timeline is done; completion is announced on neep_renderer_fence_fd().
 */
int neep_fence_create(struct neep_renderer *renderer, const struct neep_fence *fence);

/* An fd that polls readable while completed fences wait for dispatch. Owned by the renderer. */
int neep_renderer_fence_fd(const struct neep_renderer *renderer);

typedef void (*neep_fence_fn)(void *user_data, const struct neep_fence *fence);

/*
 * Optional, for embedders that accept completions on any thread (the rutabaga ABI does):
 * `fn` runs on whichever thread completed a fence (a context type's worker, say), right after
 * the fence fd was bumped, so the embedder can dispatch at once instead of waking a thread of
 * its own. Set it before creating contexts.
 */
typedef void (*neep_fence_notify_fn)(void *user_data);
void neep_renderer_set_fence_notify(struct neep_renderer *renderer, neep_fence_notify_fn fn,
                                    void *user_data);

/*
 * Delivers every completed fence to `fn`, in creation order per timeline, on the calling
 * thread. Returns the number delivered. `fn` must not call back into the renderer.
 */
int neep_renderer_dispatch_fences(struct neep_renderer *renderer, neep_fence_fn fn,
                                  void *user_data);

/* ---- snapshots -------------------------------------------------------------------------- */

/*
 * Writes the renderer's 2D state (resources and their pixels) into `dir_path`, which must
 * exist and be empty. Fails with -EOPNOTSUPP while contexts whose type cannot be saved exist.
 */
int neep_renderer_snapshot(struct neep_renderer *renderer, const char *dir_path);

/*
 * Replaces all state with the snapshot in `dir_path`. The file is untrusted: every field is
 * checked and charged to the budget. Backing is not restored; the embedder re-attaches it.
 */
int neep_renderer_restore(struct neep_renderer *renderer, const char *dir_path);

#ifdef __cplusplus
}
#endif

#endif
