/*
 * The cross-domain context type through the renderer's API, with this test playing both the
 * guest proxy (commands, rings, fences) and, on a real UNIX socket, the host compositor.
 * Wayland's own bytes and a real compositor are exercised by the VM tests; here every
 * command and failure path is driven one by one.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cross_domain_rig.h"
#include "harness.h"
#include "renderer/renderer_internal.h"

/* ---- tests -------------------------------------------------------------------------------- */

TEST(capset_reports_the_wayland_channel)
{
    struct rig rig;
    rig_init(&rig);
    uint32_t id, version, size;
    CHECK_EQ(neep_capset_info(rig.renderer, 0, &id, &version, &size), 0);
    CHECK_EQ(id, NEEP_CAPSET_CROSS_DOMAIN);
    CHECK_EQ(size, sizeof(struct cross_domain_capabilities));
    struct cross_domain_capabilities caps;
    CHECK_EQ(neep_capset_get(rig.renderer, 5, 0, &caps, sizeof(caps)), 0);
    CHECK_EQ(caps.version, 1);
    CHECK_EQ(caps.supported_channels, 1u << CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND);
    CHECK_EQ(caps.neep_features, CROSS_DOMAIN_NEEP_ANY_CHANNEL_RING);
    rig_finish(&rig);
}

TEST(image_requirements_and_host_blobs)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    struct cross_domain_get_image_requirements request = {
        .hdr = header(CROSS_DOMAIN_CMD_GET_IMAGE_REQUIREMENTS, 24),
        .width = 100,
        .height = 30,
        .drm_format = 0x34325258 /* XR24 */,
        .flags = 0x11};
    CHECK_EQ(submit(&rig, CTX, &request, sizeof(request)), 0);
    uint64_t id;
    CHECK_EQ(fence(&rig, CTX, CROSS_DOMAIN_QUERY_RING, &id), 0);
    CHECK(fence_done(&rig, id, 1000));
    struct cross_domain_image_requirements reqs;
    memcpy(&reqs, rig.query_ring, sizeof(reqs));
    CHECK_EQ(reqs.strides[0], 400);
    CHECK_EQ(reqs.size, 12288); /* 12000 rounded up to pages */
    CHECK(reqs.blob_id != 0);

    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_HOST3D,
                                    .blob_flags =
                                        NEEP_BLOB_FLAG_USE_MAPPABLE | NEEP_BLOB_FLAG_USE_SHAREABLE,
                                    .blob_id = reqs.blob_id,
                                    .size_bytes = reqs.size};
    CHECK_EQ(neep_resource_create_blob(rig.renderer, CTX, 200, &blob, NULL, 0), 0);
    CHECK_EQ(neep_resource_create_blob(rig.renderer, CTX, 201, &blob, NULL, 0), 0); /* template */
    void *ptr;
    uint64_t size;
    CHECK_EQ(neep_resource_map(rig.renderer, 200, &ptr, &size), 0);
    memcpy(ptr, "pixels", 6);
    int fd;
    uint32_t type;
    CHECK_EQ(neep_resource_export(rig.renderer, 200, &fd, &type), 0);
    char back[6];
    CHECK_EQ(pread(fd, back, 6, 0), 6);
    CHECK(memcmp(back, "pixels", 6) == 0);
    close(fd);
    blob.size_bytes = reqs.size - 1;
    CHECK_EQ(neep_resource_create_blob(rig.renderer, CTX, 202, &blob, NULL, 0), -EINVAL);
    blob.size_bytes = reqs.size;
    blob.blob_id = 9999;
    CHECK_EQ(neep_resource_create_blob(rig.renderer, CTX, 202, &blob, NULL, 0), -EINVAL);
    rig_finish(&rig);
}

TEST(send_carries_bytes_and_blob_fds_to_the_compositor)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    /* A host blob to pass along, from image requirements. */
    struct cross_domain_image_requirements reqs =
        query_requirements(&rig, 4096, 1, 0x20203852 /* R8 */);
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_HOST3D,
                                    .blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE,
                                    .blob_id = reqs.blob_id,
                                    .size_bytes = reqs.size};
    CHECK_EQ(neep_resource_create_blob(rig.renderer, CTX, 300, &blob, NULL, 0), 0);
    CHECK_EQ(neep_context_attach_resource(rig.renderer, CTX, 300), 0);
    void *ptr;
    uint64_t size;
    CHECK_EQ(neep_resource_map(rig.renderer, 300, &ptr, &size), 0);
    memcpy(ptr, "shm!", 4);

    uint8_t buffer[sizeof(struct cross_domain_send_receive) + 12];
    struct cross_domain_send_receive *send = (void *)buffer;
    memset(buffer, 0, sizeof(buffer));
    send->hdr = header(CROSS_DOMAIN_CMD_SEND, sizeof(buffer));
    send->num_identifiers = 1;
    send->opaque_data_size = 12;
    send->identifiers[0] = 300;
    send->identifier_types[0] = CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB;
    memcpy(buffer + sizeof(*send), "wayland-msg!", 12);
    CHECK_EQ(submit(&rig, CTX, buffer, sizeof(buffer)), 0);

    char data[32];
    int fd;
    CHECK_EQ(compositor_receive(&rig, data, sizeof(data), &fd), 12);
    CHECK(memcmp(data, "wayland-msg!", 12) == 0);
    CHECK(fd >= 0);
    char shm[4];
    CHECK_EQ(pread(fd, shm, 4, 0), 4);
    CHECK(memcmp(shm, "shm!", 4) == 0); /* the compositor sees the guest's pixels */
    close(fd);
    rig_finish(&rig);
}

TEST(receive_delivers_bytes_and_keymaps_through_poll)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    uint64_t poll_id = start_poll(&rig);
    CHECK(!fence_done(&rig, poll_id, 50)); /* nothing from the compositor yet */
    int keymap = memfd_holding("xkb_keymap { };");
    compositor_send(&rig, "event-bytes", 11, &keymap, 1);
    close(keymap);
    CHECK(fence_done(&rig, poll_id, 2000));
    struct cross_domain_send_receive reply;
    memcpy(&reply, rig.channel_ring, sizeof(reply));
    CHECK_EQ(reply.hdr.cmd, CROSS_DOMAIN_CMD_RECEIVE);
    CHECK_EQ(reply.opaque_data_size, 11);
    CHECK(memcmp(rig.channel_ring + sizeof(reply), "event-bytes", 11) == 0);
    CHECK_EQ(reply.num_identifiers, 1);
    CHECK_EQ(reply.identifier_types[0], CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB);
    CHECK_EQ(reply.identifier_sizes[0], 15);
    /* The guest makes a blob of it (page-aligned size) and reads the keymap. */
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_HOST3D,
                                    .blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE,
                                    .blob_id = reply.identifiers[0],
                                    .size_bytes = 4096};
    CHECK_EQ(neep_resource_create_blob(rig.renderer, CTX, 400, &blob, NULL, 0), 0);
    void *ptr;
    uint64_t size;
    CHECK_EQ(neep_resource_map(rig.renderer, 400, &ptr, &size), 0);
    CHECK(memcmp(ptr, "xkb_keymap { };", 15) == 0);
    /* Received items are consumed by one blob. */
    CHECK_EQ(neep_resource_create_blob(rig.renderer, CTX, 401, &blob, NULL, 0), -EINVAL);
    rig_finish(&rig);
}

TEST(the_channel_ring_may_be_any_ring_but_the_query_ring)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    /* A guest proxy gives each connection its own ring (see the capset's neep_features). */
    struct cross_domain_poll request = {.hdr = header(CROSS_DOMAIN_CMD_POLL, 16)};
    CHECK_EQ(submit(&rig, CTX, &request, sizeof(request)), 0);
    uint64_t poll_id;
    CHECK_EQ(fence(&rig, CTX, 37, &poll_id), 0);
    CHECK(!fence_done(&rig, poll_id, 50));
    compositor_send(&rig, "on-ring-37", 10, NULL, 0);
    CHECK(fence_done(&rig, poll_id, 2000));
    struct cross_domain_send_receive reply;
    memcpy(&reply, rig.channel_ring, sizeof(reply));
    CHECK_EQ(reply.hdr.cmd, CROSS_DOMAIN_CMD_RECEIVE);
    CHECK_EQ(reply.opaque_data_size, 10);
    /* Query-ring fences still complete at once, and only one POLL is outstanding. */
    uint64_t query_id;
    CHECK_EQ(fence(&rig, CTX, CROSS_DOMAIN_QUERY_RING, &query_id), 0);
    CHECK(fence_done(&rig, query_id, 2000));
    CHECK_EQ(fence(&rig, CTX, 37, &poll_id), 0);
    uint64_t second;
    CHECK_EQ(fence(&rig, CTX, 2, &second), -EBUSY);
    rig_finish(&rig);
}

TEST(write_pipes_feed_the_compositor)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    int ends[2];
    CHECK_EQ(pipe2(ends, O_CLOEXEC), 0);
    uint64_t poll_id = start_poll(&rig);
    compositor_send(&rig, "x", 1, &ends[1], 1); /* wl_data_source.send's fd */
    close(ends[1]);
    CHECK(fence_done(&rig, poll_id, 2000));
    struct cross_domain_send_receive reply;
    memcpy(&reply, rig.channel_ring, sizeof(reply));
    CHECK_EQ(reply.identifier_types[0], CROSS_DOMAIN_ID_TYPE_WRITE_PIPE);
    uint8_t buffer[sizeof(struct cross_domain_read_write) + 5];
    struct cross_domain_read_write *write_cmd = (void *)buffer;
    memset(buffer, 0, sizeof(buffer));
    write_cmd->hdr = header(CROSS_DOMAIN_CMD_WRITE, sizeof(buffer));
    write_cmd->identifier = reply.identifiers[0];
    write_cmd->hang_up = 1;
    write_cmd->opaque_data_size = 5;
    memcpy(buffer + sizeof(*write_cmd), "paste", 5);
    CHECK_EQ(submit(&rig, CTX, buffer, sizeof(buffer)), 0);
    char got[8];
    CHECK_EQ(read(ends[0], got, sizeof(got)), 5);
    CHECK(memcmp(got, "paste", 5) == 0);
    CHECK_EQ(read(ends[0], got, sizeof(got)), 0); /* hung up */
    close(ends[0]);
    /* The pipe is gone: writing again is an error. */
    CHECK_EQ(submit(&rig, CTX, buffer, sizeof(buffer)), -EINVAL);
    rig_finish(&rig);
}

TEST(read_pipes_return_data_then_hang_up)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    uint8_t buffer[sizeof(struct cross_domain_send_receive) + 1];
    struct cross_domain_send_receive *send = (void *)buffer;
    memset(buffer, 0, sizeof(buffer));
    send->hdr = header(CROSS_DOMAIN_CMD_SEND, sizeof(buffer));
    send->num_identifiers = 1;
    send->opaque_data_size = 1;
    send->identifiers[0] = CROSS_DOMAIN_PIPE_READ_START + 1;
    send->identifier_types[0] = CROSS_DOMAIN_ID_TYPE_READ_PIPE;
    CHECK_EQ(submit(&rig, CTX, buffer, sizeof(buffer)), 0);
    char byte;
    int write_end;
    CHECK_EQ(compositor_receive(&rig, &byte, 1, &write_end), 1);
    CHECK(write_end >= 0);
    CHECK_EQ(write(write_end, "clipboard", 9), 9);
    close(write_end);

    uint64_t poll_id = start_poll(&rig);
    CHECK(fence_done(&rig, poll_id, 2000));
    struct cross_domain_read_write reply;
    memcpy(&reply, rig.channel_ring, sizeof(reply));
    CHECK_EQ(reply.hdr.cmd, CROSS_DOMAIN_CMD_READ);
    CHECK_EQ(reply.identifier, CROSS_DOMAIN_PIPE_READ_START + 1);
    CHECK_EQ(reply.opaque_data_size, 9);
    CHECK(memcmp(rig.channel_ring + sizeof(reply), "clipboard", 9) == 0);
    poll_id = start_poll(&rig);
    CHECK(fence_done(&rig, poll_id, 2000));
    memcpy(&reply, rig.channel_ring, sizeof(reply));
    CHECK_EQ(reply.hang_up, 1);
    /* The next read pipe must be the following id, not a repeat. */
    send->identifiers[0] = CROSS_DOMAIN_PIPE_READ_START + 1;
    CHECK_EQ(submit(&rig, CTX, buffer, sizeof(buffer)), -EINVAL);
    rig_finish(&rig);
}

TEST(the_compositor_closing_ends_the_stream)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    uint64_t poll_id = start_poll(&rig);
    close(rig.compositor_fd);
    rig.compositor_fd = -1;
    CHECK(fence_done(&rig, poll_id, 2000));
    struct cross_domain_send_receive reply;
    memcpy(&reply, rig.channel_ring, sizeof(reply));
    CHECK_EQ(reply.hdr.cmd, CROSS_DOMAIN_CMD_RECEIVE);
    CHECK_EQ(reply.num_identifiers, 0);
    CHECK_EQ(reply.opaque_data_size, 0);
    rig_finish(&rig);
}

TEST(too_many_fds_from_the_compositor_end_the_stream)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    int fds[30];
    for (int i = 0; i < 30; i++) {
        fds[i] = memfd_holding("x");
    }
    uint64_t poll_id = start_poll(&rig);
    compositor_send(&rig, "y", 1, fds, 30);
    for (int i = 0; i < 30; i++) {
        close(fds[i]);
    }
    CHECK(fence_done(&rig, poll_id, 2000));
    struct cross_domain_send_receive reply;
    memcpy(&reply, rig.channel_ring, sizeof(reply));
    CHECK_EQ(reply.opaque_data_size, 0); /* the end of the stream, not a truncated message */
    rig_finish(&rig);
}

TEST(data_larger_than_the_ring_arrives_in_pieces)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    static char message[5000];
    for (size_t i = 0; i < sizeof(message); i++) {
        message[i] = (char)('a' + i % 26);
    }
    compositor_send(&rig, message, sizeof(message), NULL, 0);
    size_t received = 0;
    int pieces = 0;
    while (received < sizeof(message)) {
        uint64_t poll_id = start_poll(&rig);
        CHECK(fence_done(&rig, poll_id, 2000));
        struct cross_domain_send_receive reply;
        memcpy(&reply, rig.channel_ring, sizeof(reply));
        CHECK(reply.opaque_data_size > 0);
        CHECK(reply.opaque_data_size <= 4096 - sizeof(reply)); /* never past the ring */
        CHECK(memcmp(rig.channel_ring + sizeof(reply), message + received,
                     reply.opaque_data_size) == 0);
        received += reply.opaque_data_size;
        pieces++;
    }
    CHECK_EQ(received, sizeof(message));
    CHECK_EQ(pieces, 2);
    rig_finish(&rig);
}

TEST(a_ring_too_small_for_replies_is_refused)
{
    struct rig rig;
    rig_init(&rig);
    /* A 256-byte guest blob (no RECEIVE fits in it), followed in guest memory by bytes that
     * must stay untouched. */
    static uint8_t memory[512];
    memset(memory, 0xa5, sizeof(memory));
    struct iovec iov = {memory, 256};
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_GUEST, .size_bytes = 256};
    CHECK_EQ(neep_resource_create_blob(rig.renderer, CTX, 120, &blob, &iov, 1), 0);
    CHECK_EQ(neep_context_attach_resource(rig.renderer, CTX, 120), 0);
    struct cross_domain_init init = {.hdr = header(CROSS_DOMAIN_CMD_INIT, 20),
                                     .query_ring_id = 120,
                                     .channel_ring_id = 120,
                                     .channel_type = CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    CHECK_EQ(submit(&rig, CTX, &init, 20), -EINVAL);
    CHECK(strstr(rig.log.last_error, "too small") != NULL);
    init.channel_ring_id = CHANNEL_RING_ID; /* as the query ring only, it is big enough */
    CHECK_EQ(submit(&rig, CTX, &init, 20), 0);
    rig.compositor_fd = accept4(rig.listen_fd, NULL, NULL, SOCK_CLOEXEC);
    struct cross_domain_get_image_requirements request = {
        .hdr = header(CROSS_DOMAIN_CMD_GET_IMAGE_REQUIREMENTS, 24),
        .width = 8,
        .height = 8,
        .drm_format = 0x34325258};
    CHECK_EQ(submit(&rig, CTX, &request, sizeof(request)), 0);
    CHECK(memcmp(memory, "\xa5\xa5\xa5\xa5", 4) != 0); /* the reply landed */
    for (size_t i = 256; i < sizeof(memory); i++) {
        CHECK_EQ(memory[i], 0xa5); /* nothing written past the ring */
    }
    rig_finish(&rig);
}

TEST(bad_commands_fail_only_their_context)
{
    struct rig rig;
    rig_init(&rig);
    /* A second, healthy context alongside. */
    CHECK_EQ(neep_context_create(rig.renderer, 2, NEEP_CAPSET_CROSS_DOMAIN, NULL, 0), 0);
    uint8_t *other_ring;
    make_ring(&rig, 2, 110, &other_ring);

    struct cross_domain_poll poll_cmd = {.hdr = header(CROSS_DOMAIN_CMD_POLL, 16)};
    CHECK_EQ(submit(&rig, CTX, &poll_cmd, sizeof(poll_cmd)), -EINVAL); /* POLL before INIT */
    uint64_t id;
    CHECK_EQ(fence(&rig, CTX, CROSS_DOMAIN_CHANNEL_RING, &id), -EINVAL);

    struct cross_domain_init init = {.hdr = header(CROSS_DOMAIN_CMD_INIT, 20),
                                     .query_ring_id = QUERY_RING_ID,
                                     .channel_ring_id = 999, /* not attached */
                                     .channel_type = CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    CHECK_EQ(submit(&rig, CTX, &init, 20), -EINVAL);
    init.channel_ring_id = 110; /* another context's ring */
    CHECK_EQ(submit(&rig, CTX, &init, 20), -EINVAL);
    init.channel_ring_id = CHANNEL_RING_ID;
    init.channel_type = 0x11; /* X11: not configured */
    CHECK_EQ(submit(&rig, CTX, &init, 20), -EINVAL);
    init.channel_type = CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND;
    init.hdr.cmd_size = 24;
    CHECK_EQ(submit(&rig, CTX, &init, 24), -EINVAL); /* no such INIT size */

    uint8_t junk[8] = {42, 0, 8, 0};
    CHECK_EQ(submit(&rig, CTX, junk, 8), -EINVAL); /* unknown command */
    struct cross_domain_header lying = header(CROSS_DOMAIN_CMD_INIT, 4000);
    CHECK_EQ(submit(&rig, CTX, &lying, sizeof(lying)), -EINVAL); /* size past the buffer */
    struct cross_domain_header tiny = header(CROSS_DOMAIN_CMD_INIT, 4);
    CHECK_EQ(submit(&rig, CTX, &tiny, sizeof(tiny)), -EINVAL); /* size under a header */
    CHECK_EQ(submit(&rig, CTX, junk, 3), -EINVAL);             /* stray bytes */

    init_channel(&rig);
    init.hdr.cmd_size = 20;
    CHECK_EQ(submit(&rig, CTX, &init, 20), -EINVAL); /* a second INIT */

    uint8_t buffer[sizeof(struct cross_domain_send_receive) + 4];
    struct cross_domain_send_receive *send = (void *)buffer;
    memset(buffer, 0, sizeof(buffer));
    send->hdr = header(CROSS_DOMAIN_CMD_SEND, sizeof(buffer));
    send->num_identifiers = 29;
    CHECK_EQ(submit(&rig, CTX, buffer, sizeof(buffer)), -EINVAL); /* too many ids */
    send->num_identifiers = 0;
    send->opaque_data_size = 5;
    CHECK_EQ(submit(&rig, CTX, buffer, sizeof(buffer)), -EINVAL); /* data past the command */
    send->opaque_data_size = 0;
    send->num_identifiers = 1;
    send->identifiers[0] = 12345;
    send->identifier_types[0] = CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB;
    CHECK_EQ(submit(&rig, CTX, buffer, sizeof(buffer)), -EINVAL); /* unknown resource */
    send->identifiers[0] = QUERY_RING_ID;                         /* a guest blob has no host fd */
    CHECK_EQ(submit(&rig, CTX, buffer, sizeof(buffer)), -EINVAL);
    send->identifier_types[0] = CROSS_DOMAIN_ID_TYPE_VIRTGPU_SYNC;
    CHECK_EQ(submit(&rig, CTX, buffer, sizeof(buffer)), -EINVAL);
    send->identifier_types[0] = CROSS_DOMAIN_ID_TYPE_READ_PIPE;
    send->identifiers[0] = CROSS_DOMAIN_PIPE_READ_START + 7; /* out of step */
    CHECK_EQ(submit(&rig, CTX, buffer, sizeof(buffer)), -EINVAL);

    struct cross_domain_get_image_requirements reqs = {
        .hdr = header(CROSS_DOMAIN_CMD_GET_IMAGE_REQUIREMENTS, 24),
        .width = 16,
        .height = 16,
        .drm_format = 0x12345678};
    CHECK_EQ(submit(&rig, CTX, &reqs, sizeof(reqs)), -EINVAL); /* unknown format */
    reqs.drm_format = 0x34325258;
    reqs.width = 1u << 20;
    CHECK_EQ(submit(&rig, CTX, &reqs, sizeof(reqs)), -EINVAL); /* huge */

    uint64_t first = start_poll(&rig);
    CHECK_EQ(fence(&rig, CTX, CROSS_DOMAIN_CHANNEL_RING, &id), -EBUSY); /* two POLLs */
    /* The context still works: the compositor's message answers the first POLL. */
    compositor_send(&rig, "ok", 2, NULL, 0);
    CHECK(fence_done(&rig, first, 2000));
    CHECK(rig.log.error_count >= 15);
    /* And the other context is untouched. */
    struct cross_domain_init other = {.hdr = header(CROSS_DOMAIN_CMD_INIT, 20),
                                      .query_ring_id = 110};
    CHECK_EQ(submit(&rig, 2, &other, 20), 0);
    rig_finish(&rig);
    free(other_ring);
}

/* Counts the borrowed ranges that overlap `begin`..+4096. */
struct borrowed_count {
    const void *begin;
    int overlapping;
    int total;
};

static void count_borrowed(void *user_data, const void *base, size_t size_bytes)
{
    struct borrowed_count *count = user_data;
    count->total++;
    count->overlapping += neep_ranges_overlap(base, size_bytes, count->begin, 4096);
}

static struct borrowed_count borrowed_in(struct rig *rig, const void *begin)
{
    struct borrowed_count count = {begin, 0, 0};
    neep_renderer_visit_borrowed_memory(rig->renderer, count_borrowed, &count);
    return count;
}

/* The transport lending guest memory asks what still points into it, and may take it back. */
TEST(rings_report_and_forget_the_guest_memory_they_borrow)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    /* Each ring's memory: the blob's backing and the context's copy of it. */
    CHECK_EQ(borrowed_in(&rig, rig.channel_ring).overlapping, 2);
    CHECK_EQ(borrowed_in(&rig, rig.query_ring).overlapping, 2);

    /* Detaching the blob's backing takes the context's copy with it. */
    CHECK_EQ(neep_resource_detach_backing(rig.renderer, CHANNEL_RING_ID), 0);
    CHECK_EQ(borrowed_in(&rig, rig.channel_ring).overlapping, 0);
    /* Without its channel ring the context cannot be polled; it says so. */
    struct cross_domain_poll request = {.hdr = header(CROSS_DOMAIN_CMD_POLL, 16)};
    CHECK_EQ(submit(&rig, CTX, &request, sizeof(request)), -EINVAL);

    uint64_t releases = rig.renderer->borrowed_memory_releases;
    int errors = rig.log.error_count;
    neep_renderer_forget_borrowed_memory(rig.renderer, rig.query_ring, 4096);
    CHECK_EQ(borrowed_in(&rig, rig.query_ring).overlapping, 0);
    CHECK(strstr(rig.log.last_error, "loses ring"));
    CHECK_EQ(rig.log.error_count, errors + 2); /* the blob's backing and the ring, each said */
    CHECK(rig.renderer->borrowed_memory_releases > releases);
    CHECK_EQ(borrowed_in(&rig, rig.query_ring).total, 0);
    rig_finish(&rig);
}
