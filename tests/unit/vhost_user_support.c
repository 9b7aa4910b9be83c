#include "vhost_user_support.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

void vu_test_loop_init(struct vu_test_loop *loop)
{
    for (int i = 0; i < VU_TEST_MAX_WATCHES; i++) {
        loop->watches[i] = (struct vu_test_watch){-1, NULL, NULL, false};
    }
    loop->changes = 0;
}

static int watch(struct vu_test_loop *loop, int fd, vu_ready_fn ready, void *arg, bool writable)
{
    for (int i = 0; i < VU_TEST_MAX_WATCHES; i++) {
        if (loop->watches[i].fd < 0) {
            loop->watches[i] = (struct vu_test_watch){fd, ready, arg, writable};
            loop->changes++;
            return 0;
        }
    }
    return -ENOSPC;
}

static int watch_add(void *user_data, int fd, vu_ready_fn ready, void *arg)
{
    return watch(user_data, fd, ready, arg, false);
}

static int watch_add_writable(void *user_data, int fd, vu_ready_fn ready, void *arg)
{
    return watch(user_data, fd, ready, arg, true);
}

static void watch_remove(void *user_data, int fd)
{
    struct vu_test_loop *loop = user_data;
    for (int i = 0; i < VU_TEST_MAX_WATCHES; i++) {
        if (loop->watches[i].fd == fd) {
            loop->watches[i] = (struct vu_test_watch){-1, NULL, NULL, false};
            loop->changes++;
        }
    }
}

const struct vu_watch_ops vu_test_watch_ops = {watch_add, watch_add_writable, watch_remove};

bool vu_test_loop_watches(const struct vu_test_loop *loop, int fd)
{
    for (int i = 0; i < VU_TEST_MAX_WATCHES; i++) {
        if (loop->watches[i].fd == fd && fd >= 0) {
            return true;
        }
    }
    return false;
}

int vu_test_loop_run(struct vu_test_loop *loop)
{
    int calls = 0;
    for (int round = 0; round < 64; round++) {
        struct pollfd polled[VU_TEST_MAX_WATCHES];
        struct vu_test_watch snapshot[VU_TEST_MAX_WATCHES];
        nfds_t count = 0;
        for (int i = 0; i < VU_TEST_MAX_WATCHES; i++) {
            if (loop->watches[i].fd >= 0) {
                snapshot[count] = loop->watches[i];
                polled[count] =
                    (struct pollfd){.fd = loop->watches[i].fd,
                                    .events = loop->watches[i].writable ? POLLOUT : POLLIN};
                count++;
            }
        }
        if (count == 0 || poll(polled, count, 0) <= 0) {
            break;
        }
        uint64_t changes_at_poll = loop->changes;
        for (nfds_t i = 0; i < count; i++) {
            if (!polled[i].revents) {
                continue;
            }
            /* A callback may have removed (or replaced) a later watch meanwhile; looked up only
             * then, as the fuzz target runs this loop for every message. */
            bool still_watched = loop->changes == changes_at_poll;
            for (int j = 0; !still_watched && j < VU_TEST_MAX_WATCHES; j++) {
                const struct vu_test_watch *w = &loop->watches[j];
                still_watched = w->fd == snapshot[i].fd && w->ready == snapshot[i].ready &&
                                w->arg == snapshot[i].arg;
            }
            if (still_watched) {
                snapshot[i].ready(snapshot[i].arg);
                calls++;
            }
        }
    }
    return calls;
}

int vu_test_frontend_init(struct vu_test_frontend *f, const struct vu_backend_config *config)
{
    memset(f, 0, sizeof(*f));
    vu_test_loop_init(&f->loop);
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
        return -errno;
    }
    f->socket_fd = pair[0];
    struct vu_backend_config with_loop = *config;
    with_loop.watch = &vu_test_watch_ops;
    with_loop.watch_user_data = &f->loop;
    int ret = vu_backend_create(&with_loop, pair[1], &f->backend);
    if (ret < 0) {
        close(f->socket_fd);
        f->socket_fd = -1;
    }
    return ret;
}

void vu_test_frontend_finish(struct vu_test_frontend *f)
{
    vu_backend_destroy(f->backend);
    f->backend = NULL;
    if (f->socket_fd >= 0) {
        close(f->socket_fd);
    }
    f->socket_fd = -1;
}

bool vu_test_send(struct vu_test_frontend *f, uint32_t request, uint32_t flags, const void *payload,
                  uint32_t size, const int *fds, int fd_count)
{
    struct vu_header header = {request, flags, size};
    struct iovec iov[2] = {{&header, sizeof(header)}, {(void *)payload, size}};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = size ? 2 : 1};
    if (fd_count > 0 && fd_count <= (int)VU_MAX_FDS) {
        msg.msg_control = &control;
        msg.msg_controllen = CMSG_SPACE((size_t)fd_count * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)fd_count * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)fd_count * sizeof(int));
    }
    ssize_t sent;
    do {
        sent = sendmsg(f->socket_fd, &msg, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent != (ssize_t)(sizeof(header) + size)) {
        return false;
    }
    vu_test_loop_run(&f->loop);
    return true;
}

bool vu_test_read_reply(struct vu_test_frontend *f, struct vu_header *header, void *payload,
                        uint32_t capacity)
{
    ssize_t got = recv(f->socket_fd, header, sizeof(*header), MSG_DONTWAIT);
    if (got != (ssize_t)sizeof(*header)) {
        return false;
    }
    /* The back-end writes a reply in one sendmsg: its payload is there already. */
    uint8_t discard[64];
    uint32_t left = header->size;
    uint8_t *dst = payload;
    while (left > 0) {
        uint32_t room = capacity > 0 ? capacity : (uint32_t)sizeof(discard);
        uint8_t *into = capacity > 0 ? dst : discard;
        size_t want = left < room ? left : room;
        got = recv(f->socket_fd, into, want, MSG_DONTWAIT);
        if (got <= 0) {
            return false;
        }
        left -= (uint32_t)got;
        if (capacity > 0) {
            dst += got;
            capacity -= (uint32_t)got;
        }
    }
    return true;
}

void vu_test_drain_replies(struct vu_test_frontend *f)
{
    struct vu_header header;
    while (vu_test_read_reply(f, &header, NULL, 0)) {
    }
}

int64_t vu_test_request(struct vu_test_frontend *f, uint32_t request, const void *payload,
                        uint32_t size, const int *fds, int fd_count)
{
    vu_test_drain_replies(f);
    if (!vu_test_send(f, request, VU_FLAG_VERSION | VU_FLAG_NEED_REPLY, payload, size, fds,
                      fd_count)) {
        return -1;
    }
    struct vu_header header;
    uint64_t value = 0;
    if (!vu_test_read_reply(f, &header, &value, sizeof(value)) || header.request != request ||
        header.size != sizeof(value)) {
        return -1;
    }
    return (int64_t)value;
}

int64_t vu_test_get_u64(struct vu_test_frontend *f, uint32_t request)
{
    vu_test_drain_replies(f);
    if (!vu_test_send(f, request, VU_FLAG_VERSION, NULL, 0, NULL, 0)) {
        return -1;
    }
    struct vu_header header;
    uint64_t value = 0;
    if (!vu_test_read_reply(f, &header, &value, sizeof(value)) || header.size != sizeof(value)) {
        return -1;
    }
    return (int64_t)value;
}

int vu_test_memfd(const char *name, size_t size_bytes)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, (off_t)size_bytes) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int vu_test_count_mappings(const char *name)
{
    char needle[128];
    snprintf(needle, sizeof(needle), "/memfd:%s ", name);
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps) {
        return -1;
    }
    char line[512];
    int count = 0;
    while (fgets(line, sizeof(line), maps)) {
        count += strstr(line, needle) != NULL;
    }
    fclose(maps);
    return count;
}
