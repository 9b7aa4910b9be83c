/*
 * One logger per renderer: levels, [file:line], printf-checked, replaceable by the embedder.
 * Lines a guest can trigger go through the rate-limited variant so a hostile guest cannot
 * flood the host's logs.
 */
#ifndef NEEP_UTIL_LOG_H
#define NEEP_UTIL_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <neep/renderer.h>

/* Per-second window for rate-limited lines. */
#define NEEP_LOG_BURST_PER_SECOND 20u

struct neep_logger {
    neep_log_fn fn;
    void *user_data;
    enum neep_log_level level; /* lines above it are dropped before formatting */
    pthread_mutex_t lock;
    uint64_t window_start_ns;
    uint32_t lines_in_window;
    uint64_t suppressed_count;
};

void neep_logger_init(struct neep_logger *logger, neep_log_fn fn, void *user_data,
                      enum neep_log_level level);
void neep_logger_finish(struct neep_logger *logger);

void neep_log_at(struct neep_logger *logger, enum neep_log_level level, bool rate_limited,
                 const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* For events the guest or another untrusted peer can cause. */
#define neep_log_guest(logger, level, ...)                                                         \
    neep_log_at((logger), (level), true, __FILE__, __LINE__, __VA_ARGS__)
/* For host-side events (setup, resource exhaustion of the host itself). */
#define neep_log_host(logger, level, ...)                                                          \
    neep_log_at((logger), (level), false, __FILE__, __LINE__, __VA_ARGS__)

#endif
