/*
 * One Wayland message at a time, each way: read by its protocol description, ids translated
 * between the client's id space and the host connection's, file descriptors turned into
 * cross-domain identifiers (and back), and the few messages that need more handed to shm.c
 * or filtered here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocols.h"
#include "proxy.h"
#include "shm.h"
#include "viewporter-client-protocol.h"
#include "wayland-client-protocol.h"

/* Event opcodes (the client header names only requests). */
#define EVENT_DISPLAY_ERROR     0u
#define EVENT_DISPLAY_DELETE_ID 1u
#define EVENT_REGISTRY_GLOBAL   0u
#define EVENT_SHM_FORMAT        0u

/* Entries in each id map at first; they grow with the ids in use, up to WIRE_MAX_OBJECTS. */
#define ID_MAP_FIRST_CAPACITY 64u

int relay_init(struct proxy_client *client)
{
    client->to_host = calloc(ID_MAP_FIRST_CAPACITY, sizeof(uint32_t));
    client->to_client = calloc(ID_MAP_FIRST_CAPACITY, sizeof(uint32_t));
    client->to_host_capacity = client->to_client_capacity = ID_MAP_FIRST_CAPACITY;
    if (!client->to_host || !client->to_client ||
        wire_objects_init(&client->objects, &wl_display_interface, neep_wl_known_interfaces,
                          neep_wl_known_interface_count) < 0) {
        relay_finish(client);
        return -1;
    }
    client->to_host[1] = 1;
    client->to_client[1] = 1;
    client->lowest_free_host_id = 2;
    return 0;
}

void relay_finish(struct proxy_client *client)
{
    free(client->to_host);
    free(client->to_client);
    client->to_host = client->to_client = NULL;
    client->to_host_capacity = client->to_client_capacity = 0;
    wire_objects_finish(&client->objects);
}

uint32_t relay_host_id(const struct proxy_client *client, uint32_t client_id)
{
    return client_id < client->to_host_capacity ? client->to_host[client_id] : 0;
}

uint32_t relay_client_id(const struct proxy_client *client, uint32_t host_id)
{
    return host_id < client->to_client_capacity ? client->to_client[host_id] : 0;
}

/* Makes room for `id` in a map; false past WIRE_MAX_OBJECTS or without memory. */
static bool map_reserve(uint32_t **map, uint32_t *capacity, uint32_t id)
{
    if (id < *capacity) {
        return true;
    }
    if (id >= WIRE_MAX_OBJECTS) {
        return false;
    }
    uint32_t bigger = *capacity;
    while (bigger <= id) {
        bigger *= 2; /* powers of two up to WIRE_MAX_OBJECTS, itself one */
    }
    uint32_t *grown = realloc(*map, bigger * sizeof(*grown));
    if (!grown) {
        return false;
    }
    memset(grown + *capacity, 0, (bigger - *capacity) * sizeof(*grown));
    *map = grown;
    *capacity = bigger;
    return true;
}

static bool set_host_id(struct proxy_client *client, uint32_t client_id, uint32_t host_id)
{
    if (!map_reserve(&client->to_host, &client->to_host_capacity, client_id)) {
        return false;
    }
    client->to_host[client_id] = host_id;
    return true;
}

bool relay_mark_client_only(struct proxy_client *client, uint32_t client_id)
{
    return set_host_id(client, client_id, ID_CLIENT_ONLY);
}

uint32_t relay_alloc_host_id(struct proxy_client *client, uint32_t client_id)
{
    /* The lowest free id, as libwayland allocates: compositors insist ids stay dense. */
    for (uint32_t id = client->lowest_free_host_id; id < WIRE_MAX_OBJECTS; id++) {
        if (relay_client_id(client, id) != 0) {
            continue;
        }
        if (!map_reserve(&client->to_client, &client->to_client_capacity, id) ||
            (client_id && !set_host_id(client, client_id, id))) {
            return 0;
        }
        client->to_client[id] = client_id ? client_id : ID_PROXY_OWNED;
        client->lowest_free_host_id = id + 1;
        return id;
    }
    return 0;
}

static void free_host_id(struct proxy_client *client, uint32_t host_id)
{
    if (host_id < client->to_client_capacity) {
        client->to_client[host_id] = 0;
    }
    if (host_id < client->lowest_free_host_id) {
        client->lowest_free_host_id = host_id;
    }
}

bool relay_delete_client_only(struct proxy_client *client, uint32_t client_id)
{
    if (client_id < client->to_host_capacity) {
        client->to_host[client_id] = 0;
    }
    wire_objects_retire(&client->objects, client_id);
    uint32_t event[] = {1, (12u << 16) | EVENT_DISPLAY_DELETE_ID, client_id};
    return proxy_client_queue(client, (const uint8_t *)event, sizeof(event), NULL, 0);
}

static uint32_t read_word(const uint8_t *message, uint16_t offset)
{
    uint32_t word;
    memcpy(&word, message + offset, 4);
    return word;
}

static void write_word(uint8_t *message, uint16_t offset, uint32_t word)
{
    memcpy(message + offset, &word, 4);
}

/* A client fd in a request: only a pipe's write end (a receive request) can cross. */
static bool request_fd(struct proxy_client *client, uint32_t object_id, int fd, uint32_t *id,
                       uint32_t *type)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
        close(fd);
        proxy_client_fail(client, object_id, WL_DISPLAY_ERROR_IMPLEMENTATION,
                          "neep-wl passes only pipes to the host compositor in this request");
        return false;
    }
    /* Each transfer holds the client's pipe until the host hangs up. */
    if (client->read_pipes.count >= PROXY_MAX_PIPES_PER_CLIENT) {
        close(fd);
        proxy_client_fail(client, object_id, WL_DISPLAY_ERROR_NO_MEMORY,
                          "%zu transfers (receive requests) are open: neep-wl's limit per client "
                          "is %u",
                          client->read_pipes.count, PROXY_MAX_PIPES_PER_CLIENT);
        return false;
    }
    /* One read pipe per SEND: the host checks their sequence. */
    if (client->batch.has_read_pipe && !proxy_client_flush_host(client)) {
        close(fd);
        return false;
    }
    struct proxy_pipe *pipe = calloc(1, sizeof(*pipe));
    *id = virtgpu_channel_next_read_pipe(&client->channel);
    if (!pipe || id_table_insert(&client->read_pipes, *id, pipe) < 0) {
        free(pipe);
        close(fd);
        proxy_client_fail(client, object_id, WL_DISPLAY_ERROR_NO_MEMORY, "out of memory");
        return false;
    }
    *pipe = (struct proxy_pipe){{WATCH_CLIENT_PIPE, client}, fd, *id, NULL, 0, false};
    *type = CROSS_DOMAIN_ID_TYPE_READ_PIPE;
    return true;
}

/* Requests shm.c takes over or watches; false to stop the connection, *forward false when
 * the request must not reach the host. */
static bool request_hooks(struct proxy_client *client, const struct wire_message *message,
                          const uint8_t *bytes, int *fds, bool *forward)
{
    const struct wl_interface *interface = message->interface;
    if (interface == &wl_shm_interface && message->opcode == WL_SHM_CREATE_POOL) {
        *forward = false;
        int32_t size_bytes;
        uint32_t pool_id;
        memcpy(&pool_id, bytes + 8, 4);
        memcpy(&size_bytes, bytes + 12, 4);
        int fd = fds[0];
        fds[0] = -1;
        uint32_t shm_host_id = message->object_id >= WIRE_SERVER_ID_START
                                   ? message->object_id
                                   : relay_host_id(client, message->object_id);
        return shm_create_pool(client, pool_id, shm_host_id, fd, size_bytes);
    }
    if (interface == &wl_shm_pool_interface) {
        *forward = false;
        return shm_pool_request(client, message, bytes);
    }
    if (interface == &wl_surface_interface) {
        return shm_surface_request(client, message, bytes);
    }
    if (interface == &wp_viewporter_interface && message->opcode == WP_VIEWPORTER_GET_VIEWPORT) {
        shm_viewport_created(client, read_word(bytes, message->arg_offsets[1]));
    }
    return true;
}

bool relay_request(struct proxy_client *client, uint8_t *bytes, size_t size)
{
    struct wire_message message;
    const char *reason = NULL;
    uint32_t object_id;
    memcpy(&object_id, bytes, 4);
    if (wire_read(&client->objects, WIRE_REQUEST, bytes, size, &message, &reason) <= 0) {
        proxy_client_fail(client, object_id, WL_DISPLAY_ERROR_INVALID_METHOD, "%s",
                          reason ? reason : "a truncated message");
        return false;
    }
    int fds[WIRE_MAX_ARGS];
    for (uint32_t i = 0; i < message.fd_count; i++) {
        fds[i] = fd_fifo_pop(&client->client_fds);
        if (fds[i] < 0) {
            for (uint32_t j = 0; j < i; j++) {
                close(fds[j]);
            }
            proxy_client_fail(client, object_id, WL_DISPLAY_ERROR_INVALID_METHOD,
                              "%s.%s: file descriptor expected", message.interface->name,
                              message.message->name);
            return false;
        }
    }
    bool forward = true;
    bool ok = request_hooks(client, &message, bytes, fds, &forward);
    if (!ok || !forward) {
        for (uint32_t i = 0; i < message.fd_count; i++) {
            if (fds[i] >= 0) {
                close(fds[i]);
            }
        }
        return ok;
    }

    /* Into host ids; the compositor's own objects keep theirs. */
    uint32_t host_object =
        object_id >= WIRE_SERVER_ID_START ? object_id : relay_host_id(client, object_id);
    if (host_object == 0 || host_object == ID_CLIENT_ONLY) {
        proxy_client_fail(client, object_id, WL_DISPLAY_ERROR_INVALID_OBJECT,
                          "%s@%u cannot take this request", message.interface->name, object_id);
        ok = false;
    }
    write_word(bytes, 0, host_object);
    uint32_t ids[WIRE_MAX_ARGS], types[WIRE_MAX_ARGS];
    uint32_t fd_index = 0;
    for (uint32_t i = 0; ok && i < message.arg_count; i++) {
        uint16_t offset = message.arg_offsets[i];
        uint32_t word = message.arg_types[i] == 'h' ? 0 : read_word(bytes, offset);
        switch (message.arg_types[i]) {
        case 'o':
            if (word != 0 && word < WIRE_SERVER_ID_START) {
                uint32_t host_id = relay_host_id(client, word);
                if (host_id == 0 || host_id == ID_CLIENT_ONLY) {
                    proxy_client_fail(client, object_id, WL_DISPLAY_ERROR_INVALID_OBJECT,
                                      "%s.%s names object %u, which does not exist here",
                                      message.interface->name, message.message->name, word);
                    ok = false;
                    break;
                }
                write_word(bytes, offset, host_id);
            }
            break;
        case 'n': {
            uint32_t host_id = relay_alloc_host_id(client, word);
            if (!host_id) {
                proxy_client_fail(client, object_id, WL_DISPLAY_ERROR_NO_MEMORY,
                                  "too many objects");
                ok = false;
                break;
            }
            write_word(bytes, offset, host_id);
            break;
        }
        case 'h':
            ok = request_fd(client, object_id, fds[fd_index], &ids[fd_index], &types[fd_index]);
            fds[fd_index++] = -1;
            break;
        default:
            break;
        }
    }
    for (uint32_t i = fd_index; i < message.fd_count; i++) {
        close(fds[i]);
    }
    if (!ok) {
        return false;
    }
    if (proxy_tracing) {
        proxy_trace(client, "->", &message, object_id, host_object);
    }
    if (!proxy_client_send(client, bytes, size, ids, types, fd_index)) {
        return false;
    }
    if (message.interface == &wl_buffer_interface && message.opcode == WL_BUFFER_DESTROY) {
        shm_buffer_destroyed(client, object_id);
    }
    return true;
}

/* wl_registry.global: only interfaces the proxy can relay, at versions it knows. */
static bool filter_global(struct proxy_client *client, uint8_t *bytes,
                          const struct wire_message *message)
{
    uint32_t length = read_word(bytes, message->arg_offsets[1]);
    const char *name = length ? (const char *)bytes + message->arg_offsets[1] + 4 : "";
    uint16_t version_offset = message->arg_offsets[2];
    for (size_t i = 0; i < client->objects.known_count; i++) {
        const struct wl_interface *known = client->objects.known[i];
        if (strcmp(known->name, name) == 0) {
            uint32_t version = read_word(bytes, version_offset);
            if (version > (uint32_t)known->version) {
                write_word(bytes, version_offset, (uint32_t)known->version);
            }
            return true;
        }
    }
    return false;
}

static bool host_broke(struct proxy_client *client, const char *what)
{
    proxy_client_fail(client, 1, WL_DISPLAY_ERROR_IMPLEMENTATION,
                      "the host compositor's stream broke: %s", what);
    return false;
}

/* The only host objects the proxy owns are the wl_shm_pools it makes for shadow buffers
 * (shm.c); their ids map to ID_PROXY_OWNED until the compositor's delete_id. */
#define PROXY_OWNED_INTERFACE (&wl_shm_pool_interface)

/*
 * An event for one of the proxy's own objects is not passed on, but the fds its signature
 * carries came with it and are taken off the queue (and closed): left there, they would go to
 * the next message that carries one (a keymap, a data offer's pipe). An event the interface
 * does not have (wl_shm_pool has none) breaks the stream: which fds it meant is unknowable.
 */
static bool drop_proxy_owned_event(struct proxy_client *client, const uint8_t *bytes)
{
    const struct wl_interface *interface = PROXY_OWNED_INTERFACE;
    uint32_t opcode = read_word(bytes, 4) & 0xffff;
    if (opcode >= (uint32_t)interface->event_count) {
        proxy_client_fail(client, 1, WL_DISPLAY_ERROR_IMPLEMENTATION,
                          "the host compositor's stream broke: %s %u has no such event (%u)",
                          interface->name, read_word(bytes, 0), opcode);
        return false;
    }
    for (const char *c = interface->events[opcode].signature; *c; c++) {
        if (*c != 'h') {
            continue;
        }
        int fd = fd_fifo_pop(&client->host_fds);
        if (fd < 0) {
            return host_broke(client, "a file descriptor did not come with its message");
        }
        close(fd);
    }
    return true;
}

bool relay_event(struct proxy_client *client, uint8_t *bytes, size_t size)
{
    uint32_t host_object = read_word(bytes, 0);
    uint32_t object_id = host_object;
    if (host_object < WIRE_SERVER_ID_START) {
        object_id = relay_client_id(client, host_object);
        if (object_id == 0) {
            return host_broke(client, "an event for an object that does not exist");
        }
        if (object_id == ID_PROXY_OWNED) {
            return drop_proxy_owned_event(client, bytes);
        }
        write_word(bytes, 0, object_id);
    }
    uint32_t opcode = read_word(bytes, 4) & 0xffff;
    /* Only a well-formed delete_id (exactly one argument) touches the id maps. */
    if (object_id == 1 && opcode == EVENT_DISPLAY_DELETE_ID && size == 12) {
        uint32_t deleted = read_word(bytes, 8);
        if (deleted >= 2 && deleted < WIRE_SERVER_ID_START && deleted < WIRE_MAX_OBJECTS) {
            uint32_t client_id = relay_client_id(client, deleted);
            free_host_id(client, deleted);
            if (client_id == ID_PROXY_OWNED || client_id == 0) {
                return true;
            }
            set_host_id(client, client_id, 0); /* in the map already: it had a host id */
            write_word(bytes, 8, client_id);
        }
    }
    if (object_id == 1 && opcode == EVENT_DISPLAY_ERROR && size >= 12) {
        uint32_t culprit = read_word(bytes, 8);
        if (culprit != 0 && culprit < WIRE_SERVER_ID_START) {
            uint32_t client_id = relay_client_id(client, culprit);
            write_word(bytes, 8, client_id == 0 || client_id == ID_PROXY_OWNED ? 1 : client_id);
        }
    }

    struct wire_message message;
    const char *reason = NULL;
    if (wire_read(&client->objects, WIRE_EVENT, bytes, size, &message, &reason) <= 0) {
        return host_broke(client, reason ? reason : "a truncated message");
    }
    int fds[WIRE_MAX_ARGS];
    for (uint32_t i = 0; i < message.fd_count; i++) {
        fds[i] = fd_fifo_pop(&client->host_fds);
        if (fds[i] < 0) {
            for (uint32_t j = 0; j < i; j++) {
                close(fds[j]);
            }
            return host_broke(client, "a file descriptor did not come with its message");
        }
    }
    bool pass = true;
    if (message.interface == &wl_registry_interface && opcode == EVENT_REGISTRY_GLOBAL) {
        pass = filter_global(client, bytes, &message);
    } else if (message.interface == &wl_shm_interface && opcode == EVENT_SHM_FORMAT) {
        pass = shm_format_supported(read_word(bytes, 8));
    }
    for (uint32_t i = 0; pass && i < message.arg_count; i++) {
        if (message.arg_types[i] != 'o' || (object_id == 1 && opcode == EVENT_DISPLAY_ERROR)) {
            continue;
        }
        uint32_t word = read_word(bytes, message.arg_offsets[i]);
        if (word != 0 && word < WIRE_SERVER_ID_START) {
            uint32_t client_id = relay_client_id(client, word);
            if (client_id == 0 || client_id == ID_PROXY_OWNED) {
                for (uint32_t j = 0; j < message.fd_count; j++) {
                    close(fds[j]);
                }
                return host_broke(client, "an event names an object the client does not have");
            }
            write_word(bytes, message.arg_offsets[i], client_id);
        }
    }
    if (proxy_tracing) {
        proxy_trace(client, pass ? "<-" : "<- (dropped)", &message, host_object, object_id);
    }
    if (!pass) {
        for (uint32_t i = 0; i < message.fd_count; i++) {
            close(fds[i]);
        }
        return true;
    }
    return proxy_client_queue(client, bytes, size, fds, message.fd_count);
}
