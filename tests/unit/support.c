#include "support.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

/* Lines may come from renderer threads (venus's server watcher) while a test reads them. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void append_line(char *lines, size_t size, const char *message)
{
    size_t used = strlen(lines);
    snprintf(lines + used, size - used, "%s\n", message);
}

void support_log(void *user_data, enum neep_log_level level, const char *message)
{
    struct log_capture *capture = user_data;
    if (!capture) {
        return;
    }
    __atomic_add_fetch(&capture->line_count, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&log_lock);
    if (level == NEEP_LOG_ERROR) {
        capture->error_count++;
        snprintf(capture->last_error, sizeof(capture->last_error), "%s", message);
        append_line(capture->all_errors, sizeof(capture->all_errors), message);
    } else if (level == NEEP_LOG_WARN) {
        append_line(capture->all_warnings, sizeof(capture->all_warnings), message);
    } else if (level == NEEP_LOG_INFO) {
        append_line(capture->all_info, sizeof(capture->all_info), message);
    }
    pthread_mutex_unlock(&log_lock);
}

/* Whether `lines` (one of capture's) holds `text`. */
static bool log_holds(const char *lines, const char *text)
{
    pthread_mutex_lock(&log_lock);
    bool held = strstr(lines, text) != NULL;
    pthread_mutex_unlock(&log_lock);
    return held;
}

bool support_log_said(struct log_capture *capture, const char *text)
{
    return log_holds(capture->all_errors, text);
}

bool support_log_warned(struct log_capture *capture, const char *text)
{
    return log_holds(capture->all_warnings, text);
}

bool support_log_informed(struct log_capture *capture, const char *text)
{
    return log_holds(capture->all_info, text);
}

struct neep_renderer *support_renderer(struct log_capture *capture, uint64_t budget_bytes)
{
    struct neep_renderer_config config = {
        .memory_budget_bytes = budget_bytes,
        .log_fn = support_log,
        .log_user_data = capture,
    };
    struct neep_renderer *renderer = NULL;
    CHECK_EQ(neep_renderer_create(&config, &renderer), 0);
    CHECK(renderer != NULL);
    return renderer;
}

void support_create_2d(struct neep_renderer *renderer, uint32_t id, uint32_t width, uint32_t height)
{
    struct neep_resource_create_3d create = {
        .target = NEEP_TARGET_TEXTURE_2D,
        .format = NEEP_FORMAT_B8G8R8A8_UNORM,
        .bind = 2,
        .width = width,
        .height = height,
        .depth = 1,
        .array_size = 1,
    };
    CHECK_EQ(neep_resource_create_3d(renderer, id, &create), 0);
}

void support_fill_pattern(uint8_t *buf, size_t size, uint32_t seed)
{
    uint32_t state = seed * 2654435761u + 1;
    for (size_t i = 0; i < size; i++) {
        state = state * 1103515245u + 12345u;
        buf[i] = (uint8_t)(state >> 16);
    }
}

size_t support_split(uint8_t *buf, size_t size, struct iovec *iov, size_t max)
{
    static const size_t lengths[] = {7, 4096, 13, 1, 333, 8192, 5, 4093};
    size_t count = 0;
    size_t offset = 0;
    while (offset < size) {
        CHECK(count < max);
        size_t length = lengths[count % (sizeof(lengths) / sizeof(lengths[0]))];
        if (count + 1 == max || length > size - offset) {
            length = size - offset;
        }
        iov[count].iov_base = buf + offset;
        iov[count].iov_len = length;
        offset += length;
        count++;
    }
    return count;
}
