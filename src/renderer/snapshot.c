/*
 * Snapshot and restore of 2D state: one file in the given directory holding every resource's
 * shape and pixels. Restore treats the file as untrusted input.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "renderer_internal.h"

#define SNAPSHOT_FILE_NAME     "neep-2d-state"
#define SNAPSHOT_MAGIC         "NEEPSNP1"
#define SNAPSHOT_VERSION       1u
#define SNAPSHOT_MAX_RESOURCES (1u << 20)

enum snapshot_kind {
    SNAPSHOT_KIND_2D = 0,
    SNAPSHOT_KIND_GUEST_BLOB = 1,
};

struct snapshot_header {
    char magic[8];
    uint32_t version;
    uint32_t resource_count;
};

struct snapshot_record {
    uint32_t resource_id;
    uint32_t kind;
    uint32_t format;
    uint32_t width_px;
    uint32_t height_px;
    uint32_t blob_flags;
    uint64_t size_bytes;
};

static int dir_is_empty(const char *dir_path)
{
    DIR *dir = opendir(dir_path);
    if (!dir) {
        return -errno;
    }
    int result = 1;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
            result = 0;
            break;
        }
    }
    closedir(dir);
    return result;
}

static FILE *open_snapshot_file(const char *dir_path, const char *mode)
{
    char path[4096];
    int length = snprintf(path, sizeof(path), "%s/%s", dir_path, SNAPSHOT_FILE_NAME);
    if (length < 0 || (size_t)length >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    return fopen(path, mode);
}

static bool write_resource(FILE *file, const struct neep_resource *resource)
{
    struct snapshot_record record = {
        .resource_id = resource->id,
        .format = resource->format,
        .width_px = resource->width_px,
        .height_px = resource->height_px,
        .blob_flags = resource->blob_flags,
        .size_bytes = resource->size_bytes,
    };
    if (resource->kind == NEEP_RESOURCE_BLOB) {
        record.kind = SNAPSHOT_KIND_GUEST_BLOB;
        return fwrite(&record, sizeof(record), 1, file) == 1;
    }
    record.kind = SNAPSHOT_KIND_2D;
    if (fwrite(&record, sizeof(record), 1, file) != 1) {
        return false;
    }
    size_t row_bytes = (size_t)resource->width_px * NEEP_BYTES_PER_PIXEL;
    for (uint32_t row = 0; row < resource->height_px; row++) {
        const uint8_t *line = resource->pixels + (size_t)row * resource->stride_bytes;
        if (fwrite(line, 1, row_bytes, file) != row_bytes) {
            return false;
        }
    }
    return true;
}

int neep_renderer_snapshot(struct neep_renderer *renderer, const char *dir_path)
{
    if (!dir_path) {
        return -EINVAL;
    }
    if (renderer->contexts.count > 0) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "snapshot: %zu live contexts, and no context type can be saved yet",
                      renderer->contexts.count);
        return -EOPNOTSUPP;
    }
    struct id_table *table = &renderer->resources;
    for (size_t i = 0; i < table->capacity; i++) {
        const struct neep_resource *resource = table->values[i];
        if (table->keys[i] && resource->kind == NEEP_RESOURCE_BLOB &&
            resource->blob_mem != NEEP_BLOB_MEM_GUEST) {
            neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                          "snapshot: host blob %u cannot be saved", resource->id);
            return -EOPNOTSUPP;
        }
        if (table->keys[i] && resource->kind == NEEP_RESOURCE_PROVIDED) {
            neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                          "snapshot: resource %u lives in %s, which cannot be saved", resource->id,
                          renderer->resource_provider->name);
            return -EOPNOTSUPP;
        }
    }
    int empty = dir_is_empty(dir_path);
    if (empty <= 0) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR,
                      "snapshot: %s must be an existing, empty directory", dir_path);
        return empty < 0 ? empty : -EEXIST;
    }
    FILE *file = open_snapshot_file(dir_path, "wb");
    if (!file) {
        return -errno;
    }
    struct snapshot_header header = {.version = SNAPSHOT_VERSION,
                                     .resource_count = (uint32_t)table->count};
    memcpy(header.magic, SNAPSHOT_MAGIC, sizeof(header.magic));
    bool ok = fwrite(&header, sizeof(header), 1, file) == 1;
    for (size_t i = 0; ok && i < table->capacity; i++) {
        if (table->keys[i]) {
            ok = write_resource(file, table->values[i]);
        }
    }
    if (fclose(file) != 0) {
        ok = false;
    }
    if (!ok) {
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR, "snapshot: writing to %s failed",
                      dir_path);
        return -EIO;
    }
    return 0;
}

static int restore_2d(struct neep_renderer *renderer, FILE *file,
                      const struct snapshot_record *record)
{
    struct neep_resource *resource;
    int ret = neep_resource_create_2d_storage(renderer, record->resource_id, record->format,
                                              record->width_px, record->height_px, &resource);
    if (ret < 0) {
        return ret;
    }
    if (record->size_bytes != resource->size_bytes) {
        renderer_error(renderer, "restore: resource %u claims %llu bytes, shape gives %llu",
                       record->resource_id, (unsigned long long)record->size_bytes,
                       (unsigned long long)resource->size_bytes);
        neep_resource_free(renderer, resource);
        return -EINVAL;
    }
    size_t row_bytes = (size_t)resource->width_px * NEEP_BYTES_PER_PIXEL;
    for (uint32_t row = 0; row < resource->height_px; row++) {
        uint8_t *line = resource->pixels + (size_t)row * resource->stride_bytes;
        if (fread(line, 1, row_bytes, file) != row_bytes) {
            renderer_error(renderer, "restore: pixels of resource %u are cut short",
                           record->resource_id);
            neep_resource_free(renderer, resource);
            return -EINVAL;
        }
    }
    ret = neep_resource_insert(renderer, resource);
    if (ret < 0) {
        neep_resource_free(renderer, resource);
    }
    return ret;
}

static int restore_record(struct neep_renderer *renderer, FILE *file,
                          const struct snapshot_record *record)
{
    switch (record->kind) {
    case SNAPSHOT_KIND_2D:
        return restore_2d(renderer, file, record);
    case SNAPSHOT_KIND_GUEST_BLOB: {
        if (record->format != 0 || record->width_px != 0 || record->height_px != 0) {
            renderer_error(renderer, "restore: blob %u carries a 2D shape", record->resource_id);
            return -EINVAL;
        }
        struct neep_blob_create create = {.blob_mem = NEEP_BLOB_MEM_GUEST,
                                          .blob_flags = record->blob_flags,
                                          .size_bytes = record->size_bytes};
        return neep_resource_create_blob(renderer, 0, record->resource_id, &create, NULL, 0);
    }
    default:
        renderer_error(renderer, "restore: resource %u has unknown kind %u", record->resource_id,
                       record->kind);
        return -EINVAL;
    }
}

int neep_renderer_restore(struct neep_renderer *renderer, const char *dir_path)
{
    if (!dir_path) {
        return -EINVAL;
    }
    FILE *file = open_snapshot_file(dir_path, "rb");
    if (!file) {
        int ret = -errno;
        neep_log_host(&renderer->logger, NEEP_LOG_ERROR, "restore: no snapshot in %s", dir_path);
        return ret;
    }
    neep_contexts_destroy_all(renderer);
    neep_resources_destroy_all(renderer);

    struct snapshot_header header;
    int ret = 0;
    if (fread(&header, sizeof(header), 1, file) != 1 ||
        memcmp(header.magic, SNAPSHOT_MAGIC, sizeof(header.magic)) != 0 ||
        header.version != SNAPSHOT_VERSION) {
        renderer_error(renderer, "restore: %s holds no neep snapshot of version %u", dir_path,
                       SNAPSHOT_VERSION);
        ret = -EINVAL;
    } else if (header.resource_count > SNAPSHOT_MAX_RESOURCES) {
        renderer_error(renderer, "restore: %u resources, limit %u", header.resource_count,
                       SNAPSHOT_MAX_RESOURCES);
        ret = -E2BIG;
    }
    for (uint32_t i = 0; ret == 0 && i < header.resource_count; i++) {
        struct snapshot_record record;
        if (fread(&record, sizeof(record), 1, file) != 1) {
            renderer_error(renderer, "restore: snapshot ends after %u of %u resources", i,
                           header.resource_count);
            ret = -EINVAL;
            break;
        }
        ret = restore_record(renderer, file, &record);
    }
    if (ret == 0 && fgetc(file) != EOF) {
        renderer_error(renderer, "restore: trailing bytes after the last resource");
        ret = -EINVAL;
    }
    fclose(file);
    if (ret < 0) {
        /* Leave a clean, empty renderer rather than half a snapshot. */
        neep_resources_destroy_all(renderer);
    }
    return ret;
}
