/*
 * Passing fds over a UNIX socket: one SCM_RIGHTS control message with room for as many fds as
 * one message carries here (cross-domain's and Wayland's 28, with some to spare for tests
 * that pass too many on purpose). Header-only, so neep-wl in the guest uses it too.
 */
#ifndef NEEP_UTIL_FD_PASSING_H
#define NEEP_UTIL_FD_PASSING_H

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FD_PASSING_MAX_FDS 32u

union fd_passing_control {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(FD_PASSING_MAX_FDS * sizeof(int))];
};

/* Attaches `fd_count` fds (at most FD_PASSING_MAX_FDS) to `msg`, in `control`; none leaves
 * `msg` without a control message. */
static inline void fd_passing_attach(struct msghdr *msg, union fd_passing_control *control,
                                     const int *fds, uint32_t fd_count)
{
    if (fd_count == 0 || fd_count > FD_PASSING_MAX_FDS) {
        msg->msg_control = NULL;
        msg->msg_controllen = 0;
        return;
    }
    memset(control, 0, sizeof(*control));
    msg->msg_control = control->bytes;
    msg->msg_controllen = CMSG_SPACE(fd_count * sizeof(int));
    struct cmsghdr *header = CMSG_FIRSTHDR(msg);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(fd_count * sizeof(int));
    memcpy(CMSG_DATA(header), fds, fd_count * sizeof(int));
}

/* The first fd a received `msg` carries (-1 if none); the others are closed, so none leaks. */
static inline int fd_passing_take_first(struct msghdr *msg)
{
    int first = -1;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(msg); header; header = CMSG_NXTHDR(msg, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
            if (first < 0) {
                first = fd;
            } else {
                close(fd);
            }
        }
    }
    return first;
}

#endif
