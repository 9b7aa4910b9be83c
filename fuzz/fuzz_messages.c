/* Well-formed Wayland messages from fuzz input (see fuzz_messages.h). */
#include "fuzz_messages.h"

#include <string.h>

#include "protocols.h"
#include "wayland-client-protocol.h"

/* Bytes kept free for the fixed-size arguments after a string or array. */
#define ROOM_AFTER_STRING (4u * WIRE_MAX_ARGS)

bool fuzz_left(const struct fuzz_input *in)
{
    return in->pos < in->size;
}

uint8_t fuzz_u8(struct fuzz_input *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

uint16_t fuzz_u16(struct fuzz_input *in)
{
    return (uint16_t)(fuzz_u8(in) | fuzz_u8(in) << 8);
}

uint32_t fuzz_u32(struct fuzz_input *in)
{
    return (uint32_t)fuzz_u16(in) | (uint32_t)fuzz_u16(in) << 16;
}

void fuzz_bytes(struct fuzz_input *in, uint8_t *out, size_t size)
{
    size_t available = in->size - in->pos < size ? in->size - in->pos : size;
    memcpy(out, in->data + in->pos, available);
    memset(out + available, 0, size - available);
    in->pos += available;
}

/* Numbers: mostly small (sizes, coordinates, enums), sometimes any 32 bits. */
static uint32_t number(struct fuzz_input *in)
{
    uint8_t choice = fuzz_u8(in);
    if (choice < 0xc0) {
        return choice;
    }
    if (choice < 0xe0) {
        return (uint32_t)(choice - 0xc0) << 10; /* sizes in KiB */
    }
    return fuzz_u32(in);
}

static const struct wl_interface *interface_of(const struct proxy_client *client, uint32_t id)
{
    return wire_objects_get(&client->objects, id);
}

/* Live ids one pick looks at, and entries of each table it scans at most: tables grow to
 * WIRE_MAX_OBJECTS entries, and scanning them whole for every argument made the stateful
 * fuzzers spend most of their time here. */
#define PICK_CANDIDATES   64u
#define PICK_SCAN_ENTRIES 2048u

/* Collects live entries of one table, scanning a window that starts where `choice` says. */
static uint32_t collect_live(const struct wl_interface *const *table, uint32_t capacity,
                             uint32_t first, uint32_t id_base, uint32_t choice, uint32_t *found,
                             uint32_t count)
{
    if (capacity <= first) {
        return count;
    }
    uint32_t span = capacity - first;
    uint32_t start = span > PICK_SCAN_ENTRIES ? choice % span : 0;
    for (uint32_t step = 0; step < span && step < PICK_SCAN_ENTRIES; step++) {
        uint32_t index = first + (start + step) % span;
        if (table[index]) {
            found[count++] = id_base + index;
            if (count == PICK_CANDIDATES) {
                break;
            }
        }
    }
    return count;
}

/* One of the objects the client has, chosen by `choice`; 0 if there is none. */
static uint32_t pick_object(const struct proxy_client *client, uint32_t choice)
{
    const struct wire_objects *objects = &client->objects;
    uint32_t found[PICK_CANDIDATES];
    uint32_t count =
        collect_live(objects->client, objects->client_capacity, 1, 0, choice, found, 0);
    if (count < PICK_CANDIDATES) {
        count = collect_live(objects->server, objects->server_capacity, 0, WIRE_SERVER_ID_START,
                             choice, found, count);
    }
    return count ? found[choice % count] : 0;
}

/* An id as the host knows it (the client's own ids are translated; unknown ones stay). */
static uint32_t host_id(const struct proxy_client *client, uint32_t id)
{
    if (id >= WIRE_SERVER_ID_START) {
        return id;
    }
    uint32_t host = relay_host_id(client, id);
    return host && host != ID_CLIENT_ONLY ? host : id;
}

/* The tables read directly, and only as far as they reach: past both, every id is free. */
static uint32_t lowest_free_id(const struct proxy_client *client)
{
    const struct wire_objects *objects = &client->objects;
    for (uint32_t id = 2; id < WIRE_MAX_OBJECTS; id++) {
        bool has_interface = id < objects->client_capacity && objects->client[id];
        bool has_host_id = id < client->to_host_capacity && client->to_host[id];
        if (!has_interface && !has_host_id) {
            return id;
        }
    }
    return WIRE_MAX_OBJECTS;
}

struct builder {
    uint8_t *out;
    size_t size;
    bool long_arguments;
};

static void put(struct builder *b, uint32_t word)
{
    if (b->size + 4 <= WIRE_MAX_MESSAGE_BYTES) {
        memcpy(b->out + b->size, &word, 4);
        b->size += 4;
    }
}

/* A string or array of `length` bytes (a string's terminator included), padded. */
static void put_bytes(struct builder *b, const uint8_t *bytes, uint32_t length, bool string)
{
    size_t room = WIRE_MAX_MESSAGE_BYTES - b->size;
    room = room > ROOM_AFTER_STRING + 4 ? room - ROOM_AFTER_STRING - 4 : 0;
    if (length > room) {
        length = (uint32_t)room;
    }
    if (string && length == 0 && room > 0) {
        length = 1; /* the empty string; 0 would be null */
    }
    put(b, length);
    uint32_t padded = (length + 3) & ~3u;
    memset(b->out + b->size, 0, padded);
    memcpy(b->out + b->size, bytes, string && length ? length - 1 : length);
    b->size += padded;
}

/* A string from the input: short ones from its bytes, long ones (up to the wire maximum,
 * as titles and MIME types may be) as a pattern. */
static void put_string(struct builder *b, struct fuzz_input *in, bool nullable)
{
    static uint8_t text[WIRE_MAX_MESSAGE_BYTES];
    uint8_t choice = b->long_arguments ? 0xff : fuzz_u8(in);
    uint32_t length;
    if (choice == 0xff) {
        /* put_bytes cuts it to what the message has room for */
        length =
            b->long_arguments ? WIRE_MAX_MESSAGE_BYTES - 1 : fuzz_u16(in) % WIRE_MAX_MESSAGE_BYTES;
        for (uint32_t i = 0; i < length; i++) {
            text[i] = (uint8_t)('a' + i % 26);
        }
    } else {
        length = choice % 48;
        fuzz_bytes(in, text, length);
        for (uint32_t i = 0; i < length; i++) {
            text[i] = text[i] ? text[i] : 'x';
        }
    }
    if (nullable && choice == 0xfe) {
        put(b, 0);
        return;
    }
    put_bytes(b, text, length + 1, true);
}

static void put_array(struct builder *b, struct fuzz_input *in)
{
    static uint8_t bytes[WIRE_MAX_MESSAGE_BYTES];
    uint8_t choice = b->long_arguments ? 0xff : fuzz_u8(in);
    uint32_t length = b->long_arguments ? WIRE_MAX_MESSAGE_BYTES - 1
                      : choice == 0xff  ? fuzz_u16(in) % WIRE_MAX_MESSAGE_BYTES
                                        : choice % 64u;
    fuzz_bytes(in, bytes, length < 64 ? length : 64);
    if (length > 64) {
        memset(bytes + 64, 0x5a, length - 64);
    }
    put_bytes(b, bytes, length, false);
}

static void finish_header(struct builder *b, uint32_t object, uint16_t opcode)
{
    uint32_t header[2] = {object, (uint32_t)b->size << 16 | opcode};
    memcpy(b->out, header, sizeof(header));
}

size_t fuzz_bind(struct fuzz_input *in, const struct proxy_client *client, uint8_t *out)
{
    uint32_t registry = 0;
    for (uint32_t id = 1; id < client->objects.client_capacity && !registry; id++) {
        registry = client->objects.client[id] == &wl_registry_interface ? id : 0;
    }
    if (!registry) {
        return 0;
    }
    const struct wl_interface *known =
        neep_wl_known_interfaces[fuzz_u8(in) % neep_wl_known_interface_count];
    struct builder b = {out, 8, false};
    put(&b, fuzz_u8(in)); /* the global's name */
    put_bytes(&b, (const uint8_t *)known->name, (uint32_t)strlen(known->name) + 1, true);
    put(&b, 1 + fuzz_u8(in) % (uint32_t)known->version);
    put(&b, lowest_free_id(client));
    finish_header(&b, registry, WL_REGISTRY_BIND);
    return b.size;
}

size_t fuzz_message(struct fuzz_input *in, const struct proxy_client *client,
                    enum wire_direction direction, bool long_arguments, uint8_t *out,
                    uint32_t *fd_count)
{
    *fd_count = 0;
    uint32_t object = pick_object(client, fuzz_u16(in));
    const struct wl_interface *interface = object ? interface_of(client, object) : NULL;
    bool request = direction == WIRE_REQUEST;
    int count = interface ? (request ? interface->method_count : interface->event_count) : 0;
    if (count <= 0) {
        return 0;
    }
    uint16_t opcode = (uint16_t)(fuzz_u8(in) % count);
    if (request && interface == &wl_registry_interface && opcode == WL_REGISTRY_BIND) {
        return fuzz_bind(in, client, out);
    }
    const struct wl_message *message =
        request ? &interface->methods[opcode] : &interface->events[opcode];
    struct builder b = {out, 8, long_arguments};
    bool nullable = false;
    for (const char *s = message->signature; *s; s++) {
        switch (*s) {
        case '?':
            nullable = true;
            continue;
        case 'i':
        case 'u':
        case 'f':
            put(&b, number(in));
            break;
        case 'o': {
            uint8_t choice = fuzz_u8(in);
            uint32_t named = nullable && choice == 0xff ? 0 : pick_object(client, choice);
            put(&b, request ? named : host_id(client, named));
            break;
        }
        case 'n':
            if (request) {
                put(&b, lowest_free_id(client));
            } else {
                put(&b, WIRE_SERVER_ID_START + fuzz_u8(in) % 64u);
            }
            break;
        case 's':
            if (!request && interface == &wl_registry_interface && fuzz_u8(in) & 1) {
                /* wl_registry.global: mostly names neep-wl knows, so it filters for real */
                const char *name =
                    neep_wl_known_interfaces[fuzz_u8(in) % neep_wl_known_interface_count]->name;
                put_bytes(&b, (const uint8_t *)name, (uint32_t)strlen(name) + 1, true);
            } else {
                put_string(&b, in, nullable);
            }
            break;
        case 'a':
            put_array(&b, in);
            break;
        case 'h':
            (*fd_count)++;
            break;
        default:
            continue; /* "since" version digits */
        }
        nullable = false;
    }
    finish_header(&b, request ? object : host_id(client, object), opcode);
    return b.size;
}
