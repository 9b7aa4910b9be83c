/*
 * One whole neep-wl connection on the host: the real client.c, channel.c, relay.c and shm.c
 * over a socketpair whose other end the test holds as the Wayland client, with the host
 * recorded by fake_host.c. The test drives neep-wl's event loop one step at a time.
 */
#ifndef NEEP_TESTS_CONNECTION_SUPPORT_H
#define NEEP_TESTS_CONNECTION_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fake_host.h"
#include "proxy.h"

/* Most fds connection_read takes from one message. */
#define CONNECTION_MAX_FDS 28u

struct test_connection {
    struct proxy proxy;
    struct proxy_client *client; /* NULL once neep-wl has ended the connection */
    int peer_fd;                 /* the Wayland client's end of the socket */
};

/* Resets the fake host and connects; false if neep-wl refused the connection. */
bool connection_open(struct test_connection *connection);
/* Handles ready fds as neep-wl's loop does until none is ready; false if that never ends
 * within `max_rounds` rounds of epoll (a busy loop). */
bool connection_pump(struct test_connection *connection, uint32_t max_rounds);
/* Ends the connection if neep-wl has not and closes everything. */
void connection_close(struct test_connection *connection);
/* Sends bytes (and fds, which stay the caller's) from the client, without blocking or
 * SIGPIPE; false if the socket did not take all of it. */
bool connection_send(struct test_connection *connection, const void *bytes, size_t size,
                     const int *fds, uint32_t fd_count);
/* Reads what neep-wl sent the client, without blocking: returns the bytes read (0 if none)
 * and stores up to CONNECTION_MAX_FDS fds, which become the caller's. */
size_t connection_read(struct test_connection *connection, uint8_t *bytes, size_t size, int *fds,
                       uint32_t *fd_count);

#endif
