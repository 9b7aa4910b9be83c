/*
 * The Wayland wire format as neep-wl reads it: message boundaries, which messages carry
 * file descriptors, and which objects exist, all from the protocol descriptions that
 * wayland-scanner generates from libwayland's and wayland-protocols' XML (no hand-written
 * tables). Every byte comes from a client or the compositor and is checked before use.
 */
#ifndef NEEP_WL_WIRE_H
#define NEEP_WL_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <wayland-util.h>

/* Client-created ids count up from 1; compositor-created ids start here. */
#define WIRE_SERVER_ID_START 0xff000000u
/* libwayland's own limit on one message. */
#define WIRE_MAX_MESSAGE_BYTES 4096u
/* More arguments than any message of the known protocols has. */
#define WIRE_MAX_ARGS 16u
/* Most objects one connection may hold (ids beyond are refused, not allocated for). */
#define WIRE_MAX_OBJECTS 65536u

struct wire_objects {
    const struct wl_interface **client; /* index = id */
    uint32_t client_capacity;
    const struct wl_interface **server; /* index = id - WIRE_SERVER_ID_START */
    uint32_t server_capacity;
    /* Interfaces a registry bind may name; others are refused. */
    const struct wl_interface *const *known;
    size_t known_count;
};

enum wire_direction {
    WIRE_REQUEST, /* client to compositor */
    WIRE_EVENT,   /* compositor to client */
};

struct wire_message {
    uint32_t object_id;
    uint16_t opcode;
    uint16_t size_bytes; /* header included */
    const struct wl_interface *interface;
    const struct wl_message *message;
    uint32_t fd_count; /* 'h' arguments, in order */
    /* Each argument's signature letter and byte offset in the message (fds have no bytes:
     * their offset is 0), so a proxy can read or rewrite them in place. */
    uint8_t arg_count;
    char arg_types[WIRE_MAX_ARGS];
    uint16_t arg_offsets[WIRE_MAX_ARGS];
};

/* Starts with wl_display as object 1. */
int wire_objects_init(struct wire_objects *objects, const struct wl_interface *display,
                      const struct wl_interface *const *known, size_t known_count);
void wire_objects_finish(struct wire_objects *objects);
const struct wl_interface *wire_objects_get(const struct wire_objects *objects, uint32_t id);
/* Forgets an object (its id may be used again), as wl_display.delete_id does. */
void wire_objects_retire(struct wire_objects *objects, uint32_t id);

/*
 * Reads the message at the start of `data` (`size` bytes available). Returns its size when
 * it is complete and valid, 0 when more bytes are needed, or -1 with *reason set when the
 * stream is malformed (the connection must then be closed: its framing is lost). Objects a
 * valid message creates (new_id) or retires (wl_display.delete_id) are recorded.
 */
int wire_read(struct wire_objects *objects, enum wire_direction direction, const uint8_t *data,
              size_t size, struct wire_message *message, const char **reason);

#endif
