/*
 * A small test harness: TEST(name) registers a test; each runs in a forked child under a
 * timeout, and a test that leaks a file descriptor fails. The program prints one line per
 * test and closes with "N passed, N failed".
 */
#ifndef NEEP_TEST_HARNESS_H
#define NEEP_TEST_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef NDEBUG
#error "tests rely on assertions; do not build them with NDEBUG"
#endif

typedef void (*harness_test_fn)(void);
void harness_register(const char *name, harness_test_fn fn);

#define TEST(name)                                                                                 \
    static void name(void);                                                                        \
    __attribute__((constructor)) static void harness_register_##name(void)                         \
    {                                                                                              \
        harness_register(#name, name);                                                             \
    }                                                                                              \
    static void name(void)

/* Fails the test with the location and the failed expression. */
#define CHECK(condition)                                                                           \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(actual, expected)                                                                 \
    do {                                                                                           \
        long long actual_value = (long long)(actual);                                              \
        long long expected_value = (long long)(expected);                                          \
        if (actual_value != expected_value) {                                                      \
            fprintf(stderr, "%s:%d: %s is %lld, expected %s (%lld)\n", __FILE__, __LINE__,         \
                    #actual, actual_value, #expected, expected_value);                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
