/*
 * Throughput of vhost-user-gpu back-ends, driven by this small front-end with the same
 * command stream for each: a 1920x1080 frame per round (TRANSFER_TO_HOST_2D then
 * RESOURCE_FLUSH, waiting for both, as a guest flipping synchronously does), full frames and
 * then a 1% damage rectangle. The display channel is drained like QEMU does: every UPDATE's
 * pixels are read and copied into a frame buffer.
 *
 *   vhost_user_bench [--seconds S] NAME=COMMAND ...
 *
 * COMMAND is a back-end program; "--socket-path=PATH" is appended. Prints frames per second
 * for each back-end, their ratios to the first, memcpy bandwidth measured in this run, and
 * each back-end's resident memory (without the guest memory it maps) after the run.
 */
#include <ctype.h>
#include <errno.h>
#include <linux/virtio_gpu.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vhost_user/protocol.h"

#define WIDTH       1920
#define HEIGHT      1080
#define FRAME_BYTES ((size_t)WIDTH * HEIGHT * 4)
#define GUEST_BYTES (64u << 20)
#define QUEUE_SIZE  64
#define PAGE        4096
/* Guest-physical layout. */
#define RING_GPA    0x0
#define COMMAND_GPA 0x10000
#define FRAME_GPA   0x100000

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "vhost_user_bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---- the display channel, drained on its own thread as QEMU's main loop would ---------- */

struct display {
    int fd;
    uint8_t *surface;
    uint64_t update_bytes;
    uint64_t updates;
};

static bool read_full(int fd, void *buf, size_t size)
{
    uint8_t *p = buf;
    while (size > 0) {
        ssize_t got = read(fd, p, size);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return false;
        }
        p += got;
        size -= (size_t)got;
    }
    return true;
}

static void reply(int fd, uint32_t request, const void *payload, uint32_t size)
{
    struct vu_gpu_header header = {request, VU_GPU_FLAG_REPLY, size};
    if (write(fd, &header, sizeof(header)) != sizeof(header) ||
        (size && write(fd, payload, size) != (ssize_t)size)) {
        die("display reply");
    }
}

static void *display_thread(void *arg)
{
    struct display *display = arg;
    static uint8_t payload[FRAME_BYTES + 64];
    struct vu_gpu_header header;
    while (read_full(display->fd, &header, sizeof(header))) {
        if (header.size > sizeof(payload) || !read_full(display->fd, payload, header.size)) {
            break;
        }
        switch (header.request) {
        case VU_GPU_GET_PROTOCOL_FEATURES: {
            uint64_t none = 0;
            reply(display->fd, header.request, &none, sizeof(none));
            break;
        }
        case VU_GPU_GET_DISPLAY_INFO: {
            struct virtio_gpu_resp_display_info info = {.hdr.type =
                                                            VIRTIO_GPU_RESP_OK_DISPLAY_INFO};
            info.pmodes[0].r.width = WIDTH;
            info.pmodes[0].r.height = HEIGHT;
            info.pmodes[0].enabled = 1;
            reply(display->fd, header.request, &info, sizeof(info));
            break;
        }
        case VU_GPU_UPDATE: {
            struct vu_gpu_update update;
            memcpy(&update, payload, sizeof(update));
            size_t row = (size_t)update.width * 4;
            if (update.x + update.width <= WIDTH && update.y + update.height <= HEIGHT &&
                header.size == sizeof(update) + row * update.height) {
                for (uint32_t y = 0; y < update.height; y++) {
                    memcpy(display->surface + ((size_t)(update.y + y) * WIDTH + update.x) * 4,
                           payload + sizeof(update) + y * row, row);
                }
            }
            display->update_bytes += header.size;
            display->updates++;
            break;
        }
        default:
            break;
        }
    }
    return NULL;
}

/* ---- the front-end ------------------------------------------------------------------------ */

struct frontend {
    int sock;
    pid_t backend_pid;
    int guest_fd;
    uint8_t *guest;
    int kick[2], call[2];
    uint16_t avail_idx;
    uint16_t used_seen;
    struct display display;
    pthread_t display_thread;
};

static void send_message(struct frontend *f, uint32_t request, const void *payload, uint32_t size,
                         const int *fds, int fd_count, bool need_reply)
{
    struct vu_header header = {request, VU_FLAG_VERSION | (need_reply ? VU_FLAG_NEED_REPLY : 0),
                               size};
    struct iovec iov[2] = {{&header, sizeof(header)}, {(void *)payload, size}};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(8 * sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = size ? 2 : 1};
    if (fd_count > 0) {
        msg.msg_control = &control;
        msg.msg_controllen = CMSG_SPACE(fd_count * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(fd_count * sizeof(int));
        memcpy(CMSG_DATA(c), fds, fd_count * sizeof(int));
    }
    if (sendmsg(f->sock, &msg, MSG_NOSIGNAL) != (ssize_t)(sizeof(header) + size)) {
        die("sending a vhost-user message");
    }
}

static uint64_t receive_u64(struct frontend *f)
{
    struct vu_header header;
    uint64_t value = 0;
    if (!read_full(f->sock, &header, sizeof(header)) || header.size != 8 ||
        !read_full(f->sock, &value, 8)) {
        die("reading a vhost-user reply");
    }
    return value;
}

static void request_ack(struct frontend *f, uint32_t request, const void *payload, uint32_t size,
                        const int *fds, int fd_count)
{
    send_message(f, request, payload, size, fds, fd_count, true);
    if (receive_u64(f) != 0) {
        fprintf(stderr, "vhost_user_bench: back-end refused request %u\n", request);
        exit(1);
    }
}

static struct vring_desc *ring_desc(struct frontend *f)
{
    return (struct vring_desc *)(f->guest + RING_GPA);
}

static struct vring_avail *ring_avail(struct frontend *f)
{
    return (struct vring_avail *)(f->guest + RING_GPA + 0x1000);
}

static struct vring_used *ring_used(struct frontend *f)
{
    return (struct vring_used *)(f->guest + RING_GPA + 0x2000);
}

static void start(struct frontend *f, const char *command, const char *socket_path)
{
    unlink(socket_path);
    char full[1024];
    snprintf(full, sizeof(full), "exec %s --socket-path=%s", command, socket_path);
    f->backend_pid = fork();
    if (f->backend_pid == 0) {
        execl("/bin/sh", "sh", "-c", full, (char *)NULL);
        _exit(127);
    }
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", socket_path);
    f->sock = socket(AF_UNIX, SOCK_STREAM, 0);
    for (int tries = 0; connect(f->sock, (struct sockaddr *)&address, sizeof(address)) < 0;
         tries++) {
        if (tries > 500) {
            die("connecting to the back-end");
        }
        usleep(10000);
    }

    f->guest_fd = memfd_create("bench-guest", MFD_CLOEXEC);
    if (f->guest_fd < 0 || ftruncate(f->guest_fd, GUEST_BYTES) < 0) {
        die("guest memory");
    }
    f->guest = mmap(NULL, GUEST_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, f->guest_fd, 0);
    if (f->guest == MAP_FAILED) {
        die("mapping guest memory");
    }

    send_message(f, VU_GET_FEATURES, NULL, 0, NULL, 0, false);
    uint64_t features = receive_u64(f);
    /* No EDID: the guest of this benchmark never asks, and Debian's back-end then wants the
     * display channel's EDID protocol too. */
    uint64_t wanted = (1ull << VU_F_VERSION_1) | (1ull << VU_F_PROTOCOL_FEATURES);
    send_message(f, VU_GET_PROTOCOL_FEATURES, NULL, 0, NULL, 0, false);
    uint64_t protocol =
        receive_u64(f) & ((1ull << VU_PROTOCOL_F_REPLY_ACK) | (1ull << VU_PROTOCOL_F_CONFIG));
    if (!(protocol & (1ull << VU_PROTOCOL_F_REPLY_ACK))) {
        fprintf(stderr, "vhost_user_bench: the back-end lacks REPLY_ACK\n");
        exit(1);
    }
    send_message(f, VU_SET_PROTOCOL_FEATURES, &protocol, 8, NULL, 0, false);
    send_message(f, VU_SET_OWNER, NULL, 0, NULL, 0, false);
    uint64_t acked = features & wanted;
    request_ack(f, VU_SET_FEATURES, &acked, 8, NULL, 0);
    struct vu_memory memory = {.nregions = 1};
    memory.regions[0] = (struct vu_memory_region){0, GUEST_BYTES, (uint64_t)(uintptr_t)f->guest, 0};
    request_ack(f, VU_SET_MEM_TABLE, &memory, 8 + sizeof(memory.regions[0]), &f->guest_fd, 1);

    int gpu[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, gpu) < 0) {
        die("socketpair");
    }
    f->display.fd = gpu[0];
    f->display.surface = calloc(1, FRAME_BYTES);
    pthread_create(&f->display_thread, NULL, display_thread, &f->display);
    request_ack(f, VU_GPU_SET_SOCKET, NULL, 0, &gpu[1], 1);
    close(gpu[1]);

    /* Queue 0 only: the control queue. The cursor queue stays unused. */
    f->kick[0] = eventfd(0, EFD_CLOEXEC);
    f->call[0] = eventfd(0, EFD_CLOEXEC);
    struct vhost_vring_state num = {0, QUEUE_SIZE};
    request_ack(f, VU_SET_VRING_NUM, &num, sizeof(num), NULL, 0);
    struct vhost_vring_addr addr = {
        .index = 0,
        .desc_user_addr = (uint64_t)(uintptr_t)ring_desc(f),
        .used_user_addr = (uint64_t)(uintptr_t)ring_used(f),
        .avail_user_addr = (uint64_t)(uintptr_t)ring_avail(f),
    };
    request_ack(f, VU_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0);
    struct vhost_vring_state base = {0, 0};
    request_ack(f, VU_SET_VRING_BASE, &base, sizeof(base), NULL, 0);
    uint64_t index = 0;
    request_ack(f, VU_SET_VRING_CALL, &index, 8, &f->call[0], 1);
    request_ack(f, VU_SET_VRING_KICK, &index, 8, &f->kick[0], 1);
    struct vhost_vring_state enable = {0, 1};
    request_ack(f, VU_SET_VRING_ENABLE, &enable, sizeof(enable), NULL, 0);
}

/* Places `count` commands (each a request and a 64-byte response slot) on the ring, kicks,
 * and waits until all are used. */
static void submit(struct frontend *f, const void *const *requests, const size_t *sizes, int count)
{
    uint64_t offset = COMMAND_GPA;
    for (int i = 0; i < count; i++) {
        memcpy(f->guest + offset, requests[i], sizes[i]);
        uint16_t d = (uint16_t)(2 * i);
        ring_desc(f)[d] =
            (struct vring_desc){offset, (uint32_t)sizes[i], VRING_DESC_F_NEXT, (uint16_t)(d + 1)};
        offset += (sizes[i] + 63) & ~63ull;
        ring_desc(f)[d + 1] = (struct vring_desc){offset, 1024, VRING_DESC_F_WRITE, 0};
        offset += 1024;
        ring_avail(f)->ring[f->avail_idx % QUEUE_SIZE] = d;
        f->avail_idx++;
    }
    __atomic_store_n(&ring_avail(f)->idx, f->avail_idx, __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (write(f->kick[0], &one, 8) != 8) {
        die("kick");
    }
    while ((uint16_t)(__atomic_load_n(&ring_used(f)->idx, __ATOMIC_ACQUIRE) - f->used_seen) <
           count) {
        uint64_t counter;
        if (read(f->call[0], &counter, 8) != 8 && errno != EINTR) {
            die("waiting for the back-end");
        }
    }
    f->used_seen = (uint16_t)(f->used_seen + count);
}

static void setup_frame(struct frontend *f)
{
    struct virtio_gpu_ctrl_hdr info = {.type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO};
    struct virtio_gpu_resource_create_2d create = {.hdr.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
                                                   .resource_id = 1,
                                                   .format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
                                                   .width = WIDTH,
                                                   .height = HEIGHT};
    /* Page-sized entries, as a guest's scattered pages give. */
    uint32_t entries = FRAME_BYTES / PAGE;
    size_t attach_bytes = sizeof(struct virtio_gpu_resource_attach_backing) +
                          entries * sizeof(struct virtio_gpu_mem_entry);
    struct virtio_gpu_resource_attach_backing *attach = calloc(1, attach_bytes);
    attach->hdr.type = VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING;
    attach->resource_id = 1;
    attach->nr_entries = entries;
    struct virtio_gpu_mem_entry *entry = (void *)(attach + 1);
    for (uint32_t i = 0; i < entries; i++) {
        entry[i] = (struct virtio_gpu_mem_entry){FRAME_GPA + (uint64_t)i * PAGE, PAGE, 0};
    }
    struct virtio_gpu_set_scanout scanout = {
        .hdr.type = VIRTIO_GPU_CMD_SET_SCANOUT, .r = {0, 0, WIDTH, HEIGHT}, .resource_id = 1};
    const void *requests[] = {&info, &create, attach, &scanout};
    size_t sizes[] = {sizeof(info), sizeof(create), attach_bytes, sizeof(scanout)};
    for (int i = 0; i < 4; i++) {
        submit(f, &requests[i], &sizes[i], 1);
    }
    free(attach);
    /* The guest's picture. */
    for (size_t i = 0; i < FRAME_BYTES; i++) {
        f->guest[FRAME_GPA + i] = (uint8_t)(i * 7);
    }
}

/* Frames per second for a damage rectangle of w x h at (x, y). */
static double run_frames(struct frontend *f, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                         double seconds)
{
    struct virtio_gpu_transfer_to_host_2d transfer = {.hdr.type =
                                                          VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D,
                                                      .r = {x, y, w, h},
                                                      .offset = ((uint64_t)y * WIDTH + x) * 4,
                                                      .resource_id = 1};
    struct virtio_gpu_resource_flush flush = {
        .hdr.type = VIRTIO_GPU_CMD_RESOURCE_FLUSH, .r = {x, y, w, h}, .resource_id = 1};
    const void *requests[] = {&transfer, &flush};
    size_t sizes[] = {sizeof(transfer), sizeof(flush)};
    uint64_t updates_before = f->display.updates;
    int frames = 0;
    double started = now_seconds();
    double elapsed;
    do {
        f->guest[FRAME_GPA + ((size_t)y * WIDTH + x) * 4] = (uint8_t)frames;
        submit(f, requests, sizes, 2);
        frames++;
        elapsed = now_seconds() - started;
    } while (elapsed < seconds);
    /* The last update may still be in flight to the display thread; give it a moment. */
    for (int i = 0; i < 100 && f->display.updates - updates_before < (uint64_t)frames; i++) {
        usleep(1000);
    }
    if (f->display.updates - updates_before < (uint64_t)frames) {
        fprintf(stderr, "vhost_user_bench: %llu updates for %d frames\n",
                (unsigned long long)(f->display.updates - updates_before), frames);
        exit(1);
    }
    return frames / elapsed;
}

/* Resident memory of the back-end outside the guest memory it maps, in bytes. */
static uint64_t backend_private_rss(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
    FILE *smaps = fopen(path, "r");
    if (!smaps) {
        return 0;
    }
    char line[512];
    bool guest_mapping = false;
    uint64_t total_kib = 0;
    while (fgets(line, sizeof(line), smaps)) {
        unsigned long long kib;
        char *dash = strchr(line, '-'), *space = strchr(line, ' ');
        if (isxdigit((unsigned char)line[0]) && dash && space && dash < space) {
            /* A mapping's header line; the fields that follow belong to it. */
            guest_mapping = strstr(line, "bench-guest") != NULL;
        }
        if (sscanf(line, "Rss: %llu kB", &kib) == 1 && !guest_mapping) {
            total_kib += kib;
        }
    }
    fclose(smaps);
    return total_kib * 1024;
}

static void stop(struct frontend *f)
{
    close(f->sock);
    kill(f->backend_pid, SIGTERM);
    waitpid(f->backend_pid, NULL, 0);
    shutdown(f->display.fd, SHUT_RDWR);
    pthread_join(f->display_thread, NULL);
    close(f->display.fd);
    free(f->display.surface);
    munmap(f->guest, GUEST_BYTES);
    close(f->guest_fd);
    close(f->kick[0]);
    close(f->call[0]);
}

static double memcpy_gbps(void)
{
    uint8_t *a = malloc(FRAME_BYTES), *b = malloc(FRAME_BYTES);
    memset(a, 1, FRAME_BYTES);
    memset(b, 2, FRAME_BYTES);
    int rounds = 0;
    double started = now_seconds();
    while (now_seconds() - started < 1.0) {
        memcpy(b, a, FRAME_BYTES);
        a[rounds % FRAME_BYTES] ^= b[(rounds * 7) % FRAME_BYTES];
        rounds++;
    }
    double elapsed = now_seconds() - started;
    free(a);
    free(b);
    return (double)FRAME_BYTES * rounds / elapsed / 1e9;
}

int main(int argc, char **argv)
{
    double seconds = 3.0;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--seconds") == 0) {
        seconds = atof(argv[2]);
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: vhost_user_bench [--seconds S] NAME=COMMAND ...\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    double memcpy_rate = memcpy_gbps();
    printf("memcpy: %.2f GB/s (%.0f full frames/s)\n", memcpy_rate,
           memcpy_rate * 1e9 / FRAME_BYTES);
    double base_full = 0, base_damage = 0;
    for (int i = first; i < argc; i++) {
        char *name = argv[i];
        char *command = strchr(name, '=');
        if (!command) {
            fprintf(stderr, "vhost_user_bench: %s is not NAME=COMMAND\n", name);
            return 2;
        }
        *command++ = '\0';
        char socket_path[64];
        snprintf(socket_path, sizeof(socket_path), "/tmp/neep-bench-%d.sock", getpid());
        struct frontend f;
        memset(&f, 0, sizeof(f));
        start(&f, command, socket_path);
        setup_frame(&f);
        double full = run_frames(&f, 0, 0, WIDTH, HEIGHT, seconds);
        double damage = run_frames(&f, 864, 486, 192, 108, seconds); /* 1% of the pixels */
        uint64_t rss = backend_private_rss(f.backend_pid);
        stop(&f);
        unlink(socket_path);
        if (i == first) {
            base_full = full;
            base_damage = damage;
        }
        printf("%s: full frame %.1f fps (%.2f GB/s of frames, %.2fx memcpy), "
               "1%% damage %.0f fps (%.1fx its full-frame rate), resident %.1f MiB "
               "(%.2fx the %.1f MiB of pixel storage)\n",
               name, full, full * FRAME_BYTES / 1e9, full * FRAME_BYTES / 1e9 / memcpy_rate, damage,
               damage / full, rss / 1048576.0, (double)rss / FRAME_BYTES, FRAME_BYTES / 1048576.0);
        if (i != first) {
            printf("%s vs %s: full frames %.2fx, 1%% damage %.2fx\n", argv[first], name,
                   base_full / full, base_damage / damage);
        }
    }
    return 0;
}
