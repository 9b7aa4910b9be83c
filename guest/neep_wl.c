/*
 * neep-wl: the guest half of Wayland passthrough. Guest applications connect to it as to a
 * compositor; each connection becomes a cross-domain context on the virtio-gpu device, whose
 * host half talks to the host's compositor.
 *
 *   neep-wl [--socket NAME] [--render-node PATH] [--verbose] [-- PROGRAM [ARGS...]]
 *
 * With a program it runs it with WAYLAND_DISPLAY set and exits with its status. Started by a
 * systemd .socket unit, it serves the socket it is given (see activation.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "activation.h"
#include "proxy.h"
#include "shm.h"

/* Lines per second a misbehaving client can make neep-wl print. */
#define LOG_LINES_PER_SECOND 20u
/* How long the listener goes unwatched when a connection cannot be taken off the backlog. */
#define LISTENER_PAUSE_MS 1000u

static bool verbose;

/* One write per line: the console is shared with other programs' output. */
static void write_line(const char *line, size_t size)
{
    ssize_t ignored = write(STDERR_FILENO, line, size);
    (void)ignored;
}

void proxy_log(const char *format, ...)
{
    static time_t window;
    static unsigned lines;
    time_t now = time(NULL);
    if (now != window) {
        window = now;
        lines = 0;
    }
    if (++lines > LOG_LINES_PER_SECOND) {
        return;
    }
    char line[1024];
    int prefix = snprintf(line, sizeof(line), "neep-wl: ");
    va_list args;
    va_start(args, format);
    int length = vsnprintf(line + prefix, sizeof(line) - (size_t)prefix - 1, format, args);
    va_end(args);
    size_t size = (size_t)prefix + (length < 0 ? 0 : (size_t)length);
    if (size > sizeof(line) - 2) {
        size = sizeof(line) - 2;
    }
    line[size++] = '\n';
    write_line(line, size);
}

bool proxy_tracing;

void proxy_trace(const struct proxy_client *client, const char *direction,
                 const struct wire_message *message, uint32_t from_id, uint32_t to_id)
{
    char line[512];
    int length =
        snprintf(line, sizeof(line), "neep-wl: client %u %s %s@%u.%s (as @%u, %u bytes, %u fds)\n",
                 client->serial, direction, message->interface->name, from_id,
                 message->message->name, to_id, message->size_bytes, message->fd_count);
    write_line(line, length < 0 ? 0 : length < (int)sizeof(line) ? (size_t)length : sizeof(line));
}

static void usage(FILE *out)
{
    fprintf(out, "usage: neep-wl [--socket NAME] [--render-node PATH] [--verbose] [--trace] "
                 "[-- PROGRAM [ARGS...]]\n"
                 "  Serves Wayland clients in this guest through the host's compositor\n"
                 "  (virtio-gpu cross-domain). Listens on $XDG_RUNTIME_DIR/NAME (wayland-0),\n"
                 "  or on the socket systemd passes (LISTEN_FDS, from neep-wl.socket).\n");
}

/* Binds the socket as libwayland does: a lock file beside it guards a stale socket. */
static int listen_on(const char *runtime_dir, const char *name)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    int length = snprintf(address.sun_path, sizeof(address.sun_path), "%s/%s", runtime_dir, name);
    if (length < 0 || (size_t)length >= sizeof(address.sun_path)) {
        fprintf(stderr, "neep-wl: socket path %s/%s is too long\n", runtime_dir, name);
        return -1;
    }
    char lock_path[sizeof(address.sun_path) + 8];
    snprintf(lock_path, sizeof(lock_path), "%s.lock", address.sun_path);
    int lock = open(lock_path, O_CREAT | O_CLOEXEC | O_RDWR, 0660);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "neep-wl: %s is in use by another compositor\n", address.sun_path);
        return -1;
    }
    unlink(address.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 ||
        listen(fd, 128) < 0) {
        fprintf(stderr, "neep-wl: cannot listen on %s: %s\n", address.sun_path, strerror(errno));
        return -1;
    }
    return fd; /* the lock stays held until exit */
}

static uint64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

/* Any fd will do; "/" is there even in a bare initramfs. */
static int open_reserve(void)
{
    return open("/", O_PATH | O_CLOEXEC);
}

static void watch_listener(struct proxy *proxy, bool watch)
{
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = &proxy->listener_watch};
    epoll_ctl(proxy->epoll_fd, watch ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, proxy->listener_fd, &event);
    proxy->listener_paused = !watch;
}

/*
 * Takes one connection off the backlog. A connection that stays there keeps the listener
 * readable, so a failure must not be ignored or the loop spins. Out of fds (EMFILE, ENFILE),
 * the reserve fd makes room to accept the connection and tell the client why it is refused:
 * it learns at once, and neep-wl serves the next one as soon as fds are free again. Without
 * a reserve (or on another lasting failure), the listener goes unwatched for a while instead
 * and waiting clients stay in the backlog until then.
 */
static void accept_client(struct proxy *proxy)
{
    int fd = accept4(proxy->listener_fd, NULL, NULL, SOCK_CLOEXEC);
    int error = fd < 0 ? errno : 0;
    if ((error == EMFILE || error == ENFILE) && proxy->reserve_fd >= 0) {
        int shortage = error;
        close(proxy->reserve_fd);
        fd = accept4(proxy->listener_fd, NULL, NULL, SOCK_CLOEXEC);
        error = fd < 0 ? errno : 0;
        if (fd >= 0) {
            proxy_refuse(fd, "neep-wl has no file descriptors left for another client; try "
                             "again when other clients have ended");
            close(fd);
            proxy_log("refused a client: %s", strerror(shortage));
        }
        proxy->reserve_fd = open_reserve();
        if (fd >= 0) {
            return;
        }
    }
    if (fd >= 0) {
        struct proxy_client *client = proxy_client_create(proxy, fd);
        if (client && verbose) {
            proxy_log("client %u connected", client->serial);
        }
        return;
    }
    if (error == EAGAIN || error == EWOULDBLOCK || error == EINTR || error == ECONNABORTED) {
        return; /* nothing waiting after all, or the client gave up: the next one may come */
    }
    proxy_log("cannot accept a client (%s): not listening for %u ms", strerror(error),
              LISTENER_PAUSE_MS);
    watch_listener(proxy, false);
    proxy->listener_resume_ms = now_ms() + LISTENER_PAUSE_MS;
}

/* Watches the listener again once its pause is over; the epoll timeout until then. */
static int resume_listener(struct proxy *proxy)
{
    if (!proxy->listener_paused) {
        return -1;
    }
    uint64_t now = now_ms();
    if (now < proxy->listener_resume_ms) {
        return (int)(proxy->listener_resume_ms - now);
    }
    if (proxy->reserve_fd < 0) {
        proxy->reserve_fd = open_reserve();
    }
    watch_listener(proxy, true);
    return -1;
}

static pid_t spawn(char **argv, const char *display)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv("WAYLAND_DISPLAY", display, 1);
        execvp(argv[0], argv);
        fprintf(stderr, "neep-wl: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int main(int argc, char **argv)
{
    const char *socket_name = "wayland-0";
    bool socket_named = false;
    struct proxy proxy = {.render_node = "/dev/dri/renderD128"};
    static const struct option options[] = {
        {"socket", required_argument, NULL, 's'}, {"render-node", required_argument, NULL, 'r'},
        {"verbose", no_argument, NULL, 'v'},      {"trace", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},         {0, 0, 0, 0},
    };
    int option;
    while ((option = getopt_long(argc, argv, "+s:r:vth", options, NULL)) != -1) {
        switch (option) {
        case 's':
            socket_name = optarg;
            socket_named = true;
            break;
        case 'r':
            proxy.render_node = optarg;
            break;
        case 'v':
            verbose = true;
            break;
        case 't':
            proxy_tracing = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    char activated_name[128] = "", activation_error[256] = "";
    proxy.listener_fd = activation_take_listener(activated_name, sizeof(activated_name),
                                                 activation_error, sizeof(activation_error));
    if (proxy.listener_fd == ACTIVATION_BAD) {
        fprintf(stderr, "neep-wl: bad socket activation: %s\n", activation_error);
        return 1;
    }
    const char *runtime_dir = getenv("XDG_RUNTIME_DIR");
    if (proxy.listener_fd >= 0) {
        if (socket_named) {
            fprintf(stderr, "neep-wl: ignoring --socket: systemd passed the socket\n");
        }
        socket_name = activated_name;
    } else if (!runtime_dir || !*runtime_dir) {
        fprintf(stderr, "neep-wl: XDG_RUNTIME_DIR is not set\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (shm_install_guard() < 0) {
        return 1;
    }
    if (proxy.listener_fd < 0) {
        proxy.listener_fd = listen_on(runtime_dir, socket_name);
        if (proxy.listener_fd < 0) {
            return 1;
        }
    }
    proxy.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    proxy.listener_watch = (struct watch){WATCH_LISTENER, NULL};
    watch_listener(&proxy, true);

    /* A child program's end (SIGCHLD) and termination requests come through a signalfd. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGCHLD);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigprocmask(SIG_BLOCK, &signals, NULL);
    int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
    struct watch signal_watch = {WATCH_LISTENER, NULL};
    struct epoll_event signal_event = {.events = EPOLLIN, .data.ptr = &signal_watch};
    epoll_ctl(proxy.epoll_fd, EPOLL_CTL_ADD, signal_fd, &signal_event);

    pid_t child = -1;
    if (optind < argc) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, &signals); /* the child starts unblocked */
        child = spawn(argv + optind, socket_name);
        sigprocmask(SIG_BLOCK, &signals, NULL);
    }
    proxy.reserve_fd = open_reserve();
    if (proxy.reserve_fd < 0) {
        proxy_log("no spare fd (%s): clients beyond the fd limit will wait", strerror(errno));
    }
    if (verbose) {
        if (socket_name == activated_name) {
            proxy_log("serving the socket systemd passed (WAYLAND_DISPLAY=%s)", socket_name);
        } else {
            proxy_log("listening on %s/%s", runtime_dir, socket_name);
        }
    }

    int exit_status = 0;
    for (bool running = true; running;) {
        struct epoll_event events[32];
        int count = epoll_wait(proxy.epoll_fd, events, 32, resume_listener(&proxy));
        if (count < 0 && errno != EINTR) {
            break;
        }
        for (int i = 0; i < count; i++) {
            struct watch *watch = events[i].data.ptr;
            if (watch == &signal_watch) {
                struct signalfd_siginfo info;
                while (read(signal_fd, &info, sizeof(info)) == sizeof(info)) {
                    if (info.ssi_signo != SIGCHLD) {
                        running = false;
                    }
                }
                int status;
                pid_t ended;
                while ((ended = waitpid(-1, &status, WNOHANG)) > 0) {
                    if (ended == child) {
                        exit_status =
                            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                        running = false;
                    }
                }
            } else if (watch == &proxy.listener_watch) {
                accept_client(&proxy);
            } else if (watch->kind != WATCH_DEAD) {
                proxy_client_handle(watch->client, watch, events[i].events);
            }
        }
        proxy_collect_garbage(&proxy);
    }
    free(proxy.garbage);
    return exit_status;
}
