/*
 * gfxstream's backend, in the server process neep starts for it (src/gfxstream_server/): the
 * backend's API (struct gfxstream_api) carried over the sockets of gfxstream_protocol.h, so
 * the rest of neep calls it as it would the library.
 *
 * What cannot cross as it is:
 *  - guest backing: the server never sees guest memory. Each resource with backing has a
 *    staging memfd of the backing's size, mapped on both sides; a transfer copies the rows of
 *    its box between the guest's pages and the staging here, and the backend moves them
 *    between the staging and its object there;
 *  - blobs: the backend runs with external and system blobs, so every mappable blob is a
 *    memfd it exports; neep maps that (sealed against shrinking first, so a server cannot
 *    pull pages from under the VMM's mapping);
 *  - fences and log lines come as events, read by a thread of neep's.
 *
 * A server that dies, or leaves a call unanswered for NEEP_GFXSTREAM_TIMEOUT_MS (then neep
 * kills it), is lost: every later call fails at once and the owner hears of it (its contexts'
 * fences complete, their later work is refused). The embedder's thread waits at most that
 * long on any call.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gfxstream_internal.h"
#include "gfxstream_protocol.h"
#include "util/checked.h"
#include "util/fd_passing.h"
#include "util/iov.h"

extern char **environ;

#ifndef NEEP_GFXSTREAM_SERVER_PATH
#define NEEP_GFXSTREAM_SERVER_PATH "/usr/libexec/neep-gfxstream-server"
#endif
#define DEFAULT_TIMEOUT_MS 5000u

/* What neep keeps per resource of the server's. Embedder thread only. */
struct remote_resource {
    uint32_t format;
    uint32_t width_px;
    uint32_t height_px;
    const struct iovec *backing; /* the renderer's list, valid until detached */
    size_t backing_count;
    uint8_t *staging; /* shared with the server */
    uint64_t staging_bytes;
    void *map; /* a blob's memfd, mapped for the guest */
    uint64_t map_bytes;
};

static struct {
    pthread_mutex_t call_lock; /* one call at a time */
    pthread_mutex_t pid_lock;  /* signals to the server against its reaping */
    pid_t pid;                 /* the server, also its process group; 0 when none */
    bool reaped;               /* its pid (and group id) may name another process now */
    int call_fd;
    int event_fd;
    pthread_t event_thread;
    bool event_thread_running;
    atomic_bool lost;
    atomic_bool stopping;
    uint32_t timeout_ms;
    const struct gfxstream_remote_events *events;
    struct id_table resources;
    /* The last capset read, for fill_caps. */
    uint32_t capset_id;
    uint32_t capset_bytes;
    struct gfxstream_reply reply;
} remote = {
    .call_lock = PTHREAD_MUTEX_INITIALIZER,
    .pid_lock = PTHREAD_MUTEX_INITIALIZER,
    .call_fd = -1,
    .event_fd = -1,
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

static void *event_loop(void *unused)
{
    (void)unused;
    while (serve_event(0, false)) {
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

/* Sends `call` (with `fd_in` when >= 0) and waits for its reply in remote.reply, its fd (if
 * any) in *fd_out. The server's return value, or -ENODEV when the server is lost. Caller holds
 * call_lock. */
static int call_locked(struct gfxstream_call *call, int fd_in, size_t *reply_bytes, int *fd_out,
                       uint32_t timeout_ms)
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
    struct iovec reply_iov = {.iov_base = &remote.reply, .iov_len = sizeof(remote.reply)};
    struct msghdr reply_msg = {.msg_iov = &reply_iov,
                               .msg_iovlen = 1,
                               .msg_control = control.bytes,
                               .msg_controllen = sizeof(control.bytes)};
    ssize_t got;
    do {
        got = recvmsg(remote.call_fd, &reply_msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (got < 0 && errno == EINTR);
    int received = got > 0 ? fd_passing_take_first(&reply_msg) : -1;
    if (received >= 0 && !fd_out) {
        close(received);
        received = -1;
    }
    if (got < (ssize_t)GFXSTREAM_REPLY_HEADER_BYTES || remote.reply.op != call->op ||
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
    return remote.reply.ret;
}

static int call(struct gfxstream_call *request, int fd_in, int *fd_out)
{
    pthread_mutex_lock(&remote.call_lock);
    int ret = call_locked(request, fd_in, NULL, fd_out, remote.timeout_ms);
    pthread_mutex_unlock(&remote.call_lock);
    return ret;
}

/* ---- resources: staging and maps ------------------------------------------------------------ */

static struct remote_resource *resource_for(uint32_t id, bool create)
{
    struct remote_resource *resource = id_table_get(&remote.resources, id);
    if (!resource && create) {
        resource = calloc(1, sizeof(*resource));
        if (resource && id_table_insert(&remote.resources, id, resource) < 0) {
            free(resource);
            resource = NULL;
        }
    }
    return resource;
}

static void drop_staging(struct remote_resource *resource)
{
    if (resource->staging) {
        munmap(resource->staging, (size_t)resource->staging_bytes);
    }
    resource->staging = NULL;
    resource->staging_bytes = 0;
    resource->backing = NULL;
    resource->backing_count = 0;
}

static void forget(uint32_t id)
{
    struct remote_resource *resource = id_table_remove(&remote.resources, id);
    if (resource) {
        drop_staging(resource);
        if (resource->map) {
            munmap(resource->map, (size_t)resource->map_bytes);
        }
        free(resource);
    }
}

/* A memfd of `size_bytes` that neither side can resize, mapped here; -errno. */
static int make_staging(uint64_t size_bytes, uint8_t **mapped)
{
    if (size_bytes == 0 || size_bytes > SIZE_MAX) {
        return -EINVAL;
    }
    int fd = memfd_create("neep-gfxstream-staging", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        return -errno;
    }
    if (ftruncate(fd, (off_t)size_bytes) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    void *address = mmap(NULL, (size_t)size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (address == MAP_FAILED) {
        int error = errno;
        close(fd);
        return -error;
    }
    *mapped = address;
    return fd;
}

/*
 * Copies what a transfer of `box` moves between guest memory (`list`) and the staging: the
 * rows of the box in the backend's linear layout (rows of width x bytes per pixel), or, for
 * YUV, everything. Both are `size_bytes` long; bytes past that are not the backend's either.
 * The box lies within the image (gfxstream_resources.c checked): each row is at most one
 * image row, at most the image's height of them, so the work is bounded by the staging's size.
 */
static void copy_box(const struct remote_resource *resource, const struct gfxstream_box *box,
                     const struct iovec *list, size_t count, uint8_t *staging, uint64_t size_bytes,
                     bool to_staging)
{
    struct iov_cursor cursor;
    iov_cursor_init(&cursor, list, count);
    uint64_t bytes_per_pixel = gfxstream_format_bytes_per_pixel(resource->format);
    uint64_t row_bytes = 0, stride_bytes = 0;
    if (bytes_per_pixel == 0) {
        row_bytes = size_bytes; /* one "row": all of it */
    } else if ((uint64_t)box->x + box->w > resource->width_px ||
               (uint64_t)box->y + box->h > resource->height_px ||
               !checked_mul_u64(box->w, bytes_per_pixel, &row_bytes) ||
               !checked_mul_u64(resource->width_px, bytes_per_pixel, &stride_bytes)) {
        return; /* not the image's: the backend refuses it too */
    }
    uint32_t rows = bytes_per_pixel == 0 ? 1 : box->h;
    for (uint32_t row = 0; row < rows; row++) {
        uint64_t start = 0, end = 0;
        if (bytes_per_pixel != 0 &&
            (!checked_mul_add_u64((uint64_t)box->y + row, stride_bytes,
                                  (uint64_t)box->x * bytes_per_pixel, &start))) {
            return;
        }
        if (start >= size_bytes || !checked_add_u64(start, row_bytes, &end)) {
            return; /* the backend refuses boxes past its copy; so does this */
        }
        size_t length = (size_t)((end < size_bytes ? end : size_bytes) - start);
        iov_cursor_seek(&cursor, start);
        if (to_staging) {
            iov_cursor_read(&cursor, staging + start, length);
        } else {
            iov_cursor_write(&cursor, staging + start, length);
        }
    }
}

/* ---- the API ------------------------------------------------------------------------------ */

static void remote_get_cap_set(uint32_t set, uint32_t *max_version, uint32_t *max_size)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_GET_CAPSET, .value = set};
    pthread_mutex_lock(&remote.call_lock);
    size_t got = 0;
    int ret = call_locked(&request, -1, &got, NULL, remote.timeout_ms);
    uint32_t size = remote.reply.values[1];
    if (ret == 0 && size > 0 && got == GFXSTREAM_REPLY_HEADER_BYTES + size) {
        remote.capset_id = set;
        remote.capset_bytes = size;
        *max_version = remote.reply.values[0];
        *max_size = size;
    } else {
        remote.capset_bytes = 0;
        *max_size = 0;
    }
    pthread_mutex_unlock(&remote.call_lock);
}

static void remote_fill_caps(uint32_t set, uint32_t version, void *caps)
{
    (void)version;
    pthread_mutex_lock(&remote.call_lock);
    if (set == remote.capset_id && remote.capset_bytes) {
        memcpy(caps, remote.reply.data, remote.capset_bytes);
    }
    pthread_mutex_unlock(&remote.call_lock);
}

static int remote_context_create(uint32_t ctx_id, uint32_t name_length, const char *name,
                                 uint32_t context_init)
{
    struct gfxstream_call request = {
        .op = GFXSTREAM_CALL_CONTEXT_CREATE, .ctx_id = ctx_id, .value = context_init};
    request.u.name.length =
        name_length < GFXSTREAM_MAX_NAME_BYTES ? name_length : GFXSTREAM_MAX_NAME_BYTES;
    memcpy(request.u.name.bytes, name, request.u.name.length);
    return call(&request, -1, NULL);
}

static void remote_context_destroy(uint32_t ctx_id)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_CONTEXT_DESTROY, .ctx_id = ctx_id};
    call(&request, -1, NULL);
}

static void remote_ctx_attach_resource(int ctx_id, int resource_id)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_ATTACH_RESOURCE,
                                     .ctx_id = (uint32_t)ctx_id,
                                     .resource_id = (uint32_t)resource_id};
    call(&request, -1, NULL);
}

static void remote_ctx_detach_resource(int ctx_id, int resource_id)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_DETACH_RESOURCE,
                                     .ctx_id = (uint32_t)ctx_id,
                                     .resource_id = (uint32_t)resource_id};
    call(&request, -1, NULL);
}

static int remote_submit_cmd(struct gfxstream_command *command)
{
    /* Only a render thread's start and an announcement need their answer (neep records
     * them); the rest go without waiting. */
    uint32_t op = 0;
    memcpy(&op, command->cmd, command->cmd_size >= 4 ? 4 : 0);
    bool answer = op == GFXSTREAM_CMD_CONTEXT_CREATE || op == GFXSTREAM_CMD_RESOURCE_CREATE_3D;
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_SUBMIT |
                                           (answer ? 0 : GFXSTREAM_CALL_NO_REPLY),
                                     .ctx_id = command->ctx_id};
    /* The backend copies at most RESOURCE_CREATE_3D's 56 bytes of a command. */
    request.u.command.size_bytes = command->cmd_size < GFXSTREAM_MAX_COMMAND_BYTES
                                       ? command->cmd_size
                                       : GFXSTREAM_MAX_COMMAND_BYTES;
    memcpy(request.u.command.bytes, command->cmd, request.u.command.size_bytes);
    return call(&request, -1, NULL);
}

static int remote_create_fence(const struct gfxstream_fence *fence)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_CREATE_FENCE | GFXSTREAM_CALL_NO_REPLY};
    request.u.fence = *fence;
    return call(&request, -1, NULL);
}

static int remote_resource_create(struct gfxstream_resource_create_args *args, struct iovec *iov,
                                  uint32_t iov_count)
{
    (void)iov;
    (void)iov_count; /* neep attaches backing separately */
    struct remote_resource *resource = resource_for(args->handle, true);
    if (!resource) {
        return -ENOMEM;
    }
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_RESOURCE_CREATE,
                                     .resource_id = args->handle};
    request.u.create = *args;
    int ret = call(&request, -1, NULL);
    if (ret != 0) {
        forget(args->handle);
        return ret;
    }
    resource->format = args->format;
    resource->width_px = args->width;
    resource->height_px = args->target == 0 /* a buffer */ ? 1 : args->height;
    return 0;
}

static void remote_resource_unref(uint32_t resource_id)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_RESOURCE_UNREF,
                                     .resource_id = resource_id};
    call(&request, -1, NULL);
    forget(resource_id);
}

static int remote_resource_attach_iov(int resource_id, struct iovec *iov, int iov_count)
{
    uint64_t total = 0;
    struct remote_resource *resource = resource_for((uint32_t)resource_id, true);
    if (!resource || iov_count <= 0 || !iov_total_bytes(iov, (size_t)iov_count, &total)) {
        return -EINVAL;
    }
    uint8_t *staging = NULL;
    int fd = make_staging(total, &staging);
    if (fd < 0) {
        return fd;
    }
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_ATTACH_BACKING,
                                     .resource_id = (uint32_t)resource_id,
                                     .size_bytes = total};
    int ret = call(&request, fd, NULL);
    close(fd);
    if (ret != 0) {
        munmap(staging, (size_t)total);
        return ret;
    }
    drop_staging(resource);
    resource->staging = staging;
    resource->staging_bytes = total;
    resource->backing = iov;
    resource->backing_count = (size_t)iov_count;
    return 0;
}

static void remote_resource_detach_iov(int resource_id, struct iovec **iov, int *iov_count)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_DETACH_BACKING,
                                     .resource_id = (uint32_t)resource_id};
    call(&request, -1, NULL);
    struct remote_resource *resource = resource_for((uint32_t)resource_id, false);
    *iov = resource ? (struct iovec *)resource->backing : NULL;
    *iov_count = resource ? (int)resource->backing_count : 0;
    if (resource) {
        drop_staging(resource);
    }
}

/* A transfer through the staging (list NULL) or through a memfd holding the caller's list. */
static int remote_transfer(uint32_t resource_id, uint32_t ctx_id, struct gfxstream_box *box,
                           uint64_t offset, const struct iovec *list, size_t count, bool to_host)
{
    struct remote_resource *resource = resource_for(resource_id, false);
    if (!resource) {
        return -EINVAL;
    }
    struct gfxstream_call request = {
        .op = GFXSTREAM_CALL_TRANSFER, .ctx_id = ctx_id, .resource_id = resource_id};
    request.u.transfer.to_host = to_host;
    request.u.transfer.box = *box;
    request.u.transfer.offset_bytes = offset;
    uint8_t *buffer = resource->staging;
    uint64_t size = resource->staging_bytes;
    int fd = -1;
    if (list) {
        if (!iov_total_bytes(list, count, &size)) {
            return -EINVAL;
        }
        fd = make_staging(size, &buffer);
        if (fd < 0) {
            return fd;
        }
        request.size_bytes = size;
    } else {
        if (!buffer) {
            return -EINVAL;
        }
        list = resource->backing;
        count = resource->backing_count;
    }
    if (to_host) {
        copy_box(resource, box, list, count, buffer, size, true);
    }
    int ret = call(&request, fd, NULL);
    if (ret == 0 && !to_host) {
        copy_box(resource, box, list, count, buffer, size, false);
    }
    if (fd >= 0) {
        close(fd);
        munmap(buffer, (size_t)size);
    }
    return ret;
}

static int remote_transfer_write_iov(uint32_t resource_id, uint32_t ctx_id, int level,
                                     uint32_t stride, uint32_t layer_stride,
                                     struct gfxstream_box *box, uint64_t offset, struct iovec *iov,
                                     unsigned int iov_count)
{
    (void)level, (void)stride, (void)layer_stride; /* the backend ignores them */
    return remote_transfer(resource_id, ctx_id, box, offset, iov, iov ? iov_count : 0, true);
}

static int remote_transfer_read_iov(uint32_t resource_id, uint32_t ctx_id, uint32_t level,
                                    uint32_t stride, uint32_t layer_stride,
                                    struct gfxstream_box *box, uint64_t offset, struct iovec *iov,
                                    int iov_count)
{
    (void)level, (void)stride, (void)layer_stride;
    return remote_transfer(resource_id, ctx_id, box, offset, iov,
                           iov && iov_count > 0 ? (size_t)iov_count : 0, false);
}

static int remote_create_blob(uint32_t ctx_id, uint32_t resource_id,
                              const struct gfxstream_create_blob *create, const struct iovec *iov,
                              uint32_t iov_count, const struct gfxstream_handle *handle)
{
    (void)iov, (void)iov_count, (void)handle; /* host blobs only */
    if (!resource_for(resource_id, true)) {
        return -ENOMEM;
    }
    struct gfxstream_call request = {
        .op = GFXSTREAM_CALL_CREATE_BLOB, .ctx_id = ctx_id, .resource_id = resource_id};
    request.u.blob = *create;
    int ret = call(&request, -1, NULL);
    if (ret != 0) {
        forget(resource_id);
    }
    return ret;
}

/*
 * What the server hands over must be a memfd on tmpfs that cannot shrink: it may be in a
 * guest's hands (a taken-over backend), and the VMM maps it. Not hugetlbfs (a server could
 * punch its page out and take the free huge pages: SIGBUS in the VMM), not a pipe, a socket or
 * a device. The backend seals its memfds itself; any other is sealed here. Its size, or -errno.
 */
static int64_t check_server_memfd(int fd)
{
    struct statfs filesystem;
    struct stat info;
    if (fstatfs(fd, &filesystem) < 0 || filesystem.f_type != TMPFS_MAGIC || fstat(fd, &info) < 0 ||
        !S_ISREG(info.st_mode) || info.st_size <= 0 || (uint64_t)info.st_size > SIZE_MAX) {
        return -EINVAL;
    }
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (!(seals & F_SEAL_SHRINK) && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)) {
        return -EINVAL;
    }
    /* Sealed now: its size can only grow (which maps nothing new here). */
    if (fstat(fd, &info) < 0) {
        return -EINVAL;
    }
    return (int64_t)info.st_size;
}

static int remote_export_blob(uint32_t resource_id, struct gfxstream_handle *handle)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_EXPORT_BLOB, .resource_id = resource_id};
    pthread_mutex_lock(&remote.call_lock);
    int fd = -1;
    int ret = call_locked(&request, -1, NULL, &fd, remote.timeout_ms);
    uint32_t type = remote.reply.values[0];
    pthread_mutex_unlock(&remote.call_lock);
    if (ret == 0 && (fd < 0 || type != GFXSTREAM_HANDLE_MEM_SHM || check_server_memfd(fd) < 0)) {
        ret = -EIO; /* not what the backend makes in this mode: a sealed memfd */
    }
    if (ret != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return ret;
    }
    handle->os_handle = fd;
    handle->handle_type = type;
    return 0;
}

/* The guest maps a blob through its memfd. */
static int remote_resource_map(uint32_t resource_id, void **hva, uint64_t *size)
{
    struct remote_resource *resource = resource_for(resource_id, false);
    if (!resource) {
        return -EINVAL;
    }
    if (resource->map) {
        *hva = resource->map;
        *size = resource->map_bytes;
        return 0;
    }
    struct gfxstream_handle handle;
    int ret = remote_export_blob(resource_id, &handle);
    if (ret != 0) {
        return ret;
    }
    int fd = (int)handle.os_handle;
    int64_t bytes = check_server_memfd(fd); /* checked by remote_export_blob already */
    void *address = bytes > 0 ? mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                              : MAP_FAILED;
    close(fd);
    if (address == MAP_FAILED) {
        return -EINVAL;
    }
    resource->map = address;
    resource->map_bytes = (uint64_t)bytes;
    *hva = address;
    *size = resource->map_bytes;
    return 0;
}

static int remote_resource_unmap(uint32_t resource_id)
{
    struct remote_resource *resource = resource_for(resource_id, false);
    if (!resource || !resource->map) {
        return -EINVAL;
    }
    munmap(resource->map, (size_t)resource->map_bytes);
    resource->map = NULL;
    resource->map_bytes = 0;
    return 0;
}

static int remote_resource_map_info(uint32_t resource_id, uint32_t *map_info)
{
    struct gfxstream_call request = {.op = GFXSTREAM_CALL_MAP_INFO, .resource_id = resource_id};
    pthread_mutex_lock(&remote.call_lock);
    int ret = call_locked(&request, -1, NULL, NULL, remote.timeout_ms);
    *map_info = remote.reply.values[0];
    pthread_mutex_unlock(&remote.call_lock);
    return ret;
}

const struct gfxstream_api gfxstream_remote_api = {
    .get_cap_set = remote_get_cap_set,
    .fill_caps = remote_fill_caps,
    .context_create = remote_context_create,
    .context_destroy = remote_context_destroy,
    .ctx_attach_resource = remote_ctx_attach_resource,
    .ctx_detach_resource = remote_ctx_detach_resource,
    .submit_cmd = remote_submit_cmd,
    .create_fence = remote_create_fence,
    .resource_create = remote_resource_create,
    .resource_unref = remote_resource_unref,
    .resource_attach_iov = remote_resource_attach_iov,
    .resource_detach_iov = remote_resource_detach_iov,
    .transfer_write_iov = remote_transfer_write_iov,
    .transfer_read_iov = remote_transfer_read_iov,
    .create_blob = remote_create_blob,
    .export_blob = remote_export_blob,
    .resource_map = remote_resource_map,
    .resource_unmap = remote_resource_unmap,
    .resource_map_info = remote_resource_map_info,
};

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

static int spawn_server(int call_fd, int event_fd)
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
    /* Its own process group (its probe children with it), no signal blocked or caught. */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                              POSIX_SPAWN_SETSIGDEF);
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
    for (size_t i = 0; i < remote.resources.capacity; i++) {
        if (remote.resources.keys[i]) {
            struct remote_resource *resource = remote.resources.values[i];
            drop_staging(resource);
            if (resource->map) {
                munmap(resource->map, (size_t)resource->map_bytes);
            }
            free(resource);
        }
    }
    id_table_finish(&remote.resources);
}

int gfxstream_remote_start(uint32_t flags, const struct gfxstream_remote_events *events,
                           uint64_t *usable_formats)
{
    remote.events = events;
    remote.timeout_ms = timeout_from_environment("NEEP_GFXSTREAM_TIMEOUT_MS", DEFAULT_TIMEOUT_MS);
    uint32_t probe_timeout_ms =
        timeout_from_environment("NEEP_GFXSTREAM_PROBE_TIMEOUT_MS", GFXSTREAM_PROBE_TIMEOUT_MS);
    atomic_store(&remote.lost, false);
    atomic_store(&remote.stopping, false);
    id_table_init(&remote.resources);
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
    int ret = gfxstream_remote_spawn_hook ? gfxstream_remote_spawn_hook(calls[1], event_pair[1])
                                          : spawn_server(calls[1], event_pair[1]);
    close(calls[1]);
    close(event_pair[1]);
    if (ret == 0) {
        /* Its probe tries the init, then an image of each format, each in a child that may
         * hang until the probe timeout. */
        struct gfxstream_call request = {.op = GFXSTREAM_CALL_START};
        request.u.start.flags = flags;
        request.u.start.probe_timeout_ms = probe_timeout_ms;
        pthread_mutex_lock(&remote.call_lock);
        ret = call_locked(&request, -1, NULL, NULL,
                          probe_timeout_ms * (gfxstream_format_count + 2) + remote.timeout_ms);
        *usable_formats = remote.reply.value64;
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
