/*
 * The vhost-user-gpu display channel: the socket the front-end hands over with
 * VHOST_USER_GPU_SET_SOCKET. The back-end sends SCANOUT, UPDATE and cursor messages on it,
 * and asks for the display layout. Implements the device's display callbacks.
 *
 * The display never holds the guest back: a flush is answered as soon as the device has
 * handled it, and the channel goes at the front-end's pace. Output is written without
 * blocking, straight from the resource while the front-end keeps up. When it falls behind,
 * what waits is small: per scanout, the bounding box of the damage not yet sent (merged
 * across flushes), read from the scanout when the channel is ready for it, so the display
 * always gets the latest frame whole, one UPDATE message per box, written from the resource
 * itself where its format allows. Should the pixels change without a flush meanwhile (a
 * transfer into the resource, its end), the device says so first and what is still to go is
 * copied as it was flushed. Cursor and scanout changes go before waiting frames.
 */
#ifndef NEEP_VHOST_USER_DISPLAY_H
#define NEEP_VHOST_USER_DISPLAY_H

#include <neep/device.h>

#include "backend.h"
#include "protocol.h"
#include "util/log.h"

/* One scanout's damage the front-end has not been sent yet. */
struct vu_display_frame {
    bool pending;
    uint32_t x, y, width, height; /* scanout coordinates */
    /* The UPDATE message (header included) holding the box as flushed, once the device said
     * the pixels are about to change; NULL while the scanout itself still holds them. */
    uint8_t *copy;
};

struct vu_display_stats {
    uint64_t sent_bytes;
    uint64_t updates;      /* update callbacks: flushed damage reaching a scanout */
    uint64_t updates_sent; /* UPDATE messages written whole to the channel */
    uint64_t copies;       /* boxes copied because their pixels were about to change */
};

struct vu_display {
    int fd;                     /* -1 while the front-end has given none */
    size_t socket_buffer_bytes; /* what its send buffer was asked to be (0: the default) */
    struct neep_logger *logger;
    struct neep_device *device; /* where waiting boxes are read from, and whose budget pays */
    const struct vu_watch_ops *watch;
    void *watch_user_data;
    bool watching;       /* for writable */
    bool layout_stalled; /* GET_DISPLAY_INFO waited in vain for the message on the wire */

    /* The message on the wire: a prefix (header and fixed part), then rows of pixels, which
     * lie in a resource's storage (`out_resource_id`, until the device says it changes) or in
     * `out_owned`; `out_sent` bytes of it written. NULL prefix: none. */
    const uint8_t *out_prefix;
    size_t out_prefix_bytes;
    const uint8_t *out_rows;
    size_t out_row_bytes, out_stride_bytes;
    uint32_t out_row_count;
    size_t out_sent;
    uint32_t out_resource_id;
    bool out_is_update;
    uint8_t *out_owned; /* a charged buffer the message lives in, freed once it is written */
    size_t out_owned_bytes;
    uint8_t control[sizeof(struct vu_gpu_header) + sizeof(struct vu_gpu_cursor_update)];

    /* What waits for the wire, in the order it goes. */
    uint32_t scanouts_changed; /* a bit per scanout whose SCANOUT message waits */
    struct vu_gpu_scanout scanout_messages[NEEP_MAX_SCANOUTS];
    bool cursor_image_waits;
    struct vu_gpu_cursor_update cursor_image;
    bool cursor_move_waits;
    uint32_t cursor_move_request; /* VU_GPU_CURSOR_POS or VU_GPU_CURSOR_POS_HIDE */
    struct vu_gpu_cursor_pos cursor_pos;
    struct vu_display_frame frames[NEEP_MAX_SCANOUTS];
    uint32_t next_frame; /* where the round-robin over scanouts goes on */

    uint64_t staged_bytes; /* `out` and copies: charged to the device's renderer */
    struct vu_display_stats stats;
};

void vu_display_init(struct vu_display *display, const struct vu_watch_ops *watch,
                     void *watch_user_data);
/* The device the display serves (set once it exists; before, output is not buffered). */
void vu_display_set_device(struct vu_display *display, struct neep_device *device);
/* Takes ownership of fd (closing any previous one, and dropping what waited for it). */
void vu_display_set_socket(struct vu_display *display, int fd);
void vu_display_close(struct vu_display *display);

/* Display callbacks for the device; user_data is the struct vu_display. */
extern const struct neep_display_ops vu_display_ops;

#endif
