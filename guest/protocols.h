/* The interfaces neep-wl understands, generated from the protocol XML by wayland-scanner. */
#ifndef NEEP_WL_PROTOCOLS_H
#define NEEP_WL_PROTOCOLS_H

#include <stddef.h>
#include <wayland-util.h>

extern const struct wl_interface wl_display_interface;
/* Every interface a client may bind through the registry; the proxy filters the rest out. */
extern const struct wl_interface *const neep_wl_known_interfaces[];
extern const size_t neep_wl_known_interface_count;

#endif
