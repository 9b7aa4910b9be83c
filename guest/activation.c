/*
 * systemd's socket activation, read by hand: neep-wl is static and links no libsystemd. The
 * protocol (sd_listen_fds(3)): LISTEN_PID names the process the fds are for, LISTEN_FDS counts
 * them, numbered from 3. The variables come from whoever started us, so every one is checked:
 * a hand-over meant for neep-wl that is malformed is refused, never guessed at.
 */
#include "activation.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define FIRST_PASSED_FD 3

/* A decimal number and nothing else; false for empty text, signs, spaces or overflow. */
static bool parse_decimal(const char *text, unsigned long max, unsigned long *value)
{
    if (!text || !*text) {
        return false;
    }
    unsigned long result = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9') {
            return false;
        }
        unsigned digit = (unsigned)(*c - '0');
        if (result > (max - digit) / 10) {
            return false;
        }
        result = result * 10 + digit;
    }
    *value = result;
    return true;
}

static int socket_option(int fd, int option)
{
    int value = -1;
    socklen_t size = sizeof(value);
    if (getsockopt(fd, SOL_SOCKET, option, &value, &size) < 0 || size != sizeof(value)) {
        return -1;
    }
    return value;
}

/* Whether fd 3 is what a .socket unit's ListenStream= gives: a listening Unix stream socket. */
static bool check_listener(int fd, char *error, size_t error_size)
{
    struct stat status;
    if (fstat(fd, &status) < 0) {
        snprintf(error, error_size, "fd %d is not open (%s)", fd, strerror(errno));
        return false;
    }
    if (!S_ISSOCK(status.st_mode)) {
        snprintf(error, error_size, "fd %d is not a socket", fd);
        return false;
    }
    if (socket_option(fd, SO_DOMAIN) != AF_UNIX || socket_option(fd, SO_TYPE) != SOCK_STREAM) {
        snprintf(error, error_size, "fd %d is not a Unix stream socket", fd);
        return false;
    }
    if (socket_option(fd, SO_ACCEPTCONN) != 1) {
        snprintf(error, error_size, "fd %d is a socket that is not listening", fd);
        return false;
    }
    struct sockaddr_un address = {0};
    socklen_t size = sizeof(address);
    if (getsockname(fd, (struct sockaddr *)&address, &size) < 0 ||
        size <= offsetof(struct sockaddr_un, sun_path) || address.sun_path[0] == '\0') {
        snprintf(error, error_size,
                 "fd %d is an unnamed or abstract socket: no path clients could find it by", fd);
        return false;
    }
    return true;
}

/* The name clients put in WAYLAND_DISPLAY (relative to XDG_RUNTIME_DIR, else the full path);
 * takes the socket's lock file as a compositor would. */
static void name_and_lock(int fd, char *display, size_t display_size)
{
    struct sockaddr_un address = {0};
    socklen_t size = sizeof(address);
    display[0] = '\0';
    if (getsockname(fd, (struct sockaddr *)&address, &size) < 0 ||
        size <= offsetof(struct sockaddr_un, sun_path) || address.sun_path[0] == '\0') {
        return; /* refused by check_listener already */
    }
    /* A path of the whole sun_path has no NUL, and the kernel then reports a length past the
     * structure: take at most what it holds. */
    size_t path_size = size - offsetof(struct sockaddr_un, sun_path);
    if (path_size > sizeof(address.sun_path)) {
        path_size = sizeof(address.sun_path);
    }
    char path[sizeof(address.sun_path) + 1];
    memcpy(path, address.sun_path, path_size);
    path[path_size] = '\0';
    /* The lock libwayland's compositors take beside their socket: held, a compositor that
     * starts later picks the next name instead of replacing systemd's socket. */
    char lock_path[sizeof(path) + 8];
    snprintf(lock_path, sizeof(lock_path), "%s.lock", path);
    int lock = open(lock_path, O_CREAT | O_CLOEXEC | O_RDWR, 0660);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "neep-wl: warning: cannot lock %s (%s); another compositor may take %s\n",
                lock_path, strerror(errno), path);
        if (lock >= 0) {
            close(lock);
        }
    } /* else the lock stays held until exit */
    const char *name = path;
    const char *runtime_dir = getenv("XDG_RUNTIME_DIR");
    size_t dir_length = runtime_dir ? strlen(runtime_dir) : 0;
    if (dir_length > 0 && strncmp(path, runtime_dir, dir_length) == 0 && path[dir_length] == '/') {
        name = path + dir_length + 1;
    }
    snprintf(display, display_size, "%s", name);
}

int activation_take_listener(char *display, size_t display_size, char *error, size_t error_size)
{
    const char *pid_text = getenv("LISTEN_PID");
    const char *count_text = getenv("LISTEN_FDS");
    if (!pid_text) {
        return ACTIVATION_NONE; /* as sd_listen_fds(3): without LISTEN_PID, nothing is ours */
    }
    unsigned long pid;
    if (!parse_decimal(pid_text, (unsigned long)INT32_MAX, &pid)) {
        snprintf(error, error_size, "LISTEN_PID=%.32s is not a process id", pid_text);
        return ACTIVATION_BAD;
    }
    if (pid != (unsigned long)getpid()) {
        return ACTIVATION_NONE; /* meant for a parent that let the variables through */
    }
    unsigned long count;
    if (!parse_decimal(count_text, (unsigned long)INT32_MAX, &count) || count != 1) {
        snprintf(error, error_size,
                 "LISTEN_FDS=%.32s: neep-wl takes exactly one listening socket "
                 "(one ListenStream= in its .socket unit)",
                 count_text ? count_text : "(unset)");
        return ACTIVATION_BAD;
    }
    if (!check_listener(FIRST_PASSED_FD, error, error_size)) {
        return ACTIVATION_BAD;
    }
    /* Ours now: not inherited by a program neep-wl runs, not blocking the event loop. */
    int flags = fcntl(FIRST_PASSED_FD, F_GETFL);
    if (flags < 0 || fcntl(FIRST_PASSED_FD, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(FIRST_PASSED_FD, F_SETFD, FD_CLOEXEC) < 0) {
        snprintf(error, error_size, "cannot set up fd %d (%s)", FIRST_PASSED_FD, strerror(errno));
        return ACTIVATION_BAD;
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    name_and_lock(FIRST_PASSED_FD, display, display_size);
    return FIRST_PASSED_FD;
}
