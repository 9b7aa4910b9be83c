/*
 * The vhost-user-gpu display channel: the socket the front-end hands over with
 * VHOST_USER_GPU_SET_SOCKET. The back-end sends SCANOUT, UPDATE and cursor messages on it,
 * and asks for the display layout. Implements the device's display callbacks.
 */
#ifndef NEEP_VHOST_USER_DISPLAY_H
#define NEEP_VHOST_USER_DISPLAY_H

#include <neep/device.h>

#include "util/log.h"

struct vu_display {
    int fd; /* -1 while the front-end has given none */
    struct neep_logger *logger;
    uint64_t sent_bytes;
};

void vu_display_init(struct vu_display *display);
/* Takes ownership of fd (closing any previous one). */
void vu_display_set_socket(struct vu_display *display, int fd);
void vu_display_close(struct vu_display *display);

/* Display callbacks for the device; user_data is the struct vu_display. */
extern const struct neep_display_ops vu_display_ops;

#endif
