/*
 * venus's render server, started and watched by neep: virglrenderer asks for a connection to
 * it (its get_server_fd callback), and neep spawns the server itself rather than letting the
 * library fork it unseen, so it knows the process and can tell when it dies. The server runs
 * the host's Vulkan driver: when it crashes, venus's contexts are lost (their fences complete
 * so no guest waits forever, their later work is refused), and everything else goes on.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <virgl/virglrenderer.h>

#include "virgl_internal.h"

extern char **environ;

static struct {
    pid_t pid;   /* 0 when no server runs */
    bool reaped; /* by the watcher: the pid is no longer ours to signal */
    int pidfd;
    int stop_fd;
    pthread_t watcher;
    void (*on_death)(pid_t pid, int status);
} server = {.pidfd = -1, .stop_fd = -1};

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

static void *watch_server(void *arg)
{
    (void)arg;
    struct pollfd fds[2] = {{server.pidfd, POLLIN, 0}, {server.stop_fd, POLLIN, 0}};
    while (poll(fds, 2, -1) < 0 && errno == EINTR) {
    }
    if (fds[1].revents) {
        return NULL; /* neep is stopping it */
    }
    int status = 0;
    if (waitpid(server.pid, &status, 0) < 0) {
        status = -1; /* reaped elsewhere */
    }
    server.reaped = true;
    if (server.on_death) {
        server.on_death(server.pid, status);
    }
    return NULL;
}

int virgl_server_start(struct neep_renderer *renderer, void (*on_death)(pid_t pid, int status))
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
    server.pidfd = pidfd_open(pid, 0);
    server.stop_fd = eventfd(0, EFD_CLOEXEC);
    if (server.pidfd < 0 || server.stop_fd < 0 ||
        pthread_create(&server.watcher, NULL, watch_server, NULL) != 0) {
        neep_log_host(&renderer->logger, NEEP_LOG_WARN,
                      "venus: cannot watch the render server (pid %d): its loss will go unseen",
                      (int)pid);
        if (server.pidfd >= 0) {
            close(server.pidfd);
        }
        if (server.stop_fd >= 0) {
            close(server.stop_fd);
        }
        server.pidfd = server.stop_fd = -1;
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
        close(server.stop_fd);
        close(server.pidfd);
        server.stop_fd = server.pidfd = -1;
    }
}

void virgl_server_stop(void)
{
    if (server.pid == 0) {
        return;
    }
    virgl_server_stop_watching();
    /* virglrenderer closed its connection, so the server is on its way out: make sure. */
    if (!server.reaped) {
        kill(server.pid, SIGKILL);
        while (waitpid(server.pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    server.pid = 0;
}
