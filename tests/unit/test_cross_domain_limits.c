/*
 * Cross-domain against hostile guests and misbehaving compositors: what a guest can make the
 * host hold is bounded (fds, threads, queued bytes, contexts), the embedder's thread never
 * blocks on a peer, guest memory is not written after it is released, and compositor memory
 * cannot shrink under a guest's mapping. Each test is the regression test of one defect.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cross_domain_rig.h"
#include "harness.h"
#include "open_fds.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
           (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
}

/* A SEND of `size` data bytes (a pattern that numbers the message), with one read pipe when
 * `pipe_id` is not 0. */
static int send_message(struct rig *rig, uint32_t ctx, size_t size, uint32_t number,
                        uint32_t pipe_id)
{
    size_t total = sizeof(struct cross_domain_send_receive) + size;
    uint8_t *buffer = calloc(1, total);
    struct cross_domain_send_receive *send = (void *)buffer;
    send->hdr = header(CROSS_DOMAIN_CMD_SEND, total);
    send->opaque_data_size = (uint32_t)size;
    if (pipe_id) {
        send->num_identifiers = 1;
        send->identifiers[0] = pipe_id;
        send->identifier_types[0] = CROSS_DOMAIN_ID_TYPE_READ_PIPE;
    }
    for (size_t i = 0; i < size; i++) {
        buffer[sizeof(*send) + i] = (uint8_t)(number * 7 + i);
    }
    int ret = submit(rig, ctx, buffer, total);
    free(buffer);
    return ret;
}

/* Reads exactly `size` bytes from the compositor's end, closing any fds that come along;
 * returns how many fds came. */
static int compositor_read_exactly(struct rig *rig, uint8_t *data, size_t size)
{
    int fds_seen = 0;
    for (size_t done = 0; done < size;) {
        int fd;
        ssize_t got = compositor_receive(rig, data + done, size - done, &fd);
        CHECK(got > 0);
        if (fd >= 0) {
            close(fd);
            fds_seen++;
        }
        done += (size_t)got;
    }
    return fds_seen;
}

/* Defect 3: read pipes bypassed the item cap, so a guest that never POLLs made the host hold
 * one fd per SEND without limit. */
TEST(read_pipes_are_capped)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    int fds_before = count_open_fds();
    int refused = 0;
    uint32_t next_pipe = CROSS_DOMAIN_PIPE_READ_START + 1;
    for (uint32_t i = 0; i < 400; i++) {
        if (send_message(&rig, CTX, 8, i, next_pipe) == 0) {
            next_pipe++; /* the guest counts only what the host took */
        } else {
            refused++;
        }
    }
    CHECK_EQ(refused, 400 - 32);
    CHECK(strstr(rig.log.last_error, "read pipes are open") != NULL);
    /* The compositor's socket holds the write ends in flight; ours are the read ends. */
    CHECK(count_open_fds() - fds_before <= 32 + 2);
    /* A host program closing its end frees the slot (the guest sees the hang-up). */
    uint8_t data[8];
    int write_end;
    CHECK_EQ(compositor_receive(&rig, data, sizeof(data), &write_end), 8);
    close(write_end);
    uint64_t poll_id = start_poll(&rig);
    CHECK(fence_done(&rig, poll_id, 2000));
    CHECK_EQ(send_message(&rig, CTX, 8, 0, next_pipe), 0);
    rig_finish(&rig);
}

/* Fds from the compositor count too: past the per-context limit the stream ends (the guest
 * cannot be given an fd it was not sent), and nothing of the failed message stays. */
TEST(received_fds_are_capped)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    int fds_before = count_open_fds();
    int memory[28];
    for (int i = 0; i < 28; i++) {
        memory[i] = memfd_create("m", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHECK_EQ(ftruncate(memory[i], 4096), 0);
        CHECK_EQ(fcntl(memory[i], F_ADD_SEALS, F_SEAL_SHRINK), 0);
    }
    int ended_at = -1;
    for (int message = 0; message < 6 && ended_at < 0; message++) {
        uint64_t poll_id = start_poll(&rig);
        compositor_send(&rig, "k", 1, memory, 28);
        CHECK(fence_done(&rig, poll_id, 2000));
        struct cross_domain_send_receive reply;
        memcpy(&reply, rig.channel_ring, sizeof(reply));
        if (reply.opaque_data_size == 0) {
            ended_at = message;
        }
    }
    CHECK_EQ(ended_at, 4); /* 4 * 28 = 112 fit in 128 with the socket; the fifth does not */
    CHECK(strstr(rig.log.last_error, "host fds") != NULL);
    for (int i = 0; i < 28; i++) {
        close(memory[i]);
    }
    CHECK(count_open_fds() - fds_before <= 128); /* what the guest may still use */
    rig_finish(&rig);
}

/* Defect 4: every context had a worker thread; now one thread serves them all, and a device
 * holds a bounded number of contexts. */
TEST(contexts_share_one_event_thread_and_are_capped)
{
    struct rig rig;
    rig_init(&rig);
    int threads_before = count_directory_entries("/proc/self/task");
    for (uint32_t ctx = 2; ctx < 66; ctx++) {
        CHECK_EQ(neep_context_create(rig.renderer, ctx, NEEP_CAPSET_CROSS_DOMAIN, NULL, 0), 0);
    }
    CHECK(count_directory_entries("/proc/self/task") <= threads_before + 1);
    uint32_t created = 65;
    int ret = 0;
    for (uint32_t ctx = 66; ctx < 5000 && ret == 0; ctx++) {
        ret = neep_context_create(rig.renderer, ctx, NEEP_CAPSET_CROSS_DOMAIN, NULL, 0);
        created += ret == 0;
    }
    CHECK_EQ(ret, -E2BIG);
    CHECK_EQ(created, NEEP_MAX_CONTEXTS);
    CHECK(strstr(rig.log.last_error, "contexts") != NULL);
    /* Contexts come and go; the thread goes with the last one. */
    for (uint32_t ctx = 2; ctx <= created; ctx++) {
        CHECK_EQ(neep_context_destroy(rig.renderer, ctx), 0);
    }
    CHECK_EQ(neep_context_destroy(rig.renderer, CTX), 0);
    CHECK_EQ(count_directory_entries("/proc/self/task"), threads_before - 1);
    rig_finish(&rig);
}

/* Defect 5: SEND's sendmsg blocked on a compositor that stopped reading, freezing the VMM's
 * thread. Now what it does not take is queued; past the limit its connection is closed. */
TEST(a_compositor_that_never_reads_never_blocks_submit)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    alarm(60); /* the old code blocks here forever */
    double slowest = 0;
    int ret = 0;
    uint32_t sent = 0;
    while (ret == 0 && sent < 1000) {
        double start = now_seconds();
        ret = send_message(&rig, CTX, 60000, sent, 0);
        double took = now_seconds() - start;
        slowest = took > slowest ? took : slowest;
        sent += ret == 0;
    }
    CHECK(slowest < 0.5);
    CHECK_EQ(ret, -ENOBUFS);
    CHECK(sent * 60000ull >= 4u << 20); /* the queue took up to its limit */
    CHECK(strstr(rig.log.last_error, "not read") != NULL);
    /* The stream is ended: later SENDs fail, a POLL sees the end, and the compositor sees us
     * gone (after the bytes that reached its socket). */
    CHECK_EQ(send_message(&rig, CTX, 10, 0, 0), -EPIPE);
    uint64_t poll_id = start_poll(&rig);
    CHECK(fence_done(&rig, poll_id, 2000));
    struct cross_domain_send_receive reply;
    memcpy(&reply, rig.channel_ring, sizeof(reply));
    CHECK_EQ(reply.opaque_data_size, 0);
    uint8_t *drain = malloc(1 << 16);
    while (read(rig.compositor_fd, drain, 1 << 16) > 0) {
    }
    free(drain);
    /* Another context on the same device is served meanwhile. */
    CHECK_EQ(neep_context_create(rig.renderer, 2, NEEP_CAPSET_CROSS_DOMAIN, NULL, 0), 0);
    uint8_t *ring2, *ring3;
    make_ring(&rig, 2, 201, &ring2);
    make_ring(&rig, 2, 202, &ring3);
    struct cross_domain_init init = {.hdr = header(CROSS_DOMAIN_CMD_INIT, 20),
                                     .query_ring_id = 201,
                                     .channel_ring_id = 202,
                                     .channel_type = CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    CHECK_EQ(submit(&rig, 2, &init, 20), 0);
    int other = accept4(rig.listen_fd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(other >= 0);
    CHECK_EQ(send_message(&rig, 2, 16, 3, 0), 0);
    uint8_t got[16];
    CHECK_EQ(read(other, got, sizeof(got)), 16);
    close(other);
    alarm(0);
    rig_finish(&rig);
    free(ring2);
    free(ring3);
}

/* Defect 5 (and 11): what the compositor does not take at once waits in order, fds with
 * their message, and arrives whole once it reads. */
TEST(queued_output_keeps_the_stream_in_step)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    alarm(60);
    const uint32_t messages = 40; /* 2.4 MB: far more than the socket buffers */
    uint32_t next_pipe = CROSS_DOMAIN_PIPE_READ_START + 1;
    for (uint32_t i = 0; i < messages; i++) {
        CHECK_EQ(send_message(&rig, CTX, 60000, i, i % 8 == 0 ? next_pipe++ : 0), 0);
    }
    uint8_t *data = malloc(60000);
    int fds_seen = 0;
    for (uint32_t i = 0; i < messages; i++) {
        fds_seen += compositor_read_exactly(&rig, data, 60000);
        for (size_t j = 0; j < 60000; j += 997) {
            CHECK_EQ(data[j], (uint8_t)(i * 7 + j));
        }
    }
    CHECK_EQ(fds_seen, 5);
    free(data);
    alarm(0);
    rig_finish(&rig);
}

/* A WRITE pipe whose reader never reads is bounded too, and does not block. */
static uint32_t receive_write_pipe(struct rig *rig, int *read_end)
{
    int ends[2];
    CHECK_EQ(pipe2(ends, O_CLOEXEC), 0);
    uint64_t poll_id = start_poll(rig);
    compositor_send(rig, "x", 1, &ends[1], 1);
    close(ends[1]);
    CHECK(fence_done(rig, poll_id, 2000));
    struct cross_domain_send_receive reply;
    memcpy(&reply, rig->channel_ring, sizeof(reply));
    CHECK_EQ(reply.identifier_types[0], CROSS_DOMAIN_ID_TYPE_WRITE_PIPE);
    *read_end = ends[0];
    return reply.identifiers[0];
}

static int write_to_pipe(struct rig *rig, uint32_t id, size_t size, bool hang_up)
{
    size_t total = sizeof(struct cross_domain_read_write) + size;
    uint8_t *buffer = calloc(1, total);
    struct cross_domain_read_write *write_cmd = (void *)buffer;
    write_cmd->hdr = header(CROSS_DOMAIN_CMD_WRITE, total);
    write_cmd->identifier = id;
    write_cmd->hang_up = hang_up;
    write_cmd->opaque_data_size = (uint32_t)size;
    memset(buffer + sizeof(*write_cmd), 'p', size);
    int ret = submit(rig, CTX, buffer, total);
    free(buffer);
    return ret;
}

TEST(a_clipboard_reader_that_never_reads_never_blocks_submit)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    int read_end;
    uint32_t id = receive_write_pipe(&rig, &read_end);
    alarm(60); /* the old code blocks in write() once the pipe is full */
    double start = now_seconds();
    int refused_at = -1;
    for (int i = 0; i < 100 && refused_at < 0; i++) {
        CHECK_EQ(write_to_pipe(&rig, id, 60000, false), 0); /* a closed pipe is not an error */
        if (strstr(rig.log.last_error, "not read")) {
            refused_at = i;
        }
    }
    CHECK(now_seconds() - start < 5.0);
    CHECK(refused_at > 0); /* 4 MiB queued, then the pipe is dropped */
    CHECK_EQ(write_to_pipe(&rig, id, 10, false), -EINVAL); /* it is gone */
    /* The reader sees what fit in the pipe, then the end. */
    size_t total = 0;
    char buffer[65536];
    for (ssize_t got; (got = read(read_end, buffer, sizeof(buffer))) > 0;) {
        total += (size_t)got;
    }
    CHECK(total > 0);
    close(read_end);
    alarm(0);
    rig_finish(&rig);
}

/* Defect 13: a pipe whose reader left raised SIGPIPE in the embedder's thread. */
TEST(writes_to_a_closed_pipe_raise_no_sigpipe)
{
    signal(SIGPIPE, SIG_DFL); /* as in an embedder that does not ignore it */
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    int read_end;
    uint32_t id = receive_write_pipe(&rig, &read_end);
    close(read_end);
    CHECK_EQ(write_to_pipe(&rig, id, 100, false), 0);
    CHECK_EQ(write_to_pipe(&rig, id, 100, false), -EINVAL); /* dropped with its reader */
    sigset_t pending;
    sigpending(&pending);
    CHECK(!sigismember(&pending, SIGPIPE));
    /* And the compositor going away while we send. */
    close(rig.compositor_fd);
    rig.compositor_fd = -1;
    for (int i = 0; i < 3; i++) {
        send_message(&rig, CTX, 100, 0, 0);
    }
    rig_finish(&rig);
}

/* Defect 5: connect() to a compositor whose listen backlog is full blocked the embedder. */
TEST(a_compositor_with_a_full_backlog_fails_init_at_once)
{
    struct rig rig;
    rig_init(&rig);
    CHECK_EQ(listen(rig.listen_fd, 0), 0);
    int fillers[8];
    int filled = 0;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, rig.socket_path);
    for (; filled < 8; filled++) {
        fillers[filled] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (connect(fillers[filled], (struct sockaddr *)&address, sizeof(address)) < 0) {
            close(fillers[filled]);
            break;
        }
    }
    CHECK(filled < 8); /* the backlog is full */
    alarm(30);
    struct cross_domain_init init = {.hdr = header(CROSS_DOMAIN_CMD_INIT, 20),
                                     .query_ring_id = QUERY_RING_ID,
                                     .channel_ring_id = CHANNEL_RING_ID,
                                     .channel_type = CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    CHECK_EQ(submit(&rig, CTX, &init, 20), -EIO);
    alarm(0);
    for (int i = 0; i < filled; i++) {
        close(fillers[i]);
    }
    rig_finish(&rig);
}

/* A read pipe made by SEND, with data from the compositor in it and a POLL outstanding. */
static uint64_t pending_poll_with_readable_pipe(struct rig *rig)
{
    CHECK_EQ(send_message(rig, CTX, 4, 0, CROSS_DOMAIN_PIPE_READ_START + 1), 0);
    uint8_t data[4];
    int write_end;
    CHECK_EQ(compositor_receive(rig, data, sizeof(data), &write_end), 4);
    CHECK(write_end >= 0);
    CHECK_EQ(write(write_end, "clip", 4), 4);
    close(write_end);
    return start_poll(rig);
}

/* Defect 6: after the channel ring was detached, a readable pipe made the worker spin. */
TEST(a_readable_pipe_without_a_ring_does_not_spin)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    CHECK_EQ(neep_context_detach_resource(rig.renderer, CTX, CHANNEL_RING_ID), 0);
    /* No ring, so no POLL can be asked for; make the pipe readable anyway. */
    uint64_t id;
    CHECK_EQ(fence(&rig, CTX, CROSS_DOMAIN_CHANNEL_RING, &id), -EINVAL);
    CHECK_EQ(send_message(&rig, CTX, 4, 0, CROSS_DOMAIN_PIPE_READ_START + 1), 0);
    rig_finish(&rig);

    /* The ring detached while a POLL waits and the pipe is readable. */
    rig_init(&rig);
    init_channel(&rig);
    double cpu_before = cpu_seconds();
    pending_poll_with_readable_pipe(&rig);
    CHECK_EQ(neep_context_detach_resource(rig.renderer, CTX, CHANNEL_RING_ID), 0);
    compositor_send(&rig, "more", 4, NULL, 0);
    usleep(500 * 1000);
    CHECK(cpu_seconds() - cpu_before < 0.2);
    rig_finish(&rig);
}

/* Defect 9: replies kept landing in a ring's guest pages after DETACH_BACKING freed them. */
TEST(no_reply_lands_in_a_ring_whose_backing_is_detached)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    uint64_t poll_id = start_poll(&rig);
    CHECK_EQ(neep_resource_detach_backing(rig.renderer, CHANNEL_RING_ID), 0);
    memset(rig.channel_ring, 0xa5, 4096); /* the guest reuses the page */
    compositor_send(&rig, "too-late", 8, NULL, 0);
    CHECK(!fence_done(&rig, poll_id, 300));
    for (size_t i = 0; i < 4096; i++) {
        CHECK_EQ(rig.channel_ring[i], 0xa5);
    }
    rig_finish(&rig);
}

/* Defect 10: compositor memory was mapped as it came; the compositor could shrink it under
 * the guest's mapping (SIGBUS in the VMM), and a blob could span a page past its end. */
TEST(compositor_memory_cannot_shrink_under_a_mapping)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    int memory = memfd_create("keymap", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK_EQ(ftruncate(memory, 4096), 0);
    uint8_t *view = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, memory, 0);
    memset(view, 'k', 4096);
    uint64_t poll_id = start_poll(&rig);
    compositor_send(&rig, "m", 1, &memory, 1);
    CHECK(fence_done(&rig, poll_id, 2000));
    struct cross_domain_send_receive reply;
    memcpy(&reply, rig.channel_ring, sizeof(reply));
    CHECK_EQ(reply.identifier_sizes[0], 4096);
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_HOST3D,
                                    .blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE,
                                    .blob_id = reply.identifiers[0],
                                    .size_bytes = 8192};
    /* A page more than the memory has is refused. */
    CHECK_EQ(neep_resource_create_blob(rig.renderer, CTX, 300, &blob, NULL, 0), -EINVAL);
    blob.size_bytes = 4096;
    CHECK_EQ(neep_resource_create_blob(rig.renderer, CTX, 300, &blob, NULL, 0), 0);
    void *ptr;
    uint64_t size;
    CHECK_EQ(neep_resource_map(rig.renderer, 300, &ptr, &size), 0);
    CHECK_EQ(ftruncate(memory, 0), 0); /* the compositor shrinks its file */
    CHECK_EQ(((volatile uint8_t *)ptr)[4095], 'k');
    munmap(view, 4096);
    close(memory);

    /* Memory sealed against shrinking is used as it is. */
    memory = memfd_create("sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK_EQ(ftruncate(memory, 100), 0);
    CHECK_EQ(write(memory, "sealed", 6), 6);
    CHECK_EQ(fcntl(memory, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    poll_id = start_poll(&rig);
    compositor_send(&rig, "s", 1, &memory, 1);
    close(memory);
    CHECK(fence_done(&rig, poll_id, 2000));
    memcpy(&reply, rig.channel_ring, sizeof(reply));
    CHECK_EQ(reply.identifier_sizes[0], 100);
    blob.blob_id = reply.identifiers[0];
    CHECK_EQ(neep_resource_create_blob(rig.renderer, CTX, 301, &blob, NULL, 0), 0);
    CHECK_EQ(neep_resource_map(rig.renderer, 301, &ptr, &size), 0);
    CHECK(memcmp(ptr, "sealed", 6) == 0);
    rig_finish(&rig);
}

/* Defect 11: a SEND with fds and no data byte reported success though the kernel dropped
 * the fds. */
TEST(fds_need_a_data_byte_to_travel)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    CHECK_EQ(send_message(&rig, CTX, 0, 0, CROSS_DOMAIN_PIPE_READ_START + 1), -EINVAL);
    CHECK(strstr(rig.log.last_error, "data byte") != NULL);
    rig_finish(&rig);
}

/* Review finding: the pipe's open file description was shared with its sender, which could
 * make it blocking again; a full pipe then blocked WRITE on the embedder's thread. */
TEST(a_sender_cannot_make_our_pipe_writes_block)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    int ends[2];
    CHECK_EQ(pipe2(ends, O_CLOEXEC), 0);
    uint64_t poll_id = start_poll(&rig);
    compositor_send(&rig, "x", 1, &ends[1], 1); /* it keeps its copy of the write end */
    CHECK(fence_done(&rig, poll_id, 2000));
    struct cross_domain_send_receive reply;
    memcpy(&reply, rig.channel_ring, sizeof(reply));
    CHECK_EQ(reply.identifier_types[0], CROSS_DOMAIN_ID_TYPE_WRITE_PIPE);
    CHECK_EQ(fcntl(ends[1], F_SETFL, 0), 0); /* blocking again, for every holder if shared */
    alarm(30);
    double start = now_seconds();
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(write_to_pipe(&rig, reply.identifiers[0], 60000, false), 0);
    }
    CHECK(now_seconds() - start < 1.0);
    alarm(0);
    close(ends[0]);
    close(ends[1]);
    rig_finish(&rig);
}

/* Review finding: any seekable fd counted as memory, and was probed with calls that can wait
 * forever on a FUSE or NFS file. Only shared memory and pipes are taken now. */
TEST(only_shared_memory_and_pipes_are_taken_from_the_compositor)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    int file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC); /* a file on a real filesystem */
    CHECK(file >= 0);
    uint64_t poll_id = start_poll(&rig);
    compositor_send(&rig, "f", 1, &file, 1);
    close(file);
    CHECK(fence_done(&rig, poll_id, 2000));
    struct cross_domain_send_receive reply;
    memcpy(&reply, rig.channel_ring, sizeof(reply));
    CHECK_EQ(reply.opaque_data_size, 0); /* the end of the stream */
    CHECK(strstr(rig.log.last_error, "neither shared memory nor a pipe") != NULL);
    rig_finish(&rig);
}

/* Review finding: memory we hand out was not sealed against new seals, so a compositor given
 * it could forbid the guest's writable mapping. */
TEST(memory_we_hand_out_takes_no_new_seals)
{
    struct rig rig;
    rig_init(&rig);
    init_channel(&rig);
    struct cross_domain_image_requirements reqs = query_requirements(&rig, 4096, 1, 0x20203852);
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_HOST3D,
                                    .blob_flags =
                                        NEEP_BLOB_FLAG_USE_MAPPABLE | NEEP_BLOB_FLAG_USE_SHAREABLE,
                                    .blob_id = reqs.blob_id,
                                    .size_bytes = reqs.size};
    CHECK_EQ(neep_resource_create_blob(rig.renderer, CTX, 300, &blob, NULL, 0), 0);
    int fd;
    uint32_t handle_type;
    CHECK_EQ(neep_resource_export(rig.renderer, 300, &fd, &handle_type), 0);
    CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) < 0);
    close(fd);
    rig_finish(&rig);
}
