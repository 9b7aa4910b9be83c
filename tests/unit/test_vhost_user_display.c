/*
 * The display channel of the vhost-user back-end, with this test as a front-end that stops
 * reading its display socket: the guest's flushes must keep completing, the memory held must
 * stay bounded, and when the front-end reads again it must get whole frames only (each UPDATE
 * one frame the guest flushed), the last frame the guest flushed, and cursor messages ahead of
 * frames that waited.
 */
#include <linux/virtio_gpu.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"
#include "vhost_user/display.h"
#include "vhost_user/protocol.h"
#include "vhost_user_rig.h"

#define SIDE_PX     256u
#define FRAME_BYTES (SIDE_PX * SIDE_PX * 4u)
/* Guest memory for the two resources' backing, past the rig's rings and command slots. */
#define BACKING_GPA(index) (0x100000ull + (uint64_t)(index)*FRAME_BYTES)

static const uint32_t RED = 0xffff0000u, BLUE = 0xff0000ffu, GREEN = 0xff00ff00u;

struct display_rig {
    struct rig rig;
    int display_fd; /* the front-end's end of the display socket */
};

static struct neep_renderer *renderer_of(struct display_rig *d)
{
    return neep_device_renderer(vu_backend_device(d->rig.f.backend));
}

static void fill_backing(struct display_rig *d, uint32_t index, uint32_t pixel)
{
    uint32_t *pixels = (uint32_t *)(d->rig.guest + BACKING_GPA(index));
    for (uint32_t i = 0; i < SIDE_PX * SIDE_PX; i++) {
        pixels[i] = pixel;
    }
}

static void create_resource(struct display_rig *d, uint32_t id, uint32_t index)
{
    struct virtio_gpu_resource_create_2d create = {.hdr.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
                                                   .resource_id = id,
                                                   .format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
                                                   .width = SIDE_PX,
                                                   .height = SIDE_PX};
    CHECK_EQ(command(&d->rig, &create, sizeof(create)), VIRTIO_GPU_RESP_OK_NODATA);
    struct {
        struct virtio_gpu_resource_attach_backing cmd;
        struct virtio_gpu_mem_entry entry;
    } attach = {.cmd = {.hdr.type = VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING,
                        .resource_id = id,
                        .nr_entries = 1},
                .entry = {BACKING_GPA(index), FRAME_BYTES, 0}};
    CHECK_EQ(command(&d->rig, &attach, sizeof(attach)), VIRTIO_GPU_RESP_OK_NODATA);
}

static void transfer(struct display_rig *d, uint32_t id)
{
    struct virtio_gpu_transfer_to_host_2d cmd = {.hdr.type = VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D,
                                                 .r = {0, 0, SIDE_PX, SIDE_PX},
                                                 .resource_id = id};
    CHECK_EQ(command(&d->rig, &cmd, sizeof(cmd)), VIRTIO_GPU_RESP_OK_NODATA);
}

static void set_scanout(struct display_rig *d, uint32_t id)
{
    struct virtio_gpu_set_scanout cmd = {
        .hdr.type = VIRTIO_GPU_CMD_SET_SCANOUT, .r = {0, 0, SIDE_PX, SIDE_PX}, .resource_id = id};
    CHECK_EQ(command(&d->rig, &cmd, sizeof(cmd)), VIRTIO_GPU_RESP_OK_NODATA);
}

static void flush(struct display_rig *d, uint32_t id)
{
    struct virtio_gpu_resource_flush cmd = {.hdr.type = VIRTIO_GPU_CMD_RESOURCE_FLUSH,
                                            .r = {0, 0, SIDE_PX, SIDE_PX},
                                            .resource_id = id};
    CHECK_EQ(command(&d->rig, &cmd, sizeof(cmd)), VIRTIO_GPU_RESP_OK_NODATA);
}

static void move_cursor(struct display_rig *d, uint32_t x, uint32_t y)
{
    struct virtio_gpu_update_cursor cmd = {.hdr.type = VIRTIO_GPU_CMD_MOVE_CURSOR,
                                           .pos = {.scanout_id = 0, .x = x, .y = y}};
    uint16_t before = used_idx(&d->rig, 1);
    offer(&d->rig, 1, &cmd, sizeof(cmd));
    kick(&d->rig, 1);
    CHECK_EQ(used_idx(&d->rig, 1), (uint16_t)(before + 1));
}

/* What the front-end read: the messages, in order. */
struct received {
    uint8_t *bytes;
    size_t size, capacity;
};

/* Reads the display socket until the back-end has nothing more to send, or `limit` bytes
 * came (its writable callbacks run in between, as the front-end's reading frees room). */
static void read_display_up_to(struct display_rig *d, struct received *r, size_t limit)
{
    for (int quiet = 0; quiet < 3 && r->size < limit;) {
        vu_test_loop_run(&d->rig.f.loop);
        uint8_t chunk[4096];
        size_t want = limit - r->size < sizeof(chunk) ? limit - r->size : sizeof(chunk);
        ssize_t got = recv(d->display_fd, chunk, want, MSG_DONTWAIT);
        if (got <= 0) {
            quiet++;
            continue;
        }
        quiet = 0;
        if (r->size + (size_t)got > r->capacity) {
            r->capacity = (r->size + (size_t)got) * 2;
            r->bytes = realloc(r->bytes, r->capacity);
            CHECK(r->bytes != NULL);
        }
        memcpy(r->bytes + r->size, chunk, (size_t)got);
        r->size += (size_t)got;
    }
    vu_test_loop_run(&d->rig.f.loop); /* what the last read made room for */
}

static void read_display(struct display_rig *d, struct received *r)
{
    read_display_up_to(d, r, SIZE_MAX);
}

/* A rig showing resource 1 (all zeros), whose display socket holds little from then on, so
 * that a frame fills it; the front-end has read everything before. */
static void display_rig_init(struct display_rig *d)
{
    rig_init(&d->rig);
    int pair[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    CHECK_EQ(vu_test_request(&d->rig.f, VU_GPU_SET_SOCKET, NULL, 0, &pair[1], 1), 0);
    d->display_fd = pair[0];
    create_resource(d, 1, 0);
    create_resource(d, 2, 1);
    set_scanout(d, 1); /* the back-end sizes the socket for the scanout here */
    struct received scratch = {0};
    read_display(d, &scratch);
    free(scratch.bytes);
    /* Then smaller, through our copy of the same socket. */
    int small = 16384;
    CHECK_EQ(setsockopt(pair[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    CHECK_EQ(setsockopt(pair[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    close(pair[1]);
}

static void display_rig_finish(struct display_rig *d)
{
    close(d->display_fd);
    rig_finish(&d->rig);
}

/* One message at `*offset` (advanced past it); NULL at the end. */
static const struct vu_gpu_header *next_received(const struct received *r, size_t *offset)
{
    if (*offset == r->size) {
        return NULL;
    }
    CHECK(r->size - *offset >= sizeof(struct vu_gpu_header));
    const struct vu_gpu_header *header = (const void *)(r->bytes + *offset);
    CHECK(r->size - *offset - sizeof(*header) >= header->size); /* whole messages only */
    *offset += sizeof(*header) + header->size;
    return header;
}

/* The one colour of a full-frame UPDATE, or 0 if it is not one full frame of one colour. */
static uint32_t frame_colour(const struct vu_gpu_header *header)
{
    const struct vu_gpu_update *update = (const void *)(header + 1);
    if (header->size != sizeof(*update) + FRAME_BYTES || update->x != 0 || update->y != 0 ||
        update->width != SIDE_PX || update->height != SIDE_PX) {
        return 0;
    }
    const uint32_t *pixels = (const void *)(update + 1);
    for (uint32_t i = 1; i < SIDE_PX * SIDE_PX; i++) {
        if (pixels[i] != pixels[0]) {
            return 0;
        }
    }
    return pixels[0] | 0xff000000u; /* X8 formats leave the top byte as the guest wrote it */
}

/* What the front-end read holds two UPDATEs, whole red then whole blue (never the green the
 * guest transferred later and never flushed), and the link took one copy for it. */
static void check_red_then_blue(struct display_rig *d, const struct received *r)
{
    size_t offset = 0;
    uint32_t colours[4] = {0};
    int updates = 0;
    for (const struct vu_gpu_header *m; (m = next_received(r, &offset));) {
        if (m->request == VU_GPU_UPDATE) {
            CHECK(updates < 4);
            colours[updates++] = frame_colour(m);
        }
    }
    CHECK_EQ(updates, 2);
    CHECK_EQ(colours[0], RED);
    CHECK_EQ(colours[1], BLUE);
    struct vu_display_stats stats;
    vu_backend_display_stats(d->rig.f.backend, &stats);
    CHECK_EQ(stats.copies, 1u);
}

TEST(a_display_that_stops_reading_holds_no_flush_and_gets_the_last_frame_whole)
{
    struct display_rig d;
    display_rig_init(&d);
    fill_backing(&d, 0, RED);
    fill_backing(&d, 1, BLUE);
    transfer(&d, 1);
    transfer(&d, 2);
    uint64_t base_bytes = neep_renderer_memory_used_bytes(renderer_of(&d));
    set_scanout(&d, 1); /* a frame the small socket cannot take whole */

    /* Page flips as Linux does them, while the front-end reads nothing: each command must
     * complete (command() checks its answer), and nothing piles up. */
    const int flips = 300;
    for (int i = 1; i <= flips; i++) {
        uint32_t id = i % 2 ? 2 : 1;
        set_scanout(&d, id);
        flush(&d, id);
        /* At most the rest of one message: waiting frames are boxes, not copies. */
        CHECK(neep_renderer_memory_used_bytes(renderer_of(&d)) <= base_bytes + FRAME_BYTES + 32);
    }
    move_cursor(&d, 10, 20); /* must not wait behind the frame that waits */
    uint32_t last = flips % 2 ? BLUE : RED;

    struct received r = {0};
    read_display(&d, &r);
    size_t offset = 0;
    int updates = 0, frames_after_cursor = 0;
    bool cursor_seen = false;
    uint32_t colour = 0;
    for (const struct vu_gpu_header *m; (m = next_received(&r, &offset));) {
        if (m->request == VU_GPU_UPDATE) {
            colour = frame_colour(m);
            CHECK(colour == RED || colour == BLUE);
            updates++;
            frames_after_cursor += cursor_seen;
        } else if (m->request == VU_GPU_CURSOR_POS) {
            const struct vu_gpu_cursor_pos *pos = (const void *)(m + 1);
            CHECK_EQ(pos->x, 10u);
            CHECK_EQ(pos->y, 20u);
            cursor_seen = true;
        }
    }
    CHECK(cursor_seen);
    CHECK_EQ(frames_after_cursor, 1); /* the one frame that waited went after the cursor */
    CHECK_EQ(colour, last);
    CHECK(updates <= 4); /* merged while the front-end was away, not 300 */
    fprintf(stderr, "%d flips while the front-end did not read: %d UPDATE messages after\n", flips,
            updates);
    /* Once everything went out, the channel holds nothing. */
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer_of(&d)), base_bytes);
    free(r.bytes);
    display_rig_finish(&d);
}

TEST(a_transfer_into_a_frame_the_display_has_not_taken_waits_for_its_copy)
{
    struct display_rig d;
    display_rig_init(&d);
    fill_backing(&d, 0, RED);
    transfer(&d, 1);
    set_scanout(&d, 1); /* red, partly sent */
    fill_backing(&d, 0, BLUE);
    transfer(&d, 1);
    flush(&d, 1); /* blue waits, as a box of the scanout */
    fill_backing(&d, 0, GREEN);
    transfer(&d, 1); /* green is never flushed: blue must be copied before it lands */

    struct received r = {0};
    read_display(&d, &r);
    check_red_then_blue(&d, &r);
    struct vu_display_stats stats;
    vu_backend_display_stats(d.rig.f.backend, &stats);
    CHECK_EQ(stats.updates_sent, 3u); /* the rig's first frame, red, blue */
    free(r.bytes);
    display_rig_finish(&d);
}

TEST(a_transfer_into_a_frame_on_the_wire_waits_for_its_copy)
{
    struct display_rig d;
    display_rig_init(&d);
    fill_backing(&d, 0, RED);
    transfer(&d, 1);
    set_scanout(&d, 1); /* red, partly sent, the rest copied */
    fill_backing(&d, 0, BLUE);
    transfer(&d, 1);
    flush(&d, 1); /* blue waits as a box */
    /* The front-end reads red and the start of blue: blue goes out of the resource itself. */
    struct received r = {0};
    size_t update_message =
        sizeof(struct vu_gpu_header) + sizeof(struct vu_gpu_update) + FRAME_BYTES;
    read_display_up_to(&d, &r, update_message + FRAME_BYTES / 4);
    fill_backing(&d, 0, GREEN);
    transfer(&d, 1); /* green must not reach the rest of blue on the wire */
    read_display(&d, &r);
    check_red_then_blue(&d, &r);
    free(r.bytes);
    display_rig_finish(&d);
}

TEST(a_stalled_display_answers_get_display_info_from_the_device_within_a_second)
{
    struct display_rig d;
    display_rig_init(&d);
    fill_backing(&d, 0, RED);
    transfer(&d, 1);
    set_scanout(&d, 1); /* the socket is full, mid-message */
    CHECK_EQ(display_info(&d.rig), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    CHECK(d.rig.log.error_count == 0);
    /* The channel goes on where it was: the frame arrives whole. */
    struct received r = {0};
    read_display(&d, &r);
    size_t offset = 0;
    const struct vu_gpu_header *m = NULL, *last = NULL;
    while ((m = next_received(&r, &offset))) {
        last = m;
    }
    CHECK(last != NULL && last->request == VU_GPU_UPDATE);
    CHECK_EQ(frame_colour(last), RED);
    free(r.bytes);
    display_rig_finish(&d);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* Display queries while the front-end does not read: the first waits its second for the
 * message on the wire, the next ones do not wait again until the front-end has read. */
TEST(display_queries_on_a_stalled_channel_wait_once)
{
    struct display_rig d;
    display_rig_init(&d);
    fill_backing(&d, 0, RED);
    transfer(&d, 1);
    set_scanout(&d, 1);               /* the socket is full, mid-message */
    const int count = QUEUE_SIZE / 2; /* two-descriptor chains the rig's ring holds */
    uint16_t before = used_idx(&d.rig, 0);
    for (int i = 0; i < count; i++) {
        struct virtio_gpu_ctrl_hdr info = {.type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO};
        offer(&d.rig, 0, &info, sizeof(info));
    }
    double start = now_s();
    kick(&d.rig, 0);
    double took = now_s() - start;
    CHECK_EQ(used_idx(&d.rig, 0), (uint16_t)(before + count));
    fprintf(stderr, "%d GET_DISPLAY_INFO in one kick on a stalled channel: %.2f s\n", count, took);
    CHECK(took < 1.8);
    /* Once the front-end reads, the frame arrives whole and queries ask it again. */
    struct received r = {0};
    read_display(&d, &r);
    size_t offset = 0;
    const struct vu_gpu_header *m = NULL, *last = NULL;
    while ((m = next_received(&r, &offset))) {
        last = m;
    }
    CHECK(last != NULL && frame_colour(last) == RED);
    free(r.bytes);
    display_rig_finish(&d);
}

/* A waiting frame that cannot be read (no budget for its copy) must not keep the other
 * scanouts' frames, or anything later, from the display. */
TEST(a_frame_that_cannot_be_read_holds_no_other_output)
{
    struct display_rig d;
    rig_init(&d.rig); /* 64 MiB budget */
    int pair[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    CHECK_EQ(vu_test_request(&d.rig.f, VU_GPU_SET_SOCKET, NULL, 0, &pair[1], 1), 0);
    d.display_fd = pair[0];
    /* The front-end's layout: two outputs (its answer sent ahead of the question). */
    struct __attribute__((packed)) {
        struct vu_gpu_header header;
        uint32_t hdr[6];
        uint32_t modes[NEEP_MAX_SCANOUTS][6];
    } reply = {.header = {VU_GPU_GET_DISPLAY_INFO, VU_GPU_FLAG_REPLY, 408}};
    for (int i = 0; i < 2; i++) {
        reply.modes[i][2] = 1024, reply.modes[i][3] = 768, reply.modes[i][4] = 1;
    }
    CHECK_EQ(send(pair[0], &reply, sizeof(reply), 0), (ssize_t)sizeof(reply));
    CHECK_EQ(display_info(&d.rig), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    /* Scanout 0 in a format the display cannot take as it is (its boxes are read into a
     * charged buffer), scanout 1 in one it can. */
    struct virtio_gpu_resource_create_2d create = {.hdr.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
                                                   .resource_id = 1,
                                                   .format = VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM,
                                                   .width = 512,
                                                   .height = 512};
    CHECK_EQ(command(&d.rig, &create, sizeof(create)), VIRTIO_GPU_RESP_OK_NODATA);
    create.resource_id = 2;
    create.format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM;
    create.width = create.height = SIDE_PX;
    CHECK_EQ(command(&d.rig, &create, sizeof(create)), VIRTIO_GPU_RESP_OK_NODATA);
    struct virtio_gpu_set_scanout show = {
        .hdr.type = VIRTIO_GPU_CMD_SET_SCANOUT, .r = {0, 0, 512, 512}, .resource_id = 1};
    CHECK_EQ(command(&d.rig, &show, sizeof(show)), VIRTIO_GPU_RESP_OK_NODATA);
    show = (struct virtio_gpu_set_scanout){.hdr.type = VIRTIO_GPU_CMD_SET_SCANOUT,
                                           .r = {0, 0, SIDE_PX, SIDE_PX},
                                           .scanout_id = 1,
                                           .resource_id = 2};
    CHECK_EQ(command(&d.rig, &show, sizeof(show)), VIRTIO_GPU_RESP_OK_NODATA);
    struct received scratch = {0};
    read_display(&d, &scratch);
    free(scratch.bytes);
    int small = 16384; /* a slow front-end from here */
    CHECK_EQ(setsockopt(pair[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    close(pair[1]);
    /* Both scanouts get a frame waiting. */
    flush(&d, 2);
    struct virtio_gpu_resource_flush flush_0 = {
        .hdr.type = VIRTIO_GPU_CMD_RESOURCE_FLUSH, .r = {0, 0, 512, 512}, .resource_id = 1};
    CHECK_EQ(command(&d.rig, &flush_0, sizeof(flush_0)), VIRTIO_GPU_RESP_OK_NODATA);
    flush(&d, 2);
    /* The guest fills its budget: scanout 0's box will find none. */
    uint32_t id = 100;
    for (uint32_t side = 2048; side >= 1; side /= 2) {
        create =
            (struct virtio_gpu_resource_create_2d){.hdr.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
                                                   .format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
                                                   .width = side,
                                                   .height = side};
        for (create.resource_id = id;
             command(&d.rig, &create, sizeof(create)) == VIRTIO_GPU_RESP_OK_NODATA;
             create.resource_id = ++id) {
        }
    }
    struct received r = {0};
    read_display(&d, &r);
    struct vu_display_stats before, after;
    vu_backend_display_stats(d.rig.f.backend, &before);
    /* The guest frees its filler and flushes both scanouts again: all of it must go out. */
    for (uint32_t i = 100; i < id; i++) {
        struct virtio_gpu_resource_unref unref = {.hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNREF,
                                                  .resource_id = i};
        CHECK_EQ(command(&d.rig, &unref, sizeof(unref)), VIRTIO_GPU_RESP_OK_NODATA);
    }
    flush(&d, 2);
    CHECK_EQ(command(&d.rig, &flush_0, sizeof(flush_0)), VIRTIO_GPU_RESP_OK_NODATA);
    read_display(&d, &r);
    vu_backend_display_stats(d.rig.f.backend, &after);
    fprintf(stderr, "UPDATEs sent whole: %llu before the budget came back, %llu after\n",
            (unsigned long long)before.updates_sent, (unsigned long long)after.updates_sent);
    CHECK(after.updates_sent >= before.updates_sent + 2);
    free(r.bytes);
    close(pair[0]);
    rig_finish(&d.rig);
}

/* What the front-end's socket holds now, left in it. */
static void peek_display(struct display_rig *d, struct received *r)
{
    int queued = 0;
    CHECK_EQ(ioctl(d->display_fd, FIONREAD, &queued), 0);
    free(r->bytes);
    *r = (struct received){.bytes = malloc((size_t)queued + 1), .capacity = (size_t)queued + 1};
    CHECK(r->bytes != NULL);
    CHECK_EQ(recv(d->display_fd, r->bytes, (size_t)queued, MSG_PEEK | MSG_DONTWAIT),
             (ssize_t)queued);
    r->size = (size_t)queued;
}

/* The colour of the last UPDATE in what was read, checking every message is whole. */
static uint32_t last_frame_colour(const struct received *r, int *updates)
{
    size_t offset = 0;
    uint32_t colour = 0;
    *updates = 0;
    for (const struct vu_gpu_header *m; (m = next_received(r, &offset));) {
        if (m->request == VU_GPU_UPDATE) {
            colour = frame_colour(m);
            (*updates)++;
        }
    }
    return colour;
}

/* The front-end reads an UPDATE to its end once it starts (QEMU does, on the main loop that
 * also delivers the guest's interrupts): a frame must not start on the wire unless the socket
 * takes it whole, and the one that starts when the front-end has read is the latest. */
/* A rig whose display socket is as the back-end sizes it, showing red (resource 1) with blue
 * (resource 2) ready; the front-end has read nothing. */
static void full_size_rig_init(struct display_rig *d)
{
    rig_init(&d->rig);
    int pair[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    CHECK_EQ(vu_test_request(&d->rig.f, VU_GPU_SET_SOCKET, NULL, 0, &pair[1], 1), 0);
    close(pair[1]);
    d->display_fd = pair[0];
    create_resource(d, 1, 0);
    create_resource(d, 2, 1);
    fill_backing(d, 0, RED);
    fill_backing(d, 1, BLUE);
    transfer(d, 1);
    transfer(d, 2);
    set_scanout(d, 1);
    vu_test_loop_run(&d->rig.f.loop);
}

TEST(a_frame_starts_on_the_wire_only_when_the_socket_takes_it_whole)
{
    struct display_rig d;
    full_size_rig_init(&d);

    /* The front-end reads nothing: red is in the socket whole, and the flips after it wait
     * (the socket is not writable with a frame in it) instead of starting half a frame. */
    struct received r = {0};
    peek_display(&d, &r);
    int updates = 0;
    CHECK_EQ(last_frame_colour(&r, &updates), RED);
    CHECK_EQ(updates, 1);
    size_t first_bytes = r.size;
    const int flips = 9;
    for (int i = 1; i <= flips; i++) {
        uint32_t id = i % 2 ? 2 : 1;
        set_scanout(&d, id);
        flush(&d, id);
        vu_test_loop_run(&d.rig.f.loop);
        peek_display(&d, &r);
        CHECK_EQ(r.size, first_bytes);
    }

    /* It reads: the next frame to go is the last one flipped to, whole. */
    struct received read = {0};
    read_display_up_to(&d, &read, first_bytes);
    vu_test_loop_run(&d.rig.f.loop);
    peek_display(&d, &r);
    CHECK_EQ(last_frame_colour(&r, &updates), BLUE);
    CHECK_EQ(updates, 1);
    free(read.bytes);
    free(r.bytes);
    display_rig_finish(&d);
}

/* A frame lies whole in the socket and the front-end does not read it: GET_DISPLAY_INFO must
 * not put its question behind it and then give the channel up when no answer comes (the last
 * frame would never arrive). It answers from the device's layout, waiting once. */
TEST(get_display_info_behind_an_unread_frame_keeps_the_channel)
{
    struct display_rig d;
    full_size_rig_init(&d);
    set_scanout(&d, 2);
    flush(&d, 2); /* blue waits: red fills the socket */
    double start = now_s();
    CHECK_EQ(display_info(&d.rig), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    CHECK_EQ(display_info(&d.rig), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    double took = now_s() - start;
    fprintf(stderr, "two GET_DISPLAY_INFO behind an unread frame: %.2f s\n", took);
    CHECK(took < 1.8);
    struct received r = {0};
    read_display(&d, &r);
    int updates = 0;
    CHECK_EQ(last_frame_colour(&r, &updates), BLUE);
    CHECK_EQ(updates, 2);
    char byte;
    CHECK_EQ(recv(d.display_fd, &byte, 1, MSG_DONTWAIT), -1); /* still open, nothing more */
    free(r.bytes);
    display_rig_finish(&d);
}

/* Where net.core.wmem_max keeps the socket from taking a frame whole, the back-end says so
 * (and what would do): frames then go in pieces, and QEMU's main loop waits for their rest. */
TEST(a_socket_too_small_for_whole_frames_is_reported)
{
    FILE *limit = fopen("/proc/sys/net/core/wmem_max", "r");
    CHECK(limit != NULL);
    unsigned long wmem_max = 0;
    CHECK_EQ(fscanf(limit, "%lu", &wmem_max), 1);
    fclose(limit);
    struct display_rig d;
    rig_init(&d.rig);
    int pair[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    CHECK_EQ(vu_test_request(&d.rig.f, VU_GPU_SET_SOCKET, NULL, 0, &pair[1], 1), 0);
    close(pair[1]);
    d.display_fd = pair[0];
    const uint32_t width = 1920, height = 1080;
    struct virtio_gpu_resource_create_2d create = {.hdr.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
                                                   .resource_id = 1,
                                                   .format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
                                                   .width = width,
                                                   .height = height};
    CHECK_EQ(command(&d.rig, &create, sizeof(create)), VIRTIO_GPU_RESP_OK_NODATA);
    struct virtio_gpu_set_scanout show = {
        .hdr.type = VIRTIO_GPU_CMD_SET_SCANOUT, .r = {0, 0, width, height}, .resource_id = 1};
    CHECK_EQ(command(&d.rig, &show, sizeof(show)), VIRTIO_GPU_RESP_OK_NODATA);
    size_t frame_bytes = (size_t)width * height * 4;
    size_t asked = frame_bytes < wmem_max ? frame_bytes : wmem_max;
    bool too_small = asked * 2 / 4 * 3 < frame_bytes + frame_bytes / 16 + (64u << 10);
    fprintf(stderr, "wmem_max %lu: a %zu-byte frame %s whole\n", wmem_max, frame_bytes,
            too_small ? "does not fit" : "fits");
    CHECK_EQ(support_log_warned(&d.rig.log, "net.core.wmem_max"), too_small);
    display_rig_finish(&d);
}
