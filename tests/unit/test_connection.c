/*
 * Whole neep-wl connections on the host (connection_support.c): a Wayland client on one end
 * of a socket, the real client.c and channel.c in the middle, and the host recorded by
 * fake_host.c, which checks every command as a host would and reassembles what the
 * compositor would read.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connection_support.h"
#include "harness.h"
#include "wayland-client-protocol.h"
#include "xdg-shell-client-protocol.h"

/* Builds messages into one buffer, remembering where each starts. */
struct builder {
    uint8_t bytes[16384];
    size_t size;
    size_t starts[32];
    uint32_t count;
};

static void put_word(struct builder *b, uint32_t word)
{
    CHECK(b->size + 4 <= sizeof(b->bytes));
    memcpy(b->bytes + b->size, &word, 4);
    b->size += 4;
}

static void begin(struct builder *b, uint32_t object, uint16_t opcode)
{
    CHECK(b->count < 32);
    b->starts[b->count++] = b->size;
    put_word(b, object);
    put_word(b, opcode); /* the size goes in at end() */
}

/* A string argument of `length` characters (a pattern, or `text` if given). */
static void put_string(struct builder *b, const char *text, size_t length)
{
    put_word(b, (uint32_t)length + 1);
    size_t padded = (length + 1 + 3) & ~(size_t)3;
    CHECK(b->size + padded <= sizeof(b->bytes));
    memset(b->bytes + b->size, 0, padded);
    for (size_t i = 0; i < length; i++) {
        b->bytes[b->size + i] = text ? (uint8_t)text[i] : (uint8_t)('a' + i % 26);
    }
    b->size += padded;
}

static size_t end(struct builder *b)
{
    size_t start = b->starts[b->count - 1];
    size_t size = b->size - start;
    uint32_t word;
    memcpy(&word, b->bytes + start + 4, 4);
    word |= (uint32_t)size << 16;
    memcpy(b->bytes + start + 4, &word, 4);
    return size;
}

static void message(struct builder *b, uint32_t object, uint16_t opcode, int count,
                    const uint32_t *words)
{
    begin(b, object, opcode);
    for (int i = 0; i < count; i++) {
        put_word(b, words[i]);
    }
    end(b);
}

static void bind_global(struct builder *b, uint32_t name, const char *interface, uint32_t version,
                        uint32_t id)
{
    begin(b, 2, WL_REGISTRY_BIND);
    put_word(b, name);
    put_string(b, interface, strlen(interface));
    put_word(b, version);
    put_word(b, id);
    end(b);
}

/* Sends the builder's messages from `first` on, then lets neep-wl handle them. */
static void deliver(struct test_connection *c, struct builder *b, uint32_t first, const int *fds,
                    uint32_t fd_count)
{
    size_t start = b->starts[first];
    CHECK(connection_send(c, b->bytes + start, b->size - start, fds, fd_count));
    CHECK(connection_pump(c, 1000));
    CHECK(c->client != NULL);
    if (fake_host.violation[0]) {
        fprintf(stderr, "the host would refuse: %s\n", fake_host.violation);
    }
    CHECK(!fake_host.violation[0]);
}

/* get_registry(2); bind xdg_wm_base (3) and wl_compositor (4); a surface (5), its
 * xdg_surface (6) and toplevel (7). */
static void toplevel(struct builder *b)
{
    message(b, 1, WL_DISPLAY_GET_REGISTRY, 1, (uint32_t[]){2});
    bind_global(b, 1, "xdg_wm_base", 1, 3);
    bind_global(b, 2, "wl_compositor", 4, 4);
    message(b, 4, WL_COMPOSITOR_CREATE_SURFACE, 1, (uint32_t[]){5});
    message(b, 3, XDG_WM_BASE_GET_XDG_SURFACE, 2, (uint32_t[]){6, 5});
    message(b, 6, XDG_SURFACE_GET_TOPLEVEL, 1, (uint32_t[]){7});
}

TEST(long_messages_reach_the_host_byte_for_byte)
{
    struct test_connection c;
    CHECK(connection_open(&c));
    static struct builder b;
    toplevel(&b);
    /* Titles of 3.8 KB and of the Wayland maximum (4096 bytes with the header). */
    begin(&b, 7, XDG_TOPLEVEL_SET_TITLE);
    put_string(&b, NULL, 3800);
    CHECK_EQ(end(&b), 3816);
    begin(&b, 7, XDG_TOPLEVEL_SET_TITLE);
    put_string(&b, NULL, 4083);
    CHECK_EQ(end(&b), WIRE_MAX_MESSAGE_BYTES);
    begin(&b, 7, XDG_TOPLEVEL_SET_APP_ID);
    put_string(&b, "after", 5);
    end(&b);
    deliver(&c, &b, 0, NULL, 0);
    /* Client ids map to the same host ids here, so the compositor reads exactly the client's
     * bytes, in several SENDs. */
    CHECK_EQ(fake_host.stream_bytes, b.size);
    CHECK(memcmp(fake_host.stream, b.bytes, b.size) == 0);
    CHECK_EQ(fake_host.framing.messages, b.count);
    CHECK(fake_host.sends >= 3);
    /* The maximum again, on its own, right after a batch ended exactly full. */
    uint32_t first = b.count;
    begin(&b, 7, XDG_TOPLEVEL_SET_TITLE);
    put_string(&b, NULL, 4083);
    end(&b);
    deliver(&c, &b, first, NULL, 0);
    CHECK_EQ(fake_host.stream_bytes, b.size);
    CHECK(memcmp(fake_host.stream, b.bytes, b.size) == 0);
    connection_close(&c);
}

/* A data device (5) on a seat (4), and an offer (0xff000001) the compositor made. */
static void data_offer(struct test_connection *c, struct builder *b)
{
    message(b, 1, WL_DISPLAY_GET_REGISTRY, 1, (uint32_t[]){2});
    bind_global(b, 1, "wl_data_device_manager", 3, 3);
    bind_global(b, 2, "wl_seat", 5, 4);
    message(b, 3, WL_DATA_DEVICE_MANAGER_GET_DATA_DEVICE, 2, (uint32_t[]){5, 4});
    deliver(c, b, 0, NULL, 0);
    uint32_t offer[] = {5, 12u << 16 | 0u /* data_offer */, 0xff000001u};
    CHECK(fake_host_receive((const uint8_t *)offer, sizeof(offer), NULL, NULL, NULL, 0));
    CHECK(connection_pump(c, 1000));
    uint8_t got[64];
    int fds[CONNECTION_MAX_FDS];
    uint32_t fd_count;
    CHECK_EQ(connection_read(c, got, sizeof(got), fds, &fd_count), sizeof(offer));
    CHECK(memcmp(got, offer, sizeof(offer)) == 0);
}

TEST(a_split_message_carries_its_pipe_with_its_first_part)
{
    struct test_connection c;
    CHECK(connection_open(&c));
    static struct builder b;
    data_offer(&c, &b);
    /* A small request first, so the long one starts a new SEND. */
    uint32_t first = b.count;
    message(&b, 1, WL_DISPLAY_SYNC, 1, (uint32_t[]){6});
    begin(&b, 0xff000001u, WL_DATA_OFFER_RECEIVE);
    put_string(&b, NULL, 4000); /* a MIME type nobody uses, but the wire allows it */
    size_t receive_bytes = end(&b);
    CHECK(receive_bytes > VIRTGPU_SEND_MAX_DATA_BYTES);
    int ends[2];
    CHECK_EQ(pipe2(ends, O_CLOEXEC), 0);
    deliver(&c, &b, first, &ends[1], 1);
    close(ends[1]);
    CHECK_EQ(fake_host.stream_bytes, b.size);
    CHECK(memcmp(fake_host.stream, b.bytes, b.size) == 0);
    CHECK_EQ(fake_host.identifier_count, 1);
    const struct fake_host_identifier *pipe = &fake_host.identifiers[0];
    CHECK_EQ(pipe->type, CROSS_DOMAIN_ID_TYPE_READ_PIPE);
    size_t receive_start = b.starts[b.count - 1];
    CHECK(pipe->send_start <= receive_start && receive_start < pipe->send_end);
    CHECK(pipe->send_end < receive_start + receive_bytes); /* it really was split */
    connection_close(&c);
    close(ends[0]);
}

TEST(requests_reach_the_host_and_events_the_client)
{
    struct test_connection c;
    CHECK(connection_open(&c));
    static struct builder b;
    data_offer(&c, &b); /* the first event a client gets, too */
    CHECK_EQ(fake_host.stream_bytes, b.size);
    CHECK(memcmp(fake_host.stream, b.bytes, b.size) == 0);
    CHECK_EQ(fake_host.sends, 1);
    /* The compositor hangs up: so does neep-wl, as a compositor would. */
    CHECK(fake_host_end());
    CHECK(connection_pump(&c, 1000));
    CHECK(c.client == NULL);
    uint8_t got[64];
    CHECK_EQ(recv(c.peer_fd, got, sizeof(got), MSG_DONTWAIT), 0);
    connection_close(&c);
}

TEST(compositor_pipes_are_capped_per_client)
{
    struct test_connection c;
    CHECK(connection_open(&c));
    uint32_t ids[CROSS_DOMAIN_MAX_IDENTIFIERS], types[CROSS_DOMAIN_MAX_IDENTIFIERS];
    uint32_t next_id = 1;
    /* Write pipes the compositor opened (wl_data_source.send) whose events never came. */
    while (c.client && next_id <= PROXY_MAX_PIPES_PER_CLIENT + 1) {
        uint32_t count = 0;
        for (; count < CROSS_DOMAIN_MAX_IDENTIFIERS && next_id <= PROXY_MAX_PIPES_PER_CLIENT + 1;
             count++) {
            ids[count] = next_id++;
            types[count] = CROSS_DOMAIN_ID_TYPE_WRITE_PIPE;
        }
        CHECK(fake_host_receive(NULL, 0, ids, types, NULL, count));
        CHECK(connection_pump(&c, 1000));
    }
    CHECK(c.client == NULL);
    uint8_t got[512];
    int fds[CONNECTION_MAX_FDS];
    uint32_t fd_count;
    size_t size = connection_read(&c, got, sizeof(got) - 1, fds, &fd_count);
    CHECK(size > 20);
    got[size] = 0;
    CHECK(strstr((const char *)got + 20, "type 4") != NULL);
    CHECK(strstr((const char *)got + 20, strerror(EMFILE)) != NULL);
    connection_close(&c);
}
