/*
 * The cross-domain event thread: one per renderer, shared by all its cross-domain contexts
 * (a guest that opens contexts gets no thread per context). It waits on one epoll set where
 * each fd is armed one-shot for exactly what its context wants now (readable while a POLL is
 * outstanding, writable while output waits), so a ready fd nobody wants cannot make it spin.
 *
 * Event tokens carry the context's serial and the fd's token; a context that went away is
 * looked up and not found, so a stale event is dropped, never followed to freed memory.
 * Fences are signalled without the lock (the rutabaga ABI delivers them on this thread, into
 * the VMM); a context being destroyed waits until its fence is out.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cross_domain.h"
#include "cross_domain_reactor.h"

struct cross_domain_reactor {
    struct neep_renderer *renderer;
    pthread_mutex_t lock;
    pthread_cond_t signalled; /* a fence went out: see signalling_serial */
    int epoll_fd;
    int wake_fd;
    pthread_t thread;
    bool thread_started;
    bool stopping;

    struct id_table contexts; /* serial -> struct cross_domain_context */
    uint32_t next_serial;
    uint32_t fds_held;          /* by all contexts, against CROSS_DOMAIN_MAX_FDS */
    uint32_t signalling_serial; /* context whose fence is being signalled unlocked, or 0 */

    /* fds from the compositor to close once the lock is dropped: closing a file of a FUSE or
     * NFS server may wait for that server. */
    int closing[64];
    uint32_t closing_count;
};

#define WAKE_SERIAL 0u

static uint64_t event_data(uint32_t serial, uint32_t token)
{
    return (uint64_t)serial << 32 | token;
}

void cross_domain_lock(struct cross_domain_context *ctx)
{
    pthread_mutex_lock(&ctx->reactor->lock);
}

void cross_domain_unlock(struct cross_domain_context *ctx)
{
    pthread_mutex_unlock(&ctx->reactor->lock);
}

int cross_domain_arm(struct cross_domain_context *ctx, struct cross_domain_watch *watch,
                     uint32_t events)
{
    if (events == 0 || watch->fd < 0 || (watch->armed_events & events) == events) {
        return 0;
    }
    struct epoll_event event = {.events = events | EPOLLONESHOT,
                                .data.u64 = event_data(ctx->serial, watch->token)};
    int op = watch->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(ctx->reactor->epoll_fd, op, watch->fd, &event) < 0) {
        int error = errno;
        cd_error(ctx, "cross-domain: cannot watch fd %d: %s", watch->fd, strerror(error));
        return -error;
    }
    watch->registered = true;
    watch->armed_events = events;
    return 0;
}

void cross_domain_unwatch(struct cross_domain_context *ctx, struct cross_domain_watch *watch)
{
    /* Before the fd closes: a duplicate elsewhere (the compositor's copy of a pipe) would
     * otherwise keep the registration, and its events, alive. */
    if (watch->registered) {
        epoll_ctl(ctx->reactor->epoll_fd, EPOLL_CTL_DEL, watch->fd, NULL);
    }
    watch->registered = false;
    watch->armed_events = 0;
}

void cross_domain_close_later(struct cross_domain_context *ctx, int fd)
{
    struct cross_domain_reactor *reactor = ctx->reactor;
    if (reactor->closing_count == sizeof(reactor->closing) / sizeof(reactor->closing[0])) {
        close(fd);
        return;
    }
    reactor->closing[reactor->closing_count++] = fd;
}

/* Called with the lock held; drops it while closing. */
static void close_pending(struct cross_domain_reactor *reactor)
{
    int fds[sizeof(reactor->closing) / sizeof(reactor->closing[0])];
    uint32_t count = reactor->closing_count;
    memcpy(fds, reactor->closing, count * sizeof(int));
    reactor->closing_count = 0;
    if (count == 0) {
        return;
    }
    pthread_mutex_unlock(&reactor->lock);
    for (uint32_t i = 0; i < count; i++) {
        close(fds[i]);
    }
    pthread_mutex_lock(&reactor->lock);
}

bool cross_domain_fds_take(struct cross_domain_context *ctx, uint32_t count)
{
    struct cross_domain_reactor *reactor = ctx->reactor;
    if (count > CROSS_DOMAIN_MAX_FDS_PER_CONTEXT - ctx->fds_held) {
        cd_error(ctx, "cross-domain: context %u holds %u host fds, the limit is %u", ctx->base.id,
                 ctx->fds_held, CROSS_DOMAIN_MAX_FDS_PER_CONTEXT);
        return false;
    }
    if (count > CROSS_DOMAIN_MAX_FDS - reactor->fds_held) {
        cd_error(ctx, "cross-domain: the guest's contexts hold %u host fds, the limit is %u",
                 reactor->fds_held, CROSS_DOMAIN_MAX_FDS);
        return false;
    }
    ctx->fds_held += count;
    reactor->fds_held += count;
    return true;
}

void cross_domain_fds_give_back(struct cross_domain_context *ctx, uint32_t count)
{
    ctx->fds_held -= count;
    ctx->reactor->fds_held -= count;
}

/* Handles one batch of events; called with the lock held, returns with it held. */
static void handle_events(struct cross_domain_reactor *reactor, const struct epoll_event *events,
                          int count)
{
    for (int i = 0; i < count; i++) {
        uint32_t serial = (uint32_t)(events[i].data.u64 >> 32);
        uint32_t token = (uint32_t)events[i].data.u64;
        if (serial == WAKE_SERIAL) {
            uint64_t counter;
            ssize_t ignored = read(reactor->wake_fd, &counter, sizeof(counter));
            (void)ignored;
            continue;
        }
        struct cross_domain_context *ctx = id_table_get(&reactor->contexts, serial);
        if (!ctx || !cross_domain_handle_event(ctx, token, events[i].events)) {
            continue;
        }
        /* Signal without the lock: the embedder may deliver right here. */
        reactor->signalling_serial = serial;
        struct neep_timeline *timeline = ctx->poll_timeline;
        uint64_t fence_id = ctx->poll_fence_id;
        pthread_mutex_unlock(&reactor->lock);
        neep_timeline_signal(timeline, fence_id);
        pthread_mutex_lock(&reactor->lock);
        reactor->signalling_serial = 0;
        pthread_cond_broadcast(&reactor->signalled);
    }
}

static void *reactor_thread(void *arg)
{
    struct cross_domain_reactor *reactor = arg;
    pthread_mutex_lock(&reactor->lock);
    while (!reactor->stopping) {
        pthread_mutex_unlock(&reactor->lock);
        struct epoll_event events[32];
        int count = epoll_wait(reactor->epoll_fd, events, 32, -1);
        pthread_mutex_lock(&reactor->lock);
        if (count > 0 && !reactor->stopping) {
            handle_events(reactor, events, count);
        }
        close_pending(reactor);
    }
    pthread_mutex_unlock(&reactor->lock);
    return NULL;
}

static void reactor_free(struct cross_domain_reactor *reactor)
{
    if (reactor->thread_started) {
        pthread_mutex_lock(&reactor->lock);
        reactor->stopping = true;
        pthread_mutex_unlock(&reactor->lock);
        uint64_t one = 1;
        ssize_t ignored = write(reactor->wake_fd, &one, sizeof(one));
        (void)ignored;
        pthread_join(reactor->thread, NULL);
    }
    for (uint32_t i = 0; i < reactor->closing_count; i++) {
        close(reactor->closing[i]);
    }
    if (reactor->epoll_fd >= 0) {
        close(reactor->epoll_fd);
    }
    if (reactor->wake_fd >= 0) {
        close(reactor->wake_fd);
    }
    id_table_finish(&reactor->contexts);
    pthread_cond_destroy(&reactor->signalled);
    pthread_mutex_destroy(&reactor->lock);
    free(reactor);
}

static int reactor_create(struct neep_renderer *renderer, struct cross_domain_reactor **out)
{
    struct cross_domain_reactor *reactor = calloc(1, sizeof(*reactor));
    if (!reactor) {
        return -ENOMEM;
    }
    reactor->renderer = renderer;
    pthread_mutex_init(&reactor->lock, NULL);
    pthread_cond_init(&reactor->signalled, NULL);
    id_table_init(&reactor->contexts);
    reactor->next_serial = 1;
    reactor->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    reactor->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int ret = 0;
    struct epoll_event wake = {.events = EPOLLIN, .data.u64 = event_data(WAKE_SERIAL, 0)};
    if (reactor->epoll_fd < 0 || reactor->wake_fd < 0 ||
        epoll_ctl(reactor->epoll_fd, EPOLL_CTL_ADD, reactor->wake_fd, &wake) < 0) {
        ret = -errno;
    } else if (!renderer->cross_domain_manual_pump) {
        if (pthread_create(&reactor->thread, NULL, reactor_thread, reactor) != 0) {
            ret = -EAGAIN;
        } else {
            reactor->thread_started = true;
        }
    }
    if (ret < 0) {
        reactor_free(reactor);
        return ret;
    }
    *out = reactor;
    return 0;
}

int cross_domain_reactor_join(struct cross_domain_context *ctx)
{
    struct neep_renderer *renderer = ctx->base.renderer;
    struct cross_domain_reactor *reactor = renderer->cross_domain_reactor;
    if (!reactor) {
        int ret = reactor_create(renderer, &reactor);
        if (ret < 0) {
            return ret;
        }
        renderer->cross_domain_reactor = reactor;
    }
    ctx->reactor = reactor;
    pthread_mutex_lock(&reactor->lock);
    /* Serials are never 0 (the wake fd's) and skip those in use after wrapping. */
    while (reactor->next_serial == WAKE_SERIAL ||
           id_table_get(&reactor->contexts, reactor->next_serial)) {
        reactor->next_serial++;
    }
    ctx->serial = reactor->next_serial++;
    int ret = id_table_insert(&reactor->contexts, ctx->serial, ctx);
    pthread_mutex_unlock(&reactor->lock);
    if (ret < 0) {
        ctx->serial = 0;
        if (reactor->contexts.count == 0) {
            reactor_free(reactor);
            renderer->cross_domain_reactor = NULL;
        }
        ctx->reactor = NULL;
    }
    return ret;
}

void cross_domain_reactor_forget(struct cross_domain_context *ctx)
{
    struct cross_domain_reactor *reactor = ctx->reactor;
    /* From here no event finds this context; one may be having its fence signalled with the
     * lock dropped, so wait for that to finish. */
    id_table_remove(&reactor->contexts, ctx->serial);
    while (reactor->signalling_serial == ctx->serial) {
        pthread_cond_wait(&reactor->signalled, &reactor->lock);
    }
}

void cross_domain_reactor_leave(struct cross_domain_context *ctx)
{
    struct cross_domain_reactor *reactor = ctx->reactor;
    ctx->reactor = NULL;
    pthread_mutex_lock(&reactor->lock);
    bool last = reactor->contexts.count == 0;
    pthread_mutex_unlock(&reactor->lock);
    if (last) {
        /* The embedder's thread owns context creation, so nobody joins concurrently. */
        ctx->base.renderer->cross_domain_reactor = NULL;
        reactor_free(reactor);
    }
}

int neep_cross_domain_pump(struct neep_renderer *renderer, int timeout_ms)
{
    struct cross_domain_reactor *reactor = renderer->cross_domain_reactor;
    if (!reactor || reactor->thread_started) {
        return 0;
    }
    struct epoll_event events[32];
    int count = epoll_wait(reactor->epoll_fd, events, 32, timeout_ms);
    if (count <= 0) {
        return 0;
    }
    pthread_mutex_lock(&reactor->lock);
    handle_events(reactor, events, count);
    close_pending(reactor);
    pthread_mutex_unlock(&reactor->lock);
    return count;
}

void neep_cross_domain_set_manual_pump(struct neep_renderer *renderer)
{
    renderer->cross_domain_manual_pump = true;
}
