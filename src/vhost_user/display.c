#include "display.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol.h"

void vu_display_init(struct vu_display *display)
{
    memset(display, 0, sizeof(*display));
    display->fd = -1;
}

void vu_display_close(struct vu_display *display)
{
    if (display->fd >= 0) {
        close(display->fd);
    }
    display->fd = -1;
}

void vu_display_set_socket(struct vu_display *display, int fd)
{
    vu_display_close(display);
    display->fd = fd;
}

/* Sends every byte of the iovecs, or gives up on the channel. */
static bool send_all(struct vu_display *display, struct iovec *iov, int count)
{
    while (count > 0 && display->fd >= 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)count};
        ssize_t sent = sendmsg(display->fd, &msg, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) {
                continue;
            }
            neep_log_host(display->logger, NEEP_LOG_INFO,
                          "display channel closed (%s); output is dropped until a new one",
                          strerror(errno));
            vu_display_close(display);
            return false;
        }
        display->sent_bytes += (uint64_t)sent;
        while (count > 0 && (size_t)sent >= iov->iov_len) {
            sent -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + sent;
            iov->iov_len -= (size_t)sent;
        }
    }
    return display->fd >= 0;
}

static bool send_message(struct vu_display *display, uint32_t request, const void *payload,
                         uint32_t size)
{
    struct vu_gpu_header header = {.request = request, .size = size};
    struct iovec iov[2] = {{&header, sizeof(header)}, {(void *)payload, size}};
    return send_all(display, iov, size ? 2 : 1);
}

static bool read_all(struct vu_display *display, void *buf, size_t size)
{
    uint8_t *dst = buf;
    while (size > 0 && display->fd >= 0) {
        ssize_t got = read(display->fd, dst, size);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            neep_log_host(display->logger, NEEP_LOG_WARN, "display channel closed mid-reply");
            vu_display_close(display);
            return false;
        }
        dst += got;
        size -= (size_t)got;
    }
    return display->fd >= 0;
}

static void on_scanout(void *user_data, uint32_t scanout_id, uint32_t width_px, uint32_t height_px)
{
    struct vu_gpu_scanout scanout = {scanout_id, width_px, height_px};
    send_message(user_data, VU_GPU_SCANOUT, &scanout, sizeof(scanout));
}

static void on_update(void *user_data, uint32_t scanout_id, uint32_t x, uint32_t y, uint32_t width,
                      uint32_t height, const uint8_t *pixels, uint32_t stride_bytes)
{
    struct vu_display *display = user_data;
    uint64_t row_bytes = (uint64_t)width * 4;
    uint64_t payload = sizeof(struct vu_gpu_update) + row_bytes * height;
    if (payload > UINT32_MAX) {
        return;
    }
    struct vu_gpu_header header = {.request = VU_GPU_UPDATE, .size = (uint32_t)payload};
    struct vu_gpu_update update = {scanout_id, x, y, width, height};
    /* Rows go straight from the resource to the socket; full-width rows in one piece. */
    enum { BATCH = 256 };
    struct iovec iov[BATCH + 2];
    iov[0] = (struct iovec){&header, sizeof(header)};
    iov[1] = (struct iovec){&update, sizeof(update)};
    int count = 2;
    if (stride_bytes == row_bytes) {
        iov[count++] = (struct iovec){(void *)pixels, (size_t)(row_bytes * height)};
        send_all(display, iov, count);
        return;
    }
    for (uint32_t row = 0; row < height; row++) {
        iov[count++] =
            (struct iovec){(void *)(pixels + (size_t)row * stride_bytes), (size_t)row_bytes};
        if (count == BATCH + 2 || row + 1 == height) {
            if (!send_all(display, iov, count)) {
                return;
            }
            count = 0;
        }
    }
}

static void on_cursor_update(void *user_data, uint32_t scanout_id, uint32_t x, uint32_t y,
                             uint32_t hot_x, uint32_t hot_y, const uint32_t *pixels)
{
    struct vu_gpu_cursor_update cursor = {
        .pos = {scanout_id, x, y}, .hot_x = hot_x, .hot_y = hot_y};
    memcpy(cursor.data, pixels, sizeof(cursor.data));
    uint32_t opaque = 0, sum = 0;
    for (size_t i = 0; i < 64 * 64; i++) {
        opaque += (pixels[i] >> 24) != 0;
        sum += pixels[i];
    }
    struct vu_display *display = user_data;
    neep_log_host(display->logger, NEEP_LOG_DEBUG,
                  "cursor image on scanout %u at (%u,%u) hot (%u,%u): %u opaque pixels, sum 0x%08x",
                  scanout_id, x, y, hot_x, hot_y, opaque, sum);
    send_message(user_data, VU_GPU_CURSOR_UPDATE, &cursor, sizeof(cursor));
}

static void on_cursor_move(void *user_data, uint32_t scanout_id, uint32_t x, uint32_t y,
                           bool visible)
{
    struct vu_gpu_cursor_pos pos = {scanout_id, x, y};
    struct vu_display *display = user_data;
    neep_log_host(display->logger, NEEP_LOG_DEBUG, "cursor on scanout %u %s (%u,%u)", scanout_id,
                  visible ? "moved to" : "hidden at", x, y);
    send_message(user_data, visible ? VU_GPU_CURSOR_POS : VU_GPU_CURSOR_POS_HIDE, &pos,
                 sizeof(pos));
}

/* Asks the front-end for its layout (its xres, yres and output count). */
static bool on_get_layout(void *user_data, struct neep_scanout_size sizes[NEEP_MAX_SCANOUTS],
                          uint32_t *scanout_count)
{
    struct vu_display *display = user_data;
    if (display->fd < 0 || !send_message(display, VU_GPU_GET_DISPLAY_INFO, NULL, 0)) {
        return false;
    }
    struct vu_gpu_header header;
    struct {
        uint32_t hdr[6];
        struct {
            uint32_t x, y, width, height, enabled, flags;
        } modes[NEEP_MAX_SCANOUTS];
    } info;
    _Static_assert(sizeof(info) == 408, "display info");
    if (!read_all(display, &header, sizeof(header))) {
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
    if (!read_all(display, &info, sizeof(info))) {
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
    .cursor_update = on_cursor_update,
    .cursor_move = on_cursor_move,
    .get_layout = on_get_layout,
};
