/*
 * A map from guest-chosen 32-bit ids to pointers: open addressing with linear probing and
 * backward-shift deletion. Keys are mixed with a per-table random seed, so a guest cannot
 * pick ids that all collide. Id 0 is reserved (virtio-gpu uses it for "none").
 */
#ifndef NEEP_UTIL_ID_TABLE_H
#define NEEP_UTIL_ID_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct id_table {
    uint32_t *keys; /* 0 = empty slot */
    void **values;
    size_t capacity; /* power of two, or 0 before the first insert */
    size_t count;
    uint32_t seed;
};

void id_table_init(struct id_table *table);
/* Frees the table's own memory, not the values. */
void id_table_finish(struct id_table *table);

void *id_table_get(const struct id_table *table, uint32_t key);
/* 0, -EEXIST if the key is present, -EINVAL for key 0, -ENOMEM. */
int id_table_insert(struct id_table *table, uint32_t key, void *value);
/* The value of `key`; if there is none, a zeroed one of `value_bytes` is allocated and inserted
 * (*created says so). NULL when that fails. */
void *id_table_get_or_add(struct id_table *table, uint32_t key, size_t value_bytes, bool *created);
/* Returns the removed value, or NULL if the key was absent. */
void *id_table_remove(struct id_table *table, uint32_t key);

/* Iteration: for (size_t i = 0; i < t->capacity; i++) if (t->keys[i]) use t->values[i].
 * The table must not change during iteration. */

#endif
