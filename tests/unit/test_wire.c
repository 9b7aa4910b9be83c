/* neep-wl's Wayland wire reader: framing, fd counts and object tracking from the generated
 * protocol descriptions, and every malformed message a client or compositor could send. */
#include <string.h>

#include "harness.h"
#include "protocols.h"
#include "wayland-client-protocol.h"
#include "wire.h"

struct builder {
    uint32_t words[256];
    size_t count;
};

static void start(struct builder *b, uint32_t object, uint16_t opcode)
{
    b->count = 2;
    b->words[0] = object;
    b->words[1] = opcode;
}

static void put(struct builder *b, uint32_t word)
{
    b->words[b->count++] = word;
}

static void put_string(struct builder *b, const char *text)
{
    uint32_t length = (uint32_t)strlen(text) + 1;
    put(b, length);
    memset(&b->words[b->count], 0, (length + 3) & ~3u);
    memcpy(&b->words[b->count], text, length);
    b->count += (length + 3) / 4;
}

static size_t finish(struct builder *b)
{
    b->words[1] |= (uint32_t)(b->count * 4) << 16;
    return b->count * 4;
}

static void objects_init(struct wire_objects *objects)
{
    CHECK_EQ(wire_objects_init(objects, &wl_display_interface, neep_wl_known_interfaces,
                               neep_wl_known_interface_count),
             0);
}

static int read_one(struct wire_objects *objects, enum wire_direction direction, struct builder *b,
                    size_t size, struct wire_message *message, const char **reason)
{
    *reason = NULL;
    return wire_read(objects, direction, (const uint8_t *)b->words, size, message, reason);
}

/* A client's start: get_registry, bind wl_shm, create a pool (one fd), and the compositor's
 * delete_id retiring an object. */
TEST(a_client_session_is_followed)
{
    struct wire_objects objects;
    objects_init(&objects);
    struct builder b;
    struct wire_message message;
    const char *reason;

    start(&b, 1, WL_DISPLAY_GET_REGISTRY);
    put(&b, 2);
    CHECK_EQ(read_one(&objects, WIRE_REQUEST, &b, finish(&b), &message, &reason), 12);
    CHECK(wire_objects_get(&objects, 2) == &wl_registry_interface);

    start(&b, 2, WL_REGISTRY_BIND);
    put(&b, 7);
    put_string(&b, "wl_shm");
    put(&b, 1);
    put(&b, 3);
    size_t size = finish(&b);
    CHECK_EQ(read_one(&objects, WIRE_REQUEST, &b, size, &message, &reason), (int)size);
    CHECK(wire_objects_get(&objects, 3) == &wl_shm_interface);

    start(&b, 3, WL_SHM_CREATE_POOL);
    put(&b, 4);
    put(&b, 4096); /* the fd travels beside the bytes; only the size is in them */
    size = finish(&b);
    CHECK_EQ(read_one(&objects, WIRE_REQUEST, &b, size, &message, &reason), (int)size);
    CHECK_EQ(message.fd_count, 1);
    CHECK(strcmp(message.message->name, "create_pool") == 0);
    CHECK(wire_objects_get(&objects, 4) == &wl_shm_pool_interface);

    /* Events: wl_shm.format, then delete_id of the pool. */
    start(&b, 3, 0); /* wl_shm.format */
    put(&b, 0);
    CHECK_EQ(read_one(&objects, WIRE_EVENT, &b, finish(&b), &message, &reason), 12);
    CHECK_EQ(message.fd_count, 0);
    start(&b, 1, 1); /* wl_display.delete_id */
    put(&b, 4);
    CHECK_EQ(read_one(&objects, WIRE_EVENT, &b, finish(&b), &message, &reason), 12);
    CHECK(wire_objects_get(&objects, 4) == NULL);
    wire_objects_finish(&objects);
}

TEST(partial_messages_wait_for_more_bytes)
{
    struct wire_objects objects;
    objects_init(&objects);
    struct builder b;
    struct wire_message message;
    const char *reason;
    start(&b, 1, WL_DISPLAY_SYNC);
    put(&b, 2);
    size_t size = finish(&b);
    for (size_t cut = 0; cut < size; cut++) {
        CHECK_EQ(read_one(&objects, WIRE_REQUEST, &b, cut, &message, &reason), 0);
    }
    CHECK_EQ(read_one(&objects, WIRE_REQUEST, &b, size, &message, &reason), 12);
    wire_objects_finish(&objects);
}

/* Each malformed message is refused with a reason; the framing is then lost for good. */
static void expect_refused(struct builder *b, size_t size, enum wire_direction direction,
                           const char *expected)
{
    struct wire_objects objects;
    objects_init(&objects);
    /* A registry (2) and a wl_shm (3) to aim at. */
    objects.client[2] = &wl_registry_interface;
    objects.client[3] = &wl_shm_interface;
    struct wire_message message;
    const char *reason;
    CHECK_EQ(read_one(&objects, direction, b, size, &message, &reason), -1);
    CHECK(reason && strstr(reason, expected));
    wire_objects_finish(&objects);
}

TEST(malformed_messages_are_refused)
{
    struct builder b;
    start(&b, 1, WL_DISPLAY_SYNC);
    put(&b, 2);
    b.words[1] = 4u << 16; /* smaller than a header */
    expect_refused(&b, 12, WIRE_REQUEST, "size");
    b.words[1] = 14u << 16; /* unaligned */
    expect_refused(&b, 16, WIRE_REQUEST, "size");
    b.words[1] = 8192u << 16; /* over libwayland's limit */
    expect_refused(&b, 12, WIRE_REQUEST, "size");

    start(&b, 99, 0);
    expect_refused(&b, finish(&b), WIRE_REQUEST, "does not exist");
    start(&b, 1, 7);
    expect_refused(&b, finish(&b), WIRE_REQUEST, "opcode");
    start(&b, 1, WL_DISPLAY_SYNC); /* the new id is missing */
    expect_refused(&b, finish(&b), WIRE_REQUEST, "shorter");
    start(&b, 1, WL_DISPLAY_SYNC);
    put(&b, 2);
    put(&b, 0); /* one word too many */
    expect_refused(&b, finish(&b), WIRE_REQUEST, "longer than its arguments");

    start(&b, 1, WL_DISPLAY_SYNC);
    put(&b, 1); /* wl_display's own id */
    expect_refused(&b, finish(&b), WIRE_REQUEST, "already in use");
    start(&b, 1, WL_DISPLAY_SYNC);
    put(&b, 0xff000001u); /* a compositor id from a client */
    expect_refused(&b, finish(&b), WIRE_REQUEST, "range");
    start(&b, 1, WL_DISPLAY_SYNC);
    put(&b, 1u << 30); /* far past the object limit */
    expect_refused(&b, finish(&b), WIRE_REQUEST, "too many objects");

    start(&b, 2, WL_REGISTRY_BIND);
    put(&b, 7);
    put_string(&b, "zwp_linux_dmabuf_v1"); /* not offered to guests */
    put(&b, 1);
    put(&b, 3);
    expect_refused(&b, finish(&b), WIRE_REQUEST, "does not know");

    start(&b, 2, WL_REGISTRY_BIND);
    put(&b, 7);
    put_string(&b, "wl_shm");
    put(&b, 1000); /* newer than the proxy's description */
    put(&b, 3);
    expect_refused(&b, finish(&b), WIRE_REQUEST, "newer than this proxy knows");

    start(&b, 2, WL_REGISTRY_BIND);
    put(&b, 7);
    put(&b, 64); /* claims 64 bytes of string */
    put(&b, 0x6873 /* "sh" */);
    expect_refused(&b, finish(&b), WIRE_REQUEST, "longer than its message");

    start(&b, 2, WL_REGISTRY_BIND);
    put(&b, 7);
    put(&b, 4);
    put(&b, 0x6d6d6d6d); /* "mmmm": no terminator */
    put(&b, 1);
    put(&b, 5);
    expect_refused(&b, finish(&b), WIRE_REQUEST, "not terminated");
}
