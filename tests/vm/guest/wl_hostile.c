/*
 * A hostile Wayland client for neep-wl (static, raw wire format): each case opens its own
 * connection, misbehaves once, and prints what came back:
 *   "NEEP: hostile CASE error OBJECT CODE MESSAGE" for a wl_display.error, or
 *   "NEEP: hostile CASE closed" if the connection ended without one.
 * neep-wl must answer every case with an error to that client alone and keep serving.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int connect_proxy(void)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s/wayland-0", getenv("XDG_RUNTIME_DIR"));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        printf("NEEP: hostile-fail connect (%s)\n", strerror(errno));
        exit(1);
    }
    return fd;
}

/* Sends words, with an fd if fd >= 0. */
static void send_words(int sock, const uint32_t *words, size_t count, int fd)
{
    struct iovec iov = {(void *)words, count * 4};
    union {
        struct cmsghdr align;
        char buffer[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        msg.msg_control = control.buffer;
        msg.msg_controllen = sizeof(control.buffer);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
        printf("NEEP: hostile-fail send (%s)\n", strerror(errno));
    }
}

#define MSG(object, opcode, words) ((object)), ((uint32_t)(8 + 4 * (words)) << 16 | (opcode))

/* Reads the connection message by message until `handle` returns nonzero (then 1), the
 * connection ends (0) or nothing comes for 20 s (-1). */
static int read_events(int sock, int (*handle)(const uint8_t *message, uint32_t size, void *data),
                       void *data)
{
    static uint8_t buffer[65536];
    size_t have = 0;
    for (;;) {
        struct pollfd pfd = {.fd = sock, .events = POLLIN};
        if (poll(&pfd, 1, 20000) != 1) {
            return -1;
        }
        ssize_t got = recv(sock, buffer + have, sizeof(buffer) - have, 0);
        if (got <= 0) {
            return 0;
        }
        have += (size_t)got;
        size_t pos = 0;
        while (have - pos >= 8) {
            uint32_t header[2];
            memcpy(header, buffer + pos, 8);
            uint32_t size = header[1] >> 16;
            if (size < 8 || have - pos < size) {
                break;
            }
            if (handle(buffer + pos, size, data)) {
                return 1;
            }
            pos += size;
        }
        memmove(buffer, buffer + pos, have - pos);
        have -= pos;
    }
}

static int print_error(const uint8_t *message, uint32_t size, void *data)
{
    uint32_t header[2], args[3];
    memcpy(header, message, 8);
    if (header[0] != 1 || (header[1] & 0xffff) != 0 || size < 20) {
        return 0;
    }
    memcpy(args, message + 8, 12);
    printf("NEEP: hostile %s error %u %u %.*s\n", (const char *)data, args[0], args[1],
           (int)(size - 20), (const char *)message + 20);
    return 1;
}

/* Reads events until wl_display.error or the end of the connection. */
static void report(const char *name, int sock)
{
    int ended = read_events(sock, print_error, (void *)name);
    if (ended <= 0) {
        printf("NEEP: hostile %s %s\n", name, ended == 0 ? "closed" : "silent");
    }
    close(sock);
}

/* wl_display.get_registry as 2, then binds global `name` of `interface` as id 3. */
static void bind_global(int sock, uint32_t name, const char *interface, uint32_t version)
{
    uint32_t words[32] = {MSG(1, 1, 1), 2};
    send_words(sock, words, 3, -1);
    uint32_t length = (uint32_t)strlen(interface) + 1;
    uint32_t padded = (length + 3) / 4;
    uint32_t bind[32] = {MSG(2, 0, 4 + padded), name, length};
    memcpy(&bind[4], interface, length);
    bind[4 + padded] = version;
    bind[5 + padded] = 3;
    send_words(sock, bind, 6 + padded, -1);
}

struct global_search {
    const char *interface;
    uint32_t name;
};

static int match_global(const uint8_t *message, uint32_t size, void *data)
{
    struct global_search *search = data;
    uint32_t object;
    memcpy(&object, message, 4);
    if (object == 2 && size > 16 && strcmp((const char *)message + 16, search->interface) == 0) {
        memcpy(&search->name, message + 8, 4);
    }
    return object == 3; /* the sync's callback: every global has been seen */
}

/* The registry name of `interface`, from a throwaway connection. */
static uint32_t find_global(const char *interface)
{
    int sock = connect_proxy();
    uint32_t words[] = {MSG(1, 1, 1), 2, MSG(1, 0, 1), 3};
    send_words(sock, words, sizeof(words) / 4, -1);
    struct global_search search = {interface, 0};
    read_events(sock, match_global, &search);
    close(sock);
    return search.name;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int sock;

    sock = connect_proxy(); /* a size below the header */
    uint32_t tiny[] = {1, 4u << 16};
    send_words(sock, tiny, 2, -1);
    report("tiny-size", sock);

    sock = connect_proxy(); /* an object that does not exist */
    uint32_t ghost[] = {MSG(77, 0, 1), 4};
    send_words(sock, ghost, 3, -1);
    report("unknown-object", sock);

    sock = connect_proxy(); /* an opcode wl_display does not have */
    uint32_t opcode[] = {MSG(1, 9, 0)};
    send_words(sock, opcode, 2, -1);
    report("unknown-opcode", sock);

    sock = connect_proxy(); /* a string that runs past its message */
    uint32_t string[] = {MSG(1, 1, 1), 2, MSG(2, 0, 4), 1, 200, 0x41414141, 3};
    send_words(sock, string, 9, -1);
    report("long-string", sock);

    sock = connect_proxy(); /* binding an interface neep-wl hides */
    bind_global(sock, 1, "zwp_linux_dmabuf_v1", 3);
    report("hidden-interface", sock);

    sock = connect_proxy(); /* an object id far past any table */
    uint32_t far[] = {MSG(1, 1, 1), 0x00fffff0u};
    send_words(sock, far, 3, -1);
    report("far-id", sock);

    sock = connect_proxy(); /* a compositor-range object id from the client */
    uint32_t server_range[] = {MSG(0xff000005u, 0, 0)};
    send_words(sock, server_range, 2, -1);
    report("server-range-object", sock);

    uint32_t shm_name = find_global("wl_shm");
    int memfd = memfd_create("hostile", MFD_CLOEXEC);
    if (ftruncate(memfd, 65536) < 0) {
        return 1;
    }

    sock = connect_proxy(); /* create_pool without its fd */
    bind_global(sock, shm_name, "wl_shm", 1);
    uint32_t no_fd[] = {MSG(3, 0, 2), 4, 65536};
    send_words(sock, no_fd, 4, -1);
    report("missing-fd", sock);

    sock = connect_proxy(); /* a buffer past the end of its pool */
    bind_global(sock, shm_name, "wl_shm", 1);
    uint32_t pool[] = {MSG(3, 0, 2), 4, 65536};
    send_words(sock, pool, 4, memfd);
    uint32_t past_end[] = {MSG(4, 0, 6), 5, 4096, 128, 128, 512, 1};
    send_words(sock, past_end, 8, -1);
    report("buffer-past-pool", sock);

    sock = connect_proxy(); /* a stride shorter than a row */
    bind_global(sock, shm_name, "wl_shm", 1);
    send_words(sock, pool, 4, memfd);
    uint32_t short_stride[] = {MSG(4, 0, 6), 5, 0, 64, 64, 100, 1};
    send_words(sock, short_stride, 8, -1);
    report("short-stride", sock);

    sock = connect_proxy(); /* a pool that shrinks under the proxy before a commit */
    bind_global(sock, find_global("wl_compositor"), "wl_compositor", 4);
    /* wl_compositor is 3, wl_shm 4 (ids stay dense, as compositors insist). */
    uint32_t bind_shm[32] = {MSG(2, 0, 6), shm_name, 7};
    memcpy(&bind_shm[4], "wl_shm\0", 8);
    bind_shm[6] = 1;
    bind_shm[7] = 4;
    send_words(sock, bind_shm, 8, -1);
    int shrinking = memfd_create("shrinking", MFD_CLOEXEC);
    if (ftruncate(shrinking, 65536) < 0) {
        return 1;
    }
    uint32_t steps[] = {
        MSG(3, 0, 1), 5,                        /* wl_compositor.create_surface -> 5 */
        MSG(4, 0, 2), 6, 65536,                 /* wl_shm.create_pool -> 6 (fd) */
        MSG(6, 0, 6), 7, 0,     64, 64, 256, 1, /* create_buffer -> 7 */
        MSG(5, 1, 3), 7, 0,     0,              /* wl_surface.attach */
        MSG(5, 9, 4), 0, 0,     64, 64,         /* damage_buffer */
    };
    send_words(sock, steps, 3, -1);
    send_words(sock, steps + 3, 4, shrinking); /* the fd goes with create_pool */
    send_words(sock, steps + 7, sizeof(steps) / 4 - 7, -1);
    usleep(200000);
    if (ftruncate(shrinking, 0) < 0) {
        return 1;
    }
    uint32_t commit[] = {MSG(5, 6, 0)};
    send_words(sock, commit, 2, -1);
    report("shrunk-pool", sock);

    printf("NEEP: hostile-done\n");
    return 0;
}
