/*
 * The vhost-user back-end over a real socket: this test is the front-end (messages with
 * memfds and eventfds) and the guest driver (rings and commands in the shared memory), and
 * drives the back-end's callbacks itself. Hostile front-ends and guests included.
 */
#include <linux/virtio_gpu.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "contexts/cross_domain_protocol.h"
#include "device/device_internal.h"
#include "harness.h"
#include "support.h"
#include "vhost_user/memory.h"
#include "vhost_user_rig.h"
#include "vhost_user_support.h"

/* ---- ring geometry ----------------------------------------------------------------------- */

/* Bytes of a used ring of `size` elements, event index word included. */
static size_t used_ring_bytes(uint32_t size)
{
    return 4 + sizeof(struct vring_used_elem) * size + 2;
}

TEST(a_running_ring_keeps_its_size_and_place)
{
    struct rig rig;
    rig_init(&rig);
    /* Whatever follows the used ring the back-end validated is not its to write. */
    uint8_t *past_used = (uint8_t *)used_of(&rig, 0) + used_ring_bytes(QUEUE_SIZE);
    memset(past_used, 0xa5, 256);

    CHECK(set_state(&rig, VU_SET_VRING_NUM, 0, 4 * QUEUE_SIZE) != 0);
    CHECK(strstr(rig.log.last_error, "applies to stopped rings"));
    CHECK(set_addr(&rig, 0, 0x8000) != 0);
    CHECK(set_state(&rig, VU_SET_VRING_BASE, 0, 5) != 0);
    /* Repeating what the ring already is changes nothing and is fine. */
    CHECK_EQ(set_state(&rig, VU_SET_VRING_NUM, 0, QUEUE_SIZE), 0);
    CHECK_EQ(set_addr(&rig, 0, RING_GPA(0)), 0);

    /* Three times round the ring: every used element lands inside the 8-element ring. */
    for (uint32_t i = 0; i < 3 * QUEUE_SIZE; i++) {
        CHECK_EQ(display_info(&rig), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    }
    for (size_t i = 0; i < 256; i++) {
        CHECK_EQ(past_used[i], 0xa5);
    }

    /* Stopped, the ring may be reconfigured; it then runs at its new size. */
    CHECK_EQ(stop_queue(&rig, 0), 3 * QUEUE_SIZE);
    start_queue(&rig, 0, 4 * QUEUE_SIZE, RING_GPA(0), 3 * QUEUE_SIZE);
    CHECK_EQ(display_info(&rig), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    rig_finish(&rig);
}

TEST(a_running_ring_follows_its_memory_into_a_new_table)
{
    struct rig rig;
    rig_init(&rig);
    CHECK_EQ(display_info(&rig), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);

    /* The front-end moves guest memory to a new memfd at the same addresses, as QEMU may;
     * keep a view of the old one to see that nothing writes there any more. */
    uint8_t *old_view =
        mmap(NULL, GUEST_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, rig.guest_fd, 0);
    CHECK(old_view != MAP_FAILED);
    int moved_fd = vu_test_memfd("vu-test-moved", GUEST_BYTES);
    CHECK(moved_fd >= 0);
    CHECK_EQ(pwrite(moved_fd, old_view, GUEST_BYTES, 0), GUEST_BYTES);
    CHECK(mmap(rig.guest, GUEST_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, moved_fd,
               0) == rig.guest);
    struct vu_memory_region region = {0, GUEST_BYTES, uva(&rig, 0), 0};
    set_mem_table(&rig, &region, &moved_fd, 1, 0);
    CHECK_EQ(display_info(&rig), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    const struct vring_used *old_used = (void *)(old_view + RING_GPA(0) + USED_OFFSET);
    CHECK_EQ(old_used->idx, 1);
    CHECK_EQ(used_idx(&rig, 0), 2);

    /* A table without the ring's memory stops the ring; kicks then read nothing. */
    region.userspace_addr += GUEST_BYTES;
    set_mem_table(&rig, &region, &moved_fd, 1, 0);
    CHECK(strstr(rig.log.last_error, "lost its ring"));
    struct virtio_gpu_ctrl_hdr info = {.type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO};
    offer(&rig, 0, &info, sizeof(info));
    kick(&rig, 0);
    CHECK_EQ(used_idx(&rig, 0), 2);
    munmap(old_view, GUEST_BYTES);
    close(moved_fd);
    rig_finish(&rig);
}

/* Chains in flight need a context whose fences wait: cross-domain's POLL. */
#if NEEP_HAVE_CROSS_DOMAIN

/* ---- completions across resets and pauses -------------------------------------------------- */

#define CTX              1u
#define QUERY_RING_ID    101u
#define CHANNEL_RING_ID  102u
#define QUERY_RING_GPA   0x200000ull
#define CHANNEL_RING_GPA 0x201000ull

/* The host compositor a cross-domain context connects to: a listening UNIX socket. */
struct compositor {
    char dir[64];
    char path[96];
    int listen_fd;
    int fd; /* the accepted connection, -1 before INIT */
};

static void compositor_init(struct compositor *c)
{
    snprintf(c->dir, sizeof(c->dir), "/tmp/neep-vu-XXXXXX");
    CHECK(mkdtemp(c->dir));
    snprintf(c->path, sizeof(c->path), "%s/wayland-0", c->dir);
    c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, c->path);
    CHECK_EQ(bind(c->listen_fd, (struct sockaddr *)&address, sizeof(address)), 0);
    CHECK_EQ(listen(c->listen_fd, 4), 0);
    c->fd = -1;
}

static void compositor_finish(struct compositor *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    close(c->listen_fd);
    unlink(c->path);
    rmdir(c->dir);
}

static void rig_init_cross_domain(struct rig *rig, struct compositor *compositor)
{
    compositor_init(compositor);
    struct neep_channel channel = {compositor->path, CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    struct neep_renderer_config renderer = {
        .capset_mask = 1ull << NEEP_CAPSET_CROSS_DOMAIN,
        .memory_budget_bytes = 64u << 20,
        .channels = &channel,
        .channel_count = 1,
    };
    rig_init_with(rig, &renderer);
}

static void create_guest_blob(struct rig *rig, uint32_t id, uint64_t gpa, uint32_t bytes)
{
    struct {
        struct virtio_gpu_resource_create_blob cmd;
        struct virtio_gpu_mem_entry entry;
    } blob = {.cmd = {.hdr = {.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB, .ctx_id = CTX},
                      .resource_id = id,
                      .blob_mem = VIRTIO_GPU_BLOB_MEM_GUEST,
                      .blob_flags = VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE,
                      .nr_entries = 1,
                      .size = bytes},
              .entry = {gpa, bytes, 0}};
    CHECK_EQ(command(rig, &blob, sizeof(blob)), VIRTIO_GPU_RESP_OK_NODATA);
    struct virtio_gpu_ctx_resource attach = {
        .hdr = {.type = VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, .ctx_id = CTX}, .resource_id = id};
    CHECK_EQ(command(rig, &attach, sizeof(attach)), VIRTIO_GPU_RESP_OK_NODATA);
}

/* SUBMIT_3D of `bytes` on the cross-domain context; `fence_ring` >= 0 fences it on that ring.
 * Returns where the response will be written. */
static uint8_t *offer_submit(struct rig *rig, const void *bytes, uint32_t size, int fence_ring,
                             uint64_t fence_id)
{
    uint8_t request[256];
    struct virtio_gpu_cmd_submit submit = {.hdr = {.type = VIRTIO_GPU_CMD_SUBMIT_3D, .ctx_id = CTX},
                                           .size = size};
    if (fence_ring >= 0) {
        submit.hdr.flags = VIRTIO_GPU_FLAG_FENCE | VIRTIO_GPU_FLAG_INFO_RING_IDX;
        submit.hdr.fence_id = fence_id;
        submit.hdr.ring_idx = (uint8_t)fence_ring;
    }
    CHECK(sizeof(submit) + size <= sizeof(request));
    memcpy(request, &submit, sizeof(submit));
    memcpy(request + sizeof(submit), bytes, size);
    return offer(rig, 0, request, sizeof(submit) + size);
}

/* A cross-domain context connected to the compositor, with its query and channel rings in
 * guest memory at the given addresses. */
static void connect_channel_at(struct rig *rig, struct compositor *compositor,
                               uint64_t query_ring_gpa, uint64_t channel_ring_gpa)
{
    struct virtio_gpu_ctx_create create = {
        .hdr = {.type = VIRTIO_GPU_CMD_CTX_CREATE, .ctx_id = CTX},
        .context_init = NEEP_CAPSET_CROSS_DOMAIN};
    CHECK_EQ(command(rig, &create, sizeof(create)), VIRTIO_GPU_RESP_OK_NODATA);
    create_guest_blob(rig, QUERY_RING_ID, query_ring_gpa, 4096);
    create_guest_blob(rig, CHANNEL_RING_ID, channel_ring_gpa, 4096);
    struct cross_domain_init init = {
        .hdr = {.cmd = CROSS_DOMAIN_CMD_INIT, .cmd_size = CROSS_DOMAIN_INIT_V1_BYTES},
        .query_ring_id = QUERY_RING_ID,
        .channel_ring_id = CHANNEL_RING_ID,
        .channel_type = CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    uint16_t before = used_idx(rig, 0);
    const struct virtio_gpu_ctrl_hdr *response =
        (void *)offer_submit(rig, &init, CROSS_DOMAIN_INIT_V1_BYTES, -1, 0);
    kick(rig, 0);
    CHECK_EQ(used_idx(rig, 0), (uint16_t)(before + 1));
    CHECK_EQ(response->type, VIRTIO_GPU_RESP_OK_NODATA);
    compositor->fd = accept4(compositor->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(compositor->fd >= 0);
}

static void connect_channel(struct rig *rig, struct compositor *compositor)
{
    connect_channel_at(rig, compositor, QUERY_RING_GPA, CHANNEL_RING_GPA);
}

/* Offers a POLL fenced on the channel ring: it is answered only when the compositor speaks.
 * Returns the head of its chain. */
static uint16_t offer_poll(struct rig *rig, uint64_t fence_id)
{
    uint16_t head = (uint16_t)((rig->rings[0].avail_idx * 2u) % rig->rings[0].size);
    struct cross_domain_poll poll_request = {
        .hdr = {.cmd = CROSS_DOMAIN_CMD_POLL, .cmd_size = sizeof(poll_request)}};
    offer_submit(rig, &poll_request, sizeof(poll_request), CROSS_DOMAIN_CHANNEL_RING, fence_id);
    return head;
}

/* The compositor sends a few bytes; waits until the back-end has seen the fence signal. */
static void compositor_speaks(struct rig *rig, struct compositor *compositor)
{
    CHECK_EQ(send(compositor->fd, "hello", 5, MSG_NOSIGNAL), 5);
    struct pollfd fence = {.fd = neep_device_fence_fd(vu_backend_device(rig->f.backend)),
                           .events = POLLIN};
    CHECK_EQ(poll(&fence, 1, 5000), 1);
    vu_test_loop_run(&rig->f.loop);
}

TEST(completions_from_before_a_reset_stay_out_of_the_new_ring)
{
    struct compositor compositor;
    struct rig rig;
    rig_init_cross_domain(&rig, &compositor);
    connect_channel(&rig, &compositor);
    uint16_t answered = used_idx(&rig, 0);
    offer_poll(&rig, 1);
    kick(&rig, 0);
    CHECK_EQ(used_idx(&rig, 0), answered); /* the POLL waits for the compositor */

    /* The guest resets: QEMU stops both rings, the new driver places them elsewhere. */
    stop_queue(&rig, 0);
    stop_queue(&rig, 1);
    start_queue(&rig, 0, QUEUE_SIZE, RING_GPA(2), 0);
    start_queue(&rig, 1, QUEUE_SIZE, RING_GPA(3), 0);
    CHECK_EQ(used_idx(&rig, 0), 0); /* nothing of the old driver's in the new ring */
    const struct vring_used *old_used = (void *)(rig.guest + RING_GPA(0) + USED_OFFSET);
    CHECK_EQ(old_used->idx, answered);

    /* The new driver's first command is the first thing its ring shows. */
    CHECK_EQ(display_info(&rig), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    CHECK_EQ(used_idx(&rig, 0), 1);
    CHECK_EQ(used_of(&rig, 0)->ring[0].id, 0);
    rig_finish(&rig);
    compositor_finish(&compositor);
}

TEST(a_paused_ring_gets_the_completions_that_arrived_meanwhile)
{
    struct compositor compositor;
    struct rig rig;
    rig_init_cross_domain(&rig, &compositor);
    connect_channel(&rig, &compositor);
    uint16_t answered = used_idx(&rig, 0);
    uint16_t poll_head = offer_poll(&rig, 7);
    kick(&rig, 0);

    /* QEMU stops the VM: the ring pauses with the POLL in flight, and it completes then. */
    uint32_t base = stop_queue(&rig, 0);
    CHECK_EQ(base, rig.rings[0].avail_idx);
    compositor_speaks(&rig, &compositor);
    CHECK_EQ(used_idx(&rig, 0), answered); /* a stopped ring is not written */

    /* The same ring resumes: the completion appears, in the next used slot. */
    start_queue(&rig, 0, QUEUE_SIZE, RING_GPA(0), (uint16_t)base);
    CHECK_EQ(used_idx(&rig, 0), (uint16_t)(answered + 1));
    CHECK_EQ(used_of(&rig, 0)->ring[answered % QUEUE_SIZE].id, poll_head);
    CHECK_EQ(display_info(&rig), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    rig_finish(&rig);
    compositor_finish(&compositor);
}

TEST(a_resumed_ring_completes_chains_in_flight_in_the_next_used_slot)
{
    struct compositor compositor;
    struct rig rig;
    rig_init_cross_domain(&rig, &compositor);
    connect_channel(&rig, &compositor);
    uint16_t answered = used_idx(&rig, 0);
    uint16_t poll_head = offer_poll(&rig, 9);
    kick(&rig, 0);

    /* Paused and resumed with the POLL still in flight: QEMU's base runs one ahead of what
     * the ring has used, and the completion still goes to the next used slot. */
    uint32_t base = stop_queue(&rig, 0);
    start_queue(&rig, 0, QUEUE_SIZE, RING_GPA(0), (uint16_t)base);
    CHECK_EQ(used_idx(&rig, 0), answered);
    compositor_speaks(&rig, &compositor);
    CHECK_EQ(used_idx(&rig, 0), (uint16_t)(answered + 1));
    CHECK_EQ(used_of(&rig, 0)->ring[answered % QUEUE_SIZE].id, poll_head);
    rig_finish(&rig);
    compositor_finish(&compositor);
}

#endif

/* ---- replaced memory tables ------------------------------------------------------------------ */

#define PIXELS_REGION_GPA   0x1000000ull
#define PIXELS_REGION_BYTES (1u << 20)

/* A second region of guest memory in its own memfd named `name`, for the front-end to
 * replace; the test keeps no view of it, so only the back-end's mapping shows in maps. */
static struct vu_memory_region pixel_region(const char *name, int *fd)
{
    *fd = vu_test_memfd(name, PIXELS_REGION_BYTES);
    CHECK(*fd >= 0);
    /* An address no test mapping uses: the front-end's own, which we need not map. */
    return (struct vu_memory_region){PIXELS_REGION_GPA, PIXELS_REGION_BYTES, 0x7e0000000000ull, 0};
}

static void set_two_region_table(struct rig *rig, const struct vu_memory_region *pixels,
                                 int pixels_fd)
{
    struct vu_memory_region regions[2] = {{0, GUEST_BYTES, uva(rig, 0), 0}, *pixels};
    int fds[2] = {rig->guest_fd, pixels_fd};
    set_mem_table(rig, regions, fds, 2, 0);
}

static uint32_t create_2d_in_pixels(struct rig *rig, uint32_t id)
{
    struct virtio_gpu_resource_create_2d create = {.hdr.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
                                                   .resource_id = id,
                                                   .format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
                                                   .width = 32,
                                                   .height = 32};
    CHECK_EQ(command(rig, &create, sizeof(create)), VIRTIO_GPU_RESP_OK_NODATA);
    struct {
        struct virtio_gpu_resource_attach_backing cmd;
        struct virtio_gpu_mem_entry entry;
    } attach = {.cmd = {.hdr.type = VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING,
                        .resource_id = id,
                        .nr_entries = 1},
                .entry = {PIXELS_REGION_GPA, 32 * 32 * 4, 0}};
    return command(rig, &attach, sizeof(attach));
}

static uint32_t transfer(struct rig *rig, uint32_t id)
{
    struct virtio_gpu_transfer_to_host_2d cmd = {
        .hdr.type = VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D, .r = {0, 0, 32, 32}, .resource_id = id};
    return command(rig, &cmd, sizeof(cmd));
}

TEST(replaced_memory_is_unmapped_once_nothing_uses_it)
{
    struct rig rig;
    rig_init(&rig);
    int first_fd;
    struct vu_memory_region first = pixel_region("vu-test-first", &first_fd);
    set_two_region_table(&rig, &first, first_fd);
    close(first_fd);
    CHECK_EQ(create_2d_in_pixels(&rig, 1), VIRTIO_GPU_RESP_OK_NODATA);

    /* The front-end replaces that region; resource 1's backing still points into it. */
    int second_fd;
    struct vu_memory_region second = pixel_region("vu-test-second", &second_fd);
    set_two_region_table(&rig, &second, second_fd);
    close(second_fd);
    CHECK_EQ(vu_test_count_mappings("vu-test-first"), 1);
    CHECK_EQ(transfer(&rig, 1), VIRTIO_GPU_RESP_OK_NODATA);

    /* Its last user lets go: the mapping goes at once, not at the next reset. */
    struct virtio_gpu_resource_detach_backing detach = {
        .hdr.type = VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, .resource_id = 1};
    CHECK_EQ(command(&rig, &detach, sizeof(detach)), VIRTIO_GPU_RESP_OK_NODATA);
    CHECK_EQ(vu_test_count_mappings("vu-test-first"), 0);

    /* A replaced region nothing points into is unmapped right away. */
    int third_fd;
    struct vu_memory_region third = pixel_region("vu-test-third", &third_fd);
    set_two_region_table(&rig, &third, third_fd);
    close(third_fd);
    CHECK_EQ(vu_test_count_mappings("vu-test-second"), 0);
    CHECK_EQ(vu_test_count_mappings("vu-test-third"), 1);
    rig_finish(&rig);
}

TEST(replacing_memory_in_a_loop_keeps_a_bounded_number_of_mappings)
{
    struct rig rig;
    rig_init(&rig);
    const uint32_t rounds = 3 * VU_MAX_RETIRED_REGIONS;
    for (uint32_t i = 1; i <= rounds; i++) {
        /* Each table's new region gets a resource whose backing keeps it in use. */
        int fd;
        struct vu_memory_region region = pixel_region("vu-test-churn", &fd);
        set_two_region_table(&rig, &region, fd);
        close(fd);
        CHECK_EQ(create_2d_in_pixels(&rig, i), VIRTIO_GPU_RESP_OK_NODATA);
        CHECK(vu_test_count_mappings("vu-test-churn") <= (int)VU_MAX_RETIRED_REGIONS + 1);
    }
    CHECK_EQ(vu_test_count_mappings("vu-test-churn"), VU_MAX_RETIRED_REGIONS + 1);
    /* The oldest resources lost their backing, with a clear error; the newest kept theirs. */
    CHECK_EQ(transfer(&rig, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    CHECK_EQ(transfer(&rig, rounds), VIRTIO_GPU_RESP_OK_NODATA);
    CHECK_EQ(transfer(&rig, rounds - VU_MAX_RETIRED_REGIONS), VIRTIO_GPU_RESP_OK_NODATA);
    rig_finish(&rig);
}

#if NEEP_HAVE_CROSS_DOMAIN
TEST(a_context_ring_lets_replaced_memory_go_with_its_blob_backing)
{
    struct compositor compositor;
    struct rig rig;
    rig_init_cross_domain(&rig, &compositor);
    int rings_fd;
    struct vu_memory_region rings = pixel_region("vu-test-rings", &rings_fd);
    set_two_region_table(&rig, &rings, rings_fd);
    close(rings_fd);
    connect_channel_at(&rig, &compositor, PIXELS_REGION_GPA, PIXELS_REGION_GPA + 4096);

    int other_fd;
    struct vu_memory_region other = pixel_region("vu-test-other", &other_fd);
    set_two_region_table(&rig, &other, other_fd);
    close(other_fd);
    /* The blobs and the context's rings point into the replaced memory: it stays. */
    CHECK_EQ(vu_test_count_mappings("vu-test-rings"), 1);
    struct virtio_gpu_resource_detach_backing detach = {
        .hdr.type = VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, .resource_id = QUERY_RING_ID};
    CHECK_EQ(command(&rig, &detach, sizeof(detach)), VIRTIO_GPU_RESP_OK_NODATA);
    CHECK_EQ(vu_test_count_mappings("vu-test-rings"), 1); /* the channel ring still does */
    /* Detaching a ring's backing takes the context's copy with it, so the memory goes. */
    detach.resource_id = CHANNEL_RING_ID;
    CHECK_EQ(command(&rig, &detach, sizeof(detach)), VIRTIO_GPU_RESP_OK_NODATA);
    CHECK_EQ(vu_test_count_mappings("vu-test-rings"), 0);
    rig_finish(&rig);
    compositor_finish(&compositor);
}
#endif

/* ---- rings that feed themselves ----------------------------------------------------------- */

TEST(a_ring_that_offers_itself_chains_cannot_hold_the_backend)
{
    struct rig rig;
    rig_init(&rig);
    /* The same memory twice: guest 0 as the rig maps it, and its bytes from 0x8000 again at
     * another front-end address. The ring's used part, seen through the second, lies exactly
     * on its available part: each used index written is a new available index. */
    const uint64_t alias_uva = uva(&rig, 0) + 2 * GUEST_BYTES;
    struct vu_memory_region regions[2] = {{0, GUEST_BYTES, uva(&rig, 0), 0},
                                          {0x1000000, 0x10000, alias_uva, 0x8000}};
    int fds[2] = {rig.guest_fd, rig.guest_fd};
    set_mem_table(&rig, regions, fds, 2, 0);
    stop_queue(&rig, 0);
    /* Every head reads 0, and chain 0 is a command with nothing writable: its used element
     * (id 0, length 0) keeps the available entries it overwrites pointing at it. */
    struct virtio_gpu_ctrl_hdr info = {.type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO};
    memcpy(rig.guest + COMMAND_GPA, &info, sizeof(info));
    struct vring_desc *desc = (struct vring_desc *)(rig.guest + 0x8000);
    desc[0] = (struct vring_desc){COMMAND_GPA, sizeof(info), 0, 0};
    struct vring_avail *avail = (struct vring_avail *)(rig.guest + 0x9000);
    memset(avail, 0, 0x100);
    avail->idx = 2; /* two chains offered before the ring starts */
    CHECK_EQ(set_state(&rig, VU_SET_VRING_BASE, 0, 0), 0);
    struct vhost_vring_addr addr = {.index = 0,
                                    .desc_user_addr = uva(&rig, 0x8000),
                                    .avail_user_addr = uva(&rig, 0x9000),
                                    .used_user_addr = alias_uva + 0x1000};
    CHECK_EQ(vu_test_request(&rig.f, VU_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0), 0);
    uint64_t index = 0;
    CHECK_EQ(vu_test_request(&rig.f, VU_SET_VRING_KICK, &index, 8, &rig.kick[0], 1), 0);
    CHECK_EQ(set_state(&rig, VU_SET_VRING_ENABLE, 0, 1), 0);

    /* The back-end did some of the endless work, a ring's worth per call (the enable, then
     * each of the test loop's 64 rounds), gave the thread back and asked to be called again
     * through the kick; it still answers the front-end. */
    uint16_t offered = avail->idx;
    CHECK(offered > 2 + QUEUE_SIZE);
    CHECK(offered <= 2 + 65 * QUEUE_SIZE);
    struct pollfd kick_fd = {.fd = rig.kick[0], .events = POLLIN};
    CHECK_EQ(poll(&kick_fd, 1, 0), 1);
    CHECK_EQ(stop_queue(&rig, 0), (uint16_t)(offered - 2));
    rig_finish(&rig);
}

/* ---- found by an attacker's review: stranded commands, shrunk guest memory -------------- */

static uint32_t pending_commands(struct rig *rig)
{
    const struct neep_device *device = vu_backend_device(rig->f.backend);
    uint32_t count = 0;
    for (const struct pending_command *p = device->pending_head; p; p = p->next) {
        count++;
    }
    return count;
}

#if NEEP_HAVE_CROSS_DOMAIN
/*
 * A guest (or simply neep-wl, whose every connection keeps a POLL armed and whose exit
 * destroys the context) destroys a cross-domain context while a POLL fenced on its channel
 * ring is in flight. The context's timelines are freed without being signalled, so the
 * device's pending_command for that POLL is never completed: the chain is never returned to
 * the driver (a ring slot and the driver's buffer are lost for good), and the pending entry
 * (uncharged) stays on device->pending_head until a device reset.
 */
TEST(destroying_a_context_completes_its_poll_in_flight)
{
    struct compositor compositor;
    struct rig rig;
    rig_init_cross_domain(&rig, &compositor);
    connect_channel(&rig, &compositor);
    uint16_t answered = used_idx(&rig, 0);
    uint16_t poll_head = offer_poll(&rig, 1);
    kick(&rig, 0);
    CHECK_EQ(used_idx(&rig, 0), answered); /* the POLL waits for the compositor */
    CHECK_EQ(pending_commands(&rig), 1);

    struct virtio_gpu_ctx_destroy destroy = {
        .hdr = {.type = VIRTIO_GPU_CMD_CTX_DESTROY, .ctx_id = CTX}};
    const struct virtio_gpu_ctrl_hdr *destroyed = (void *)offer(&rig, 0, &destroy, sizeof(destroy));
    kick(&rig, 0);
    CHECK_EQ(destroyed->type, VIRTIO_GPU_RESP_OK_NODATA);
    /* What the device should do: hand the POLL's chain back (it can never be answered). */
    vu_test_loop_run(&rig.f.loop);
    fprintf(stderr, "after CTX_DESTROY: %u pending commands, used idx %u (POLL was head %u)\n",
            pending_commands(&rig), used_idx(&rig, 0), poll_head);
    CHECK_EQ(pending_commands(&rig), 0);
    bool poll_returned = false;
    for (uint16_t i = answered; i != used_idx(&rig, 0); i++) {
        poll_returned |= used_of(&rig, 0)->ring[i % QUEUE_SIZE].id == poll_head;
    }
    CHECK(poll_returned);
    rig_finish(&rig);
    compositor_finish(&compositor);
}

/* The same, in a loop: each round strands one more uncharged pending_command that every
 * later fence dispatch walks (on_fence is linear in the list). */
TEST(context_churn_strands_pending_commands)
{
    struct compositor compositor;
    struct rig rig;
    rig_init_cross_domain(&rig, &compositor);
    connect_channel(&rig, &compositor);
    const uint32_t rounds = 50;
    for (uint32_t i = 0; i < rounds; i++) {
        offer_poll(&rig, 1000 + i);
        kick(&rig, 0);
        struct virtio_gpu_ctx_destroy destroy = {
            .hdr = {.type = VIRTIO_GPU_CMD_CTX_DESTROY, .ctx_id = CTX}};
        const struct virtio_gpu_ctrl_hdr *destroyed =
            (void *)offer(&rig, 0, &destroy, sizeof(destroy));
        kick(&rig, 0);
        CHECK_EQ(destroyed->type, VIRTIO_GPU_RESP_OK_NODATA);
        close(compositor.fd);
        struct virtio_gpu_ctx_create create = {
            .hdr = {.type = VIRTIO_GPU_CMD_CTX_CREATE, .ctx_id = CTX},
            .context_init = NEEP_CAPSET_CROSS_DOMAIN};
        CHECK_EQ(command(&rig, &create, sizeof(create)), VIRTIO_GPU_RESP_OK_NODATA);
        uint32_t ids[2] = {QUERY_RING_ID, CHANNEL_RING_ID};
        for (int r = 0; r < 2; r++) {
            struct virtio_gpu_ctx_resource attach = {
                .hdr = {.type = VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, .ctx_id = CTX},
                .resource_id = ids[r]};
            CHECK_EQ(command(&rig, &attach, sizeof(attach)), VIRTIO_GPU_RESP_OK_NODATA);
        }
        struct cross_domain_init init = {
            .hdr = {.cmd = CROSS_DOMAIN_CMD_INIT, .cmd_size = CROSS_DOMAIN_INIT_V1_BYTES},
            .query_ring_id = QUERY_RING_ID,
            .channel_ring_id = CHANNEL_RING_ID,
            .channel_type = CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
        const struct virtio_gpu_ctrl_hdr *response =
            (void *)offer_submit(&rig, &init, CROSS_DOMAIN_INIT_V1_BYTES, -1, 0);
        kick(&rig, 0);
        CHECK_EQ(response->type, VIRTIO_GPU_RESP_OK_NODATA);
        compositor.fd = accept4(compositor.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        CHECK(compositor.fd >= 0);
    }
    fprintf(stderr, "%u context lifetimes left %u pending commands behind\n", rounds,
            pending_commands(&rig));
    CHECK_EQ(pending_commands(&rig), 0);
    rig_finish(&rig);
    compositor_finish(&compositor);
}
#endif

/*
 * A hostile front-end shrinks a memory region's memfd after SET_MEM_TABLE accepted it (the
 * size check in map_region runs only once, and the file is not sealed). The next guest
 * access to that memory from the back-end faults: that SIGBUS must not kill the back-end.
 * The vanished pages read as zeros instead, the region is reported, and the device stops
 * until the front-end gives it a new memory table.
 */
TEST(a_region_shrunk_after_set_mem_table_does_not_kill_the_backend)
{
    struct rig rig;
    rig_init(&rig);
    int pixels_fd;
    struct vu_memory_region pixels = pixel_region("vu-test-shrunk", &pixels_fd);
    set_two_region_table(&rig, &pixels, pixels_fd);
    CHECK_EQ(create_2d_in_pixels(&rig, 1), VIRTIO_GPU_RESP_OK_NODATA);
    CHECK_EQ(ftruncate(pixels_fd, 0), 0); /* the front-end takes the memory back */
    close(pixels_fd);

    /* The back-end reads the backing: it sees zeros where the pages were, and lives. */
    int errors = rig.log.error_count;
    uint32_t type = transfer(&rig, 1);
    fprintf(stderr, "transfer answered 0x%x; then: %s\n", type, rig.log.last_error);
    CHECK(vu_backend_alive(rig.f.backend));
    CHECK_EQ(rig.log.error_count, errors + 1);
    CHECK(strstr(rig.log.last_error, "the front-end shrank guest memory region 1 "));

    /* The device is broken: a later command stays unanswered, and no new line is logged. */
    uint16_t answered = used_idx(&rig, 0);
    struct virtio_gpu_ctrl_hdr info = {.type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO};
    const struct virtio_gpu_ctrl_hdr *held = (void *)offer(&rig, 0, &info, sizeof(info));
    kick(&rig, 0);
    CHECK_EQ(used_idx(&rig, 0), answered);
    CHECK_EQ(rig.log.error_count, errors + 1);

    /* Restarting the ring over the same table is refused... */
    uint32_t base = stop_queue(&rig, 0);
    CHECK_EQ(base, answered);
    uint64_t index = 0;
    CHECK_EQ(vu_test_request(&rig.f, VU_SET_VRING_KICK, &index, 8, &rig.kick[0], 1), 1);
    CHECK(strstr(rig.log.last_error, "cannot start: the front-end shrank guest memory"));
    CHECK(vu_backend_alive(rig.f.backend));

    /* ...until a new table maps the memory afresh: then the held command is answered, and
     * the old backing (retired, still lent to resource 1) keeps reading as zeros. */
    int fresh_fd;
    struct vu_memory_region fresh = pixel_region("vu-test-fresh", &fresh_fd);
    set_two_region_table(&rig, &fresh, fresh_fd);
    close(fresh_fd);
    start_queue(&rig, 0, QUEUE_SIZE, RING_GPA(0), (uint16_t)base);
    rig.rings[0].avail_idx = avail_of(&rig, 0)->idx; /* the held command was still offered */
    CHECK_EQ(used_idx(&rig, 0), (uint16_t)(answered + 1));
    CHECK_EQ(held->type, VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    CHECK_EQ(transfer(&rig, 1), VIRTIO_GPU_RESP_OK_NODATA);
    CHECK(vu_backend_alive(rig.f.backend));
    rig_finish(&rig);
}
