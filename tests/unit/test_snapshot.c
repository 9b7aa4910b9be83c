/* Snapshot and restore of 2D state, and restore from damaged or hostile files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

#define SNAPSHOT_FILE "neep-2d-state"

struct temp_dir {
    char path[64];
};

static void temp_dir_make(struct temp_dir *dir)
{
    snprintf(dir->path, sizeof(dir->path), "/tmp/neep-snapshot-XXXXXX");
    CHECK(mkdtemp(dir->path) != NULL);
}

static void temp_dir_remove(struct temp_dir *dir)
{
    char file[128];
    snprintf(file, sizeof(file), "%s/%s", dir->path, SNAPSHOT_FILE);
    unlink(file);
    CHECK_EQ(rmdir(dir->path), 0);
}

static void fill_resource(struct neep_renderer *renderer, uint32_t id, uint32_t w, uint32_t h,
                          uint32_t seed, uint8_t *pixels)
{
    support_create_2d(renderer, id, w, h);
    support_fill_pattern(pixels, (size_t)w * h * 4, seed);
    struct iovec iov = {pixels, (size_t)w * h * 4};
    CHECK_EQ(neep_resource_attach_backing(renderer, id, &iov, 1), 0);
    struct neep_transfer box = {.width = w, .height = h, .depth = 1};
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, id, &box), 0);
}

static void check_pixels(struct neep_renderer *renderer, uint32_t id, uint32_t w, uint32_t h,
                         const uint8_t *expected)
{
    uint8_t *out = malloc((size_t)w * h * 4);
    struct iovec iov = {out, (size_t)w * h * 4};
    struct neep_transfer box = {.width = w, .height = h, .depth = 1};
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, id, &box, &iov, 1), 0);
    CHECK(memcmp(out, expected, (size_t)w * h * 4) == 0);
    free(out);
}

/* Writes a snapshot of resource 1 (13x7) and, when `b` is given, resource 2 (3x5) and a
 * guest blob into `dir`. */
static void make_snapshot(struct temp_dir *dir, uint8_t *a, uint8_t *b)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    fill_resource(renderer, 1, 13, 7, 10, a);
    if (b) {
        fill_resource(renderer, 2, 3, 5, 11, b);
        struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_GUEST, .size_bytes = 8192};
        CHECK_EQ(neep_resource_create_blob(renderer, 0, 3, &blob, NULL, 0), 0);
    }
    CHECK_EQ(neep_renderer_snapshot(renderer, dir->path), 0);
    neep_renderer_destroy(renderer);
}

TEST(snapshot_round_trip_restores_pixels)
{
    struct temp_dir dir;
    temp_dir_make(&dir);
    uint8_t a[13 * 7 * 4], b[3 * 5 * 4];
    make_snapshot(&dir, a, b);

    struct neep_renderer *renderer = support_renderer(NULL, 0);
    support_create_2d(renderer, 99, 4, 4); /* replaced by the restore */
    CHECK_EQ(neep_renderer_restore(renderer, dir.path), 0);
    check_pixels(renderer, 1, 13, 7, a);
    check_pixels(renderer, 2, 3, 5, b);
    struct neep_resource_info info;
    CHECK_EQ(neep_resource_get_info(renderer, 3, &info), 0);
    CHECK(info.is_blob && !info.has_backing && info.size_bytes == 8192);
    CHECK_EQ(neep_resource_get_info(renderer, 99, &info), -ENOENT);
    /* The embedder re-attaches backing; then transfers work again. */
    uint8_t guest[3 * 5 * 4];
    struct iovec iov = {guest, sizeof(guest)};
    CHECK_EQ(neep_resource_attach_backing(renderer, 2, &iov, 1), 0);
    struct neep_transfer box = {.width = 3, .height = 5, .depth = 1};
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, 2, &box, NULL, 0), 0);
    CHECK(memcmp(guest, b, sizeof(b)) == 0);
    neep_renderer_destroy(renderer);
    temp_dir_remove(&dir);
}

TEST(snapshot_needs_an_empty_directory)
{
    struct temp_dir dir;
    temp_dir_make(&dir);
    uint8_t a[13 * 7 * 4], b[3 * 5 * 4];
    make_snapshot(&dir, a, b);
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    CHECK(neep_renderer_snapshot(renderer, dir.path) < 0);
    CHECK(neep_renderer_snapshot(renderer, "/nonexistent/neep") < 0);
    CHECK(neep_renderer_restore(renderer, "/nonexistent/neep") < 0);
    neep_renderer_destroy(renderer);
    temp_dir_remove(&dir);
}

static size_t read_file(const char *path, uint8_t **out)
{
    FILE *file = fopen(path, "rb");
    CHECK(file != NULL);
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    *out = malloc((size_t)size);
    CHECK_EQ(fread(*out, 1, (size_t)size, file), size);
    fclose(file);
    return (size_t)size;
}

static void write_file(const char *path, const uint8_t *bytes, size_t size)
{
    FILE *file = fopen(path, "wb");
    CHECK(file != NULL);
    CHECK_EQ(fwrite(bytes, 1, size, file), size);
    fclose(file);
}

/* Restore must fail cleanly, leaving an empty renderer that still works. */
static void expect_rejected(struct neep_renderer *renderer, const char *dir)
{
    CHECK(neep_renderer_restore(renderer, dir) < 0);
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), 0);
    support_create_2d(renderer, 500, 2, 2);
    CHECK_EQ(neep_resource_unref(renderer, 500), 0);
}

TEST(restore_rejects_every_truncation)
{
    struct temp_dir dir;
    temp_dir_make(&dir);
    uint8_t a[13 * 7 * 4], b[3 * 5 * 4];
    make_snapshot(&dir, a, b);
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir.path, SNAPSHOT_FILE);
    uint8_t *original;
    size_t size = read_file(path, &original);

    struct neep_renderer *renderer = support_renderer(NULL, 0);
    for (size_t cut = 0; cut < size; cut++) {
        write_file(path, original, cut);
        expect_rejected(renderer, dir.path);
    }
    /* One byte too many is rejected too. */
    uint8_t *longer = malloc(size + 1);
    memcpy(longer, original, size);
    longer[size] = 0;
    write_file(path, longer, size + 1);
    expect_rejected(renderer, dir.path);
    write_file(path, original, size);
    CHECK_EQ(neep_renderer_restore(renderer, dir.path), 0);
    neep_renderer_destroy(renderer);
    free(original);
    free(longer);
    temp_dir_remove(&dir);
}

/* Field offsets in the file: header is 16 bytes, each record header 32 bytes. */
#define HEADER_COUNT  12
#define RECORD(field) (16 + (field))
#define FIELD_ID      0
#define FIELD_KIND    4
#define FIELD_FORMAT  8
#define FIELD_WIDTH   12
#define FIELD_HEIGHT  16
#define FIELD_SIZE    24

static void put_u32(uint8_t *bytes, size_t offset, uint32_t value)
{
    memcpy(bytes + offset, &value, sizeof(value));
}

TEST(restore_rejects_hostile_fields)
{
    struct temp_dir dir;
    temp_dir_make(&dir);
    uint8_t a[13 * 7 * 4];
    make_snapshot(&dir, a, NULL); /* one resource, so the record's position is known */
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir.path, SNAPSHOT_FILE);
    uint8_t *original;
    size_t size = read_file(path, &original);
    uint8_t *edited = malloc(size);

    struct {
        size_t offset;
        uint32_t value;
    } edits[] = {
        {0, 0x50414e53},                   /* magic */
        {8, 2},                            /* version */
        {HEADER_COUNT, 0xffffffffu},       /* resource count over the limit */
        {HEADER_COUNT, 2},                 /* more resources than the file holds */
        {RECORD(FIELD_KIND), 9},           /* unknown kind */
        {RECORD(FIELD_FORMAT), 0},         /* unknown format */
        {RECORD(FIELD_WIDTH), 0},          /* empty */
        {RECORD(FIELD_WIDTH), 0x10000000}, /* over the dimension limit */
        {RECORD(FIELD_HEIGHT), 16384},     /* pixels run past the end */
        {RECORD(FIELD_SIZE), 12345},       /* size disagrees with the shape */
        {RECORD(FIELD_ID), 0},             /* reserved id */
    };
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        memcpy(edited, original, size);
        put_u32(edited, edits[i].offset, edits[i].value);
        write_file(path, edited, size);
        expect_rejected(renderer, dir.path);
    }
    neep_renderer_destroy(renderer);
    free(original);
    free(edited);
    temp_dir_remove(&dir);
}

TEST(restore_is_charged_to_the_budget)
{
    struct temp_dir dir;
    temp_dir_make(&dir);
    uint8_t a[13 * 7 * 4], b[3 * 5 * 4];
    make_snapshot(&dir, a, b);
    struct neep_renderer *renderer = support_renderer(NULL, 1024);
    CHECK_EQ(neep_renderer_restore(renderer, dir.path), -ENOMEM);
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), 0);
    neep_renderer_destroy(renderer);
    temp_dir_remove(&dir);
}
