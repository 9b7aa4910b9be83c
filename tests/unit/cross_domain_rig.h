/*
 * The cross-domain test rig: a renderer with one cross-domain context, this test playing the
 * guest proxy (commands, rings, fences) and, on a real UNIX socket, the host compositor.
 */
#ifndef NEEP_TEST_CROSS_DOMAIN_RIG_H
#define NEEP_TEST_CROSS_DOMAIN_RIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <neep/renderer.h>

#include "contexts/cross_domain_protocol.h"
#include "support.h"

#define CTX             1
#define QUERY_RING_ID   101
#define CHANNEL_RING_ID 102

struct rig {
    struct neep_renderer *renderer;
    char dir[64];
    char socket_path[96];
    int listen_fd;
    int compositor_fd; /* the test's end of the connection */
    uint8_t *query_ring;
    uint8_t *channel_ring;
    uint64_t next_fence;
    struct log_capture log;
};

void make_ring(struct rig *rig, uint32_t ctx, uint32_t id, uint8_t **memory);
void rig_init(struct rig *rig);
void rig_finish(struct rig *rig);
int submit(struct rig *rig, uint32_t ctx, const void *command, size_t size);
struct cross_domain_header header(uint8_t cmd, size_t size);
void init_channel(struct rig *rig);
int fence(struct rig *rig, uint32_t ctx, uint32_t ring, uint64_t *id);
bool fence_done(struct rig *rig, uint64_t id, int ms);
uint64_t start_poll(struct rig *rig);
int memfd_holding(const char *text);
void compositor_send(struct rig *rig, const void *data, size_t size, const int *fds, int fd_count);
struct cross_domain_image_requirements query_requirements(struct rig *rig, uint32_t width,
                                                          uint32_t height, uint32_t format);
ssize_t compositor_receive(struct rig *rig, void *data, size_t size, int *fd);

#endif
