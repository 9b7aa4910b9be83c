/*
 * For tests and fuzzing only: a renderer whose cross-domain contexts run without the event
 * thread, driven instead by the caller, so that a fuzzer's runs are repeatable.
 */
#ifndef NEEP_CONTEXTS_CROSS_DOMAIN_REACTOR_H
#define NEEP_CONTEXTS_CROSS_DOMAIN_REACTOR_H

#include <neep/renderer.h>

/* Call before the first cross-domain context is created. */
void neep_cross_domain_set_manual_pump(struct neep_renderer *renderer);
/* Handles the events ready within `timeout_ms`; returns how many there were. */
int neep_cross_domain_pump(struct neep_renderer *renderer, int timeout_ms);

#endif
