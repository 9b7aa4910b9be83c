/*
 * A wl_shm client with content the tests can check pixel by pixel, and the benchmark client
 * of neep-wl. Built against libwayland-client; runs in the guest (through neep-wl) and on the
 * host (directly on the compositor) alike.
 *
 *   wl_pattern show WIDTH HEIGHT
 *       Shows pattern_pixel(x, y) (tests/vm/wayland_tests.py has the same formula), then
 *       follows commands on stdin: "rect X Y W H RRGGBB" paints a rectangle into the next
 *       buffer and damages only that rectangle (the buffers take turns, so a proxy must carry
 *       over what the other buffer showed); "quit". Prints "NEEP: wl-pattern ..." lines.
 *   wl_pattern bench WIDTH HEIGHT FRAMES DAMAGE_PERCENT [frame|release] [fixed|moving]
 *       Commits FRAMES frames, each changing DAMAGE_PERCENT of the surface (a full-width
 *       band, in one place or moving down), paced by frame callbacks (default) or only by
 *       buffer releases, and prints frames per second.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <wayland-client.h>

#include "xdg-shell-client-protocol.h"

#define BUFFER_COUNT 3

struct buffer {
    struct wl_buffer *wl_buffer;
    uint32_t *pixels;
    bool busy;
};

struct client {
    struct wl_display *display;
    struct wl_compositor *compositor;
    struct wl_shm *shm;
    struct xdg_wm_base *wm_base;
    struct wl_surface *surface;
    struct xdg_surface *xdg_surface;
    struct xdg_toplevel *toplevel;
    bool configured;
    bool frame_done;
    int width, height;
    struct buffer buffers[BUFFER_COUNT];
    int next_buffer;
};

static uint32_t pattern_pixel(int x, int y)
{
    uint32_t r = (uint32_t)(x * 3) & 0xff, g = (uint32_t)(y * 5) & 0xff,
             b = (uint32_t)(x ^ y) & 0xff;
    return 0xff000000u | r << 16 | g << 8 | b;
}

static void fail(const char *what)
{
    printf("NEEP: wl-pattern-fail %s (%s)\n", what, strerror(errno));
    exit(1);
}

static void on_global(void *data, struct wl_registry *registry, uint32_t name,
                      const char *interface, uint32_t version)
{
    struct client *c = data;
    if (strcmp(interface, wl_compositor_interface.name) == 0) {
        if (version < 4) {
            fail("wl_compositor older than 4 (no damage_buffer)");
        }
        c->compositor = wl_registry_bind(registry, name, &wl_compositor_interface, 4);
    } else if (strcmp(interface, wl_shm_interface.name) == 0) {
        c->shm = wl_registry_bind(registry, name, &wl_shm_interface, 1);
    } else if (strcmp(interface, xdg_wm_base_interface.name) == 0) {
        c->wm_base = wl_registry_bind(registry, name, &xdg_wm_base_interface, 1);
    }
}

static void on_global_remove(void *data, struct wl_registry *registry, uint32_t name)
{
    (void)data;
    (void)registry;
    (void)name;
}

static const struct wl_registry_listener registry_listener = {on_global, on_global_remove};

static void on_ping(void *data, struct xdg_wm_base *wm_base, uint32_t serial)
{
    (void)data;
    xdg_wm_base_pong(wm_base, serial);
}

static const struct xdg_wm_base_listener wm_base_listener = {on_ping};

static void on_surface_configure(void *data, struct xdg_surface *surface, uint32_t serial)
{
    struct client *c = data;
    xdg_surface_ack_configure(surface, serial);
    c->configured = true;
}

static const struct xdg_surface_listener xdg_surface_listener = {on_surface_configure};

static void on_toplevel_configure(void *data, struct xdg_toplevel *toplevel, int32_t width,
                                  int32_t height, struct wl_array *states)
{
    (void)data;
    (void)toplevel;
    (void)width;
    (void)height;
    (void)states;
}

static void on_toplevel_close(void *data, struct xdg_toplevel *toplevel)
{
    (void)data;
    (void)toplevel;
}

static const struct xdg_toplevel_listener toplevel_listener = {.configure = on_toplevel_configure,
                                                               .close = on_toplevel_close};

static void on_release(void *data, struct wl_buffer *wl_buffer)
{
    (void)wl_buffer;
    ((struct buffer *)data)->busy = false;
}

static const struct wl_buffer_listener buffer_listener = {on_release};

static void on_frame(void *data, struct wl_callback *callback, uint32_t time)
{
    (void)time;
    ((struct client *)data)->frame_done = true;
    wl_callback_destroy(callback);
}

static const struct wl_callback_listener frame_listener = {on_frame};

static void setup(struct client *c, int width, int height)
{
    c->width = width;
    c->height = height;
    c->display = wl_display_connect(NULL);
    if (!c->display) {
        fail("connect");
    }
    struct wl_registry *registry = wl_display_get_registry(c->display);
    wl_registry_add_listener(registry, &registry_listener, c);
    wl_display_roundtrip(c->display);
    if (!c->compositor || !c->shm || !c->wm_base) {
        fail("missing globals");
    }
    xdg_wm_base_add_listener(c->wm_base, &wm_base_listener, c);
    c->surface = wl_compositor_create_surface(c->compositor);
    c->xdg_surface = xdg_wm_base_get_xdg_surface(c->wm_base, c->surface);
    xdg_surface_add_listener(c->xdg_surface, &xdg_surface_listener, c);
    c->toplevel = xdg_surface_get_toplevel(c->xdg_surface);
    xdg_toplevel_add_listener(c->toplevel, &toplevel_listener, c);
    xdg_toplevel_set_title(c->toplevel, "wl_pattern");
    wl_surface_commit(c->surface);
    while (!c->configured) {
        if (wl_display_dispatch(c->display) < 0) {
            fail("dispatch");
        }
    }
    size_t stride = (size_t)width * 4, size = stride * (size_t)height;
    int fd = memfd_create("wl_pattern", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)(size * BUFFER_COUNT)) < 0) {
        fail("memfd");
    }
    uint8_t *memory = mmap(NULL, size * BUFFER_COUNT, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (memory == MAP_FAILED) {
        fail("mmap");
    }
    struct wl_shm_pool *pool = wl_shm_create_pool(c->shm, fd, (int32_t)(size * BUFFER_COUNT));
    for (int i = 0; i < BUFFER_COUNT; i++) {
        struct buffer *b = &c->buffers[i];
        b->pixels = (uint32_t *)(memory + size * (size_t)i);
        b->wl_buffer = wl_shm_pool_create_buffer(pool, (int32_t)(size * (size_t)i), width, height,
                                                 (int32_t)stride, WL_SHM_FORMAT_XRGB8888);
        wl_buffer_add_listener(b->wl_buffer, &buffer_listener, b);
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                b->pixels[y * width + x] = pattern_pixel(x, y);
            }
        }
    }
    wl_shm_pool_destroy(pool);
    close(fd);
}

/* The next buffer the compositor has let go of. */
static struct buffer *take_buffer(struct client *c)
{
    for (;;) {
        for (int i = 0; i < BUFFER_COUNT; i++) {
            struct buffer *b = &c->buffers[(c->next_buffer + i) % BUFFER_COUNT];
            if (!b->busy) {
                c->next_buffer = (c->next_buffer + i + 1) % BUFFER_COUNT;
                return b;
            }
        }
        if (wl_display_dispatch(c->display) < 0) {
            fail("dispatch");
        }
    }
}

static void fill(struct client *c, struct buffer *b, int x0, int y0, int w, int h, uint32_t colour)
{
    for (int y = y0; y < y0 + h && y < c->height; y++) {
        for (int x = x0; x < x0 + w && x < c->width; x++) {
            b->pixels[y * c->width + x] = colour;
        }
    }
}

static void commit_paced(struct client *c, struct buffer *b, int x, int y, int w, int h, bool paced)
{
    wl_surface_attach(c->surface, b->wl_buffer, 0, 0);
    wl_surface_damage_buffer(c->surface, x, y, w, h);
    if (paced) {
        struct wl_callback *frame = wl_surface_frame(c->surface);
        c->frame_done = false;
        wl_callback_add_listener(frame, &frame_listener, c);
    }
    wl_surface_commit(c->surface);
    b->busy = true;
    wl_display_flush(c->display);
}

static void commit(struct client *c, struct buffer *b, int x, int y, int w, int h)
{
    commit_paced(c, b, x, y, w, h, true);
}

static void wait_frame(struct client *c)
{
    while (!c->frame_done) {
        if (wl_display_dispatch(c->display) < 0) {
            fail("dispatch");
        }
    }
}

/* Painted rectangles so far: each buffer gets all of them before it is shown again. */
struct rect {
    int x, y, w, h;
    uint32_t colour;
};

static int show(struct client *c)
{
    struct buffer *b = take_buffer(c);
    commit(c, b, 0, 0, c->width, c->height);
    wait_frame(c);
    wl_display_roundtrip(c->display);
    printf("NEEP: wl-pattern-shown %dx%d\n", c->width, c->height);
    struct rect rects[64];
    int rect_count = 0;
    char line[256];
    while (fgets(line, sizeof(line), stdin)) {
        struct rect r;
        if (strncmp(line, "quit", 4) == 0) {
            break;
        }
        if (sscanf(line, "rect %d %d %d %d %x", &r.x, &r.y, &r.w, &r.h, &r.colour) != 5 ||
            rect_count == 64) {
            continue;
        }
        r.colour |= 0xff000000u; /* opaque in X as well: some compositors keep X as alpha */
        rects[rect_count++] = r;
        b = take_buffer(c);
        /* A client redraws what changed since this buffer was last shown: here, everything
         * painted so far; it damages only what changed since the last frame. */
        for (int i = 0; i < rect_count; i++) {
            fill(c, b, rects[i].x, rects[i].y, rects[i].w, rects[i].h, rects[i].colour);
        }
        commit(c, b, r.x, r.y, r.w, r.h);
        wait_frame(c);
        wl_display_roundtrip(c->display);
        printf("NEEP: wl-pattern-rect %d\n", rect_count);
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Paced by frame callbacks (what a client shows), or only by buffer releases (how many
 * frames the path can carry). */
static int bench(struct client *c, int frames, int damage_percent, bool paced, bool moving)
{
    /* A full-width band of damage_percent of the rows moves down the surface. */
    int band = c->height * damage_percent / 100;
    if (band < 1) {
        band = 1;
    }
    struct buffer *b = take_buffer(c);
    commit(c, b, 0, 0, c->width, c->height);
    wait_frame(c);
    double started = now_s();
    for (int frame = 0; frame < frames; frame++) {
        b = take_buffer(c);
        int y = moving ? (frame * band) % (c->height - band + 1) : c->height / 2;
        if (y + band > c->height) {
            y = c->height - band;
        }
        fill(c, b, 0, y, c->width, band, 0xff000000u | (uint32_t)(frame * 0x010203));
        commit_paced(c, b, 0, y, c->width, band, paced);
        if (paced) {
            wait_frame(c);
        }
    }
    wl_display_roundtrip(c->display); /* everything arrived */
    double seconds = now_s() - started;
    printf("NEEP: wl-bench %dx%d frames=%d damage=%d%%%s pacing=%s seconds=%.3f fps=%.1f\n",
           c->width, c->height, frames, damage_percent, moving ? "-moving" : "",
           paced ? "frame" : "release", seconds, frames / seconds);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 4) {
        fprintf(stderr, "usage: wl_pattern show W H | bench W H FRAMES DAMAGE_PERCENT\n");
        return 2;
    }
    struct client c = {0};
    setup(&c, atoi(argv[2]), atoi(argv[3]));
    if (strcmp(argv[1], "bench") == 0 && argc >= 6) {
        bool paced = argc < 7 || strcmp(argv[6], "release") != 0;
        bool moving = argc >= 8 && strcmp(argv[7], "moving") == 0;
        return bench(&c, atoi(argv[4]), atoi(argv[5]), paced, moving);
    }
    return show(&c);
}
