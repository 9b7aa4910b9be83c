/*
 * Guest test program (static, runs from the test initramfs): drives the virtio-gpu DRM
 * driver through plain KMS ioctls so the host can check what reaches the display.
 *
 * Sets the preferred mode on every connected output with a dumb buffer holding a known
 * pattern (pattern_pixel below; the host computes the same), then follows commands read
 * line by line from stdin (the serial console):
 *   damage  paint rectangle A without telling anyone, paint rectangle B and mark it dirty
 *   cursor  set a 64x64 cursor at (200,150) with hot spot (3,5), then move it to (300,250)
 *   flip N  page-flip head 0 between two full-screen buffers N times, waiting for each flip
 *           to complete, and report the time taken (for bench/guest_flip_bench.py)
 *   solid N the same between a solid red and a solid blue buffer (red first), for checking
 *           that the display only ever shows whole frames
 *   exit    leave
 * Replies are lines starting "NEEP:" on stdout.
 */
#include <drm/drm.h>
#include <drm/drm_mode.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADS 4

struct head {
    uint32_t connector_id, crtc_id, fb_id, handle;
    struct drm_mode_modeinfo mode;
    uint32_t *pixels;
    uint32_t pitch;
    uint64_t size;
};

static int drm_fd;

static void die(const char *what)
{
    printf("NEEP: error %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static void ioctl_or_die(unsigned long request, void *arg, const char *what)
{
    while (ioctl(drm_fd, request, arg) < 0) {
        if (errno != EINTR && errno != EAGAIN) {
            die(what);
        }
    }
}

/* x8r8g8b8: red from x, green from y, blue from both and the head. */
static uint32_t pattern_pixel(int head, uint32_t x, uint32_t y)
{
    uint32_t r = x & 0xff, g = y & 0xff, b = ((x ^ y) + (uint32_t)head * 85) & 0xff;
    return r << 16 | g << 8 | b;
}

static void create_dumb(uint32_t width, uint32_t height, uint32_t *handle, uint32_t *pitch,
                        uint64_t *size, uint32_t **pixels)
{
    struct drm_mode_create_dumb create = {.width = width, .height = height, .bpp = 32};
    ioctl_or_die(DRM_IOCTL_MODE_CREATE_DUMB, &create, "CREATE_DUMB");
    struct drm_mode_map_dumb map = {.handle = create.handle};
    ioctl_or_die(DRM_IOCTL_MODE_MAP_DUMB, &map, "MAP_DUMB");
    void *ptr =
        mmap(NULL, create.size, PROT_READ | PROT_WRITE, MAP_SHARED, drm_fd, (off_t)map.offset);
    if (ptr == MAP_FAILED) {
        die("mmap");
    }
    *handle = create.handle;
    *pitch = create.pitch;
    *size = create.size;
    *pixels = ptr;
}

static int setup_heads(struct head *heads)
{
    uint32_t connectors[MAX_HEADS * 2], crtcs[MAX_HEADS * 2];
    struct drm_mode_card_res res = {0};
    ioctl_or_die(DRM_IOCTL_MODE_GETRESOURCES, &res, "GETRESOURCES");
    if (res.count_connectors > MAX_HEADS * 2 || res.count_crtcs > MAX_HEADS * 2) {
        die("too many connectors");
    }
    res.connector_id_ptr = (uintptr_t)connectors;
    res.crtc_id_ptr = (uintptr_t)crtcs;
    res.count_fbs = res.count_encoders = 0;
    ioctl_or_die(DRM_IOCTL_MODE_GETRESOURCES, &res, "GETRESOURCES");

    int count = 0;
    for (uint32_t i = 0; i < res.count_connectors && count < MAX_HEADS; i++) {
        struct drm_mode_get_connector conn = {.connector_id = connectors[i]};
        ioctl_or_die(DRM_IOCTL_MODE_GETCONNECTOR, &conn, "GETCONNECTOR");
        if (conn.connection != 1 || conn.count_modes == 0) {
            continue;
        }
        struct drm_mode_modeinfo *modes = calloc(conn.count_modes, sizeof(*modes));
        uint32_t mode_count = conn.count_modes;
        conn.modes_ptr = (uintptr_t)modes;
        conn.count_props = conn.count_encoders = 0;
        ioctl_or_die(DRM_IOCTL_MODE_GETCONNECTOR, &conn, "GETCONNECTOR");
        struct head *head = &heads[count];
        head->connector_id = connectors[i];
        head->mode = modes[0];
        for (uint32_t m = 0; m < mode_count && m < conn.count_modes; m++) {
            if (modes[m].type & DRM_MODE_TYPE_PREFERRED) {
                head->mode = modes[m];
                break;
            }
        }
        free(modes);
        /* virtio-gpu pairs connector i with crtc i. */
        head->crtc_id = crtcs[i < res.count_crtcs ? i : 0];
        count++;
    }
    return count;
}

static void show_pattern(struct head *head, int index)
{
    uint32_t width = head->mode.hdisplay, height = head->mode.vdisplay;
    create_dumb(width, height, &head->handle, &head->pitch, &head->size, &head->pixels);
    for (uint32_t y = 0; y < height; y++) {
        uint32_t *row = (uint32_t *)((uint8_t *)head->pixels + (size_t)y * head->pitch);
        for (uint32_t x = 0; x < width; x++) {
            row[x] = pattern_pixel(index, x, y);
        }
    }
    struct drm_mode_fb_cmd fb = {.width = width,
                                 .height = height,
                                 .pitch = head->pitch,
                                 .bpp = 32,
                                 .depth = 24,
                                 .handle = head->handle};
    ioctl_or_die(DRM_IOCTL_MODE_ADDFB, &fb, "ADDFB");
    head->fb_id = fb.fb_id;
    struct drm_mode_crtc crtc = {.crtc_id = head->crtc_id,
                                 .fb_id = head->fb_id,
                                 .set_connectors_ptr = (uintptr_t)&head->connector_id,
                                 .count_connectors = 1,
                                 .mode = head->mode,
                                 .mode_valid = 1};
    ioctl_or_die(DRM_IOCTL_MODE_SETCRTC, &crtc, "SETCRTC");
    printf("NEEP: kms-mode head=%d %ux%u\n", index, width, height);
}

static void fill(struct head *head, uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t color)
{
    for (uint32_t row = y; row < y + h; row++) {
        uint32_t *line = (uint32_t *)((uint8_t *)head->pixels + (size_t)row * head->pitch);
        for (uint32_t col = x; col < x + w; col++) {
            line[col] = color;
        }
    }
}

static void damage(struct head *head)
{
    fill(head, 100, 100, 200, 100, 0xff0000); /* A: never marked dirty */
    fill(head, 400, 300, 300, 150, 0x00ff00); /* B: marked dirty below */
    struct drm_clip_rect clip = {400, 300, 700, 450};
    struct drm_mode_fb_dirty_cmd dirty = {
        .fb_id = head->fb_id, .num_clips = 1, .clips_ptr = (uintptr_t)&clip};
    ioctl_or_die(DRM_IOCTL_MODE_DIRTYFB, &dirty, "DIRTYFB");
    printf("NEEP: damage-done\n");
}

static void cursor(struct head *head)
{
    uint32_t handle, pitch;
    uint64_t size;
    uint32_t *pixels;
    create_dumb(64, 64, &handle, &pitch, &size, &pixels);
    for (uint32_t y = 0; y < 64; y++) {
        for (uint32_t x = 0; x < 64; x++) {
            /* Opaque diagonal stripes, transparent elsewhere: argb8888. */
            pixels[y * (pitch / 4) + x] = ((x + y) % 8 < 4) ? 0xff0000ffu : 0x00000000u;
        }
    }
    struct drm_mode_cursor2 set = {.flags = DRM_MODE_CURSOR_BO | DRM_MODE_CURSOR_MOVE,
                                   .crtc_id = head->crtc_id,
                                   .x = 200,
                                   .y = 150,
                                   .width = 64,
                                   .height = 64,
                                   .handle = handle,
                                   .hot_x = 3,
                                   .hot_y = 5};
    ioctl_or_die(DRM_IOCTL_MODE_CURSOR2, &set, "CURSOR2");
    struct drm_mode_cursor move = {
        .flags = DRM_MODE_CURSOR_MOVE, .crtc_id = head->crtc_id, .x = 300, .y = 250};
    ioctl_or_die(DRM_IOCTL_MODE_CURSOR, &move, "CURSOR move");
    printf("NEEP: cursor-done\n");
}

/* A full-screen buffer for head's mode filled with `pixel` (or bytes 0x40 if pixel is 0). */
static uint32_t filled_buffer(const struct head *head, uint32_t pixel)
{
    struct head buffer = *head;
    uint32_t width = head->mode.hdisplay, height = head->mode.vdisplay;
    create_dumb(width, height, &buffer.handle, &buffer.pitch, &buffer.size, &buffer.pixels);
    if (pixel == 0) {
        memset(buffer.pixels, 0x40, buffer.size);
    } else {
        for (uint64_t i = 0; i < buffer.size / 4; i++) {
            buffer.pixels[i] = pixel;
        }
    }
    struct drm_mode_fb_cmd fb = {.width = width,
                                 .height = height,
                                 .pitch = buffer.pitch,
                                 .bpp = 32,
                                 .depth = 24,
                                 .handle = buffer.handle};
    ioctl_or_die(DRM_IOCTL_MODE_ADDFB, &fb, "ADDFB");
    return fb.fb_id;
}

/* Flips head between fbs[0] and fbs[1] `count` times (fbs[0] first), each flip waited for
 * like a compositor; returns the milliseconds taken. */
static double flip_between(const struct head *head, const uint32_t fbs[2], int count)
{
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < count; i++) {
        struct drm_mode_crtc_page_flip request = {
            .crtc_id = head->crtc_id, .fb_id = fbs[i % 2], .flags = DRM_MODE_PAGE_FLIP_EVENT};
        ioctl_or_die(DRM_IOCTL_MODE_PAGE_FLIP, &request, "PAGE_FLIP");
        char event[256];
        while (read(drm_fd, event, sizeof(event)) < 0 && errno == EINTR) {
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    return (end.tv_sec - start.tv_sec) * 1e3 + (end.tv_nsec - start.tv_nsec) / 1e6;
}

/* Flips between the pattern and a second buffer. */
static void flip(struct head *head, int count)
{
    uint32_t fbs[2] = {filled_buffer(head, 0), head->fb_id};
    double ms = flip_between(head, fbs, count);
    printf("NEEP: flips %d %ux%u in %.1f ms\n", count, head->mode.hdisplay, head->mode.vdisplay,
           ms);
}

/* Flips between solid red and solid blue. */
static void solid(struct head *head, int count)
{
    uint32_t fbs[2] = {filled_buffer(head, 0xffff0000u), filled_buffer(head, 0xff0000ffu)};
    double ms = flip_between(head, fbs, count);
    printf("NEEP: solid-flips %d %ux%u in %.1f ms last %s\n", count, head->mode.hdisplay,
           head->mode.vdisplay, ms, count % 2 ? "red" : "blue");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    drm_fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
    if (drm_fd < 0) {
        die("open /dev/dri/card0");
    }
    struct head heads[MAX_HEADS];
    memset(heads, 0, sizeof(heads));
    int count = setup_heads(heads);
    if (count == 0) {
        die("no connected output");
    }
    for (int i = 0; i < count; i++) {
        show_pattern(&heads[i], i);
    }
    printf("NEEP: kms-ready heads=%d\n", count);
    char line[64];
    while (fgets(line, sizeof(line), stdin)) {
        if (strncmp(line, "damage", 6) == 0) {
            damage(&heads[0]);
        } else if (strncmp(line, "cursor", 6) == 0) {
            cursor(&heads[0]);
        } else if (strncmp(line, "flip ", 5) == 0) {
            flip(&heads[0], atoi(line + 5));
        } else if (strncmp(line, "solid ", 6) == 0) {
            solid(&heads[0], atoi(line + 6));
        } else if (strncmp(line, "exit", 4) == 0) {
            break;
        }
    }
    printf("NEEP: kms-exit\n");
    return 0;
}
