/*
 * Cross-domain SEND on the host: Wayland-sized messages submitted to a context whose
 * compositor is a thread draining a UNIX socket, against the same messages written with
 * sendmsg() straight into another socket drained the same way, both measured in this run.
 * Prints messages per second and the ratio; with a slow reader the queue path is measured
 * too (the compositor reads in bursts, so SENDs are queued and flushed by the event thread).
 * Messages go in rounds that fit the context's 4 MiB queue, each round waiting until the
 * compositor has read it, as a guest would be paced by the compositor's replies.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <neep/renderer.h>

#include "contexts/cross_domain_protocol.h"

#define MESSAGE_BYTES  256
#define ROUND_MESSAGES 8192 /* 2 MiB */
#define ROUNDS         25
#define MESSAGES       (ROUND_MESSAGES * ROUNDS)

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct reader {
    int fd;
    size_t expected_bytes;
    int pause_us; /* between reads: a slow compositor */
    pthread_mutex_t lock;
    pthread_cond_t progress;
    size_t read_bytes;
};

static void reader_init(struct reader *reader, int fd, int pause_us)
{
    *reader = (struct reader){
        .fd = fd, .expected_bytes = (size_t)MESSAGES * MESSAGE_BYTES, .pause_us = pause_us};
    pthread_mutex_init(&reader->lock, NULL);
    pthread_cond_init(&reader->progress, NULL);
}

/* Waits until the reader has taken `bytes` in all. */
static void wait_read(struct reader *reader, size_t bytes)
{
    pthread_mutex_lock(&reader->lock);
    while (reader->read_bytes < bytes) {
        pthread_cond_wait(&reader->progress, &reader->lock);
    }
    pthread_mutex_unlock(&reader->lock);
}

static void *drain(void *arg)
{
    struct reader *reader = arg;
    static char buffer[1 << 16];
    size_t total = 0;
    while (total < reader->expected_bytes) {
        ssize_t got = read(reader->fd, buffer, sizeof(buffer));
        if (got <= 0) {
            break;
        }
        total += (size_t)got;
        pthread_mutex_lock(&reader->lock);
        reader->read_bytes = total;
        pthread_cond_signal(&reader->progress);
        pthread_mutex_unlock(&reader->lock);
        if (reader->pause_us) {
            usleep((useconds_t)reader->pause_us);
        }
    }
    return NULL;
}

static double direct_rate(int pause_us)
{
    int pair[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair);
    struct reader reader;
    reader_init(&reader, pair[1], pause_us);
    pthread_t thread;
    pthread_create(&thread, NULL, drain, &reader);
    static uint8_t message[MESSAGE_BYTES];
    double start = now_seconds();
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < ROUND_MESSAGES; i++) {
            if (send(pair[0], message, sizeof(message), MSG_NOSIGNAL) != sizeof(message)) {
                return 0;
            }
        }
        wait_read(&reader, (size_t)(round + 1) * ROUND_MESSAGES * MESSAGE_BYTES);
    }
    pthread_join(thread, NULL);
    double took = now_seconds() - start;
    close(pair[0]);
    close(pair[1]);
    return MESSAGES / took;
}

static double cross_domain_rate(int pause_us)
{
    char path[108];
    snprintf(path, sizeof(path), "/tmp/neep-send-bench-%d", getpid());
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, path);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(path);
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) < 0 ||
        listen(listener, 4) < 0) {
        return 0;
    }
    struct neep_channel channel = {path, CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    struct neep_renderer_config config = {
        .capset_mask = 1ull << NEEP_CAPSET_CROSS_DOMAIN, .channels = &channel, .channel_count = 1};
    struct neep_renderer *renderer;
    if (neep_renderer_create(&config, &renderer) < 0 ||
        neep_context_create(renderer, 1, NEEP_CAPSET_CROSS_DOMAIN, NULL, 0) < 0) {
        return 0;
    }
    static uint8_t ring[4096] __attribute__((aligned(4096)));
    struct iovec iov = {ring, sizeof(ring)};
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_GUEST, .size_bytes = 4096};
    neep_resource_create_blob(renderer, 1, 10, &blob, &iov, 1);
    neep_context_attach_resource(renderer, 1, 10);
    struct cross_domain_init init = {.hdr = {.cmd = CROSS_DOMAIN_CMD_INIT, .cmd_size = 20},
                                     .query_ring_id = 10,
                                     .channel_ring_id = 10,
                                     .channel_type = CROSS_DOMAIN_CHANNEL_TYPE_WAYLAND};
    neep_context_submit(renderer, 1, &init, 20);
    int compositor = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    struct reader reader;
    reader_init(&reader, compositor, pause_us);
    pthread_t thread;
    pthread_create(&thread, NULL, drain, &reader);
    static uint8_t command[sizeof(struct cross_domain_send_receive) + MESSAGE_BYTES];
    struct cross_domain_send_receive *send = (void *)command;
    send->hdr.cmd = CROSS_DOMAIN_CMD_SEND;
    send->hdr.cmd_size = sizeof(command);
    send->opaque_data_size = MESSAGE_BYTES;
    double start = now_seconds();
    int refused = 0;
    for (int round = 0; round < ROUNDS && !refused; round++) {
        for (int i = 0; i < ROUND_MESSAGES; i++) {
            refused += neep_context_submit(renderer, 1, command, sizeof(command)) != 0;
        }
        wait_read(&reader, (size_t)(round + 1) * ROUND_MESSAGES * MESSAGE_BYTES);
    }
    pthread_join(thread, NULL);
    double took = now_seconds() - start;
    neep_renderer_destroy(renderer);
    close(compositor);
    close(listener);
    unlink(path);
    return refused ? 0 : MESSAGES / took;
}

int main(void)
{
    const int pauses_us[] = {0, 200};
    for (size_t i = 0; i < 2; i++) {
        double direct = direct_rate(pauses_us[i]);
        double through = cross_domain_rate(pauses_us[i]);
        printf("%-34s %10.0f msg/s  sendmsg directly %10.0f msg/s  ratio %.2fx\n",
               pauses_us[i] ? "SEND, compositor reads in bursts:" : "SEND, compositor keeps up:",
               through, direct, direct > 0 ? through / direct : 0);
    }
    return 0;
}
