#include "display.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "renderer/renderer_internal.h"

/* An UPDATE message's bytes before its pixels. */
#define UPDATE_PREFIX_BYTES (sizeof(struct vu_gpu_header) + sizeof(struct vu_gpu_update))
/* How long GET_DISPLAY_INFO may wait for the channel and the front-end's answer: the only
 * exchange that holds a guest command, and it comes at boot and on hot-plug. */
#define LAYOUT_TIMEOUT_MS 1000
/* What the channel's send buffer is asked to be, at least and at most (see size_socket_buffer). */
#define MIN_SOCKET_BUFFER_BYTES ((size_t)256 << 10)
#define MAX_SOCKET_BUFFER_BYTES ((size_t)32 << 20)
/* Pieces per sendmsg (the kernel's UIO_MAXIOV). */
#define MAX_PIECES 1024

/* ---- memory the channel holds ----------------------------------------------------------- */

static uint8_t *staged_alloc(struct vu_display *display, size_t bytes)
{
    struct neep_renderer *renderer = display->device ? neep_device_renderer(display->device) : NULL;
    if (renderer && neep_budget_charge(renderer, bytes) < 0) {
        return NULL;
    }
    uint8_t *buffer = malloc(bytes);
    if (!buffer) {
        if (renderer) {
            neep_budget_release(renderer, bytes);
        }
        return NULL;
    }
    display->staged_bytes += bytes;
    return buffer;
}

static void staged_free(struct vu_display *display, uint8_t *buffer, size_t bytes)
{
    if (!buffer) {
        return;
    }
    free(buffer);
    display->staged_bytes -= bytes;
    if (display->device) {
        neep_budget_release(neep_device_renderer(display->device), bytes);
    }
}

static size_t update_message_bytes(uint32_t width, uint32_t height)
{
    return UPDATE_PREFIX_BYTES + (size_t)width * height * 4;
}

static void drop_frame(struct vu_display *display, uint32_t scanout_id)
{
    struct vu_display_frame *frame = &display->frames[scanout_id];
    staged_free(display, frame->copy, update_message_bytes(frame->width, frame->height));
    *frame = (struct vu_display_frame){0};
}

static void release_out(struct vu_display *display)
{
    staged_free(display, display->out_owned, display->out_owned_bytes);
    display->out_owned = NULL;
    display->out_owned_bytes = 0;
    display->out_prefix = display->out_rows = NULL;
    display->out_prefix_bytes = display->out_row_bytes = display->out_stride_bytes = 0;
    display->out_row_count = 0;
    display->out_sent = 0;
    display->out_resource_id = 0;
    display->out_is_update = false;
    display->layout_stalled = false;
}

/* ---- the channel ---------------------------------------------------------------------------- */

static void on_writable(void *arg);

static void want_writable(struct vu_display *display, bool on)
{
    if (on == display->watching || display->fd < 0 || !display->watch) {
        return;
    }
    if (on) {
        display->watching = display->watch->add_writable(display->watch_user_data, display->fd,
                                                         on_writable, display) == 0;
    } else {
        display->watch->remove(display->watch_user_data, display->fd);
        display->watching = false;
    }
}

void vu_display_init(struct vu_display *display, const struct vu_watch_ops *watch,
                     void *watch_user_data)
{
    memset(display, 0, sizeof(*display));
    display->fd = -1;
    display->watch = watch;
    display->watch_user_data = watch_user_data;
}

void vu_display_set_device(struct vu_display *display, struct neep_device *device)
{
    display->device = device;
}

void vu_display_close(struct vu_display *display)
{
    want_writable(display, false);
    if (display->fd >= 0) {
        close(display->fd);
    }
    display->fd = -1;
    release_out(display);
    for (uint32_t i = 0; i < NEEP_MAX_SCANOUTS; i++) {
        drop_frame(display, i);
    }
    display->scanouts_changed = 0;
    display->cursor_image_waits = display->cursor_move_waits = false;
}

void vu_display_set_socket(struct vu_display *display, int fd)
{
    vu_display_close(display);
    display->fd = fd;
    display->socket_buffer_bytes = 0;
}

/*
 * Sizes the socket's send buffer for frames of `frame_bytes`. The front-end reads an UPDATE to
 * its end before it does anything else on its main loop (which also delivers the guest's
 * interrupts): a frame it finds half written holds it there until neep writes the rest. So a
 * frame starts only when the socket is writable (a quarter of its buffer or less still queued,
 * as its poller says), and the buffer is sized so that the whole frame then fits: the kernel
 * doubles what it is asked, so asking one frame gives two, and a writable socket has room for
 * one and a half. At most that much waits for the front-end: it reads the latest frame, not a
 * backlog. Where net.core.wmem_max is smaller, frames too big for it go in pieces.
 */
static void size_socket_buffer(struct vu_display *display, size_t frame_bytes)
{
    size_t wanted = frame_bytes;
    wanted = wanted < MIN_SOCKET_BUFFER_BYTES ? MIN_SOCKET_BUFFER_BYTES : wanted;
    wanted = wanted > MAX_SOCKET_BUFFER_BYTES ? MAX_SOCKET_BUFFER_BYTES : wanted;
    if (display->fd < 0 || wanted <= display->socket_buffer_bytes) {
        return;
    }
    int bytes = (int)wanted;
    if (setsockopt(display->fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)) < 0) {
        return;
    }
    display->socket_buffer_bytes = wanted;
    /* What a writable socket has room for: three quarters of what the kernel gave, less its
     * own bookkeeping (some 3% of the bytes, measured on 6.x). */
    int granted = 0;
    socklen_t length = sizeof(granted);
    size_t needed = frame_bytes + frame_bytes / 16 + (64u << 10);
    if (getsockopt(display->fd, SOL_SOCKET, SO_SNDBUF, &granted, &length) == 0 && granted > 0 &&
        (size_t)granted / 4 * 3 < needed) {
        neep_log_host(display->logger, NEEP_LOG_WARN,
                      "display channel: the kernel gives its socket %d bytes (net.core.wmem_max "
                      "caps it); frames of %zu bytes then go in pieces and QEMU's main loop waits "
                      "for each one's rest. A net.core.wmem_max of %zu or more avoids that",
                      granted, frame_bytes, needed * 2 / 3 + 1);
    }
}

/* Whether the socket is writable now as its poller sees it: the one test a waiting frame is
 * held to, so that a frame that waits is woken by the same event (never a busy loop). A socket
 * in error counts as writable: the write finds the error. */
static bool socket_writable(const struct vu_display *display)
{
    struct pollfd poller = {display->fd, POLLOUT, 0};
    return poll(&poller, 1, 0) == 1;
}

static void channel_failed(struct vu_display *display, const char *what, int error)
{
    neep_log_host(display->logger, NEEP_LOG_INFO,
                  "display channel %s (%s); output is dropped until a new one", what,
                  strerror(error));
    vu_display_close(display);
}

/* Writes what the socket takes now: bytes written, 0 if it is full, -1 if the channel failed
 * (then closed). */
static ssize_t send_now(struct vu_display *display, struct iovec *iov, size_t count)
{
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = count};
    for (;;) {
        ssize_t sent = sendmsg(display->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent >= 0) {
            display->stats.sent_bytes += (uint64_t)sent;
            return sent;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        }
        if (errno != EINTR) {
            channel_failed(display, "closed", errno);
            return -1;
        }
    }
}

/* True when nothing is on the wire or waiting: new output may go straight out. */
static bool idle(const struct vu_display *display)
{
    if (display->out_prefix || display->scanouts_changed || display->cursor_image_waits ||
        display->cursor_move_waits) {
        return false;
    }
    for (uint32_t i = 0; i < NEEP_MAX_SCANOUTS; i++) {
        if (display->frames[i].pending) {
            return false;
        }
    }
    return true;
}

/* ---- messages ------------------------------------------------------------------------------- */

/* A message as pieces: a prefix (header and fixed part) then `row_count` rows of `row_bytes`,
 * `stride_bytes` apart. */
struct message {
    const uint8_t *prefix;
    size_t prefix_bytes;
    const uint8_t *rows;
    size_t row_bytes;
    size_t stride_bytes;
    uint32_t row_count;
};

static size_t message_bytes(const struct message *m)
{
    return m->prefix_bytes + m->row_bytes * m->row_count;
}

/* Pieces of `m` from byte `offset` on, at most `max` of them. */
static size_t message_pieces(const struct message *m, size_t offset, struct iovec *iov, size_t max)
{
    size_t count = 0;
    if (offset < m->prefix_bytes) {
        iov[count++] = (struct iovec){(void *)(m->prefix + offset), m->prefix_bytes - offset};
        offset = 0;
    } else {
        offset -= m->prefix_bytes;
    }
    if (m->row_bytes == 0) {
        return count;
    }
    size_t row = offset / m->row_bytes;
    size_t skip = offset % m->row_bytes;
    if (m->stride_bytes == m->row_bytes && row < m->row_count && count < max) {
        /* Contiguous rows: one piece. */
        iov[count++] = (struct iovec){(void *)(m->rows + row * m->stride_bytes + skip),
                                      (m->row_count - row) * m->row_bytes - skip};
        return count;
    }
    for (; row < m->row_count && count < max; row++, skip = 0) {
        iov[count++] =
            (struct iovec){(void *)(m->rows + row * m->stride_bytes + skip), m->row_bytes - skip};
    }
    return count;
}

static bool is_update(const struct message *m)
{
    struct vu_gpu_header header;
    if (m->prefix_bytes < sizeof(header)) {
        return false;
    }
    memcpy(&header, m->prefix, sizeof(header));
    return header.request == VU_GPU_UPDATE;
}

static struct message out_message(const struct vu_display *display)
{
    return (struct message){display->out_prefix,       display->out_prefix_bytes,
                            display->out_rows,         display->out_row_bytes,
                            display->out_stride_bytes, display->out_row_count};
}

/* Puts `m` on the wire with `sent` bytes of it written; its bytes stay where they are. */
static void set_out(struct vu_display *display, const struct message *m, size_t sent,
                    uint32_t resource_id)
{
    display->out_prefix = m->prefix;
    display->out_prefix_bytes = m->prefix_bytes;
    display->out_rows = m->rows;
    display->out_row_bytes = m->row_bytes;
    display->out_stride_bytes = m->stride_bytes;
    display->out_row_count = m->row_count;
    display->out_sent = sent;
    display->out_resource_id = resource_id;
    display->out_is_update = is_update(m);
}

/* Copies what is left of `m` after `offset` into a buffer of the channel's own, as the
 * message on the wire (the stream cannot go on without the rest: no memory closes it). */
static bool keep_rest(struct vu_display *display, const struct message *m, size_t offset,
                      bool update)
{
    size_t rest = message_bytes(m) - offset;
    uint8_t *copy = staged_alloc(display, rest);
    if (!copy) {
        neep_log_host(display->logger, NEEP_LOG_ERROR,
                      "display channel: no memory for %zu bytes of an update the front-end "
                      "has not read; closing the channel",
                      rest);
        vu_display_close(display);
        return false;
    }
    size_t filled = 0;
    struct iovec iov[MAX_PIECES];
    while (filled < rest) {
        size_t count = message_pieces(m, offset + filled, iov, MAX_PIECES);
        for (size_t i = 0; i < count; i++) {
            memcpy(copy + filled, iov[i].iov_base, iov[i].iov_len);
            filled += iov[i].iov_len;
        }
    }
    uint8_t *old_owned = display->out_owned;
    size_t old_owned_bytes = display->out_owned_bytes;
    set_out(display, &(struct message){.prefix = copy, .prefix_bytes = rest}, 0, 0);
    display->out_is_update = update;
    display->out_owned = copy;
    display->out_owned_bytes = rest;
    staged_free(display, old_owned, old_owned_bytes); /* after: `m` may have lived in it */
    want_writable(display, true);
    return true;
}

/* Sends `m` now as far as the socket takes it; the rest waits, copied. Only when idle. */
static void send_direct(struct vu_display *display, const struct message *m)
{
    size_t total = message_bytes(m);
    size_t offset = 0;
    struct iovec iov[MAX_PIECES];
    while (offset < total) {
        size_t count = message_pieces(m, offset, iov, MAX_PIECES);
        ssize_t sent = send_now(display, iov, count);
        if (sent < 0) {
            return;
        }
        if (sent == 0) {
            break;
        }
        offset += (size_t)sent;
    }
    if (offset < total) {
        keep_rest(display, m, offset, is_update(m));
    } else if (is_update(m)) {
        display->stats.updates_sent++;
    }
}

/* A small message into the control buffer, as the message on the wire. */
static void queue_control(struct vu_display *display, uint32_t request, const void *payload,
                          uint32_t size)
{
    struct vu_gpu_header header = {.request = request, .size = size};
    memcpy(display->control, &header, sizeof(header));
    memcpy(display->control + sizeof(header), payload, size);
    set_out(display,
            &(struct message){.prefix = display->control, .prefix_bytes = sizeof(header) + size}, 0,
            0);
}

static void fill_update_prefix(uint8_t *prefix, uint32_t scanout_id, uint32_t x, uint32_t y,
                               uint32_t width, uint32_t height)
{
    struct vu_gpu_header header = {
        .request = VU_GPU_UPDATE,
        .size = (uint32_t)(sizeof(struct vu_gpu_update) + (size_t)width * height * 4)};
    struct vu_gpu_update update = {scanout_id, x, y, width, height};
    memcpy(prefix, &header, sizeof(header));
    memcpy(prefix + sizeof(header), &update, sizeof(update));
}

/* An UPDATE message of scanout `scanout_id`'s box as it shows now, or NULL. */
static uint8_t *read_box(struct vu_display *display, uint32_t scanout_id,
                         const struct vu_display_frame *box)
{
    size_t bytes = update_message_bytes(box->width, box->height);
    uint8_t *message = display->device ? staged_alloc(display, bytes) : NULL;
    if (!message) {
        neep_log_host(display->logger, NEEP_LOG_WARN,
                      "display channel: no memory for a %ux%u update of scanout %u; the "
                      "display gets the next one",
                      box->width, box->height, scanout_id);
        return NULL;
    }
    int ret = neep_device_read_scanout(display->device, scanout_id, box->x, box->y, box->width,
                                       box->height, message + UPDATE_PREFIX_BYTES, box->width * 4);
    if (ret < 0) {
        staged_free(display, message, bytes);
        return NULL; /* the scanout shows nothing now, or is smaller: nothing to send */
    }
    fill_update_prefix(message, scanout_id, box->x, box->y, box->width, box->height);
    return message;
}

/* Puts a waiting box on the wire: its copy if it has one, else straight from the scanout's
 * resource where it can, else read from the scanout. False if there is nothing to send. */
static bool send_frame(struct vu_display *display, uint32_t scanout_id,
                       const struct vu_display_frame *box)
{
    size_t bytes = update_message_bytes(box->width, box->height);
    const uint8_t *pixels;
    uint32_t stride;
    if (!box->copy && display->device &&
        neep_device_scanout_view(display->device, scanout_id, box->x, box->y, box->width,
                                 box->height, &pixels, &stride) == 0) {
        fill_update_prefix(display->control, scanout_id, box->x, box->y, box->width, box->height);
        set_out(display,
                &(struct message){.prefix = display->control,
                                  .prefix_bytes = UPDATE_PREFIX_BYTES,
                                  .rows = pixels,
                                  .row_bytes = (size_t)box->width * 4,
                                  .stride_bytes = stride,
                                  .row_count = box->height},
                0, neep_device_scanout_resource(display->device, scanout_id));
        return true;
    }
    uint8_t *message = box->copy ? box->copy : read_box(display, scanout_id, box);
    if (!message) {
        return false;
    }
    set_out(display, &(struct message){.prefix = message, .prefix_bytes = bytes}, 0, 0);
    display->out_is_update = true;
    display->out_owned = message;
    display->out_owned_bytes = bytes;
    return true;
}

enum next_result { NOTHING_WAITS, MESSAGE_ON_WIRE, WAITS_FOR_ROOM };

/* Puts the next waiting message on the wire: scanout changes, then the cursor, then frames
 * round the scanouts (a frame only when the socket is writable: see size_socket_buffer). */
static enum next_result next_message(struct vu_display *display)
{
    if (display->scanouts_changed) {
        uint32_t scanout_id = (uint32_t)__builtin_ctz(display->scanouts_changed);
        display->scanouts_changed &= ~(1u << scanout_id);
        queue_control(display, VU_GPU_SCANOUT, &display->scanout_messages[scanout_id],
                      sizeof(display->scanout_messages[scanout_id]));
        return MESSAGE_ON_WIRE;
    }
    if (display->cursor_image_waits) {
        display->cursor_image_waits = false;
        queue_control(display, VU_GPU_CURSOR_UPDATE, &display->cursor_image,
                      sizeof(display->cursor_image));
        return MESSAGE_ON_WIRE;
    }
    if (display->cursor_move_waits) {
        display->cursor_move_waits = false;
        queue_control(display, display->cursor_move_request, &display->cursor_pos,
                      sizeof(display->cursor_pos));
        return MESSAGE_ON_WIRE;
    }
    bool room_checked = false;
    uint32_t first = display->next_frame; /* where this round starts: the loop moves it */
    for (uint32_t step = 0; step < NEEP_MAX_SCANOUTS; step++) {
        uint32_t scanout_id = (first + step) % NEEP_MAX_SCANOUTS;
        struct vu_display_frame *frame = &display->frames[scanout_id];
        if (!frame->pending) {
            continue;
        }
        if (!room_checked && !socket_writable(display)) {
            return WAITS_FOR_ROOM;
        }
        room_checked = true;
        display->next_frame = (scanout_id + 1) % NEEP_MAX_SCANOUTS;
        struct vu_display_frame box = *frame;
        *frame = (struct vu_display_frame){0}; /* the copy, if any, is the message now */
        if (send_frame(display, scanout_id, &box)) {
            return MESSAGE_ON_WIRE;
        }
    }
    return NOTHING_WAITS;
}

/* Writes the rest of the message on the wire as far as the socket takes it: true once it is
 * all written (and released). */
static bool write_out(struct vu_display *display)
{
    struct message m = out_message(display);
    size_t total = message_bytes(&m);
    struct iovec iov[MAX_PIECES];
    while (display->out_sent < total) {
        size_t count = message_pieces(&m, display->out_sent, iov, MAX_PIECES);
        ssize_t sent = send_now(display, iov, count);
        if (sent <= 0) {
            return false;
        }
        display->out_sent += (size_t)sent;
        display->layout_stalled = false;
    }
    display->stats.updates_sent += display->out_is_update;
    release_out(display);
    return true;
}

/* Writes until the socket is full or nothing waits. */
static void pump(struct vu_display *display)
{
    while (display->fd >= 0) {
        if (display->out_prefix && !write_out(display)) {
            want_writable(display, display->fd >= 0);
            return;
        }
        enum next_result next = next_message(display);
        if (next != MESSAGE_ON_WIRE) {
            want_writable(display, next == WAITS_FOR_ROOM);
            return;
        }
    }
}

static void on_writable(void *arg)
{
    pump(arg);
}

/* ---- the device's callbacks ----------------------------------------------------------------- */

static void on_scanout(void *user_data, uint32_t scanout_id, uint32_t width_px, uint32_t height_px)
{
    struct vu_display *display = user_data;
    if (display->fd < 0 || scanout_id >= NEEP_MAX_SCANOUTS) {
        return;
    }
    drop_frame(display, scanout_id); /* damage of the old image means nothing now */
    size_socket_buffer(display, (size_t)width_px * height_px * 4);
    struct vu_gpu_scanout scanout = {scanout_id, width_px, height_px};
    if (idle(display)) {
        struct vu_gpu_header header = {.request = VU_GPU_SCANOUT, .size = sizeof(scanout)};
        uint8_t bytes[sizeof(header) + sizeof(scanout)];
        memcpy(bytes, &header, sizeof(header));
        memcpy(bytes + sizeof(header), &scanout, sizeof(scanout));
        send_direct(display, &(struct message){.prefix = bytes, .prefix_bytes = sizeof(bytes)});
        return;
    }
    display->scanout_messages[scanout_id] = scanout;
    display->scanouts_changed |= 1u << scanout_id;
}

/* Grows `frame`'s box to cover (x, y, width, height) too. */
static void merge_box(struct vu_display_frame *frame, uint32_t x, uint32_t y, uint32_t width,
                      uint32_t height)
{
    uint64_t right = (uint64_t)frame->x + frame->width;
    uint64_t bottom = (uint64_t)frame->y + frame->height;
    uint64_t new_right = (uint64_t)x + width;
    uint64_t new_bottom = (uint64_t)y + height;
    frame->x = x < frame->x ? x : frame->x;
    frame->y = y < frame->y ? y : frame->y;
    frame->width = (uint32_t)((new_right > right ? new_right : right) - frame->x);
    frame->height = (uint32_t)((new_bottom > bottom ? new_bottom : bottom) - frame->y);
}

static bool box_contains(const struct vu_display_frame *frame, uint32_t x, uint32_t y,
                         uint32_t width, uint32_t height)
{
    return x >= frame->x && y >= frame->y &&
           (uint64_t)x + width <= (uint64_t)frame->x + frame->width &&
           (uint64_t)y + height <= (uint64_t)frame->y + frame->height;
}

static void on_update(void *user_data, uint32_t scanout_id, uint32_t x, uint32_t y, uint32_t width,
                      uint32_t height, const uint8_t *pixels, uint32_t stride_bytes)
{
    struct vu_display *display = user_data;
    display->stats.updates++;
    /* The device keeps scanouts under 8192x8192: a message's size fits its 32-bit field. */
    if (display->fd < 0 || scanout_id >= NEEP_MAX_SCANOUTS || width == 0 || height == 0 ||
        update_message_bytes(width, height) > UINT32_MAX) {
        return;
    }
    if (idle(display) && socket_writable(display)) {
        /* The socket takes the frame whole now: it goes at once, before the flush is answered
         * (a copy into the socket, never a wait for the front-end). Measured with the guest
         * page-flip benchmark, answering first and sending on the loop's next turn gave more
         * flips but half the frames to the display. */
        uint8_t prefix[UPDATE_PREFIX_BYTES];
        fill_update_prefix(prefix, scanout_id, x, y, width, height);
        send_direct(display, &(struct message){.prefix = prefix,
                                               .prefix_bytes = sizeof(prefix),
                                               .rows = pixels,
                                               .row_bytes = (size_t)width * 4,
                                               .stride_bytes = stride_bytes,
                                               .row_count = height});
        return;
    }
    /* Behind, or the socket is not writable: the damage waits as a box, read when the channel
     * is ready for it. The guest's flush does not wait for the front-end. */
    want_writable(display, true);
    struct vu_display_frame *frame = &display->frames[scanout_id];
    if (!frame->pending) {
        *frame = (struct vu_display_frame){.pending = true, x, y, width, height, NULL};
        return;
    }
    if (frame->copy && box_contains(frame, x, y, width, height)) {
        /* The copy stays the frame: this damage goes into it as flushed. */
        uint8_t *dst = frame->copy + UPDATE_PREFIX_BYTES;
        size_t box_stride = (size_t)frame->width * 4;
        for (uint32_t row = 0; row < height; row++) {
            memcpy(dst + (size_t)(y - frame->y + row) * box_stride + (size_t)(x - frame->x) * 4,
                   pixels + (size_t)row * stride_bytes, (size_t)width * 4);
        }
        return;
    }
    bool had_copy = frame->copy != NULL;
    staged_free(display, frame->copy, update_message_bytes(frame->width, frame->height));
    frame->copy = NULL;
    merge_box(frame, x, y, width, height);
    if (had_copy) {
        /* The pixels were about to change before: read the grown box as it is at this flush. */
        frame->copy = read_box(display, scanout_id, frame);
    }
}

static void on_changing(void *user_data, uint32_t resource_id)
{
    struct vu_display *display = user_data;
    /* The rest of the message on the wire, if it is still in that resource. */
    if (display->out_resource_id != 0 &&
        (resource_id == 0 || resource_id == display->out_resource_id)) {
        struct message m = out_message(display);
        keep_rest(display, &m, display->out_sent, display->out_is_update);
        display->stats.copies++;
    }
    /* Boxes of scanouts that show it, as they were flushed. */
    for (uint32_t i = 0; i < NEEP_MAX_SCANOUTS && display->device; i++) {
        struct vu_display_frame *frame = &display->frames[i];
        uint32_t shown = neep_device_scanout_resource(display->device, i);
        if (frame->pending && !frame->copy && shown != 0 &&
            (resource_id == 0 || resource_id == shown)) {
            frame->copy = read_box(display, i, frame);
            display->stats.copies += frame->copy != NULL;
        }
    }
}

static void on_cursor_update(void *user_data, uint32_t scanout_id, uint32_t x, uint32_t y,
                             uint32_t hot_x, uint32_t hot_y, const uint32_t *pixels)
{
    struct vu_display *display = user_data;
    if (display->fd < 0) {
        return;
    }
    display->cursor_image =
        (struct vu_gpu_cursor_update){.pos = {scanout_id, x, y}, .hot_x = hot_x, .hot_y = hot_y};
    memcpy(display->cursor_image.data, pixels, sizeof(display->cursor_image.data));
    /* What the image holds, in a line tests can check it by. */
    uint32_t opaque = 0, sum = 0;
    for (size_t i = 0; i < 64 * 64; i++) {
        opaque += (pixels[i] >> 24) != 0;
        sum += pixels[i];
    }
    neep_log_host(display->logger, NEEP_LOG_DEBUG,
                  "cursor image on scanout %u at (%u,%u) hot (%u,%u): %u opaque pixels, sum 0x%08x",
                  scanout_id, x, y, hot_x, hot_y, opaque, sum);
    if (idle(display)) {
        struct vu_gpu_header header = {.request = VU_GPU_CURSOR_UPDATE,
                                       .size = sizeof(display->cursor_image)};
        send_direct(display, &(struct message){.prefix = (const uint8_t *)&header,
                                               .prefix_bytes = sizeof(header),
                                               .rows = (const uint8_t *)&display->cursor_image,
                                               .row_bytes = sizeof(display->cursor_image),
                                               .stride_bytes = sizeof(display->cursor_image),
                                               .row_count = 1});
        return;
    }
    /* The image carries the position: a move waiting from before it is stale. */
    display->cursor_image_waits = true;
    display->cursor_move_waits = false;
}

static void on_cursor_move(void *user_data, uint32_t scanout_id, uint32_t x, uint32_t y,
                           bool visible)
{
    struct vu_display *display = user_data;
    if (display->fd < 0) {
        return;
    }
    neep_log_host(display->logger, NEEP_LOG_DEBUG, "cursor on scanout %u %s (%u,%u)", scanout_id,
                  visible ? "moved to" : "hidden at", x, y);
    display->cursor_pos = (struct vu_gpu_cursor_pos){scanout_id, x, y};
    display->cursor_move_request = visible ? VU_GPU_CURSOR_POS : VU_GPU_CURSOR_POS_HIDE;
    if (idle(display)) {
        struct vu_gpu_header header = {.request = display->cursor_move_request,
                                       .size = sizeof(display->cursor_pos)};
        uint8_t bytes[sizeof(header) + sizeof(display->cursor_pos)];
        memcpy(bytes, &header, sizeof(header));
        memcpy(bytes + sizeof(header), &display->cursor_pos, sizeof(display->cursor_pos));
        send_direct(display, &(struct message){.prefix = bytes, .prefix_bytes = sizeof(bytes)});
        return;
    }
    display->cursor_move_waits = true;
}

/* ---- the layout: the one exchange with an answer ------------------------------------------ */

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Waits until `events` on the channel, at most until `deadline_ms`. */
static bool wait_for(struct vu_display *display, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t left_ms = deadline_ms - monotonic_ms();
        if (left_ms <= 0) {
            return false;
        }
        struct pollfd poller = {display->fd, events, 0};
        int ready = poll(&poller, 1, (int)left_ms);
        if (ready > 0) {
            return true;
        }
        if (ready < 0 && errno != EINTR) {
            return false;
        }
    }
}

/* Writes all of `bytes` (the message on the wire must be done), waiting at most until the
 * deadline. */
static bool send_all_by(struct vu_display *display, const void *bytes, size_t size,
                        int64_t deadline_ms)
{
    size_t done = 0;
    while (display->fd >= 0 && done < size) {
        struct iovec iov = {(uint8_t *)bytes + done, size - done};
        ssize_t sent = send_now(display, &iov, 1);
        if (sent < 0) {
            return false;
        }
        done += (size_t)sent;
        if (done < size && !wait_for(display, POLLOUT, deadline_ms)) {
            return false;
        }
    }
    return display->fd >= 0;
}

static bool read_all_by(struct vu_display *display, void *buf, size_t size, int64_t deadline_ms)
{
    uint8_t *dst = buf;
    while (size > 0 && display->fd >= 0) {
        if (!wait_for(display, POLLIN, deadline_ms)) {
            return false;
        }
        ssize_t got = recv(display->fd, dst, size, MSG_DONTWAIT);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (got <= 0) {
            channel_failed(display, "closed mid-reply", got < 0 ? errno : EPIPE);
            return false;
        }
        dst += got;
        size -= (size_t)got;
    }
    return display->fd >= 0;
}

/* Asks the front-end for its layout (its xres, yres and output count). */
static bool on_get_layout(void *user_data, struct neep_scanout_size sizes[NEEP_MAX_SCANOUTS],
                          uint32_t *scanout_count)
{
    struct vu_display *display = user_data;
    if (display->fd < 0) {
        return false;
    }
    int64_t deadline_ms = monotonic_ms() + LAYOUT_TIMEOUT_MS;
    /* The question goes between whole messages, and only to a front-end that reads: first the
     * message on the wire, then room in the socket (a frame may lie whole in it, unread). A
     * front-end that did not read during the last wait gets no second one until it has read. */
    if (display->layout_stalled && !socket_writable(display)) {
        return false;
    }
    display->layout_stalled = false;
    for (;;) {
        if (display->out_prefix && !write_out(display) && display->fd < 0) {
            return false;
        }
        if (!display->out_prefix && socket_writable(display)) {
            break;
        }
        if (!wait_for(display, POLLOUT, deadline_ms)) {
            /* What was written stays written: the rest goes when the socket is writable. */
            neep_log_host(display->logger, NEEP_LOG_WARN,
                          "display channel: the front-end has not read for %d ms; "
                          "GET_DISPLAY_INFO answers from the device's own layout",
                          LAYOUT_TIMEOUT_MS);
            display->layout_stalled = true;
            return false;
        }
    }
    struct vu_gpu_header question = {.request = VU_GPU_GET_DISPLAY_INFO};
    struct vu_gpu_header header;
    struct {
        uint32_t hdr[6];
        struct {
            uint32_t x, y, width, height, enabled, flags;
        } modes[NEEP_MAX_SCANOUTS];
    } info;
    _Static_assert(sizeof(info) == 408, "display info");
    if (!send_all_by(display, &question, sizeof(question), deadline_ms) ||
        !read_all_by(display, &header, sizeof(header), deadline_ms)) {
        if (display->fd >= 0) {
            /* An answer may still come, and the stream would be out of step. */
            channel_failed(display, "did not answer GET_DISPLAY_INFO in time", ETIMEDOUT);
        }
        return false;
    }
    if (header.request != VU_GPU_GET_DISPLAY_INFO || !(header.flags & VU_GPU_FLAG_REPLY) ||
        header.size != sizeof(info)) {
        neep_log_host(display->logger, NEEP_LOG_ERROR,
                      "display channel: unexpected reply %u (%u bytes) to GET_DISPLAY_INFO",
                      header.request, header.size);
        vu_display_close(display); /* the stream is out of step now */
        return false;
    }
    if (!read_all_by(display, &info, sizeof(info), deadline_ms)) {
        if (display->fd >= 0) {
            channel_failed(display, "did not answer GET_DISPLAY_INFO in time", ETIMEDOUT);
        }
        return false;
    }
    /* The front-end answers for all its outputs but says nothing of how many there are (it
     * owns num_scanouts in config space): report every slot, disabled ones sizeless. */
    for (uint32_t i = 0; i < NEEP_MAX_SCANOUTS; i++) {
        sizes[i].width_px = info.modes[i].width;
        sizes[i].height_px = info.modes[i].height;
        sizes[i].enabled = info.modes[i].enabled != 0;
    }
    *scanout_count = NEEP_MAX_SCANOUTS;
    return true;
}

const struct neep_display_ops vu_display_ops = {
    .scanout = on_scanout,
    .update = on_update,
    .changing = on_changing,
    .cursor_update = on_cursor_update,
    .cursor_move = on_cursor_move,
    .get_layout = on_get_layout,
};
