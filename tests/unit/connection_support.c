/* One whole neep-wl connection, driven by a test (see connection_support.h). */
#include "connection_support.h"

#include "../../src/util/fd_passing.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

bool connection_open(struct test_connection *connection)
{
    fake_host_reset();
    memset(connection, 0, sizeof(*connection));
    connection->peer_fd = -1;
    connection->proxy.render_node = "fake";
    connection->proxy.listener_fd = -1;
    connection->proxy.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    int ends[2];
    if (connection->proxy.epoll_fd < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) < 0) {
        return false;
    }
    connection->peer_fd = ends[0];
    connection->client = proxy_client_create(&connection->proxy, ends[1]);
    return connection->client != NULL;
}

bool connection_pump(struct test_connection *connection, uint32_t max_rounds)
{
    for (uint32_t round = 0; round < max_rounds; round++) {
        struct epoll_event events[32];
        int count = epoll_wait(connection->proxy.epoll_fd, events, 32, 0);
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count <= 0) {
            return true;
        }
        for (int i = 0; i < count; i++) {
            struct watch *watch = events[i].data.ptr;
            if (watch->kind == WATCH_DEAD || watch->kind == WATCH_LISTENER) {
                continue;
            }
            /* False only when it destroyed the connection (the only one). */
            if (!proxy_client_handle(watch->client, watch, events[i].events)) {
                connection->client = NULL;
            }
        }
        proxy_collect_garbage(&connection->proxy);
    }
    return false;
}

void connection_close(struct test_connection *connection)
{
    if (connection->client) {
        proxy_client_destroy(connection->client);
        connection->client = NULL;
    }
    proxy_collect_garbage(&connection->proxy);
    free(connection->proxy.garbage);
    connection->proxy.garbage = NULL;
    connection->proxy.garbage_capacity = 0;
    if (connection->proxy.epoll_fd >= 0) {
        close(connection->proxy.epoll_fd);
    }
    if (connection->peer_fd >= 0) {
        close(connection->peer_fd);
    }
    connection->proxy.epoll_fd = connection->peer_fd = -1;
}

bool connection_send(struct test_connection *connection, const void *bytes, size_t size,
                     const int *fds, uint32_t fd_count)
{
    if (fd_count > CONNECTION_MAX_FDS) {
        return false;
    }
    struct iovec iov = {(void *)bytes, size};
    union fd_passing_control control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    fd_passing_attach(&msg, &control, fds, (uint32_t)fd_count);
    ssize_t sent;
    do {
        sent = sendmsg(connection->peer_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent == (ssize_t)size;
}

size_t connection_read(struct test_connection *connection, uint8_t *bytes, size_t size, int *fds,
                       uint32_t *fd_count)
{
    *fd_count = 0;
    struct iovec iov = {bytes, size};
    union {
        struct cmsghdr align;
        char buffer[CMSG_SPACE(CONNECTION_MAX_FDS * sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buffer,
                         .msg_controllen = sizeof(control.buffer)};
    ssize_t got;
    do {
        got = recvmsg(connection->peer_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); got >= 0 && c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*fd_count < CONNECTION_MAX_FDS) {
                fds[(*fd_count)++] = fd;
            } else {
                close(fd);
            }
        }
    }
    return got > 0 ? (size_t)got : 0;
}
