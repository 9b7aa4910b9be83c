/*
 * Fence timelines and their delivery.
 *
 * Each timeline keeps its pending fences in a ring buffer in creation order. Completion (on
 * any thread) advances the timeline's completed count, puts the timeline on the ready list
 * and bumps an eventfd. The embedder polls that fd and calls dispatch on its own thread,
 * which hands completed fences out in order. The ring buffer grows by doubling, so creating
 * and completing a fence allocates nothing in the steady state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "contexts/context_type.h"
#include "renderer_internal.h"

#define TIMELINE_MIN_CAPACITY 16u

int neep_fences_init(struct neep_renderer *renderer)
{
    pthread_mutex_init(&renderer->fence_lock, NULL);
    pthread_mutex_init(&renderer->dispatch_lock, NULL);
    neep_timeline_init(&renderer->global_timeline, renderer, 0, 0, true);
    renderer->fence_event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (renderer->fence_event_fd < 0) {
        return -errno;
    }
    renderer->embedder_thread = pthread_self();
    return 0;
}

void neep_fences_finish(struct neep_renderer *renderer)
{
    neep_timeline_finish(&renderer->global_timeline);
    if (renderer->fence_event_fd >= 0) {
        close(renderer->fence_event_fd);
    }
    pthread_mutex_destroy(&renderer->dispatch_lock);
    pthread_mutex_destroy(&renderer->fence_lock);
}

void neep_timeline_init(struct neep_timeline *timeline, struct neep_renderer *renderer,
                        uint32_t ctx_id, uint32_t ring_idx, bool is_global)
{
    memset(timeline, 0, sizeof(*timeline));
    timeline->renderer = renderer;
    timeline->ctx_id = ctx_id;
    timeline->ring_idx = ring_idx;
    timeline->is_global = is_global;
}

/* Caller holds fence_lock. */
static void unlink_ready(struct neep_renderer *renderer, struct neep_timeline *timeline)
{
    if (!timeline->on_ready_list) {
        return;
    }
    struct neep_timeline **link = &renderer->ready_head;
    struct neep_timeline *previous = NULL;
    while (*link && *link != timeline) {
        previous = *link;
        link = &(*link)->ready_next;
    }
    if (*link) {
        *link = timeline->ready_next;
        if (renderer->ready_tail == timeline) {
            renderer->ready_tail = previous;
        }
    }
    timeline->on_ready_list = false;
    timeline->ready_next = NULL;
}

void neep_timeline_finish(struct neep_timeline *timeline)
{
    struct neep_renderer *renderer = timeline->renderer;
    pthread_mutex_lock(&renderer->fence_lock);
    unlink_ready(renderer, timeline);
    free(timeline->entries);
    neep_budget_release(renderer, (uint64_t)timeline->capacity * sizeof(*timeline->entries));
    timeline->entries = NULL;
    timeline->capacity = 0;
    timeline->count = 0;
    timeline->completed_count = 0;
    pthread_mutex_unlock(&renderer->fence_lock);
}

/* Caller holds fence_lock. */
static void mark_ready(struct neep_renderer *renderer, struct neep_timeline *timeline)
{
    if (timeline->on_ready_list) {
        return;
    }
    timeline->on_ready_list = true;
    timeline->ready_next = NULL;
    if (renderer->ready_tail) {
        renderer->ready_tail->ready_next = timeline;
    } else {
        renderer->ready_head = timeline;
    }
    renderer->ready_tail = timeline;
}

void neep_renderer_wake_dispatcher(struct neep_renderer *renderer)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already huge: the fd is readable either way. */
    ssize_t ignored = write(renderer->fence_event_fd, &one, sizeof(one));
    (void)ignored;
    if (renderer->fence_notify) {
        renderer->fence_notify(renderer->fence_notify_user_data);
    }
}

void neep_renderer_set_fence_notify(struct neep_renderer *renderer, neep_fence_notify_fn fn,
                                    void *user_data)
{
    renderer->fence_notify = fn;
    renderer->fence_notify_user_data = user_data;
}

/* Caller holds fence_lock. The entries are charged to the budget: a guest decides how many
 * fences wait. */
static int grow_timeline(struct neep_timeline *timeline)
{
    uint32_t new_capacity = timeline->capacity ? timeline->capacity * 2 : TIMELINE_MIN_CAPACITY;
    uint64_t growth_bytes =
        (uint64_t)(new_capacity - timeline->capacity) * sizeof(*timeline->entries);
    if (neep_budget_charge(timeline->renderer, growth_bytes) < 0) {
        return -ENOMEM;
    }
    struct neep_fence_entry *entries = malloc(new_capacity * sizeof(*entries));
    if (!entries) {
        neep_budget_release(timeline->renderer, growth_bytes);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < timeline->count; i++) {
        entries[i] = timeline->entries[(timeline->head + i) % timeline->capacity];
    }
    free(timeline->entries);
    timeline->entries = entries;
    timeline->capacity = new_capacity;
    timeline->head = 0;
    return 0;
}

/* Queues a fence carrying renderer number `seq` (0 for none). */
static int push_entry(struct neep_timeline *timeline, const struct neep_fence *fence,
                      bool complete_now, uint32_t seq)
{
    uint64_t fence_id = fence->fence_id;
    struct neep_renderer *renderer = timeline->renderer;
    pthread_mutex_lock(&renderer->fence_lock);
    if (timeline->count >= NEEP_MAX_PENDING_FENCES_PER_TIMELINE) {
        pthread_mutex_unlock(&renderer->fence_lock);
        renderer_error(renderer, "fence %llu: %u fences already pending on ctx %u ring %u",
                       (unsigned long long)fence_id, timeline->count, timeline->ctx_id,
                       timeline->ring_idx);
        return -E2BIG;
    }
    if (timeline->count == timeline->capacity && grow_timeline(timeline) < 0) {
        pthread_mutex_unlock(&renderer->fence_lock);
        return -ENOMEM;
    }
    uint32_t slot = (timeline->head + timeline->count) % timeline->capacity;
    timeline->entries[slot].fence = *fence;
    timeline->entries[slot].seq = seq;
    timeline->count++;
    if (complete_now) {
        timeline->completed_count = timeline->count;
        mark_ready(renderer, timeline);
    }
    pthread_mutex_unlock(&renderer->fence_lock);
    if (complete_now) {
        neep_renderer_wake_dispatcher(renderer);
    }
    return 0;
}

int neep_timeline_push(struct neep_timeline *timeline, const struct neep_fence *fence,
                       bool complete_now)
{
    return push_entry(timeline, fence, complete_now, 0);
}

/* Completes the oldest pending fence with `fence_id` (or, with `by_seq`, renderer number
 * `fence_id`) and those before it. */
static void signal_matching(struct neep_timeline *timeline, uint64_t fence_id, bool by_seq)
{
    struct neep_renderer *renderer = timeline->renderer;
    bool found = false;
    pthread_mutex_lock(&renderer->fence_lock);
    for (uint32_t i = timeline->completed_count; i < timeline->count; i++) {
        const struct neep_fence_entry *entry =
            &timeline->entries[(timeline->head + i) % timeline->capacity];
        if ((by_seq ? entry->seq : entry->fence.fence_id) == fence_id) {
            timeline->completed_count = i + 1;
            mark_ready(renderer, timeline);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&renderer->fence_lock);
    if (found) {
        neep_renderer_wake_dispatcher(renderer);
    } else if (!by_seq) {
        renderer_log(renderer, NEEP_LOG_WARN, "fence %llu on ctx %u ring %u is not pending",
                     (unsigned long long)fence_id, timeline->ctx_id, timeline->ring_idx);
    }
}

void neep_timeline_signal(struct neep_timeline *timeline, uint64_t fence_id)
{
    signal_matching(timeline, fence_id, false);
}

void neep_timeline_signal_seq(struct neep_timeline *timeline, uint32_t seq)
{
    signal_matching(timeline, seq, true);
}

void neep_timeline_complete_all(struct neep_timeline *timeline)
{
    struct neep_renderer *renderer = timeline->renderer;
    pthread_mutex_lock(&renderer->fence_lock);
    bool any = timeline->completed_count < timeline->count;
    if (any) {
        timeline->completed_count = timeline->count;
        mark_ready(renderer, timeline);
    }
    pthread_mutex_unlock(&renderer->fence_lock);
    if (any) {
        neep_renderer_wake_dispatcher(renderer);
    }
}

void neep_fences_drop_pending_global(struct neep_renderer *renderer)
{
    pthread_mutex_lock(&renderer->fence_lock);
    renderer->global_timeline.count = renderer->global_timeline.completed_count;
    pthread_mutex_unlock(&renderer->fence_lock);
}

/* Removes the most recently pushed fence, which no one has signalled yet. */
static void drop_newest(struct neep_timeline *timeline)
{
    pthread_mutex_lock(&timeline->renderer->fence_lock);
    if (timeline->count > timeline->completed_count) {
        timeline->count--;
    }
    pthread_mutex_unlock(&timeline->renderer->fence_lock);
}

static int context_timeline(struct neep_context *ctx, uint32_t ring_idx, struct neep_timeline **out)
{
    if (!ctx->rings[ring_idx]) {
        struct neep_timeline *timeline = malloc(sizeof(*timeline));
        if (!timeline) {
            return -ENOMEM;
        }
        neep_timeline_init(timeline, ctx->renderer, ctx->id, ring_idx, false);
        ctx->rings[ring_idx] = timeline;
    }
    *out = ctx->rings[ring_idx];
    return 0;
}

int neep_fence_create(struct neep_renderer *renderer, const struct neep_fence *fence)
{
    if (!fence) {
        return -EINVAL;
    }
    const uint32_t known_flags =
        NEEP_FENCE_FLAG_FENCE | NEEP_FENCE_FLAG_RING_IDX | NEEP_FENCE_FLAG_SHAREABLE;
    if (fence->flags & ~known_flags) {
        renderer_error(renderer, "fence %llu: unknown flags 0x%x",
                       (unsigned long long)fence->fence_id, fence->flags);
        return -EINVAL;
    }
    if (!(fence->flags & NEEP_FENCE_FLAG_RING_IDX)) {
        const struct neep_resource_provider_ops *provider = renderer->resource_provider;
        if (!provider || !provider->create_global_fence) {
            /* Without a 3D provider everything is done by the time it is fenced. */
            return neep_timeline_push(&renderer->global_timeline, fence, true);
        }
        if (++renderer->next_global_seq == 0) {
            renderer->next_global_seq = 1; /* 0 means "no number" */
        }
        uint32_t seq = renderer->next_global_seq;
        int ret = push_entry(&renderer->global_timeline, fence, false, seq);
        if (ret == 0) {
            ret = provider->create_global_fence(renderer, fence, seq);
            if (ret < 0) {
                drop_newest(&renderer->global_timeline);
            }
        }
        return ret;
    }
    struct neep_context *ctx = neep_context_lookup(renderer, fence->ctx_id);
    if (!ctx) {
        renderer_error(renderer, "fence %llu: no context %u", (unsigned long long)fence->fence_id,
                       fence->ctx_id);
        return -ESRCH;
    }
    if (fence->ring_idx >= NEEP_MAX_RINGS) {
        renderer_error(renderer, "fence %llu: ring %u out of range (max %u)",
                       (unsigned long long)fence->fence_id, fence->ring_idx, NEEP_MAX_RINGS - 1);
        return -EINVAL;
    }
    struct neep_timeline *timeline;
    int ret = context_timeline(ctx, fence->ring_idx, &timeline);
    if (ret < 0) {
        return ret;
    }
    bool asynchronous = ctx->ops->create_fence != NULL;
    ret = neep_timeline_push(timeline, fence, !asynchronous);
    if (ret < 0 || !asynchronous) {
        return ret;
    }
    ret = ctx->ops->create_fence(ctx, timeline, fence->fence_id);
    if (ret < 0) {
        /* The context refused it, so nothing will ever signal it: take it back. */
        drop_newest(timeline);
    }
    return ret;
}

int neep_renderer_fence_fd(const struct neep_renderer *renderer)
{
    return renderer->fence_event_fd;
}

/* Takes the next completed fence off the ready list. Caller holds fence_lock. */
static bool pop_completed(struct neep_renderer *renderer, struct neep_fence *out)
{
    while (renderer->ready_head) {
        struct neep_timeline *timeline = renderer->ready_head;
        if (timeline->completed_count == 0) {
            unlink_ready(renderer, timeline);
            continue;
        }
        *out = timeline->entries[timeline->head].fence;
        timeline->head = (timeline->head + 1) % timeline->capacity;
        timeline->count--;
        timeline->completed_count--;
        if (timeline->completed_count == 0) {
            unlink_ready(renderer, timeline);
        }
        return true;
    }
    return false;
}

int neep_renderer_dispatch_fences(struct neep_renderer *renderer, neep_fence_fn fn, void *user_data)
{
    pthread_mutex_lock(&renderer->dispatch_lock);
    uint64_t counter;
    ssize_t ignored = read(renderer->fence_event_fd, &counter, sizeof(counter));
    (void)ignored;

    int delivered = 0;
    struct neep_fence fence;
    for (;;) {
        pthread_mutex_lock(&renderer->fence_lock);
        bool have = pop_completed(renderer, &fence);
        pthread_mutex_unlock(&renderer->fence_lock);
        if (!have) {
            break;
        }
        if (fn) {
            fn(user_data, &fence);
        }
        delivered++;
    }
    pthread_mutex_unlock(&renderer->dispatch_lock);
    /* After the wake-ups were read, or one that came before the read would be lost (a retiring
     * context's last fence, a poll virglrenderer asked for); after the fences, so the dispatch
     * that delivers a fence sees what its completion did. Set and cleared on the embedder's
     * thread only, so read here on that thread alone. */
    if (pthread_equal(pthread_self(), renderer->embedder_thread) && renderer->embedder_poll) {
        renderer->embedder_poll(renderer);
    }
    return delivered;
}
