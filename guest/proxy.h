/*
 * neep-wl's view of one Wayland client: its socket, its cross-domain channel to the host
 * compositor, the byte streams both ways, and the objects whose ids and file descriptors the
 * proxy rewrites. Object ids are translated for the client's own id range (the proxy adds
 * objects of its own on the host side, such as shm pools for shadow buffers); compositor-made
 * ids pass unchanged.
 */
#ifndef NEEP_WL_PROXY_H
#define NEEP_WL_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../src/util/id_table.h"
#include "virtgpu.h"
#include "wire.h"

/* Most fds one direction of a connection may have queued (libwayland allows 28 per send). */
#define PROXY_MAX_QUEUED_FDS 128u
/* Bytes queued for a client that does not read before the proxy stops reading the host, and
 * before it gives up on it. (The fuzz target sets both lower, to reach them cheaply.) */
#ifndef PROXY_CLIENT_BACKLOG_BYTES
#define PROXY_CLIENT_BACKLOG_BYTES (1u << 20)
#endif
#ifndef PROXY_CLIENT_MAX_QUEUED_BYTES
#define PROXY_CLIENT_MAX_QUEUED_BYTES (16u << 20)
#endif

/* What one client may make neep-wl hold: shm pools are mappings of the client's memory (their
 * fds are closed at once), clipboard and drag-and-drop pipes are fds each way. */
#define PROXY_MAX_POOLS_PER_CLIENT      512u
#define PROXY_MAX_POOL_BYTES_PER_CLIENT (16ull << 30)
#define PROXY_MAX_PIPES_PER_CLIENT      64u
/* Host memory the shadows of one client's wl_buffers may take (all clients share the host's). */
#define PROXY_MAX_SHADOW_BYTES_PER_CLIENT (512ull << 20)

/* Marks in the id maps. */
#define ID_CLIENT_ONLY 0xffffffffu /* in to_host: an object the host never sees (shm pools) */
#define ID_PROXY_OWNED 0xffffffffu /* in to_client: a host object of the proxy's own */

struct fd_fifo {
    int fds[PROXY_MAX_QUEUED_FDS];
    uint32_t head;
    uint32_t count;
};

/* An fd queued for the client with the stream offset of the message that carries it. */
struct outgoing_fd {
    int fd;
    uint64_t offset;
};

struct byte_queue {
    uint8_t *data;
    size_t start;
    size_t end;
    size_t capacity;
};

/* Messages for the host, gathered into one SEND: the command's fixed part with the data
 * right behind it, submitted as one block. Appends check the room left in `data` (see
 * proxy_client_send): a message longer than that continues in the next SEND. */
struct send_batch {
    struct cross_domain_send_receive command;
    uint8_t data[VIRTGPU_SEND_MAX_DATA_BYTES];
    size_t data_bytes; /* at most sizeof(data) */
    uint32_t identifier_count;
    bool has_read_pipe;
};

enum watch_kind {
    WATCH_LISTENER,
    WATCH_CLIENT,
    WATCH_CHANNEL,
    WATCH_GUEST_PIPE,  /* read end of a pipe whose write end a client holds (host WRITE_PIPE) */
    WATCH_CLIENT_PIPE, /* a client's pipe the host's READ data is written into */
    WATCH_DEAD,        /* its owner was freed while epoll events for it may still be listed */
};

struct watch {
    enum watch_kind kind;
    struct proxy_client *client;
};

/* A pipe pumped by the proxy: either direction of a clipboard or drag-and-drop transfer. */
struct proxy_pipe {
    struct watch watch;
    int fd;
    uint32_t host_id;
    uint8_t *pending; /* READ data the client's pipe could not take yet */
    size_t pending_bytes;
    bool hang_up_after_pending;
};

struct proxy_client {
    struct watch socket_watch;
    struct watch channel_watch;
    struct proxy *proxy;
    int socket_fd;
    uint32_t serial; /* for log lines */
    struct virtgpu_channel channel;
    bool host_closed;
    bool poll_armed;
    bool closing; /* an error was queued: flush it, then disconnect */

    /* Interfaces by client-side id; id maps for the client range. */
    struct wire_objects objects;
    /* Read through relay_host_id and relay_client_id: they grow with the ids in use. */
    uint32_t *to_host; /* index: client id */
    uint32_t to_host_capacity;
    uint32_t *to_client; /* index: host id */
    uint32_t to_client_capacity;
    uint32_t lowest_free_host_id;

    /* Client to proxy. */
    uint8_t from_client[2 * WIRE_MAX_MESSAGE_BYTES];
    size_t from_client_bytes;
    struct fd_fifo client_fds;

    /* Host to proxy. */
    uint8_t from_host[2 * WIRE_MAX_MESSAGE_BYTES];
    size_t from_host_bytes;
    struct fd_fifo host_fds;

    /* Proxy to client. */
    struct byte_queue to_client_bytes;
    uint64_t to_client_offset; /* stream offset of to_client_bytes' start */
    struct outgoing_fd outgoing_fds[PROXY_MAX_QUEUED_FDS];
    uint32_t outgoing_fd_count;

    struct send_batch batch;

    /* shm shadowing (shm.c): pools, buffers and surfaces by client id. */
    struct id_table pools;
    struct id_table buffers;
    struct id_table surfaces;
    uint32_t shm_pool_count;   /* pools mapped, including destroyed ones buffers still use */
    uint64_t shm_pool_bytes;   /* their mapped bytes */
    uint64_t shm_shadow_bytes; /* host memory the buffers' shadows take */
    uint64_t shm_commits;
    uint64_t shm_copied_bytes;
    uint64_t shm_copy_ns;

    /* Pipes by host id (READ targets) and the proxy's own pipes (WRITE sources). */
    struct id_table read_pipes;
    struct id_table write_pipes;
};

struct proxy {
    int epoll_fd;
    const char *render_node;
    struct watch listener_watch;
    int listener_fd;
    /* An fd kept spare so that a client can still be accepted, and told why it is refused,
     * when neep-wl runs out of fds (-1 when it could not be had). */
    int reserve_fd;
    /* Whether the listener is unwatched for want of fds, and until when. */
    bool listener_paused;
    uint64_t listener_resume_ms; /* CLOCK_MONOTONIC */
    uint32_t next_serial;
    /* Connections polling each ring index: each new one takes the least used. */
    uint32_t ring_users[VIRTGPU_LAST_POLL_RING + 1];
    /* Freed after the current batch of epoll events: later events may still point here. */
    void **garbage;
    size_t garbage_count;
    size_t garbage_capacity;
};

void proxy_defer_free(struct proxy *proxy, void *memory);
void proxy_collect_garbage(struct proxy *proxy);

/* client.c */
/* Tells a client that cannot be served why (wl_display.error), as the only thing it hears. */
void proxy_refuse(int socket_fd, const char *why);
/* Watches `fd` for `events`, whether or not it was watched before. */
int proxy_watch_fd(struct proxy_client *client, int fd, uint32_t events, struct watch *watch);
struct proxy_client *proxy_client_create(struct proxy *proxy, int socket_fd);
void proxy_client_destroy(struct proxy_client *client);
/* Handles readiness of one of the client's fds; false when the client is gone. */
bool proxy_client_handle(struct proxy_client *client, struct watch *watch, uint32_t events);
/* Queues wl_display.error for the client and marks it for closing. */
void proxy_client_fail(struct proxy_client *client, uint32_t object_id, uint32_t code,
                       const char *format, ...) __attribute__((format(printf, 4, 5)));
/* Queues one message (already in client ids) with its fds for the client. */
bool proxy_client_queue(struct proxy_client *client, const uint8_t *message, size_t size,
                        const int *fds, uint32_t fd_count);
/* Adds one message (already in host ids, any size up to WIRE_MAX_MESSAGE_BYTES) and its
 * identifiers to the host batch; a message that does not fit goes on in the next SEND. */
bool proxy_client_send(struct proxy_client *client, const uint8_t *message, size_t size,
                       const uint32_t *ids, const uint32_t *types, uint32_t id_count);
bool proxy_client_flush_host(struct proxy_client *client);

/* channel.c: the host side. */
bool channel_handle_reply(struct proxy_client *client); /* false when the channel failed */
bool channel_pipes_pending(struct proxy_client *client);
void channel_pump_client_pipe(struct proxy_client *client, struct proxy_pipe *pipe);
void channel_forward_guest_pipe(struct proxy_client *client, struct proxy_pipe *pipe);
void channel_pipe_free(struct proxy_client *client, struct proxy_pipe *pipe);
void channel_free_pipes(struct proxy_client *client, struct id_table *table);

/* relay.c: one whole message each way; false when the connection must end. */
bool relay_request(struct proxy_client *client, uint8_t *message, size_t size);
bool relay_event(struct proxy_client *client, uint8_t *message, size_t size);
int relay_init(struct proxy_client *client);
void relay_finish(struct proxy_client *client);
uint32_t relay_alloc_host_id(struct proxy_client *client, uint32_t client_id);
/* The host id of a client id and back; 0 for none. */
uint32_t relay_host_id(const struct proxy_client *client, uint32_t client_id);
uint32_t relay_client_id(const struct proxy_client *client, uint32_t host_id);
/* Marks a client id the host never sees (shm pools); false without memory. */
bool relay_mark_client_only(struct proxy_client *client, uint32_t client_id);
/* Sends wl_display.delete_id for an id the host never knew. */
bool relay_delete_client_only(struct proxy_client *client, uint32_t client_id);

/* fd FIFOs. */
bool fd_fifo_push(struct fd_fifo *fifo, int fd);
int fd_fifo_pop(struct fd_fifo *fifo);
void fd_fifo_clear(struct fd_fifo *fifo);

void proxy_log(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* With --trace, every message each way, as neep-wl saw it (not rate-limited). */
extern bool proxy_tracing;
void proxy_trace(const struct proxy_client *client, const char *direction,
                 const struct wire_message *message, uint32_t from_id, uint32_t to_id);

#endif
