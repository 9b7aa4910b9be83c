#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *level_name(enum neep_log_level level)
{
    switch (level) {
    case NEEP_LOG_ERROR:
        return "error";
    case NEEP_LOG_WARN:
        return "warning";
    case NEEP_LOG_INFO:
        return "info";
    case NEEP_LOG_DEBUG:
        return "debug";
    }
    return "log";
}

static void stderr_log(void *user_data, enum neep_log_level level, const char *message)
{
    (void)user_data;
    if (level <= NEEP_LOG_WARN) {
        fprintf(stderr, "neep %s: %s\n", level_name(level), message);
    }
}

void neep_logger_init(struct neep_logger *logger, neep_log_fn fn, void *user_data,
                      enum neep_log_level level)
{
    memset(logger, 0, sizeof(*logger));
    logger->fn = fn ? fn : stderr_log;
    logger->user_data = user_data;
    logger->level = level ? level : NEEP_LOG_INFO;
    pthread_mutex_init(&logger->lock, NULL);
}

void neep_logger_finish(struct neep_logger *logger)
{
    pthread_mutex_destroy(&logger->lock);
}

static uint64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

/* Returns false when the line must be dropped; *suppressed receives the count to report. */
static bool rate_limit_admit(struct neep_logger *logger, uint64_t *suppressed)
{
    uint64_t now_ns = monotonic_ns();
    *suppressed = 0;
    if (now_ns - logger->window_start_ns >= 1000000000ull) {
        *suppressed = logger->suppressed_count;
        logger->suppressed_count = 0;
        logger->window_start_ns = now_ns;
        logger->lines_in_window = 0;
    }
    if (logger->lines_in_window >= NEEP_LOG_BURST_PER_SECOND) {
        logger->suppressed_count++;
        return false;
    }
    logger->lines_in_window++;
    return true;
}

void neep_log_at(struct neep_logger *logger, enum neep_log_level level, bool rate_limited,
                 const char *file, int line, const char *fmt, ...)
{
    if (level > logger->level) {
        return;
    }
    char message[512];
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;

    pthread_mutex_lock(&logger->lock);
    uint64_t suppressed = 0;
    if (rate_limited && !rate_limit_admit(logger, &suppressed)) {
        pthread_mutex_unlock(&logger->lock);
        return;
    }
    if (suppressed > 0) {
        char note[96];
        snprintf(note, sizeof(note), "%llu similar messages suppressed",
                 (unsigned long long)suppressed);
        logger->fn(logger->user_data, NEEP_LOG_WARN, note);
    }

    int prefix = snprintf(message, sizeof(message), "[%s:%d] ", base, line);
    if (prefix < 0 || (size_t)prefix >= sizeof(message)) {
        prefix = 0;
    }
    va_list args;
    va_start(args, fmt);
    vsnprintf(message + prefix, sizeof(message) - (size_t)prefix, fmt, args);
    va_end(args);

    logger->fn(logger->user_data, level, message);
    pthread_mutex_unlock(&logger->lock);
}
