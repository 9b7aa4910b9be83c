/*
 * Fuzz input as a stream of choices, and well-formed Wayland messages built from it: for an
 * object the connection really has, with an opcode its interface has and arguments by the
 * message's signature (existing objects for 'o', free ids for 'n', strings of any length up
 * to the wire maximum, known interfaces for wl_registry.bind). Random bytes alone rarely get
 * past the id and signature checks; these reach the states behind them.
 */
#ifndef NEEP_FUZZ_MESSAGES_H
#define NEEP_FUZZ_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy.h"

struct fuzz_input {
    const uint8_t *data;
    size_t size;
    size_t pos;
};

/* Past the end of the input every choice is 0. */
bool fuzz_left(const struct fuzz_input *in);
uint8_t fuzz_u8(struct fuzz_input *in);
uint16_t fuzz_u16(struct fuzz_input *in);
uint32_t fuzz_u32(struct fuzz_input *in);
/* Copies up to `size` input bytes into `out` and zero-fills the rest. */
void fuzz_bytes(struct fuzz_input *in, uint8_t *out, size_t size);

/* Builds one message (a request, or an event in the host's ids) for one of the client's
 * objects into `out` (WIRE_MAX_MESSAGE_BYTES); returns its size and sets *fd_count to the
 * fds it carries. Returns 0 when there is no object to address. With `long_arguments`,
 * strings and arrays take all the room there is (floods of few, large messages are cheap). */
size_t fuzz_message(struct fuzz_input *in, const struct proxy_client *client,
                    enum wire_direction direction, bool long_arguments, uint8_t *out,
                    uint32_t *fd_count);

/* wl_registry.bind of one of the interfaces neep-wl knows, on the first registry, to the
 * lowest free id; 0 without a registry. */
size_t fuzz_bind(struct fuzz_input *in, const struct proxy_client *client, uint8_t *out);

#endif
