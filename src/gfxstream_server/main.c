/*
 * neep-gfxstream-server: serves neep's calls to gfxstream's host backend from a process of its
 * own, so that what a guest does to the backend (which trusts its caller, reads guest rings
 * without bounds and aborts on much it dislikes) ends here, not in the VMM. neep starts it
 * with the two sockets of src/contexts/gfxstream_protocol.h as fds 3 and 4; it ends when
 * neep closes them or its parent dies. Calls are answered one at a time, in order.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"
#include "util/fd_passing.h"
#include "util/id_table.h"

/* What the server keeps per resource beside the backend. */
struct server_resource {
    void *staging; /* neep's staging memfd, mapped: the backend's iovec */
    uint64_t staging_bytes;
    int export_fd; /* the fd the backend hands over once, or -1 */
    uint32_t export_type;
};

static struct id_table resources;
static pthread_mutex_t event_lock = PTHREAD_MUTEX_INITIALIZER;
static bool backend_started;
bool server_events_off;

/* ---- events: on the backend's threads ------------------------------------------------------ */

static void send_event(const struct gfxstream_event *event, bool may_drop)
{
    if (server_events_off) {
        return;
    }
    pthread_mutex_lock(&event_lock);
    ssize_t sent = send(GFXSTREAM_SERVER_EVENT_FD, event, sizeof(*event),
                        MSG_NOSIGNAL | (may_drop ? MSG_DONTWAIT : 0));
    pthread_mutex_unlock(&event_lock);
    if (sent < 0 && !(may_drop && (errno == EAGAIN || errno == EWOULDBLOCK))) {
        _exit(0); /* neep is gone */
    }
}

void server_log(uint32_t level, const char *format, ...)
{
    /* Once the backend runs, what the server says is about what a guest asked for. */
    struct gfxstream_event event = {.type = GFXSTREAM_EVENT_LOG,
                                    .level =
                                        level | (backend_started ? 0 : GFXSTREAM_LOG_FROM_SERVER)};
    va_list args;
    va_start(args, format);
    vsnprintf(event.text, sizeof(event.text), format, args);
    va_end(args);
    send_event(&event, true);
}

void server_on_fence(void *user_data, struct gfxstream_fence *fence)
{
    (void)user_data;
    struct gfxstream_event event = {.type = GFXSTREAM_EVENT_FENCE};
    memcpy(&event.fence, fence, sizeof(event.fence));
    /* A fence must arrive: this waits while neep's event thread catches up. */
    send_event(&event, false);
}

void server_on_debug(void *user_data, struct gfxstream_debug *debug)
{
    (void)user_data;
    struct gfxstream_event event = {.type = GFXSTREAM_EVENT_LOG, .level = debug->debug_type};
    snprintf(event.text, sizeof(event.text), "%s", debug->message ? debug->message : "");
    send_event(&event, true); /* a flood of them is dropped, not queued */
}

/* ---- resources ------------------------------------------------------------------------------ */

static struct server_resource *resource_for(uint32_t id, bool create)
{
    if (!create) {
        return id_table_get(&resources, id);
    }
    bool created;
    struct server_resource *resource =
        id_table_get_or_add(&resources, id, sizeof(*resource), &created);
    if (created) {
        resource->export_fd = -1;
    }
    return resource;
}

static void drop_staging(struct server_resource *resource)
{
    if (resource->staging) {
        munmap(resource->staging, resource->staging_bytes);
        resource->staging = NULL;
        resource->staging_bytes = 0;
    }
}

/* Maps a memfd neep sent, at least `size_bytes` long; NULL if it is not. */
static void *map_memfd(int fd, uint64_t size_bytes)
{
    struct stat info;
    if (fd < 0 || size_bytes == 0 || size_bytes > SIZE_MAX || fstat(fd, &info) < 0 ||
        (uint64_t)info.st_size < size_bytes) {
        return NULL;
    }
    void *address = mmap(NULL, (size_t)size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return address == MAP_FAILED ? NULL : address;
}

static int attach_backing(const struct gfxstream_call *call, int fd)
{
    struct server_resource *resource = resource_for(call->resource_id, true);
    void *staging = map_memfd(fd, call->size_bytes);
    if (!resource || !staging) {
        return -EINVAL;
    }
    struct iovec iov = {.iov_base = staging, .iov_len = (size_t)call->size_bytes};
    int ret = server_api.resource_attach_iov((int)call->resource_id, &iov, 1);
    if (ret != 0) {
        munmap(staging, (size_t)call->size_bytes);
        return ret;
    }
    drop_staging(resource); /* the backend took the new one in its place */
    resource->staging = staging;
    resource->staging_bytes = call->size_bytes;
    return 0;
}

static void detach_backing(uint32_t id)
{
    struct iovec *list = NULL;
    int count = 0;
    server_api.resource_detach_iov((int)id, &list, &count);
    struct server_resource *resource = resource_for(id, false);
    if (resource) {
        drop_staging(resource);
    }
}

static void unref(uint32_t id)
{
    server_api.resource_unref(id);
    struct server_resource *resource = resource_for(id, false);
    if (resource) {
        drop_staging(resource);
        if (resource->export_fd >= 0) {
            close(resource->export_fd);
        }
        id_table_remove(&resources, id);
        free(resource);
    }
}

static int transfer(const struct gfxstream_call *call, int fd)
{
    struct gfxstream_box box = call->u.transfer.box;
    /* A memfd with the call: the caller's own buffer instead of the resource's backing. */
    void *buffer = NULL;
    if (fd >= 0) {
        buffer = map_memfd(fd, call->size_bytes);
        if (!buffer) {
            return -EINVAL;
        }
    }
    struct iovec iov = {.iov_base = buffer, .iov_len = (size_t)call->size_bytes};
    int ret = call->u.transfer.to_host
                  ? server_api.transfer_write_iov(call->resource_id, call->ctx_id, 0, 0, 0, &box,
                                                  call->u.transfer.offset_bytes,
                                                  buffer ? &iov : NULL, buffer ? 1 : 0)
                  : server_api.transfer_read_iov(call->resource_id, call->ctx_id, 0, 0, 0, &box,
                                                 call->u.transfer.offset_bytes,
                                                 buffer ? &iov : NULL, buffer ? 1 : 0);
    if (buffer) {
        munmap(buffer, (size_t)call->size_bytes);
    }
    return ret;
}

/* The fd of a mappable blob (the backend gives it once: kept, and sent again each time). */
static int export_blob(uint32_t id, struct gfxstream_reply *reply, int *fd_out)
{
    struct server_resource *resource = resource_for(id, true);
    if (!resource) {
        return -ENOMEM;
    }
    if (resource->export_fd < 0) {
        struct gfxstream_handle handle = {.os_handle = -1};
        int ret = server_api.export_blob(id, &handle);
        if (ret != 0 || handle.os_handle < 0 || handle.os_handle > INT32_MAX) {
            return ret ? ret : -EINVAL;
        }
        resource->export_fd = (int)handle.os_handle;
        resource->export_type = handle.handle_type;
    }
    reply->values[0] = resource->export_type;
    *fd_out = resource->export_fd;
    return 0;
}

/* ---- calls ---------------------------------------------------------------------------------- */

static int start(const struct gfxstream_call *call, struct gfxstream_reply *reply)
{
    if (backend_started) {
        return -EALREADY;
    }
    uint64_t usable = 0;
    int ret = server_start(call->u.start.flags | GFXSTREAM_FLAG_USE_EXTERNAL_BLOB |
                               GFXSTREAM_FLAG_USE_SYSTEM_BLOB,
                           call->u.start.probe_timeout_ms, call->u.start.skip_probe == 1, &usable);
    backend_started = ret == 0;
    reply->value64 = usable;
    return ret;
}

/* Answers one call; the reply's length in *reply_bytes, an fd to send with it in *fd_out. */
static int serve(const struct gfxstream_call *call, int fd, struct gfxstream_reply *reply,
                 size_t *reply_bytes, int *fd_out)
{
    if (call->op == GFXSTREAM_CALL_START) {
        return start(call, reply);
    }
    if (!backend_started) {
        return -ENODEV;
    }
    switch (call->op) {
    case GFXSTREAM_CALL_GET_CAPSET: {
        uint32_t version = 0, size = 0;
        server_api.get_cap_set(call->value, &version, &size);
        if (size == 0 || size > GFXSTREAM_MAX_CAPSET_BYTES) {
            return -ENODEV;
        }
        server_api.fill_caps(call->value, version, reply->data);
        reply->values[0] = version;
        reply->values[1] = size;
        *reply_bytes += size;
        return 0;
    }
    case GFXSTREAM_CALL_CONTEXT_CREATE:
        if (call->u.name.length == 0 || call->u.name.length > GFXSTREAM_MAX_NAME_BYTES) {
            return -EINVAL;
        }
        return server_api.context_create(call->ctx_id, call->u.name.length, call->u.name.bytes,
                                         call->value);
    case GFXSTREAM_CALL_CONTEXT_DESTROY:
        server_api.context_destroy(call->ctx_id);
        return 0;
    case GFXSTREAM_CALL_ATTACH_RESOURCE:
        server_api.ctx_attach_resource((int)call->ctx_id, (int)call->resource_id);
        return 0;
    case GFXSTREAM_CALL_DETACH_RESOURCE:
        server_api.ctx_detach_resource((int)call->ctx_id, (int)call->resource_id);
        return 0;
    case GFXSTREAM_CALL_SUBMIT: {
        if (call->u.command.size_bytes < 4 ||
            call->u.command.size_bytes > GFXSTREAM_MAX_COMMAND_BYTES) {
            return -EINVAL;
        }
        uint8_t bytes[GFXSTREAM_MAX_COMMAND_BYTES];
        memcpy(bytes, call->u.command.bytes, sizeof(bytes));
        struct gfxstream_command command = {
            .ctx_id = call->ctx_id, .cmd_size = call->u.command.size_bytes, .cmd = bytes};
        int ret = server_api.submit_cmd(&command);
        if (ret != 0) {
            uint32_t op;
            memcpy(&op, bytes, sizeof(op));
            server_log(GFXSTREAM_DEBUG_WARN, "gfxstream: ctx %u: command 0x%x refused (%d)",
                       call->ctx_id, op, ret);
        }
        return ret;
    }
    case GFXSTREAM_CALL_CREATE_FENCE: {
        int ret = server_api.create_fence(&call->u.fence);
        if (ret != 0) {
            /* Refused, it would never complete: its guest would wait forever. */
            server_log(GFXSTREAM_DEBUG_WARN, "gfxstream: fence %llu (ctx %u) refused (%d)",
                       (unsigned long long)call->u.fence.fence_id, call->u.fence.ctx_id, ret);
            server_on_fence(NULL, (struct gfxstream_fence *)&call->u.fence);
        }
        return ret;
    }
    case GFXSTREAM_CALL_RESOURCE_CREATE: {
        struct gfxstream_resource_create_args args = call->u.create;
        return server_api.resource_create(&args, NULL, 0);
    }
    case GFXSTREAM_CALL_RESOURCE_UNREF:
        unref(call->resource_id);
        return 0;
    case GFXSTREAM_CALL_ATTACH_BACKING:
        return attach_backing(call, fd);
    case GFXSTREAM_CALL_DETACH_BACKING:
        detach_backing(call->resource_id);
        return 0;
    case GFXSTREAM_CALL_TRANSFER:
        return transfer(call, fd);
    case GFXSTREAM_CALL_CREATE_BLOB:
        return server_api.create_blob(call->ctx_id, call->resource_id, &call->u.blob, NULL, 0,
                                      NULL);
    case GFXSTREAM_CALL_EXPORT_BLOB:
        return export_blob(call->resource_id, reply, fd_out);
    case GFXSTREAM_CALL_MAP_INFO: {
        uint32_t info = 0;
        int ret = server_api.resource_map_info(call->resource_id, &info);
        reply->values[0] = info;
        return ret;
    }
    }
    return -ENOSYS;
}

/* One call from neep, with at most one fd; false when neep is gone. */
static bool receive_call(struct gfxstream_call *call, int *fd)
{
    union fd_passing_control control;
    struct iovec iov = {.iov_base = call, .iov_len = sizeof(*call)};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.bytes,
                         .msg_controllen = sizeof(control.bytes)};
    ssize_t got;
    do {
        got = recvmsg(GFXSTREAM_SERVER_CALL_FD, &msg, MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    if (got <= 0) {
        return false;
    }
    *fd = fd_passing_take_first(&msg);
    if ((size_t)got != sizeof(*call) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        call->op = 0; /* answered as unknown */
    }
    return true;
}

static bool send_reply(const struct gfxstream_reply *reply, size_t bytes, int fd)
{
    union fd_passing_control control;
    struct iovec iov = {.iov_base = (void *)reply, .iov_len = bytes};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    fd_passing_attach(&msg, &control, &fd, fd >= 0 ? 1 : 0);
    ssize_t sent;
    do {
        sent = sendmsg(GFXSTREAM_SERVER_CALL_FD, &msg, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent == (ssize_t)bytes;
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "neep-gfxstream-server: neep starts this program itself (see neep(7))\n");
        return 2;
    }
    /* Nothing of the VMM's but the two sockets (its guest memory, its devices: whatever it
     * left without close-on-exec); neep gave it no input, and a pipe for output. */
    close_range(GFXSTREAM_SERVER_EVENT_FD + 1, ~0u, 0);
    /* End with neep, gain no privileges, and let a closed socket be an error, not a signal. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    int type = 0;
    socklen_t length = sizeof(type);
    if (getsockopt(GFXSTREAM_SERVER_CALL_FD, SOL_SOCKET, SO_TYPE, &type, &length) < 0 ||
        type != SOCK_SEQPACKET || getppid() == 1) {
        fprintf(stderr, "neep-gfxstream-server: neep starts this program itself (see neep(7))\n");
        return 2;
    }
    char why[256] = "";
    int sandboxed = server_sandbox(why, sizeof(why));
    if (sandboxed < 0) {
        server_log(GFXSTREAM_DEBUG_ERROR, "gfxstream: its server cannot start: %s", why);
        return 1;
    }
    if (sandboxed > 0) {
        server_log(GFXSTREAM_DEBUG_WARN, "gfxstream: its server runs with less isolation: %s", why);
    }
    id_table_init(&resources);
    static struct gfxstream_reply reply;
    for (;;) {
        struct gfxstream_call call;
        int fd = -1;
        if (!receive_call(&call, &fd)) {
            break;
        }
        memset(&reply, 0, GFXSTREAM_REPLY_HEADER_BYTES);
        size_t reply_bytes = GFXSTREAM_REPLY_HEADER_BYTES;
        int fd_out = -1;
        bool reply_wanted = !(call.op & GFXSTREAM_CALL_NO_REPLY);
        call.op &= ~GFXSTREAM_CALL_NO_REPLY;
        reply.op = call.op;
        reply.ret = serve(&call, fd, &reply, &reply_bytes, &fd_out);
        if (fd >= 0) {
            close(fd);
        }
        if (reply_wanted && !send_reply(&reply, reply_bytes, fd_out)) {
            break;
        }
    }
    /* neep closed its end: the backend's threads are stopped before the process ends (they
     * crash an exiting process otherwise). */
    server_teardown();
    _exit(0);
}
