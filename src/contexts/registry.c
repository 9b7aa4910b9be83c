/* The context types built into this library; meson defines NEEP_HAVE_* per feature. */
#include "context_type.h"

#if NEEP_HAVE_CROSS_DOMAIN
extern const struct neep_context_type neep_cross_domain_type;
#endif
#if NEEP_HAVE_GFXSTREAM
extern const struct neep_context_type neep_gfxstream_vulkan_type;
extern const struct neep_context_type neep_gfxstream_gles_type;
extern const struct neep_context_type neep_gfxstream_composer_type;
#endif
#if NEEP_HAVE_VIRGL
extern const struct neep_context_type neep_virgl_type;
extern const struct neep_context_type neep_virgl2_type;
extern const struct neep_context_type neep_venus_type;
#endif

const struct neep_context_type *const neep_builtin_context_types[] = {
#if NEEP_HAVE_VIRGL
    &neep_virgl_type,
    &neep_virgl2_type,
    &neep_venus_type,
#endif
#if NEEP_HAVE_CROSS_DOMAIN
    &neep_cross_domain_type,
#endif
#if NEEP_HAVE_GFXSTREAM
    &neep_gfxstream_vulkan_type,
    &neep_gfxstream_gles_type,
    &neep_gfxstream_composer_type,
#endif
    NULL,
};
