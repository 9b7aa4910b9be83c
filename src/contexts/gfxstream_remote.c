/*
 * gfxstream's backend, in the server process neep starts for it (src/gfxstream_server/): the
 * server's life and the sockets of gfxstream_protocol.h. Calls go one at a time on the calls
 * socket; fences and log lines come as events, read by a thread of neep's. The backend's API on
 * top of this is gfxstream_remote_api.c's.
 *
 * A server that dies, or leaves a call unanswered for NEEP_GFXSTREAM_TIMEOUT_MS (then neep
 * kills it), is lost: every later call fails at once and the owner hears of it (its contexts'
 * fences complete, their later work is refused). The embedder's thread waits at most that
 * long on any call.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gfxstream_internal.h"
#include "gfxstream_protocol.h"
#include "util/fd_passing.h"

extern char **environ;

#ifndef NEEP_GFXSTREAM_SERVER_PATH
#define NEEP_GFXSTREAM_SERVER_PATH "/usr/libexec/neep-gfxstream-server"
#endif
#define DEFAULT_TIMEOUT_MS 5000u

static struct {
    pthread_mutex_t call_lock; /* one call at a time */
    pthread_mutex_t pid_lock;  /* signals to the server against its reaping */
    pid_t pid;                 /* the server, also its process group; 0 when none */
    bool reaped;               /* its pid (and group id) may name another process now */
    int call_fd;
    int event_fd;
    int output_fd; /* the server's standard output and error, read here */
    char output_line[GFXSTREAM_MAX_LOG_BYTES];
    size_t output_bytes;
    pthread_t event_thread;
    bool event_thread_running;
    atomic_bool lost;
    atomic_bool stopping;
    uint32_t timeout_ms;
    uint64_t window_start_ms; /* see charge_wait */
    uint64_t window_waited_ms;
    const struct gfxstream_remote_events *events;
} remote = {
    .call_lock = PTHREAD_MUTEX_INITIALIZER,
    .pid_lock = PTHREAD_MUTEX_INITIALIZER,
    .call_fd = -1,
    .event_fd = -1,
    .output_fd = -1,
};

static uint64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

static uint32_t timeout_from_environment(const char *name, uint32_t fallback_ms)
{
    const char *text = getenv(name);
    char *end = NULL;
    unsigned long ms = text && *text ? strtoul(text, &end, 10) : 0;
    return end && *end == '\0' && ms >= 100 && ms <= 600000 ? (uint32_t)ms : fallback_ms;
}

bool gfxstream_remote_lost(void)
{
    return atomic_load(&remote.lost);
}

/* Kills the server's process group, unless it was reaped (its id may be another's by now). */
static void kill_server(void)
{
    pthread_mutex_lock(&remote.pid_lock);
    if (remote.pid > 0 && !remote.reaped) {
        kill(-remote.pid, SIGKILL);
    }
    pthread_mutex_unlock(&remote.pid_lock);
}

/* Waits for the server to end (after kill_server), then reaps it. */
static int reap_server(void)
{
    int status = 0;
    siginfo_t info;
    while (remote.pid > 0 && waitid(P_PID, (id_t)remote.pid, &info, WEXITED | WNOWAIT) < 0 &&
           errno == EINTR) {
    }
    pthread_mutex_lock(&remote.pid_lock);
    while (remote.pid > 0 && !remote.reaped && waitpid(remote.pid, &status, 0) < 0 &&
           errno == EINTR) {
    }
    remote.reaped = true;
    pthread_mutex_unlock(&remote.pid_lock);
    return status;
}

/* The server is lost (once): killed with its children, the owner told why. */
static void lose(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void lose(const char *format, ...)
{
    if (atomic_exchange(&remote.lost, true)) {
        return;
    }
    kill_server();
    if (atomic_load(&remote.stopping)) {
        return;
    }
    char why[256];
    va_list args;
    va_start(args, format);
    vsnprintf(why, sizeof(why), format, args);
    va_end(args);
    remote.events->lost(why);
}

/* ---- events ------------------------------------------------------------------------------- */

/* Reads one event and hands it on; false when the server is gone. The server's own lines
 * count as the host's only while it starts (the calling thread reads them then): later ones
 * are about what a guest asked for, and go to the guest's rate-limited log. */
static bool serve_event(int flags, bool starting)
{
    struct gfxstream_event event;
    ssize_t got;
    do {
        got = recv(remote.event_fd, &event, sizeof(event), flags);
    } while (got < 0 && errno == EINTR);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return true;
    }
    if (got <= 0) {
        return false;
    }
    if ((size_t)got != sizeof(event)) {
        return true; /* not the server's */
    }
    if (event.type == GFXSTREAM_EVENT_FENCE) {
        remote.events->fence(&event.fence);
    } else if (event.type == GFXSTREAM_EVENT_LOG) {
        event.text[sizeof(event.text) - 1] = '\0';
        remote.events->log(event.level & ~GFXSTREAM_LOG_FROM_SERVER,
                           starting && (event.level & GFXSTREAM_LOG_FROM_SERVER), event.text);
    }
    return true;
}

/* Hands on what the server wrote to its standard output and error (its driver's and its
 * sanitizers' lines), a line at a time; false at its end. The server writes into a pipe rather
 * than the VMM's terminal or log file, which it could otherwise take over or truncate. */
static bool drain_output(bool starting)
{
    for (;;) {
        size_t room = sizeof(remote.output_line) - 1 - remote.output_bytes;
        ssize_t got = read(remote.output_fd, remote.output_line + remote.output_bytes, room);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got > 0) {
            remote.output_bytes += (size_t)got;
        }
        char *start = remote.output_line;
        char *end = start + remote.output_bytes;
        for (char *newline; (newline = memchr(start, '\n', (size_t)(end - start)));) {
            *newline = '\0';
            remote.events->log(GFXSTREAM_DEBUG_ERROR, starting, start);
            start = newline + 1;
        }
        /* A line as long as the buffer, or the last one, goes as it is. */
        bool full =
            start == remote.output_line && remote.output_bytes == sizeof(remote.output_line) - 1;
        if ((got == 0 || full) && start < end) {
            *end = '\0';
            remote.events->log(GFXSTREAM_DEBUG_ERROR, starting, start);
            start = end;
        }
        remote.output_bytes = (size_t)(end - start);
        memmove(remote.output_line, start, remote.output_bytes);
        if (got <= 0) {
            return got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        }
    }
}

static void *event_loop(void *unused)
{
    (void)unused;
    bool output_open = remote.output_fd >= 0;
    for (;;) {
        struct pollfd ready[2] = {{.fd = remote.event_fd, .events = POLLIN},
                                  {.fd = remote.output_fd, .events = POLLIN}};
        if (poll(ready, output_open ? 2 : 1, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (output_open && ready[1].revents) {
            output_open = drain_output(false);
        }
        if (ready[0].revents && !serve_event(MSG_DONTWAIT, false)) {
            break;
        }
    }
    /* The server is gone (or closed its end: then it goes now). */
    kill_server();
    int status = reap_server();
    pid_t pid = remote.pid;
    if (WIFSIGNALED(status)) {
        lose("the gfxstream server (pid %d) was killed by signal %d", (int)pid, WTERMSIG(status));
    } else {
        lose("the gfxstream server (pid %d) ended (status %d)", (int)pid, WEXITSTATUS(status));
    }
    return NULL;
}

/* ---- calls -------------------------------------------------------------------------------- */

/* Sends `call` (with `fd_in` when >= 0) and waits for its reply in `reply`, its fd (if any) in
 * *fd_out. The server's return value, or -ENODEV when the server is lost. Caller holds
 * call_lock. */
static int call_locked(struct gfxstream_call *call, int fd_in, struct gfxstream_reply *reply,
                       size_t *reply_bytes, int *fd_out, uint32_t timeout_ms)
{
    /* Before the event thread runs (START), this thread reads the events meanwhile, so that
     * what the server says while starting is in the log when the call returns. */
    bool serve_events = !remote.event_thread_running;
    if (fd_out) {
        *fd_out = -1;
    }
    if (atomic_load(&remote.lost) || remote.call_fd < 0) {
        return -ENODEV;
    }
    union fd_passing_control control;
    struct iovec iov = {.iov_base = call, .iov_len = sizeof(*call)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    fd_passing_attach(&msg, &control, &fd_in, fd_in >= 0 ? 1 : 0);
    uint64_t deadline_ms = now_ms() + timeout_ms;
    /* Calls without a reply queue up in the socket while the server works: when it is full,
     * this waits for room, as long as for a reply. */
    for (;;) {
        ssize_t sent = sendmsg(remote.call_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent == (ssize_t)sizeof(*call)) {
            break;
        }
        if (sent < 0 && errno == EINTR) {
            continue;
        }
        uint64_t now = now_ms();
        struct pollfd room = {.fd = remote.call_fd, .events = POLLOUT};
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && now < deadline_ms &&
            (poll(&room, 1, (int)(deadline_ms - now)) >= 0 || errno == EINTR)) {
            continue;
        }
        if (now >= deadline_ms) {
            lose("the gfxstream server took no call for %u ms (NEEP_GFXSTREAM_TIMEOUT_MS): neep "
                 "killed it",
                 timeout_ms);
        } else {
            lose("a call to the gfxstream server failed (%s)", strerror(errno));
        }
        return -ENODEV;
    }
    if (call->op & GFXSTREAM_CALL_NO_REPLY) {
        return 0;
    }
    for (;;) {
        uint64_t now = now_ms();
        struct pollfd ready[2] = {{.fd = remote.call_fd, .events = POLLIN},
                                  {.fd = remote.event_fd, .events = POLLIN}};
        int count =
            now < deadline_ms ? poll(ready, serve_events ? 2 : 1, (int)(deadline_ms - now)) : 0;
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count > 0 && serve_events && ready[1].revents && !(ready[0].revents & POLLIN)) {
            serve_event(MSG_DONTWAIT, true);
            continue;
        }
        if (count == 0) {
            lose(
                "the gfxstream server left call %u unanswered for %u ms (NEEP_GFXSTREAM_TIMEOUT_MS)"
                ": neep killed it",
                call->op, timeout_ms);
            return -ENODEV;
        }
        if (count < 0) {
            lose("waiting for the gfxstream server failed (%s)", strerror(errno));
            return -ENODEV;
        }
        break;
    }
    struct iovec reply_iov = {.iov_base = reply, .iov_len = sizeof(*reply)};
    struct msghdr reply_msg = {.msg_iov = &reply_iov,
                               .msg_iovlen = 1,
                               .msg_control = control.bytes,
                               .msg_controllen = sizeof(control.bytes)};
    ssize_t got;
    do {
        got = recvmsg(remote.call_fd, &reply_msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (got < 0 && errno == EINTR);
    /* A message of no bytes (SEQPACKET has them) may still carry fds: take them. */
    int received = got >= 0 ? fd_passing_take_first(&reply_msg) : -1;
    if (received >= 0 && !fd_out) {
        close(received);
        received = -1;
    }
    if (got < (ssize_t)GFXSTREAM_REPLY_HEADER_BYTES || reply->op != call->op ||
        (reply_msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        if (received >= 0) {
            close(received);
        }
        lose(got <= 0 ? "the gfxstream server closed its socket"
                      : "the gfxstream server answered call %u out of turn",
             call->op);
        return -ENODEV;
    }
    for (struct pollfd pending = {.fd = remote.event_fd, .events = POLLIN};
         serve_events && poll(&pending, 1, 0) == 1 && serve_event(MSG_DONTWAIT, true);) {
    }
    if (reply_bytes) {
        *reply_bytes = (size_t)got;
    }
    if (fd_out) {
        *fd_out = received;
    }
    return reply->ret;
}

/*
 * Each call waits at most the timeout; a server that answers each just before it would still
 * hold the embedder's thread most of the time. So what calls wait beyond SLOW_CALL_MS each is
 * also counted over a window of WAIT_WINDOW_MS: more than the timeout in all, and the server is
 * lost as if it had hung. (Ordinary calls take microseconds; a context's end, waiting for its
 * render threads, milliseconds.) Caller holds call_lock.
 */
#define SLOW_CALL_MS   100u
#define WAIT_WINDOW_MS 60000u
static void charge_wait(uint64_t started_ms)
{
    uint64_t now = now_ms();
    if (now - remote.window_start_ms > WAIT_WINDOW_MS) {
        remote.window_start_ms = now;
        remote.window_waited_ms = 0;
    }
    if (now - started_ms > SLOW_CALL_MS) {
        remote.window_waited_ms += now - started_ms - SLOW_CALL_MS;
    }
    if (remote.window_waited_ms > remote.timeout_ms) {
        lose("the gfxstream server kept neep waiting %llu ms (beyond %u ms a call) within %u s "
             "(NEEP_GFXSTREAM_TIMEOUT_MS): neep killed it",
             (unsigned long long)remote.window_waited_ms, SLOW_CALL_MS, WAIT_WINDOW_MS / 1000);
    }
}

int gfxstream_remote_call(struct gfxstream_call *call, int fd_in, struct gfxstream_reply *reply,
                          size_t *reply_bytes, int *fd_out)
{
    static struct gfxstream_reply scratch; /* under call_lock */
    pthread_mutex_lock(&remote.call_lock);
    uint64_t started_ms = now_ms();
    int ret =
        call_locked(call, fd_in, reply ? reply : &scratch, reply_bytes, fd_out, remote.timeout_ms);
    charge_wait(started_ms);
    pthread_mutex_unlock(&remote.call_lock);
    return ret;
}

/* ---- the server's life ---------------------------------------------------------------------- */

int (*gfxstream_remote_spawn_hook)(int call_fd, int event_fd);

/* An fd above the ones the server is given, close-on-exec. */
static int move_above_server_fds(int fd)
{
    if (fd > GFXSTREAM_SERVER_EVENT_FD) {
        return fd;
    }
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, GFXSTREAM_SERVER_EVENT_FD + 1);
    close(fd);
    return moved;
}

static int spawn_server(int call_fd, int event_fd, int output_fd)
{
    const char *path = getenv("NEEP_GFXSTREAM_SERVER");
    if (!path || !*path) {
        path = NEEP_GFXSTREAM_SERVER_PATH;
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attributes);
    posix_spawn_file_actions_adddup2(&actions, call_fd, GFXSTREAM_SERVER_CALL_FD);
    posix_spawn_file_actions_adddup2(&actions, event_fd, GFXSTREAM_SERVER_EVENT_FD);
    /* Nothing of the VMM's terminal or log: no input, output into a pipe read here. */
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, output_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, output_fd, STDERR_FILENO);
    /* A session and process group of its own (its probe children with it), no controlling
     * terminal, no signal blocked or caught. */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {(char *)"neep-gfxstream-server", NULL};
    pid_t pid = 0;
    int ret = posix_spawn(&pid, path, &actions, &attributes, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (ret != 0) {
        char line[GFXSTREAM_MAX_LOG_BYTES];
        snprintf(line, sizeof(line),
                 "gfxstream: cannot start %s (%s): the gfxstream capsets are absent "
                 "(NEEP_GFXSTREAM_SERVER names the program)",
                 path, strerror(ret));
        remote.events->log(GFXSTREAM_DEBUG_WARN, true, line);
        return -ELIBACC;
    }
    remote.pid = pid;
    remote.reaped = false;
    return 0;
}

void gfxstream_remote_stop(void)
{
    bool started = remote.event_thread_running;
    atomic_store(&remote.stopping, true);
    kill_server();
    /* The event thread ends now, whatever the server's end of its socket does. */
    for (int *fd = &remote.call_fd; fd <= &remote.event_fd; fd++) {
        if (*fd >= 0) {
            shutdown(*fd, SHUT_RDWR);
        }
    }
    if (remote.event_thread_running) {
        pthread_join(remote.event_thread, NULL); /* it reaps the server */
        remote.event_thread_running = false;
    } else {
        reap_server();
    }
    remote.pid = 0;
    for (int *fd = &remote.call_fd; fd <= &remote.event_fd; fd++) {
        if (*fd >= 0) {
            close(*fd);
            *fd = -1;
        }
    }
    /* Its last words: why it did not start, or what it said as it went. */
    if (remote.output_fd >= 0) {
        drain_output(!started);
        close(remote.output_fd);
        remote.output_fd = -1;
        remote.output_bytes = 0;
    }
    gfxstream_remote_resources_end();
}

int gfxstream_remote_start(uint32_t flags, const struct gfxstream_remote_events *events, bool probe,
                           uint64_t *usable_formats)
{
    remote.events = events;
    remote.timeout_ms = timeout_from_environment("NEEP_GFXSTREAM_TIMEOUT_MS", DEFAULT_TIMEOUT_MS);
    remote.window_start_ms = now_ms();
    remote.window_waited_ms = 0;
    uint32_t probe_timeout_ms =
        timeout_from_environment("NEEP_GFXSTREAM_PROBE_TIMEOUT_MS", GFXSTREAM_PROBE_TIMEOUT_MS);
    atomic_store(&remote.lost, false);
    atomic_store(&remote.stopping, false);
    gfxstream_remote_resources_begin();
    int calls[2], event_pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, calls) < 0) {
        return -errno;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, event_pair) < 0) {
        int error = errno;
        close(calls[0]);
        close(calls[1]);
        return -error;
    }
    for (int i = 0; i < 2; i++) {
        calls[i] = move_above_server_fds(calls[i]);
        event_pair[i] = move_above_server_fds(event_pair[i]);
    }
    remote.call_fd = calls[0];
    remote.event_fd = event_pair[0];
    int output[2] = {-1, -1};
    int ret = 0;
    if (!gfxstream_remote_spawn_hook) {
        ret = pipe2(output, O_CLOEXEC) < 0 ? -errno : 0;
        for (int i = 0; ret == 0 && i < 2; i++) {
            output[i] = move_above_server_fds(output[i]);
        }
        remote.output_fd = output[0];
        if (ret == 0) {
            /* Room for what it says while it starts, read only after. */
            fcntl(output[0], F_SETFL, O_NONBLOCK);
            fcntl(output[0], F_SETPIPE_SZ, 256 << 10);
        }
    }
    if (ret == 0) {
        ret = gfxstream_remote_spawn_hook ? gfxstream_remote_spawn_hook(calls[1], event_pair[1])
                                          : spawn_server(calls[1], event_pair[1], output[1]);
    }
    close(calls[1]);
    close(event_pair[1]);
    if (output[1] >= 0) {
        close(output[1]);
    }
    if (ret == 0) {
        /* Its probe tries the init, then an image of each format, each in a child that may
         * hang until the probe timeout; without the probe, the init alone. */
        struct gfxstream_call request = {.op = GFXSTREAM_CALL_START};
        request.u.start.flags = flags;
        request.u.start.probe_timeout_ms = probe_timeout_ms;
        request.u.start.skip_probe = !probe;
        uint32_t probe_runs = probe ? gfxstream_format_count + 2 : 1;
        static struct gfxstream_reply reply;
        pthread_mutex_lock(&remote.call_lock);
        ret = call_locked(&request, -1, &reply, NULL, NULL,
                          probe_timeout_ms * probe_runs + remote.timeout_ms);
        *usable_formats = probe ? reply.value64 : 0;
        pthread_mutex_unlock(&remote.call_lock);
    }
    if (ret == 0) {
        ret = pthread_create(&remote.event_thread, NULL, event_loop, NULL) == 0 ? 0 : -EAGAIN;
        remote.event_thread_running = ret == 0;
    }
    if (ret != 0) {
        gfxstream_remote_stop();
        return ret == -ELIBACC || ret == -ELIBBAD || ret == -ETIMEDOUT ? ret : -ENODEV;
    }
    return 0;
}
