/* Helpers shared by the unit tests: a renderer with a capturing logger, split buffers. */
#ifndef NEEP_TEST_SUPPORT_H
#define NEEP_TEST_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <neep/renderer.h>

struct log_capture {
    int line_count; /* every line, at any level */
    int error_count;
    char last_error[512];
    char all_errors[8192];   /* every error line, newline-separated, until it is full */
    char all_warnings[4096]; /* likewise, warnings */
    char all_info[8192];     /* likewise, lines at the info level */
};

/* Whether an error line containing `text` was logged (safe while other threads log). */
bool support_log_said(struct log_capture *capture, const char *text);
/* Whether a warning line containing `text` was logged. */
bool support_log_warned(struct log_capture *capture, const char *text);
/* Whether an info line containing `text` was logged. */
bool support_log_informed(struct log_capture *capture, const char *text);

/* A 2D-only renderer whose log lines land in `capture` (may be NULL). */
struct neep_renderer *support_renderer(struct log_capture *capture, uint64_t budget_bytes);

void support_log(void *user_data, enum neep_log_level level, const char *message);

/* Creates a 2D resource of the given size (B8G8R8A8); checks success. */
void support_create_2d(struct neep_renderer *renderer, uint32_t id, uint32_t width,
                       uint32_t height);

/* Fills `buf` with a position-dependent pattern that differs per seed. */
void support_fill_pattern(uint8_t *buf, size_t size, uint32_t seed);

/*
 * Splits `buf` into iovecs of varying, odd lengths (so rows straddle entries). Returns the
 * count; `iov` must hold `max` entries.
 */
size_t support_split(uint8_t *buf, size_t size, struct iovec *iov, size_t max);

#endif
