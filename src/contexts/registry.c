/* The context types built into this library; meson defines NEEP_HAVE_* per feature. */
#include "context_type.h"

const struct neep_context_type *const neep_builtin_context_types[] = {
    NULL,
};
