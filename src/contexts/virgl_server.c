/*
 * venus's render server, started and watched by neep: virglrenderer asks for a connection to
 * it (its get_server_fd callback), and neep spawns the server itself rather than letting the
 * library fork it unseen, so it knows the process and can tell when it dies. The server runs
 * the host's Vulkan driver: when it crashes, venus's contexts are lost (their fences complete
 * so no guest waits forever, their later work is refused), and everything else goes on.
 *
 * virglrenderer talks to the server and its per-context workers over blocking sockets, with no
 * timeout, on the embedder's thread: a server that stops answering (stopped, hung, spinning)
 * would hold that thread (QEMU's main loop) forever. So the calls that may wait on it are
 * bracketed (virgl_server_call_begin/end), and the watcher kills the server's process group
 * when one has waited longer than NEEP_VENUS_TIMEOUT_MS (5 s) and a grace (1 s): the call then
 * fails, and the loss is handled as a crash. The thread is held at most that long.
 */
#define VIRGL_RENDERER_UNSTABLE_APIS 1
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <virgl/virglrenderer.h>

#include "virgl_internal.h"

extern char **environ;

/* How long a call may wait on the server before neep counts it as hung (ms). */
#define DEFAULT_TIMEOUT_MS 5000u
#define MIN_TIMEOUT_MS     100u
/* How long a call seen past its deadline gets to end before the server is killed: time for a
 * VMM thread that was stopped with it to be scheduled again, on a busy host. */
#define GRACE_MS 1000

static struct {
    pid_t pid;   /* 0 when no server runs; also its process group (workers included) */
    bool reaped; /* by the watcher: the pid is no longer ours to signal */
    int pidfd;
    int stop_fd;
    int arm_fd; /* tells an idle watcher that a call began */
    pthread_t watcher;
    void (*on_death)(pid_t pid, int status, uint32_t unanswered_ms);
    uint64_t timeout_ns;
    /* The embedder's calls that may wait on the server: nesting depth (embedder thread only),
     * when the outermost began (0: none), and whether the watcher is timing them. */
    uint32_t call_depth;
    _Atomic uint64_t call_started_ns;
    atomic_bool armed;
} server = {.pidfd = -1, .stop_fd = -1, .arm_fd = -1};

static uint64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static uint64_t timeout_from_environment(void)
{
    const char *text = getenv("NEEP_VENUS_TIMEOUT_MS");
    char *end = NULL;
    unsigned long ms = text && *text ? strtoul(text, &end, 10) : 0;
    if (!end || *end != '\0' || ms < MIN_TIMEOUT_MS || ms > 600000u) {
        ms = DEFAULT_TIMEOUT_MS;
    }
    return (uint64_t)ms * 1000000u;
}

/*
 * The server binary: NEEP_RENDER_SERVER, or RENDER_SERVER_EXEC_PATH (virglrenderer's own
 * override), or libexec/virgl_render_server beside the library in use (its prefix), which is
 * where virglrenderer installs it.
 */
static bool server_path(char *path, size_t size)
{
    const char *forced = getenv("NEEP_RENDER_SERVER");
    if (!forced || !*forced) {
        forced = getenv("RENDER_SERVER_EXEC_PATH");
    }
    if (forced && *forced) {
        return snprintf(path, size, "%s", forced) < (int)size;
    }
    Dl_info info;
    if (!dladdr((void *)virgl_renderer_init, &info) || !info.dli_fname) {
        return false;
    }
    char library[PATH_MAX];
    if (!realpath(info.dli_fname, library)) {
        return false;
    }
    /* prefix/lib/<arch>/libvirglrenderer.so.1 or prefix/lib/libvirglrenderer.so.1 */
    static const char *const relative[] = {"/../../libexec/virgl_render_server",
                                           "/../libexec/virgl_render_server"};
    char *slash = strrchr(library, '/');
    if (!slash) {
        return false;
    }
    *slash = '\0';
    for (size_t i = 0; i < sizeof(relative) / sizeof(relative[0]); i++) {
        char candidate[PATH_MAX + 64];
        snprintf(candidate, sizeof(candidate), "%s%s", library, relative[i]);
        char resolved[PATH_MAX];
        if (realpath(candidate, resolved) && access(resolved, X_OK) == 0) {
            return snprintf(path, size, "%s", resolved) < (int)size;
        }
    }
    return false;
}

/* Until the server dies or neep stops watching: kills the server's process group when a call
 * has waited on it too long. */
static void *watch_server(void *arg)
{
    (void)arg;
    struct pollfd fds[3] = {
        {server.pidfd, POLLIN, 0}, {server.stop_fd, POLLIN, 0}, {server.arm_fd, POLLIN, 0}};
    uint64_t unanswered_ns = 0;
    uint64_t suspected = 0; /* the start of a call seen past its deadline once */
    for (;;) {
        uint64_t started = atomic_load(&server.call_started_ns);
        if (started == 0) {
            atomic_store(&server.armed, false);
            /* A call that began before the flag fell sees it set, and wrote no wake-up. */
            started = atomic_load(&server.call_started_ns);
            if (started != 0) {
                atomic_store(&server.armed, true);
            }
        }
        int timeout_ms = -1;
        if (started != 0 && unanswered_ns == 0) {
            uint64_t now = monotonic_ns();
            if (now - started < server.timeout_ns) {
                timeout_ms = (int)((started + server.timeout_ns - now) / 1000000u) + 1;
            } else if (suspected != started) {
                /* Past the deadline, perhaps only because this whole process was stopped (a
                 * debugger, a freezer): a call whose answer is already there ends within the
                 * grace, so only the same call still waiting after it counts. */
                suspected = started;
                timeout_ms = GRACE_MS;
            } else {
                /* Its leader is not reaped yet, so the group id is still the server's. */
                unanswered_ns = now - started;
                kill(-server.pid, SIGKILL);
            }
        }
        if (poll(fds, 3, timeout_ms) < 0 && errno != EINTR) {
            return NULL;
        }
        if (fds[1].revents) {
            return NULL; /* neep is stopping it */
        }
        if (fds[2].revents) {
            uint64_t ignored;
            ssize_t length = read(server.arm_fd, &ignored, sizeof(ignored));
            (void)length;
        }
        if (fds[0].revents) {
            break;
        }
    }
    /* Its workers (one process per venus context) go with it, so that no call waits on them;
     * the leader, dead but not reaped, still holds the group id. */
    kill(-server.pid, SIGKILL);
    int status = 0;
    if (waitpid(server.pid, &status, 0) < 0) {
        status = -1; /* reaped elsewhere */
    }
    server.reaped = true;
    if (server.on_death) {
        server.on_death(server.pid, status, (uint32_t)(unanswered_ns / 1000000u));
    }
    return NULL;
}

static void close_watch_fds(void)
{
    int *fds[] = {&server.pidfd, &server.stop_fd, &server.arm_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
    }
}

void virgl_server_call_begin(void)
{
    if (server.arm_fd < 0 || server.call_depth++ > 0) {
        return;
    }
    atomic_store(&server.call_started_ns, monotonic_ns());
    if (!atomic_exchange(&server.armed, true)) {
        uint64_t one = 1;
        ssize_t ignored = write(server.arm_fd, &one, sizeof(one));
        (void)ignored;
    }
}

void virgl_server_call_end(void)
{
    if (server.arm_fd < 0 || server.call_depth == 0 || --server.call_depth > 0) {
        return;
    }
    atomic_store(&server.call_started_ns, 0);
}

int virgl_server_start(struct neep_renderer *renderer,
                       void (*on_death)(pid_t pid, int status, uint32_t unanswered_ms))
{
    char path[PATH_MAX];
    if (!server_path(path, sizeof(path))) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "venus: no virgl_render_server beside libvirglrenderer (set "
                      "NEEP_RENDER_SERVER to its path)");
        return -1;
    }
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0) {
        return -1;
    }
    char fd_text[16];
    snprintf(fd_text, sizeof(fd_text), "%d", fds[1]);
    char *argv[] = {path, "--socket-fd", fd_text, NULL};
    /* The server's end stays open across exec (dup2 onto itself clears close-on-exec); its
     * own process group keeps a terminal's signals away from it, as virglrenderer does. */
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], fds[1]);
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    pid_t pid;
    int error = posix_spawn(&pid, path, &actions, &attributes, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    close(fds[1]);
    if (error != 0) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR, "venus: cannot start %s: %s", path,
                      strerror(error));
        close(fds[0]);
        return -1;
    }
    server.pid = pid;
    server.reaped = false;
    server.on_death = on_death;
    server.timeout_ns = timeout_from_environment();
    server.call_depth = 0;
    atomic_store(&server.call_started_ns, 0);
    atomic_store(&server.armed, false);
    server.pidfd = pidfd_open(pid, 0);
    server.stop_fd = eventfd(0, EFD_CLOEXEC);
    server.arm_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (server.pidfd < 0 || server.stop_fd < 0 || server.arm_fd < 0 ||
        pthread_create(&server.watcher, NULL, watch_server, NULL) != 0) {
        neep_log_host(&renderer->logger, NEEP_LOG_WARN,
                      "venus: cannot watch the render server (pid %d): its loss will go unseen",
                      (int)pid);
        close_watch_fds();
    }
    neep_log_host(&renderer->logger, NEEP_LOG_INFO, "venus: render server %s started (pid %d)",
                  path, (int)pid);
    return fds[0];
}

void virgl_server_stop_watching(void)
{
    if (server.pid != 0 && server.stop_fd >= 0) {
        uint64_t one = 1;
        ssize_t ignored = write(server.stop_fd, &one, sizeof(one));
        (void)ignored;
        pthread_join(server.watcher, NULL);
        close_watch_fds();
    }
}

void virgl_server_stop(void)
{
    if (server.pid == 0) {
        return;
    }
    virgl_server_stop_watching();
    /* virglrenderer closed its connection, so the server and its workers are on their way
     * out: make sure (the unreaped leader keeps the group id ours). */
    if (!server.reaped) {
        kill(-server.pid, SIGKILL);
        while (waitpid(server.pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    server.pid = 0;
}
