/*
 * The gfxstream context types' shared parts (src/contexts/gfxstream*.c): the process's one
 * backend, loaded at run time (gfxstream_instance.c), the resource provider that keeps 3D
 * resources and blobs in it (gfxstream_resources.c), and the contexts and capsets
 * (gfxstream.c). The backend trusts its caller: everything the guest gives is checked here
 * before it reaches the backend.
 */
#ifndef NEEP_CONTEXTS_GFXSTREAM_INTERNAL_H
#define NEEP_CONTEXTS_GFXSTREAM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "context_type.h"
#include "gfxstream_api.h"

/* Most ASG instances (each a render thread in the backend) per context and per device. */
#define GFXSTREAM_MAX_ASGS_PER_CONTEXT 8u
#define GFXSTREAM_MAX_ASGS             64u
/* The largest blob a render thread may run on (the backend's block size). */
#define GFXSTREAM_ASG_MAX_BYTES (16u << 20)
/* Most 3D objects a context may announce before it makes their blobs. */
#define GFXSTREAM_MAX_ANNOUNCED 32u

struct gfxstream_context {
    struct neep_context base;
    /* The timelines the fence callback completes; set under the instance's callback lock. */
    struct neep_timeline *timelines[NEEP_MAX_RINGS];
    /* Resources with an ASG instance running on them (CONTEXT_CREATE), embedder thread. */
    uint32_t asg_resources[GFXSTREAM_MAX_ASGS_PER_CONTEXT];
    uint32_t asg_count;
    /* RESOURCE_CREATE_3D announcements not yet made into blobs: blob id and image bytes. */
    struct {
        uint64_t blob_id;
        uint64_t bytes;
    } announced[GFXSTREAM_MAX_ANNOUNCED];
    uint32_t announced_count;
};

/* gfxstream_instance.c: takes the backend for `renderer` (loading and starting it on the
 * first probe of the first renderer; -ELIBACC when the library is not there), and gives it
 * back. The backend itself stays up until the process ends. */
int gfxstream_instance_acquire(struct neep_renderer *renderer);
void gfxstream_instance_release(struct neep_renderer *renderer);
/* The backend's entry points (after a successful acquire). */
const struct gfxstream_api *gfxstream_api(void);
/* The contexts the fence callback can find. */
int gfxstream_instance_add_context(uint32_t ctx_id, struct gfxstream_context *ctx);
void gfxstream_instance_remove_context(uint32_t ctx_id);
void gfxstream_instance_set_timeline(struct gfxstream_context *ctx, struct neep_timeline *timeline);

/* Whether the backend started with GLES. */
bool gfxstream_instance_has_gles(void);
/* Whether gfxstream_formats[index] was seen to make images on this host (by the probe). */
bool gfxstream_instance_format_usable(uint32_t index);

/* gfxstream_resources.c: the virgl formats the backend knows. */
struct gfxstream_format {
    uint32_t format;
    uint32_t bytes_per_pixel; /* 0: YUV, whose planes take at most 2 bytes a pixel */
};
extern const struct gfxstream_format gfxstream_formats[];
extern const uint32_t gfxstream_format_count;

/* gfxstream_resources.c */
extern const struct neep_resource_provider_ops gfxstream_provider_ops;
/* Checks RESOURCE_CREATE_3D's fields (from the virtio command or a gfxstream command) before
 * the backend sees them; the bytes its image may take, or a negative errno. */
int64_t gfxstream_check_3d(struct neep_renderer *renderer, uint32_t target, uint32_t format,
                           uint32_t bind, uint32_t width_px, uint32_t height_px, uint32_t depth,
                           uint32_t array_size, uint32_t last_level, uint32_t nr_samples);

/* The provider's own records, kept while a renderer has the backend. */
void gfxstream_resources_begin(void);
void gfxstream_resources_end(void);

/* gfxstream.c */
bool gfxstream_is_context(const struct neep_context *ctx);
/* A blob about to be made from an id the context announced with RESOURCE_CREATE_3D: charges
 * what its image takes beyond the claimed size (and forgets the announcement). */
int gfxstream_claim_announced(struct neep_renderer *renderer, uint32_t ctx_id,
                              struct neep_resource *resource);

#endif
