/* neep-wl's listening socket handed over by systemd (a .socket unit) instead of bound here. */
#ifndef NEEP_WL_ACTIVATION_H
#define NEEP_WL_ACTIVATION_H

#include <stdbool.h>
#include <stddef.h>

#define ACTIVATION_NONE (-1) /* not started by socket activation: bind a socket ourselves */
#define ACTIVATION_BAD  (-2) /* a hand-over meant for us that is unusable; `error` says why */

/*
 * Takes the socket systemd passed, if any: returns its fd (non-blocking, close-on-exec) and
 * writes the WAYLAND_DISPLAY name clients reach it by into `display` (empty if it has none);
 * or ACTIVATION_NONE, or ACTIVATION_BAD with the reason in `error`.
 */
int activation_take_listener(char *display, size_t display_size, char *error, size_t error_size);

#endif
