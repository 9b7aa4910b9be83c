/*
 * neep-gfxstream-server: gfxstream's host backend in a process of its own (see
 * src/contexts/gfxstream_protocol.h). main.c serves neep's calls; start.c loads the backend,
 * tries it in child processes and starts it.
 */
#ifndef NEEP_GFXSTREAM_SERVER_H
#define NEEP_GFXSTREAM_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "contexts/gfxstream_api.h"
#include "contexts/gfxstream_formats.h"
#include "contexts/gfxstream_protocol.h"

/* The backend's entry points, once start.c loaded it. */
extern struct gfxstream_api server_api;

/* main.c: a line for neep's log (level: NEEP-side GFXSTREAM_DEBUG_*; never blocks). */
void server_log(uint32_t level, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* main.c: set in probe children, whose backend's lines and fences are not neep's. */
extern bool server_events_off;
/* main.c: the backend's callbacks. */
void server_on_fence(void *user_data, struct gfxstream_fence *fence);
void server_on_debug(void *user_data, struct gfxstream_debug *debug);

/*
 * start.c: loads the backend (NEEP_GFXSTREAM_LIBRARY), tries its init and an image of each
 * format in child processes (its init never returns where its renderer cannot start, and it
 * aborts on formats the host's driver cannot make), then starts it here with `flags`. 0, or
 * -ELIBACC (no library), -ELIBBAD (not the backend), -ETIMEDOUT (init hung), -ENODEV.
 * *usable_formats: bit i set when gfxstream_formats[i] made an image. With `skip_probe` (neep
 * knows the formats from an earlier server of its process) the backend starts here at once, and
 * *usable_formats is 0.
 */
int server_start(uint32_t flags, uint32_t probe_timeout_ms, bool skip_probe,
                 uint64_t *usable_formats);
/* sandbox.c: keeps the VMM's processes, the host's files and sockets out of the server's reach
 * (namespaces of its own, Landlock, a seccomp filter). 0; 1 when only part of it could be had;
 * -1 when it failed. `why` says. */
int server_sandbox(char *why, size_t why_bytes);

/* At exit: the backend's teardown, when it started. */
void server_teardown(void);

#endif
