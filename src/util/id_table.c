#include "id_table.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define ID_TABLE_MIN_CAPACITY 16u

static size_t slot_for(const struct id_table *table, uint32_t key)
{
    /* murmur3's 32-bit finaliser over the seeded key. */
    uint32_t h = key ^ table->seed;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h & (table->capacity - 1);
}

void id_table_init(struct id_table *table)
{
    memset(table, 0, sizeof(*table));
    if (getrandom(&table->seed, sizeof(table->seed), GRND_NONBLOCK) != sizeof(table->seed)) {
        table->seed = (uint32_t)(uintptr_t)table ^ 0x9e3779b9u;
    }
}

void id_table_finish(struct id_table *table)
{
    free(table->keys);
    free(table->values);
    table->keys = NULL;
    table->values = NULL;
    table->capacity = 0;
    table->count = 0;
}

void *id_table_get(const struct id_table *table, uint32_t key)
{
    if (key == 0 || table->capacity == 0) {
        return NULL;
    }
    for (size_t i = slot_for(table, key);; i = (i + 1) & (table->capacity - 1)) {
        if (table->keys[i] == key) {
            return table->values[i];
        }
        if (table->keys[i] == 0) {
            return NULL;
        }
    }
}

static void place(struct id_table *table, uint32_t key, void *value)
{
    size_t i = slot_for(table, key);
    while (table->keys[i] != 0) {
        i = (i + 1) & (table->capacity - 1);
    }
    table->keys[i] = key;
    table->values[i] = value;
}

static int grow(struct id_table *table)
{
    size_t new_capacity = table->capacity ? table->capacity * 2 : ID_TABLE_MIN_CAPACITY;
    uint32_t *new_keys = calloc(new_capacity, sizeof(*new_keys));
    void **new_values = calloc(new_capacity, sizeof(*new_values));
    if (!new_keys || !new_values) {
        free(new_keys);
        free(new_values);
        return -ENOMEM;
    }
    struct id_table old = *table;
    table->keys = new_keys;
    table->values = new_values;
    table->capacity = new_capacity;
    for (size_t i = 0; i < old.capacity; i++) {
        if (old.keys[i] != 0) {
            place(table, old.keys[i], old.values[i]);
        }
    }
    free(old.keys);
    free(old.values);
    return 0;
}

int id_table_insert(struct id_table *table, uint32_t key, void *value)
{
    if (key == 0) {
        return -EINVAL;
    }
    if (id_table_get(table, key)) {
        return -EEXIST;
    }
    /* Keep the load factor at or under one half so probe runs stay short. */
    if ((table->count + 1) * 2 > table->capacity) {
        int ret = grow(table);
        if (ret < 0) {
            return ret;
        }
    }
    place(table, key, value);
    table->count++;
    return 0;
}

void *id_table_get_or_add(struct id_table *table, uint32_t key, size_t value_bytes, bool *created)
{
    *created = false;
    void *value = id_table_get(table, key);
    if (value) {
        return value;
    }
    value = calloc(1, value_bytes);
    if (value && id_table_insert(table, key, value) < 0) {
        free(value);
        return NULL;
    }
    *created = value != NULL;
    return value;
}

void *id_table_remove(struct id_table *table, uint32_t key)
{
    if (key == 0 || table->capacity == 0) {
        return NULL;
    }
    size_t mask = table->capacity - 1;
    size_t i = slot_for(table, key);
    while (table->keys[i] != key) {
        if (table->keys[i] == 0) {
            return NULL;
        }
        i = (i + 1) & mask;
    }
    void *value = table->values[i];

    /* Backward-shift: pull later members of the probe run into the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; table->keys[j] != 0; j = (j + 1) & mask) {
        size_t home = slot_for(table, table->keys[j]);
        /* Move j into the hole unless its home lies cyclically in (hole, j]. */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            table->keys[hole] = table->keys[j];
            table->values[hole] = table->values[j];
            hole = j;
        }
    }
    table->keys[hole] = 0;
    table->values[hole] = NULL;
    table->count--;
    return value;
}
