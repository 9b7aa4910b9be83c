/*
 * neep-gpu: a vhost-user-gpu back-end daemon. Follows QEMU's conventions for vhost-user
 * back-end programs (--socket-path, --fd, --print-capabilities) so QEMU's vhost-user-gpu-pci
 * and libvirt can use it in place of QEMU's own vhost-user-gpu.
 *
 * main() only parses arguments and runs the event loop; the transport and the device do
 * the work.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "vhost_user/backend.h"
#include "vhost_user/display.h"

#ifndef NEEP_VERSION
#define NEEP_VERSION "unknown"
#endif

#define MAX_WATCHES 16

struct watch {
    int fd;
    vu_ready_fn ready;
    void *arg;
    uint32_t generation; /* bumped when the slot is reused, so stale events miss */
};

struct daemon {
    int epoll_fd;
    struct watch watches[MAX_WATCHES];
    enum neep_log_level log_level;
    bool stopping;
};

static int watch_events(struct daemon *daemon, int fd, uint32_t events, vu_ready_fn ready,
                        void *arg)
{
    for (int i = 0; i < MAX_WATCHES; i++) {
        if (daemon->watches[i].ready == NULL) {
            uint32_t generation = daemon->watches[i].generation + 1;
            daemon->watches[i] = (struct watch){fd, ready, arg, generation};
            /* The event names the slot and its generation: an event a handler made stale in
             * the same round (its watch removed, the slot given to another fd) finds a
             * different generation and is dropped. */
            struct epoll_event event = {.events = events,
                                        .data.u64 = (uint64_t)generation << 32 | (uint32_t)i};
            if (epoll_ctl(daemon->epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0) {
                int error = errno;
                daemon->watches[i].ready = NULL;
                return -error;
            }
            return 0;
        }
    }
    return -ENOSPC;
}

static int watch_add(void *user_data, int fd, vu_ready_fn ready, void *arg)
{
    return watch_events(user_data, fd, EPOLLIN, ready, arg);
}

static int watch_add_writable(void *user_data, int fd, vu_ready_fn ready, void *arg)
{
    return watch_events(user_data, fd, EPOLLOUT, ready, arg);
}

static void watch_remove(void *user_data, int fd)
{
    struct daemon *daemon = user_data;
    for (int i = 0; i < MAX_WATCHES; i++) {
        if (daemon->watches[i].ready && daemon->watches[i].fd == fd) {
            epoll_ctl(daemon->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
            daemon->watches[i].ready = NULL;
            daemon->watches[i].fd = -1;
        }
    }
}

static const struct vu_watch_ops watch_ops = {watch_add, watch_add_writable, watch_remove};

/*
 * libvirt starts back-ends with standard error on /dev/null: there, neep-gpu's own trouble
 * (bad options, a bad --fd, a device that cannot start) goes to the system log as well, or
 * nobody would learn why the domain did not start. Lines about the guest do not: a guest
 * must not be able to fill the host's log.
 */
static bool stderr_is_discarded(void)
{
    static int discarded = -1;
    if (discarded < 0) {
        struct stat status;
        discarded = fstat(STDERR_FILENO, &status) < 0 ||
                    (S_ISCHR(status.st_mode) && status.st_rdev == makedev(1, 3));
        if (discarded) {
            openlog("neep-gpu", LOG_PID, LOG_DAEMON);
        }
    }
    return discarded;
}

/* A line about neep-gpu's own trouble. */
__attribute__((format(printf, 1, 2))) static void say(const char *format, ...)
{
    char line[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof(line), format, args);
    va_end(args);
    size_t length = strlen(line);
    if (length > 0 && line[length - 1] == '\n') {
        line[--length] = '\0';
    }
    fprintf(stderr, "neep-gpu: %s\n", line);
    if (stderr_is_discarded()) {
        syslog(LOG_ERR, "%s", line);
    }
}

static struct daemon *log_daemon;

static void log_line(void *user_data, enum neep_log_level level, const char *message)
{
    static const char *const names[] = {"", "error", "warning", "info", "debug"};
    if (level <= log_daemon->log_level && level <= NEEP_LOG_DEBUG) {
        fprintf(stderr, "neep-gpu %s: %s\n", names[level], message);
    }
}

/* The live watch an event is for, or NULL if the event is stale. */
static struct watch *event_watch(struct daemon *daemon, const struct epoll_event *event)
{
    uint32_t slot = (uint32_t)event->data.u64;
    uint32_t generation = (uint32_t)(event->data.u64 >> 32);
    struct watch *watch = slot < MAX_WATCHES ? &daemon->watches[slot] : NULL;
    return watch && watch->ready && watch->generation == generation ? watch : NULL;
}

/* Runs the loop until the backend dies or a signal asks us to stop. */
static void serve(struct daemon *daemon, struct vu_backend *backend, int signal_fd)
{
    while (!daemon->stopping && vu_backend_alive(backend)) {
        struct epoll_event events[8];
        int count = epoll_wait(daemon->epoll_fd, events, 8, -1);
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count < 0) {
            say("epoll_wait: %s\n", strerror(errno));
            return;
        }
        for (int i = 0; i < count && vu_backend_alive(backend); i++) {
            struct watch *watch = event_watch(daemon, &events[i]);
            if (!watch) {
                continue; /* a handler removed or replaced this watch during this round */
            }
            if (watch->fd == signal_fd) {
                daemon->stopping = true;
                break;
            }
            watch->ready(watch->arg);
        }
    }
}

static void on_signal(void *arg)
{
}

static int listen_on(const char *path)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(address.sun_path)) {
        say("socket path too long: %s\n", path);
        return -1;
    }
    strcpy(address.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path); /* a stale socket from an earlier run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(fd, 1) < 0) {
        say("cannot listen on %s: %s\n", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: neep-gpu [OPTIONS]\n"
            "A vhost-user-gpu back-end: the GPU of a QEMU guest, outside QEMU.\n\n"
            "  -s, --socket-path=PATH   listen on a UNIX socket for the front-end\n"
            "  -f, --fd=FD              serve the front-end already connected on FD\n"
            "  -c, --print-capabilities print the back-end's capabilities as JSON and exit\n"
            "  -n, --scanouts=N         number of displays offered (1-16, default 1)\n"
            "  -g, --size=WxH           display size in pixels (default 1280x800)\n"
            "  -m, --memory-budget-mib=N  host memory the guest may use (default 1024)\n"
            "  -l, --log-level=LEVEL    error, warning, info or debug (default warning)\n"
            "  -v, --verbose            same as --log-level=info\n"
            "  -x, --virgl              OpenGL for the guest (virgl, through virglrenderer)\n"
            "  -r, --render-node=PATH   DRM render node for --virgl (default: surfaceless EGL,\n"
            "                           which renders on the CPU where there is no GPU)\n"
            "  (No venus, Vulkan: it needs a host-visible memory window, which vhost-user-gpu\n"
            "  front-ends do not give. QEMU's virtio-gpu-rutabaga on neep's library gives\n"
            "  it: NEEP_CONTEXT_TYPES=venus in QEMU's environment.)\n"
            "  -h, --help               this text\n"
            "  -V, --version            the version\n\n"
            "With QEMU (10.0 or later):\n"
            "  neep-gpu --socket-path=/tmp/gpu.sock &\n"
            "  qemu-system-x86_64 ... -object memory-backend-memfd,id=mem,size=1G,share=on \\\n"
            "      -numa node,memdev=mem -chardev socket,id=gpu,path=/tmp/gpu.sock \\\n"
            "      -device vhost-user-gpu-pci,chardev=gpu\n"
            "The front-end's xres, yres and max_outputs properties set the display layout the\n"
            "guest sees; --size and --scanouts apply when the front-end gives none.\n");
}

/* Whether the host has a DRM render node (/dev/dri/renderD*) for --render-node to name. */
static bool host_has_render_node(void)
{
    DIR *dri = opendir("/dev/dri");
    bool found = false;
    for (struct dirent *entry; dri && !found && (entry = readdir(dri));) {
        found = strncmp(entry->d_name, "renderD", 7) == 0;
    }
    if (dri) {
        closedir(dri);
    }
    return found;
}

/*
 * libvirt reads these names (QEMU's docs/interop/vhost-user.json). A back-end that lists
 * "render-node" gets one from libvirt for every domain, 2D ones included, and libvirt refuses
 * to start the domain on a host with none: list it only where there is one. Without it, --virgl
 * renders with surfaceless EGL.
 */
static void print_capabilities(void)
{
    bool render_node = NEEP_HAVE_VIRGL && host_has_render_node();
    printf("{\n  \"type\": \"gpu\",\n  \"features\": [%s%s%s]\n}\n",
           NEEP_HAVE_VIRGL ? "\n    \"virgl\"" : "", render_node ? ",\n    \"render-node\"" : "",
           NEEP_HAVE_VIRGL ? "\n  " : "");
}

/* libvirt hands over the front-end's connection: make sure it is one before serving it. */
static bool check_connected_fd(int fd)
{
    struct stat status;
    if (fstat(fd, &status) < 0) {
        say("--fd=%d: %s\n", fd, strerror(errno));
        return false;
    }
    int domain = 0, type = 0, listening = 1;
    socklen_t size = sizeof(int);
    struct sockaddr_un peer;
    socklen_t peer_size = sizeof(peer);
    bool usable = S_ISSOCK(status.st_mode) &&
                  getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) == 0 &&
                  getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0 &&
                  getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0 &&
                  domain == AF_UNIX && type == SOCK_STREAM && !listening &&
                  getpeername(fd, (struct sockaddr *)&peer, &peer_size) == 0;
    if (!usable) {
        say("--fd=%d is not a connected Unix stream socket, so not a vhost-user connection "
            "from the front-end\n",
            fd);
        return false;
    }
    return true;
}

static bool parse_size(const char *text, uint32_t *width, uint32_t *height)
{
    char *end;
    unsigned long w = strtoul(text, &end, 10);
    if (*end != 'x') {
        return false;
    }
    unsigned long h = strtoul(end + 1, &end, 10);
    if (*end != '\0' || w == 0 || h == 0 || w > NEEP_MAX_SCANOUT_DIMENSION_PX ||
        h > NEEP_MAX_SCANOUT_DIMENSION_PX) {
        return false;
    }
    *width = (uint32_t)w;
    *height = (uint32_t)h;
    return true;
}

static bool parse_level(const char *text, enum neep_log_level *level)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, names[i]) == 0) {
            *level = (enum neep_log_level)(i + 1);
            return true;
        }
    }
    return false;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"socket-path", required_argument, NULL, 's'},
        {"fd", required_argument, NULL, 'f'},
        {"print-capabilities", no_argument, NULL, 'c'},
        {"scanouts", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 'g'},
        {"memory-budget-mib", required_argument, NULL, 'm'},
        {"log-level", required_argument, NULL, 'l'},
        {"verbose", no_argument, NULL, 'v'},
        {"render-node", required_argument, NULL, 'r'},
        {"virgl", no_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct daemon daemon = {.epoll_fd = -1, .log_level = NEEP_LOG_WARN};
    const char *socket_path = NULL;
    int connected_fd = -1;
    uint32_t scanout_count = 1, width = 1280, height = 800;
    uint64_t budget_mib = 1024;
    bool virgl = false;
    const char *render_node = NULL;
    int option;
    while ((option = getopt_long(argc, argv, "s:f:cn:g:m:l:vr:xhV", options, NULL)) != -1) {
        char *end = NULL;
        switch (option) {
        case 's':
            socket_path = optarg;
            break;
        case 'f':
            errno = 0;
            long fd_number = strtol(optarg, &end, 10);
            connected_fd = errno == 0 && fd_number <= INT_MAX ? (int)fd_number : -1;
            if (end == optarg || *end != '\0' || connected_fd < 0) {
                say("--fd needs a file descriptor number\n");
                return 2;
            }
            break;
        case 'c':
            print_capabilities();
            return 0;
        case 'n':
            scanout_count = (uint32_t)strtoul(optarg, &end, 10);
            if (*end != '\0' || scanout_count < 1 || scanout_count > NEEP_MAX_SCANOUTS) {
                say("--scanouts takes 1 to %u\n", NEEP_MAX_SCANOUTS);
                return 2;
            }
            break;
        case 'g':
            if (!parse_size(optarg, &width, &height)) {
                say("--size takes WxH, each 1 to %u\n", NEEP_MAX_SCANOUT_DIMENSION_PX);
                return 2;
            }
            break;
        case 'm':
            budget_mib = strtoull(optarg, &end, 10);
            if (*end != '\0' || budget_mib == 0 || budget_mib > (1ull << 30)) {
                say("--memory-budget-mib needs a positive number\n");
                return 2;
            }
            break;
        case 'l':
            if (!parse_level(optarg, &daemon.log_level)) {
                say("--log-level takes error, warning, info or debug\n");
                return 2;
            }
            break;
        case 'v':
            daemon.log_level = NEEP_LOG_INFO;
            break;
        case 'r':
            render_node = optarg;
            break;
        case 'x':
            if (!NEEP_HAVE_VIRGL) {
                say("this build has no virgl (libvirglrenderer)\n");
                return 2;
            }
            virgl = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("neep-gpu %s\n", NEEP_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (render_node && !virgl && daemon.log_level >= NEEP_LOG_INFO) {
        /* libvirt passes one to every domain once "render-node" is listed: not worth a warning. */
        log_line(NULL, NEEP_LOG_INFO, "--render-node applies to --virgl only; ignoring it");
    }
    if ((socket_path == NULL) == (connected_fd < 0)) {
        say("give exactly one of --socket-path and --fd\n");
        usage(stderr);
        return 2;
    }

    if (connected_fd >= 0 && !check_connected_fd(connected_fd)) {
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop_signals, NULL);
    int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
    daemon.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (signal_fd < 0 || daemon.epoll_fd < 0 ||
        watch_add(&daemon, signal_fd, on_signal, NULL) < 0) {
        say("setting up the event loop: %s\n", strerror(errno));
        return 1;
    }
    log_daemon = &daemon;

    struct vu_backend_config config = {
        .device =
            {
                .renderer = {.capset_mask =
                                 virgl ? (1ull << NEEP_CAPSET_VIRGL) | (1ull << NEEP_CAPSET_VIRGL2)
                                       : 0,
                             .memory_budget_bytes = budget_mib << 20,
                             .log_fn = log_line,
                             .log_level = daemon.log_level,
                             .render_node_path = virgl ? render_node : NULL},
                .scanout_count = scanout_count,
            },
        .watch = &watch_ops,
        .watch_user_data = &daemon,
    };
    for (uint32_t i = 0; i < scanout_count; i++) {
        config.device.scanouts[i] = (struct neep_scanout_size){width, height, i == 0};
    }

    int listen_fd = socket_path ? listen_on(socket_path) : -1;
    if (socket_path && listen_fd < 0) {
        return 1;
    }
    int status = 0;
    while (!daemon.stopping) {
        int fd = connected_fd;
        if (listen_fd >= 0) {
            /* Wait for a front-end, or a signal. */
            watch_add(&daemon, listen_fd, on_signal, NULL);
            struct epoll_event event;
            int count;
            do {
                count = epoll_wait(daemon.epoll_fd, &event, 1, -1);
            } while (count < 0 && errno == EINTR);
            struct watch *ready = count == 1 ? event_watch(&daemon, &event) : NULL;
            bool stop = !ready || ready->fd == signal_fd;
            watch_remove(&daemon, listen_fd);
            if (stop) {
                break;
            }
            fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0) {
                continue;
            }
            log_line(NULL, NEEP_LOG_INFO, "front-end connected");
        }
        struct vu_backend *backend;
        int ret = vu_backend_create(&config, fd, &backend);
        if (ret < 0) {
            say("cannot start the device: %s\n", strerror(-ret));
            status = 1;
            break;
        }
        serve(&daemon, backend, signal_fd);
        struct vu_display_stats display;
        vu_backend_display_stats(backend, &display);
        char line[256];
        snprintf(line, sizeof(line),
                 "display: %llu updates flushed, %llu sent whole (%llu copied before a change), "
                 "%llu bytes",
                 (unsigned long long)display.updates, (unsigned long long)display.updates_sent,
                 (unsigned long long)display.copies, (unsigned long long)display.sent_bytes);
        log_line(NULL, NEEP_LOG_INFO, line);
        vu_backend_destroy(backend);
        if (listen_fd < 0) {
            break; /* --fd serves one front-end */
        }
    }
    if (listen_fd >= 0) {
        close(listen_fd);
        unlink(socket_path);
    }
    close(signal_fd);
    close(daemon.epoll_fd);
    return status;
}
