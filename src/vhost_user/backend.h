/*
 * The back-end side of a vhost-user connection carrying a virtio-gpu device.
 *
 * The transport owns no event loop: it asks its embedder to watch fds (the connection, the
 * queues' kick eventfds, the device's fence fd) and to call back when one is readable, and
 * the display channel when it is writable again.
 */
#ifndef NEEP_VHOST_USER_BACKEND_H
#define NEEP_VHOST_USER_BACKEND_H

#include <stdbool.h>

#include <neep/device.h>

struct vu_backend;

typedef void (*vu_ready_fn)(void *arg);

struct vu_watch_ops {
    /* Call `ready(arg)` whenever `fd` is readable, until removed. Returns 0 or -errno. */
    int (*add)(void *user_data, int fd, vu_ready_fn ready, void *arg);
    /* The same for writable (the display channel, while output waits for it). */
    int (*add_writable)(void *user_data, int fd, vu_ready_fn ready, void *arg);
    void (*remove)(void *user_data, int fd);
};

struct vu_backend_config {
    /* The device to expose; its display and translate fields are filled in here. */
    struct neep_device_config device;
    const struct vu_watch_ops *watch;
    void *watch_user_data;
};

/* Serves the front-end on the connected socket `socket_fd` (owned afterwards). */
int vu_backend_create(const struct vu_backend_config *config, int socket_fd,
                      struct vu_backend **out);
/* Releases everything: the guest's resources, mappings, fds. Accepts NULL. */
void vu_backend_destroy(struct vu_backend *backend);

/* False once the front-end hung up or broke the protocol; destroy the backend then. */
bool vu_backend_alive(const struct vu_backend *backend);

struct neep_device *vu_backend_device(struct vu_backend *backend);

/* What the display channel carried: the guest's flushed updates, and how many of them (merged
 * when the front-end fell behind) were written whole. */
struct vu_display_stats;
void vu_backend_display_stats(const struct vu_backend *backend, struct vu_display_stats *out);

#endif
