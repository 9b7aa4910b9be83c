#include "wire.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int wire_objects_init(struct wire_objects *objects, const struct wl_interface *display,
                      const struct wl_interface *const *known, size_t known_count)
{
    memset(objects, 0, sizeof(*objects));
    objects->known = known;
    objects->known_count = known_count;
    objects->client_capacity = 64;
    objects->client = calloc(objects->client_capacity, sizeof(*objects->client));
    if (!objects->client) {
        return -1;
    }
    objects->client[1] = display;
    return 0;
}

void wire_objects_finish(struct wire_objects *objects)
{
    free(objects->client);
    free(objects->server);
    memset(objects, 0, sizeof(*objects));
}

static const struct wl_interface **slot(struct wire_objects *objects, uint32_t id, bool grow)
{
    const struct wl_interface ***table = &objects->client;
    uint32_t *capacity = &objects->client_capacity;
    uint32_t index = id;
    if (id >= WIRE_SERVER_ID_START) {
        table = &objects->server;
        capacity = &objects->server_capacity;
        index = id - WIRE_SERVER_ID_START;
    }
    if (index >= WIRE_MAX_OBJECTS) {
        return NULL;
    }
    if (index >= *capacity) {
        if (!grow) {
            return NULL;
        }
        uint32_t bigger = *capacity ? *capacity : 64;
        while (bigger <= index) {
            bigger *= 2;
        }
        const struct wl_interface **grown = realloc(*table, bigger * sizeof(*grown));
        if (!grown) {
            return NULL;
        }
        memset(grown + *capacity, 0, (bigger - *capacity) * sizeof(*grown));
        *table = grown;
        *capacity = bigger;
    }
    return &(*table)[index];
}

const struct wl_interface *wire_objects_get(const struct wire_objects *objects, uint32_t id)
{
    const struct wl_interface **entry = slot((struct wire_objects *)objects, id, false);
    return entry ? *entry : NULL;
}

void wire_objects_retire(struct wire_objects *objects, uint32_t id)
{
    const struct wl_interface **entry = slot(objects, id, false);
    if (entry) {
        *entry = NULL;
    }
}

static const struct wl_interface *known_by_name(const struct wire_objects *objects,
                                                const char *name)
{
    for (size_t i = 0; i < objects->known_count; i++) {
        if (strcmp(objects->known[i]->name, name) == 0) {
            return objects->known[i];
        }
    }
    return NULL;
}

/* A new object named in a message: in the sender's id range, not in use. */
static int create_object(struct wire_objects *objects, enum wire_direction direction, uint32_t id,
                         const struct wl_interface *interface, const char **reason)
{
    bool server_id = id >= WIRE_SERVER_ID_START;
    if (id == 0 || server_id != (direction == WIRE_EVENT)) {
        *reason = "a new object id outside the sender's range";
        return -1;
    }
    const struct wl_interface **entry = slot(objects, id, true);
    if (!entry) {
        *reason = "too many objects";
        return -1;
    }
    /* A client waits for delete_id before reusing an id; a compositor reuses its own ids as
     * soon as it destroys them, and clients replace the old object. */
    if (*entry && direction == WIRE_REQUEST) {
        *reason = "a new object id that is already in use";
        return -1;
    }
    *entry = interface;
    return 0;
}

int wire_read(struct wire_objects *objects, enum wire_direction direction, const uint8_t *data,
              size_t size, struct wire_message *message, const char **reason)
{
    if (size < 8) {
        return 0;
    }
    uint32_t header[2];
    memcpy(header, data, sizeof(header));
    uint32_t message_size = header[1] >> 16;
    if (message_size < 8 || message_size % 4 || message_size > WIRE_MAX_MESSAGE_BYTES) {
        *reason = "a message size that is too small, unaligned or too large";
        return -1;
    }
    if (size < message_size) {
        return 0;
    }
    memset(message, 0, sizeof(*message));
    message->object_id = header[0];
    message->opcode = (uint16_t)(header[1] & 0xffff);
    message->size_bytes = (uint16_t)message_size;
    message->interface = wire_objects_get(objects, header[0]);
    if (!message->interface) {
        *reason = "a message for an object that does not exist";
        return -1;
    }
    int count = direction == WIRE_REQUEST ? message->interface->method_count
                                          : message->interface->event_count;
    if (message->opcode >= count) {
        *reason = "an opcode the object's interface does not have";
        return -1;
    }
    message->message = direction == WIRE_REQUEST ? &message->interface->methods[message->opcode]
                                                 : &message->interface->events[message->opcode];

    /* Walk the arguments by the signature, within the message. */
    const uint8_t *pos = data + 8;
    const uint8_t *end = data + message_size;
    const char *signature = message->message->signature;
    const char *last_string = NULL;
    uint32_t last_uint = 0;
    uint32_t pending_ids[8];
    const struct wl_interface *pending_interfaces[8];
    int pending = 0;
    int arg = 0;
    for (const char *s = signature; *s; s++) {
        if ((*s >= '0' && *s <= '9') || *s == '?') {
            continue; /* "since" version digits and the nullable marker */
        }
        if (arg >= (int)WIRE_MAX_ARGS) {
            *reason = "a message with more arguments than this proxy handles";
            return -1;
        }
        message->arg_types[arg] = *s;
        message->arg_offsets[arg] = *s == 'h' ? 0 : (uint16_t)(pos - data);
        uint32_t word = 0;
        if (*s != 'h') {
            if (end - pos < 4) {
                *reason = "a message shorter than its arguments";
                return -1;
            }
            memcpy(&word, pos, 4);
            pos += 4;
        }
        switch (*s) {
        case 'i':
        case 'f':
        case 'o':
            break;
        case 'u':
            last_uint = word;
            break;
        case 'h':
            message->fd_count++;
            break;
        case 's':
        case 'a': {
            uint32_t padded = (word + 3) & ~3u;
            if (word > (uint32_t)(end - pos) || padded > (uint32_t)(end - pos)) {
                *reason = "a string or array longer than its message";
                return -1;
            }
            if (*s == 's' && word > 0) {
                if (pos[word - 1] != '\0' || memchr(pos, '\0', word) != pos + word - 1) {
                    *reason = "a string that is not terminated where it says";
                    return -1;
                }
                last_string = (const char *)pos;
            } else if (*s == 's') {
                last_string = NULL;
            }
            pos += padded;
            break;
        }
        case 'n': {
            const struct wl_interface *interface = message->message->types[arg];
            if (!interface) {
                /* Untyped (wl_registry.bind): interface name and version came just before. */
                interface = last_string ? known_by_name(objects, last_string) : NULL;
                if (!interface || last_uint == 0) {
                    *reason = "a bind to an interface this proxy does not know";
                    return -1;
                }
                /* Newer versions have messages this proxy could not read. */
                if (last_uint > (uint32_t)interface->version) {
                    *reason = "a bind at a version newer than this proxy knows";
                    return -1;
                }
            }
            if (pending == 8) {
                *reason = "too many new objects in one message";
                return -1;
            }
            pending_ids[pending] = word;
            pending_interfaces[pending] = interface;
            pending++;
            break;
        }
        default:
            *reason = "a protocol description with an unknown argument type";
            return -1;
        }
        arg++;
    }
    message->arg_count = (uint8_t)arg;
    if (pos != end) {
        *reason = "a message longer than its arguments";
        return -1;
    }
    for (int i = 0; i < pending; i++) {
        if (create_object(objects, direction, pending_ids[i], pending_interfaces[i], reason) < 0) {
            return -1;
        }
    }
    /* wl_display.delete_id (event 1) retires a client id. */
    if (direction == WIRE_EVENT && message->object_id == 1 && message->opcode == 1) {
        uint32_t id;
        memcpy(&id, data + 8, 4);
        wire_objects_retire(objects, id);
    }
    return (int)message_size;
}
