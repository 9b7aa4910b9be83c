/*
 * neep-wl's relay on the host, with its connection recorded (relay_support.c): id
 * translation both ways, registry filtering, shm shadow buffers and their damage copies,
 * and the hostile requests each get an error and never a crash.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "open_fds.h"
#include "relay_support.h"
#include "wayland-client-protocol.h"

/* One message from `count` argument words (strings as already padded words). */
static size_t message_words(uint32_t *out, uint32_t object, uint16_t opcode, int count,
                            va_list args)
{
    out[0] = object;
    for (int i = 0; i < count; i++) {
        out[2 + i] = va_arg(args, uint32_t);
    }
    out[1] = (uint32_t)(8 + 4 * count) << 16 | opcode;
    return 8 + 4 * (size_t)count;
}

static size_t message(uint32_t *out, uint32_t object, uint16_t opcode, int count, ...)
{
    va_list args;
    va_start(args, count);
    size_t size = message_words(out, object, opcode, count, args);
    va_end(args);
    return size;
}

static bool request(struct relay_record *r, uint32_t object, uint16_t opcode, int count, ...)
{
    uint32_t words[64];
    va_list args;
    va_start(args, count);
    size_t size = message_words(words, object, opcode, count, args);
    va_end(args);
    return relay_request(&r->client, (uint8_t *)words, size);
}

/* A registry message: name, interface string, version, and an id if `id` is not 0 (bind);
 * returns its size. */
static size_t registry_message(uint32_t *words, uint16_t opcode, uint32_t name,
                               const char *interface, uint32_t version, uint32_t id)
{
    uint32_t length = (uint32_t)strlen(interface) + 1, padded = (length + 3) / 4;
    words[0] = 2;
    words[2] = name;
    words[3] = length;
    memset(&words[4], 0, padded * 4);
    memcpy(&words[4], interface, length - 1);
    words[4 + padded] = version;
    words[5 + padded] = id;
    size_t size = (5 + padded + (id ? 1 : 0)) * 4;
    words[1] = (uint32_t)size << 16 | opcode;
    return size;
}

/* wl_registry.bind(1, interface, version, id). */
static bool bind(struct relay_record *r, const char *interface, uint32_t version, uint32_t id)
{
    uint32_t words[32];
    size_t size = registry_message(words, WL_REGISTRY_BIND, 1, interface, version, id);
    return relay_request(&r->client, (uint8_t *)words, size);
}

static struct relay_record *start(void)
{
    struct relay_record *r = calloc(1, sizeof(*r));
    CHECK(r);
    relay_record_init(r);
    CHECK(request(r, 1, WL_DISPLAY_GET_REGISTRY, 1, 2u));
    return r;
}

static void finish(struct relay_record *r)
{
    relay_record_finish(r);
    free(r);
}

static uint32_t word_at(const struct relay_stream *stream, size_t index)
{
    uint32_t word;
    memcpy(&word, stream->bytes + index * 4, 4);
    return word;
}

/* The last message recorded in a stream, as words. */
static const uint8_t *last_message(const struct relay_stream *stream)
{
    size_t pos = 0, last = 0;
    while (pos < stream->size) {
        last = pos;
        uint32_t header;
        memcpy(&header, stream->bytes + pos + 4, 4);
        pos += header >> 16;
    }
    return stream->bytes + last;
}

static uint32_t message_word(const uint8_t *message_bytes, size_t index)
{
    uint32_t word;
    memcpy(&word, message_bytes + index * 4, 4);
    return word;
}

static bool event(struct relay_record *r, const uint32_t *words, size_t size)
{
    uint32_t copy[64];
    memcpy(copy, words, size);
    return relay_event(&r->client, (uint8_t *)copy, size);
}

static void global(struct relay_record *r, uint32_t name, const char *interface, uint32_t version)
{
    uint32_t words[32];
    CHECK(event(r, words, registry_message(words, 0 /* global */, name, interface, version, 0)));
}

TEST(registry_globals_are_filtered_and_capped)
{
    struct relay_record *r = start();
    global(r, 1, "wl_compositor", 4);
    CHECK_EQ(r->to_client.messages, 1);
    global(r, 2, "zwp_linux_dmabuf_v1", 4); /* not relayed: hidden */
    global(r, 3, "weston_screenshooter", 1);
    CHECK_EQ(r->to_client.messages, 1);
    global(r, 4, "wl_seat", 1000); /* newer than the proxy knows: capped */
    CHECK_EQ(r->to_client.messages, 2);
    const uint8_t *seat = last_message(&r->to_client);
    CHECK_EQ(message_word(seat, 6), wl_seat_interface.version);
    finish(r);
}

TEST(ids_are_dense_on_the_host_and_translated_back)
{
    struct relay_record *r = start();
    int pool_fd = memfd_create("pool", MFD_CLOEXEC);
    CHECK_EQ(ftruncate(pool_fd, 65536), 0);
    CHECK(bind(r, "wl_shm", 1, 3));
    CHECK(fd_fifo_push(&r->client.client_fds, pool_fd));
    CHECK(request(r, 3, WL_SHM_CREATE_POOL, 2, 4u, 65536u)); /* pool 4 stays in the guest */
    CHECK(request(r, 4, WL_SHM_POOL_CREATE_BUFFER, 6, 5u, 0u, 64u, 64u, 256u, 1u));
    CHECK(!r->client.closing);
    /* The host saw: get_registry(2), bind(3), its own pool (host 4) with the shadow blob,
     * the buffer under host id 5, and the pool's destroy. */
    CHECK_EQ(r->to_host.messages, 5);
    CHECK_EQ(r->id_count, 1);
    CHECK_EQ(r->id_types[0], CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB);
    CHECK_EQ(r->client.to_host[5], 5);
    CHECK_EQ(r->client.to_client[4], ID_PROXY_OWNED);
    /* The guest-only pool's destroy is answered by the proxy itself. */
    CHECK(request(r, 4, WL_SHM_POOL_DESTROY, 0));
    CHECK_EQ(word_at(&r->to_client, 2), 4u); /* wl_display.delete_id(4) */
    /* The host's delete_id for its own pool stays in the proxy; the buffer's goes on. */
    uint32_t words[4];
    uint32_t before = r->to_client.messages;
    CHECK(event(r, words, message(words, 1, 1, 1, 4u)));
    CHECK_EQ(r->to_client.messages, before);
    uint32_t release[2];
    CHECK(event(r, release, message(release, 5, 0, 0)));
    CHECK_EQ(message_word(last_message(&r->to_client), 0), 5u);
    /* Client id 4 may be used again, and takes the freed host id. */
    CHECK(request(r, 1, WL_DISPLAY_SYNC, 1, 4u));
    CHECK_EQ(r->client.to_host[4], 4);
    finish(r);
}

static uint64_t inode_of(int fd)
{
    struct stat st;
    CHECK_EQ(fstat(fd, &st), 0);
    return st.st_ino;
}

/*
 * A hostile compositor sends an event for the pool the proxy made on the host for a shadow
 * buffer (an object the client never sees) with a file descriptor, then a keyboard keymap
 * with its own. The proxy drops the pool's event; the fds it carried must go with it, or the
 * keymap (and every fd-carrying event after it) gets the file meant for the message before.
 */
TEST(an_event_for_a_proxy_object_does_not_shift_the_compositors_fds)
{
    struct relay_record *r = start();
    int pool_fd = memfd_create("pool", MFD_CLOEXEC);
    CHECK_EQ(ftruncate(pool_fd, 65536), 0);
    CHECK(bind(r, "wl_shm", 1, 3));
    CHECK(fd_fifo_push(&r->client.client_fds, pool_fd));
    CHECK(request(r, 3, WL_SHM_CREATE_POOL, 2, 4u, 65536u));
    CHECK(request(r, 4, WL_SHM_POOL_CREATE_BUFFER, 6, 5u, 0u, 64u, 64u, 256u, 1u));
    CHECK(bind(r, "wl_seat", 5, 6));
    CHECK(request(r, 6, WL_SEAT_GET_KEYBOARD, 1, 7u));
    CHECK(!r->client.closing);
    const uint32_t host_pool = 4;
    CHECK_EQ(r->client.to_client[host_pool], ID_PROXY_OWNED);
    uint32_t host_keyboard = r->client.to_host[7];
    CHECK(host_keyboard != 0);

    /* The compositor's RECEIVE brought two fds: one for each message that follows. */
    int stray = memfd_create("stray", MFD_CLOEXEC);
    int keymap = memfd_create("keymap", MFD_CLOEXEC);
    uint64_t stray_inode = inode_of(stray), keymap_inode = inode_of(keymap);
    CHECK(fd_fifo_push(&r->client.host_fds, stray));
    CHECK(fd_fifo_push(&r->client.host_fds, keymap));

    uint32_t pool_event[3], keymap_event[4];
    bool relayed = event(r, pool_event, message(pool_event, host_pool, 0, 1, 0u));
    if (relayed) {
        /* wl_keyboard.keymap(xkb_v1, fd, size) */
        relayed = event(r, keymap_event, message(keymap_event, host_keyboard, 0, 2, 1u, 4096u));
    }
    if (r->fds_to_client > 0) {
        /* A keymap that reaches the client carries its own file, never the stray one. */
        CHECK_EQ(r->fds_to_client, 1);
        CHECK(r->last_fd_to_client_inode != stray_inode);
        CHECK_EQ(r->last_fd_to_client_inode, keymap_inode);
    }
    /* wl_shm_pool has no events at all: the compositor's stream is broken, and said so. */
    CHECK(!relayed);
    CHECK(r->client.closing);
    CHECK(strstr(r->error, "has no such event") != NULL);
    finish(r);
}

/* A data device (5) on a seat (4), and a data offer the compositor made (its id range). */
static struct relay_record *with_data_offer(void)
{
    struct relay_record *r = start();
    CHECK(bind(r, "wl_data_device_manager", 3, 3));
    CHECK(bind(r, "wl_seat", 5, 4));
    CHECK(request(r, 3, WL_DATA_DEVICE_MANAGER_GET_DATA_DEVICE, 2, 5u, 4u));
    uint32_t words[4];
    CHECK(event(r, words, message(words, r->client.to_host[5], 0, 1, 0xff000001u)));
    return r;
}

TEST(requests_on_compositor_objects_keep_their_ids)
{
    struct relay_record *r = with_data_offer();
    CHECK(request(r, 0xff000001u, WL_DATA_OFFER_DESTROY, 0));
    CHECK(!r->client.closing);
    CHECK_EQ(message_word(last_message(&r->to_host), 0), 0xff000001u);
    finish(r);
}

TEST(object_arguments_beyond_the_id_tables_are_refused)
{
    struct relay_record *r = start();
    CHECK(bind(r, "wl_data_device_manager", 3, 3));
    CHECK(!request(r, 3, WL_DATA_DEVICE_MANAGER_GET_DATA_DEVICE, 2, 4u, 0x00100000u));
    CHECK_EQ(r->error_code, WL_DISPLAY_ERROR_INVALID_OBJECT);
    finish(r);
}

TEST(malformed_and_unknown_requests_get_an_error)
{
    struct relay_record *r = start();
    CHECK(!request(r, 77, 0, 1, 3u));
    CHECK_EQ(r->error_code, WL_DISPLAY_ERROR_INVALID_METHOD);
    finish(r);
    r = start();
    CHECK(!bind(r, "zwp_linux_dmabuf_v1", 3, 3));
    CHECK(strstr(r->error, "does not know") != NULL);
    finish(r);
    r = start();
    CHECK(!request(r, 1, 1, 1, 0xff000009u)); /* a compositor-range id from a client */
    finish(r);
    r = start();
    CHECK(bind(r, "wl_shm", 1, 3));
    CHECK(!request(r, 3, WL_SHM_CREATE_POOL, 2, 4u, 4096u)); /* no fd came with it */
    CHECK(strstr(r->error, "file descriptor expected") != NULL);
    finish(r);
}

/* A client with one surface (5) and a pool (6) of two 64x64 XRGB buffers (7, 8). */
static struct relay_record *shm_client(int *pool_fd, uint32_t **pixels)
{
    struct relay_record *r = start();
    *pool_fd = memfd_create("pool", MFD_CLOEXEC);
    CHECK_EQ(ftruncate(*pool_fd, 2 * 16384), 0);
    *pixels = mmap(NULL, 2 * 16384, PROT_READ | PROT_WRITE, MAP_SHARED, *pool_fd, 0);
    CHECK(*pixels != MAP_FAILED);
    for (uint32_t i = 0; i < 2 * 4096; i++) {
        (*pixels)[i] = i * 2654435761u;
    }
    CHECK(bind(r, "wl_shm", 1, 3));
    CHECK(bind(r, "wl_compositor", 4, 4));
    CHECK(request(r, 4, WL_COMPOSITOR_CREATE_SURFACE, 1, 5u));
    CHECK(fd_fifo_push(&r->client.client_fds, dup(*pool_fd)));
    CHECK(request(r, 3, WL_SHM_CREATE_POOL, 2, 6u, 2u * 16384));
    CHECK(request(r, 6, WL_SHM_POOL_CREATE_BUFFER, 6, 7u, 0u, 64u, 64u, 256u, 1u));
    CHECK(request(r, 6, WL_SHM_POOL_CREATE_BUFFER, 6, 8u, 16384u, 64u, 64u, 256u, 1u));
    CHECK_EQ(fake_host.shadow_count, 2);
    return r;
}

static void show(struct relay_record *r, uint32_t buffer, int32_t x, int32_t y, int32_t w,
                 int32_t h)
{
    CHECK(request(r, 5, WL_SURFACE_ATTACH, 3, buffer, 0u, 0u));
    CHECK(request(r, 5, WL_SURFACE_DAMAGE_BUFFER, 4, (uint32_t)x, (uint32_t)y, (uint32_t)w,
                  (uint32_t)h));
    CHECK(request(r, 5, WL_SURFACE_COMMIT, 0));
}

TEST(shadow_buffers_get_the_damaged_bytes_and_what_other_buffers_showed)
{
    int pool_fd;
    uint32_t *pixels;
    struct relay_record *r = shm_client(&pool_fd, &pixels);
    /* A buffer shown the first time is copied whole, whatever the damage says. */
    show(r, 7, 0, 0, 1, 1);
    CHECK_EQ(r->client.shm_copied_bytes, 16384);
    CHECK(memcmp(fake_host.shadow_maps[0], pixels, 16384) == 0);
    show(r, 8, 0, 0, 8, 8);
    CHECK_EQ(r->client.shm_copied_bytes, 2 * 16384);
    CHECK(memcmp(fake_host.shadow_maps[1], pixels + 4096, 16384) == 0);
    /* Buffer 7 again, damaged at (10,10) 4x4: it also owes buffer 8's 8x8. */
    for (int y = 0; y < 8; y++) {
        for (int x = 0; x < 8; x++) {
            pixels[y * 64 + x] = 0x00ff00;
        }
    }
    for (int y = 10; y < 14; y++) {
        for (int x = 10; x < 14; x++) {
            pixels[y * 64 + x] = 0xff0000;
        }
    }
    pixels[40 * 64 + 40] = 0x123456; /* undamaged: a proxy must not copy it */
    show(r, 7, 10, 10, 4, 4);
    CHECK_EQ(r->client.shm_copied_bytes, 2 * 16384 + 8 * 8 * 4 + 4 * 4 * 4);
    uint32_t *shadow = (uint32_t *)fake_host.shadow_maps[0];
    CHECK_EQ(shadow[0], 0x00ff00);
    CHECK_EQ(shadow[11 * 64 + 12], 0xff0000);
    CHECK(shadow[40 * 64 + 40] != 0x123456);
    /* Damage outside the buffer is clipped, not followed. */
    show(r, 7, -100, -100, 1 << 30, 1 << 30);
    CHECK(!r->client.closing);
    munmap(pixels, 2 * 16384);
    close(pool_fd);
    finish(r);
}

TEST(shm_requests_that_do_not_fit_are_refused)
{
    static const struct {
        uint32_t offset, width, height, stride, format, code;
    } cases[] = {
        {0, 64, 64, 256, 0x12345678u, WL_SHM_ERROR_INVALID_FORMAT},
        {0, 64, 64, 100, 1, WL_SHM_ERROR_INVALID_STRIDE},            /* a row does not fit */
        {16384 + 4096, 64, 64, 256, 1, WL_SHM_ERROR_INVALID_STRIDE}, /* past the pool */
        {(uint32_t)-4, 64, 64, 256, 1, WL_SHM_ERROR_INVALID_STRIDE},
        {0, 0, 64, 256, 1, WL_SHM_ERROR_INVALID_STRIDE},
        {0, 64, 0x7fffffff, 256, 1, WL_SHM_ERROR_INVALID_STRIDE}, /* overflows 32 bits */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct relay_record *r = start();
        int pool_fd = memfd_create("pool", MFD_CLOEXEC);
        CHECK_EQ(ftruncate(pool_fd, 32768), 0);
        CHECK(bind(r, "wl_shm", 1, 3));
        CHECK(fd_fifo_push(&r->client.client_fds, pool_fd));
        CHECK(request(r, 3, WL_SHM_CREATE_POOL, 2, 4u, 32768u));
        CHECK(!request(r, 4, WL_SHM_POOL_CREATE_BUFFER, 6, 5u, cases[i].offset, cases[i].width,
                       cases[i].height, cases[i].stride, cases[i].format));
        CHECK_EQ(r->error_code, cases[i].code);
        finish(r);
    }
    struct relay_record *r = start();
    int pool_fd = memfd_create("pool", MFD_CLOEXEC);
    CHECK(bind(r, "wl_shm", 1, 3));
    CHECK(fd_fifo_push(&r->client.client_fds, pool_fd));
    CHECK(!request(r, 3, WL_SHM_CREATE_POOL, 2, 4u, 0u)); /* an empty pool */
    finish(r);
}

TEST(a_pool_shrunk_under_the_proxy_is_an_error_not_a_crash)
{
    CHECK_EQ(shm_install_guard(), 0);
    int pool_fd;
    uint32_t *pixels;
    struct relay_record *r = shm_client(&pool_fd, &pixels);
    munmap(pixels, 2 * 16384);
    CHECK_EQ(ftruncate(pool_fd, 0), 0);
    CHECK(request(r, 5, WL_SURFACE_ATTACH, 3, 7u, 0u, 0u));
    CHECK(!request(r, 5, WL_SURFACE_COMMIT, 0));
    CHECK_EQ(r->error_code, WL_SHM_ERROR_INVALID_FD);
    close(pool_fd);
    finish(r);
}

TEST(receive_pipes_become_read_pipes_and_other_fds_are_refused)
{
    struct relay_record *r = with_data_offer();
    int ends[2];
    CHECK_EQ(pipe2(ends, O_CLOEXEC), 0);
    CHECK(fd_fifo_push(&r->client.client_fds, ends[1]));
    /* wl_data_offer.receive("text/plain", fd) */
    CHECK(
        request(r, 0xff000001u, WL_DATA_OFFER_RECEIVE, 4, 11u, 0x74786574u, 0x616c702fu, 0x6e69u));
    CHECK(!r->client.closing);
    CHECK_EQ(r->id_count, 1);
    CHECK_EQ(r->id_types[0], CROSS_DOMAIN_ID_TYPE_READ_PIPE);
    close(ends[0]);
    /* A memfd where a pipe belongs. */
    int memfd = memfd_create("not-a-pipe", MFD_CLOEXEC);
    CHECK(fd_fifo_push(&r->client.client_fds, memfd));
    CHECK(
        !request(r, 0xff000001u, WL_DATA_OFFER_RECEIVE, 4, 11u, 0x74786574u, 0x616c702fu, 0x6e69u));
    finish(r);
}

TEST(shm_pools_hold_no_file_descriptors)
{
    struct relay_record *r = start();
    CHECK(bind(r, "wl_shm", 1, 3));
    int before = count_open_fds();
    for (uint32_t i = 0; i < 100; i++) {
        int pool_fd = memfd_create("pool", MFD_CLOEXEC);
        CHECK_EQ(ftruncate(pool_fd, 4096), 0);
        CHECK(fd_fifo_push(&r->client.client_fds, pool_fd));
        CHECK(request(r, 3, WL_SHM_CREATE_POOL, 2, 4u + i, 4096u));
    }
    /* Mapped, and their fds closed at once: a client cannot exhaust neep-wl's fds this way. */
    CHECK_EQ(count_open_fds(), before);
    /* The mapping goes on working, and grows with the pool. */
    CHECK(request(r, 4, WL_SHM_POOL_RESIZE, 1, 8192u));
    CHECK(request(r, 4, WL_SHM_POOL_CREATE_BUFFER, 6, 200u, 4096u, 16u, 16u, 64u, 1u));
    CHECK(!r->client.closing);
    finish(r);
}

TEST(shm_pools_are_capped_per_client)
{
    struct relay_record *r = start();
    CHECK(bind(r, "wl_shm", 1, 3));
    int pool_fd = memfd_create("pool", MFD_CLOEXEC);
    CHECK_EQ(ftruncate(pool_fd, 4096), 0);
    uint32_t id = 4;
    for (; id < 4 + PROXY_MAX_POOLS_PER_CLIENT; id++) {
        CHECK(fd_fifo_push(&r->client.client_fds, dup(pool_fd)));
        CHECK(request(r, 3, WL_SHM_CREATE_POOL, 2, id, 4096u));
    }
    CHECK(fd_fifo_push(&r->client.client_fds, dup(pool_fd)));
    CHECK(!request(r, 3, WL_SHM_CREATE_POOL, 2, id, 4096u));
    CHECK_EQ(r->error_code, WL_DISPLAY_ERROR_NO_MEMORY);
    CHECK(strstr(r->error, "limit of 512 pools") != NULL);
    finish(r);
    /* Address space: pools may claim up to 2 GiB each, but not without end. */
    r = start();
    CHECK(bind(r, "wl_shm", 1, 3));
    uint32_t pools = (uint32_t)(PROXY_MAX_POOL_BYTES_PER_CLIENT / 0x7fffffffu);
    for (id = 4; id < 4 + pools; id++) {
        CHECK(fd_fifo_push(&r->client.client_fds, dup(pool_fd)));
        CHECK(request(r, 3, WL_SHM_CREATE_POOL, 2, id, 0x7fffffffu));
    }
    CHECK(fd_fifo_push(&r->client.client_fds, dup(pool_fd)));
    CHECK(!request(r, 3, WL_SHM_CREATE_POOL, 2, id, 0x7fffffffu));
    CHECK(strstr(r->error, "MiB per client") != NULL);
    finish(r);
    /* Host memory: each buffer's shadow lives on the host, so buffers are capped too, even
     * many on one small pool. Counted as they come and go; the cap reached near its end. */
    r = start();
    CHECK(bind(r, "wl_shm", 1, 3));
    CHECK(fd_fifo_push(&r->client.client_fds, dup(pool_fd)));
    CHECK(request(r, 3, WL_SHM_CREATE_POOL, 2, 4u, 4096u));
    CHECK(
        request(r, 4, WL_SHM_POOL_CREATE_BUFFER, 6, 5u, 0u, 16u, 16u, 64u, WL_SHM_FORMAT_XRGB8888));
    CHECK_EQ(r->client.shm_shadow_bytes, 16 * 64);
    CHECK(request(r, 5, WL_BUFFER_DESTROY, 0));
    CHECK_EQ(r->client.shm_shadow_bytes, 0);
    r->client.shm_shadow_bytes = PROXY_MAX_SHADOW_BYTES_PER_CLIENT - 1024; /* as if made */
    CHECK(request(r, 4, WL_SHM_POOL_CREATE_BUFFER, 6, 6u, 0u, 16u, 16u, 64u,
                  WL_SHM_FORMAT_XRGB8888)); /* exactly fits */
    CHECK(!request(r, 4, WL_SHM_POOL_CREATE_BUFFER, 6, 7u, 0u, 1u, 1u, 4u, WL_SHM_FORMAT_XRGB8888));
    CHECK_EQ(r->error_code, WL_DISPLAY_ERROR_NO_MEMORY);
    CHECK(strstr(r->error, "host memory") != NULL);
    r->client.shm_shadow_bytes -= PROXY_MAX_SHADOW_BYTES_PER_CLIENT - 1024;
    finish(r);
    /* Growing a pool counts too (the eighth pool cannot grow to 2 GiB while a ninth holds a
     * page), and destroyed pools give their share back. */
    for (int destroy_first = 0; destroy_first < 2; destroy_first++) {
        r = start();
        CHECK(bind(r, "wl_shm", 1, 3));
        for (id = 4; id < 4 + pools + 1; id++) {
            CHECK(fd_fifo_push(&r->client.client_fds, dup(pool_fd)));
            CHECK(request(r, 3, WL_SHM_CREATE_POOL, 2, id, 4096u));
        }
        for (id = 4; id < 4 + pools - 1; id++) {
            CHECK(request(r, id, WL_SHM_POOL_RESIZE, 1, 0x7fffffffu));
        }
        if (destroy_first) {
            CHECK(request(r, 4, WL_SHM_POOL_DESTROY, 0));
            CHECK(request(r, id, WL_SHM_POOL_RESIZE, 1, 0x7fffffffu));
        } else {
            CHECK(!request(r, id, WL_SHM_POOL_RESIZE, 1, 0x7fffffffu));
            CHECK(strstr(r->error, "wl_shm_pool.resize") != NULL);
        }
        finish(r);
    }
    close(pool_fd);
}

TEST(receive_pipes_are_capped_per_client)
{
    struct relay_record *r = with_data_offer();
    int ends[2];
    for (uint32_t i = 0; i <= PROXY_MAX_PIPES_PER_CLIENT; i++) {
        CHECK_EQ(pipe2(ends, O_CLOEXEC), 0);
        close(ends[0]);
        CHECK(fd_fifo_push(&r->client.client_fds, ends[1]));
        bool relayed = request(r, 0xff000001u, WL_DATA_OFFER_RECEIVE, 4, 11u, 0x74786574u,
                               0x616c702fu, 0x6e69u);
        CHECK_EQ(relayed, i < PROXY_MAX_PIPES_PER_CLIENT);
    }
    CHECK_EQ(r->error_code, WL_DISPLAY_ERROR_NO_MEMORY);
    CHECK(strstr(r->error, "limit per client is 64") != NULL);
    finish(r);
}

TEST(client_ids_anywhere_in_the_range_are_translated_both_ways)
{
    struct relay_record *r = start();
    /* wl_display.sync on the highest id there is: the host sees the next dense id. */
    CHECK(request(r, 1, WL_DISPLAY_SYNC, 1, WIRE_MAX_OBJECTS - 1));
    CHECK(!r->client.closing);
    CHECK_EQ(message_word(last_message(&r->to_host), 2), 3u);
    CHECK_EQ(relay_host_id(&r->client, WIRE_MAX_OBJECTS - 1), 3u);
    /* wl_callback.done, then delete_id, come back under the client's id. */
    uint32_t words[4];
    CHECK(event(r, words, message(words, 3, 0, 1, 7u)));
    CHECK_EQ(message_word(last_message(&r->to_client), 0), WIRE_MAX_OBJECTS - 1);
    CHECK(event(r, words, message(words, 1, 1, 1, 3u)));
    CHECK_EQ(message_word(last_message(&r->to_client), 2), WIRE_MAX_OBJECTS - 1);
    CHECK_EQ(relay_host_id(&r->client, WIRE_MAX_OBJECTS - 1), 0);
    CHECK_EQ(relay_client_id(&r->client, 3), 0);
    /* Past the range: refused, not allocated for. */
    CHECK(!request(r, 1, WL_DISPLAY_SYNC, 1, WIRE_MAX_OBJECTS));
    CHECK(strstr(r->error, "too many objects") != NULL);
    finish(r);
}
