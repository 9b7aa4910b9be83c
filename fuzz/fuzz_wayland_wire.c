/* neep-wl's Wayland wire reader on arbitrary byte streams from a client or a compositor. */
#include <stdint.h>
#include <stdlib.h>

#include "protocols.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    struct wire_objects objects;
    if (wire_objects_init(&objects, &wl_display_interface, neep_wl_known_interfaces,
                          neep_wl_known_interface_count) < 0) {
        abort();
    }
    /* Each bit of the first byte says who sends the next message. */
    uint8_t directions = data[0];
    const uint8_t *pos = data + 1;
    size_t left = size - 1;
    for (int i = 0; left > 0; i++) {
        enum wire_direction direction = (directions >> (i % 8)) & 1 ? WIRE_EVENT : WIRE_REQUEST;
        struct wire_message message;
        const char *reason;
        int used = wire_read(&objects, direction, pos, left, &message, &reason);
        if (used <= 0) {
            break;
        }
        if ((size_t)used > left || message.size_bytes != used) {
            abort();
        }
        pos += used;
        left -= (size_t)used;
    }
    wire_objects_finish(&objects);
    return 0;
}
