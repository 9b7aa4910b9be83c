/*
 * Reproducers from an attacker's review of the vhost-user back-end, the device model and
 * neep-wl. Reuses the vhost-user rig (this file includes test_vhost_user.c; meson runs only
 * the tests named attacker_*).
 */
#include "test_vhost_user.c"

#include "device/device_internal.h"

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
TEST(attacker_destroying_a_context_completes_its_poll_in_flight)
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
TEST(attacker_context_churn_strands_pending_commands)
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
TEST(attacker_a_region_shrunk_after_set_mem_table_does_not_kill_the_backend)
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
