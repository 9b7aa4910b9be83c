/* The helpers every decoder relies on: checked arithmetic, the id table, iov cursors. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "util/checked.h"
#include "util/id_table.h"
#include "util/iov.h"

TEST(checked_arithmetic_catches_overflow)
{
    uint64_t out64;
    uint32_t out32;
    CHECK(checked_add_u64(1, 2, &out64) && out64 == 3);
    CHECK(!checked_add_u64(UINT64_MAX, 1, &out64));
    CHECK(!checked_mul_u64(1ull << 32, 1ull << 32, &out64));
    CHECK(checked_mul_u64(1ull << 31, 1ull << 32, &out64) && out64 == 1ull << 63);
    CHECK(!checked_add_u32(UINT32_MAX, 1, &out32));
    CHECK(!checked_mul_u32(65536, 65536, &out32));
    CHECK(checked_mul_add_u64(3, 4, 5, &out64) && out64 == 17);
    CHECK(!checked_mul_add_u64(UINT64_MAX / 2, 2, 2, &out64));
}

TEST(id_table_matches_a_reference_under_churn)
{
    struct id_table table;
    id_table_init(&table);
    enum { KEYS = 4096 };
    static uint8_t present[KEYS];
    memset(present, 0, sizeof(present));
    uint32_t state = 12345;
    for (int step = 0; step < 200000; step++) {
        state = state * 1103515245u + 12345u;
        uint32_t key = 1 + (state >> 8) % (KEYS - 1);
        void *value = (void *)(uintptr_t)(key * 16);
        if ((state >> 4) & 1) {
            int ret = id_table_insert(&table, key, value);
            CHECK_EQ(ret, present[key] ? -EEXIST : 0);
            present[key] = 1;
        } else {
            void *removed = id_table_remove(&table, key);
            CHECK(removed == (present[key] ? value : NULL));
            present[key] = 0;
        }
        if (step % 1000 == 0) {
            size_t expected = 0;
            for (uint32_t k = 1; k < KEYS; k++) {
                expected += present[k];
                CHECK(id_table_get(&table, k) == (present[k] ? (void *)(uintptr_t)(k * 16) : NULL));
            }
            CHECK_EQ(table.count, expected);
        }
    }
    CHECK_EQ(id_table_insert(&table, 0, NULL), -EINVAL);
    CHECK(id_table_get(&table, 0) == NULL);
    id_table_finish(&table);
}

TEST(id_table_get_or_add_makes_a_zeroed_value_once)
{
    struct id_table table;
    id_table_init(&table);
    bool created = false;
    uint64_t *value = id_table_get_or_add(&table, 7, sizeof(*value), &created);
    CHECK(value != NULL && created && *value == 0);
    *value = 42;
    CHECK(id_table_get_or_add(&table, 7, sizeof(*value), &created) == value);
    CHECK(!created && *value == 42);
    CHECK(id_table_get_or_add(&table, 0, sizeof(*value), &created) == NULL); /* reserved */
    CHECK(!created);
    free(id_table_remove(&table, 7));
    id_table_finish(&table);
}

TEST(iov_cursor_reads_and_writes_across_entries)
{
    uint8_t a[3], b[1], c[10];
    struct iovec iov[4] = {{a, 3}, {NULL, 0}, {b, 1}, {c, 10}};
    uint64_t total;
    CHECK(iov_total_bytes(iov, 4, &total) && total == 14);
    struct iovec huge[2] = {{a, SIZE_MAX}, {b, 1}};
    CHECK(!iov_total_bytes(huge, 2, &total));

    uint8_t pattern[14];
    for (int i = 0; i < 14; i++) {
        pattern[i] = (uint8_t)(i + 1);
    }
    struct iov_cursor cursor;
    iov_cursor_init(&cursor, iov, 4);
    iov_cursor_write(&cursor, pattern, 14);
    CHECK(a[0] == 1 && a[2] == 3 && b[0] == 4 && c[0] == 5 && c[9] == 14);

    uint8_t out[5];
    iov_cursor_seek(&cursor, 2);
    iov_cursor_read(&cursor, out, 5);
    CHECK(memcmp(out, pattern + 2, 5) == 0);
    /* Seeking backwards restarts from the front. */
    iov_cursor_seek(&cursor, 0);
    iov_cursor_read(&cursor, out, 1);
    CHECK_EQ(out[0], 1);
    iov_cursor_seek(&cursor, 13);
    iov_cursor_read(&cursor, out, 1);
    CHECK_EQ(out[0], 14);
}
