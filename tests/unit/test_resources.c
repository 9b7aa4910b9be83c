/* Resources: 2D creation, backing, transfers, blobs, export, import and every bad input. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "support.h"

#define W      67
#define H      41
#define STRIDE (W * 4)

static const uint32_t all_formats[] = {1, 2, 3, 4, 67, 68, 121, 134};

/* Reads the whole resource back, tightly packed. */
static void read_all(struct neep_renderer *renderer, uint32_t id, uint32_t width, uint32_t height,
                     uint8_t *out)
{
    struct neep_transfer box = {.width = width, .height = height, .depth = 1};
    struct iovec iov = {out, (size_t)width * height * 4};
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, id, &box, &iov, 1), 0);
}

TEST(create_2d_in_every_format_starts_zeroed)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    for (size_t i = 0; i < sizeof(all_formats) / sizeof(all_formats[0]); i++) {
        struct neep_resource_create_3d create = {.target = 2,
                                                 .format = all_formats[i],
                                                 .width = 16,
                                                 .height = 9,
                                                 .depth = 1,
                                                 .array_size = 1};
        CHECK_EQ(neep_resource_create_3d(renderer, 100 + (uint32_t)i, &create), 0);
        struct neep_resource_info info;
        CHECK_EQ(neep_resource_get_info(renderer, 100 + (uint32_t)i, &info), 0);
        CHECK_EQ(info.format, all_formats[i]);
        CHECK_EQ(info.stride_bytes, 64);
        CHECK_EQ(info.size_bytes, 64 * 9);
        uint8_t pixels[64 * 9];
        memset(pixels, 0xaa, sizeof(pixels));
        read_all(renderer, 100 + (uint32_t)i, 16, 9, pixels);
        for (size_t b = 0; b < sizeof(pixels); b++) {
            CHECK_EQ(pixels[b], 0);
        }
    }
    neep_renderer_destroy(renderer);
}

TEST(full_frame_round_trip_through_split_backing)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    support_create_2d(renderer, 1, W, H);
    uint8_t *guest = malloc(STRIDE * H);
    support_fill_pattern(guest, STRIDE * H, 1);
    struct iovec iov[64];
    size_t count = support_split(guest, STRIDE * H, iov, 64);
    CHECK(count > 4);
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, iov, count), 0);

    struct neep_transfer box = {.width = W, .height = H, .depth = 1};
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &box), 0);
    uint8_t *host = malloc(STRIDE * H);
    read_all(renderer, 1, W, H, host);
    CHECK(memcmp(host, guest, STRIDE * H) == 0);

    /* And back into the guest's backing, after the guest scribbled over it. */
    memset(guest, 0, STRIDE * H);
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, 1, &box, NULL, 0), 0);
    CHECK(memcmp(host, guest, STRIDE * H) == 0);

    neep_renderer_destroy(renderer);
    free(guest);
    free(host);
}

/* A sub-box with its own stride and offset lands exactly where it should, nowhere else. */
TEST(sub_box_honours_offset_and_stride)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    support_create_2d(renderer, 1, W, H);

    const uint32_t x = 5, y = 7, bw = 19, bh = 11, guest_stride = 100, offset = 37;
    size_t guest_bytes = offset + (size_t)guest_stride * bh;
    uint8_t *guest = malloc(guest_bytes);
    support_fill_pattern(guest, guest_bytes, 2);
    struct iovec iov[64];
    size_t count = support_split(guest, guest_bytes, iov, 64);
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, iov, count), 0);

    struct neep_transfer box = {.x = x,
                                .y = y,
                                .width = bw,
                                .height = bh,
                                .depth = 1,
                                .stride_bytes = guest_stride,
                                .offset_bytes = offset};
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &box), 0);

    uint8_t *host = malloc(STRIDE * H);
    read_all(renderer, 1, W, H, host);
    for (uint32_t row = 0; row < H; row++) {
        for (uint32_t col = 0; col < W; col++) {
            const uint8_t *pixel = host + row * STRIDE + col * 4;
            bool inside = row >= y && row < y + bh && col >= x && col < x + bw;
            for (int b = 0; b < 4; b++) {
                uint8_t expected =
                    inside ? guest[offset + (row - y) * guest_stride + (col - x) * 4 + b] : 0;
                CHECK_EQ(pixel[b], expected);
            }
        }
    }

    /* Reading the same box out with another layout gives the same pixels. */
    uint8_t out[19 * 4 * 11 + 3];
    struct iovec out_iov = {out, sizeof(out)};
    struct neep_transfer out_box = {.x = x,
                                    .y = y,
                                    .width = bw,
                                    .height = bh,
                                    .depth = 1,
                                    .offset_bytes = 3,
                                    .stride_bytes = bw * 4};
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, 1, &out_box, &out_iov, 1), 0);
    for (uint32_t row = 0; row < bh; row++) {
        CHECK(memcmp(out + 3 + row * bw * 4, guest + offset + row * guest_stride, bw * 4) == 0);
    }
    neep_renderer_destroy(renderer);
    free(guest);
    free(host);
}

TEST(empty_box_is_a_no_op)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    support_create_2d(renderer, 1, 8, 8);
    uint8_t guest[8 * 8 * 4];
    struct iovec iov = {guest, sizeof(guest)};
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, &iov, 1), 0);
    struct neep_transfer box = {.width = 0, .height = 8, .depth = 1};
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &box), 0);
    neep_renderer_destroy(renderer);
}

TEST(bad_ids_are_rejected_with_distinct_errors)
{
    struct log_capture log = {0};
    struct neep_renderer *renderer = support_renderer(&log, 0);
    struct neep_resource_create_3d create = {
        .target = 2, .format = 1, .width = 4, .height = 4, .depth = 1, .array_size = 1};
    CHECK_EQ(neep_resource_create_3d(renderer, 0, &create), -EINVAL);
    CHECK_EQ(neep_resource_create_3d(renderer, 5, &create), 0);
    CHECK_EQ(neep_resource_create_3d(renderer, 5, &create), -EEXIST);
    CHECK_EQ(neep_resource_unref(renderer, 6), -ENOENT);
    CHECK_EQ(neep_resource_detach_backing(renderer, 6), -ENOENT);
    uint8_t byte;
    struct iovec iov = {&byte, 1};
    CHECK_EQ(neep_resource_attach_backing(renderer, 6, &iov, 1), -ENOENT);
    struct neep_transfer box = {.width = 1, .height = 1, .depth = 1};
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 6, &box), -ENOENT);
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, 6, &box, &iov, 1), -ENOENT);
    CHECK_EQ(neep_resource_transfer_write(renderer, 77, 5, &box), -ESRCH);
    CHECK(log.error_count >= 8);
    CHECK(strstr(log.last_error, "77") != NULL);
    CHECK_EQ(neep_resource_unref(renderer, 5), 0);
    CHECK_EQ(neep_resource_unref(renderer, 5), -ENOENT);
    neep_renderer_destroy(renderer);
}

TEST(bad_shapes_are_rejected)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    struct neep_resource_create_3d base = {
        .target = 2, .format = 1, .width = 4, .height = 4, .depth = 1, .array_size = 1};
    struct neep_resource_create_3d c = base;
    c.width = 0;
    CHECK_EQ(neep_resource_create_3d(renderer, 1, &c), -EINVAL);
    c = base;
    c.height = 0;
    CHECK_EQ(neep_resource_create_3d(renderer, 1, &c), -EINVAL);
    c = base;
    c.width = NEEP_MAX_DIMENSION_PX + 1;
    CHECK_EQ(neep_resource_create_3d(renderer, 1, &c), -E2BIG);
    c = base;
    c.width = 0xffffffffu;
    c.height = 0xffffffffu;
    CHECK_EQ(neep_resource_create_3d(renderer, 1, &c), -E2BIG);
    c = base;
    c.format = 5;
    CHECK_EQ(neep_resource_create_3d(renderer, 1, &c), -EINVAL);
    c = base;
    c.target = 3;
    CHECK_EQ(neep_resource_create_3d(renderer, 1, &c), -EOPNOTSUPP);
    c = base;
    c.last_level = 2;
    CHECK_EQ(neep_resource_create_3d(renderer, 1, &c), -EOPNOTSUPP);
    c = base;
    c.array_size = 6;
    CHECK_EQ(neep_resource_create_3d(renderer, 1, &c), -EOPNOTSUPP);
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), 0);
    /* After all that, a good resource still works. */
    CHECK_EQ(neep_resource_create_3d(renderer, 1, &base), 0);
    neep_renderer_destroy(renderer);
}

TEST(transfers_outside_the_resource_are_rejected)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    support_create_2d(renderer, 1, 16, 16);
    static uint8_t guest[16 * 16 * 4];
    struct iovec iov = {guest, sizeof(guest)};
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, &iov, 1), 0);

    struct neep_transfer cases[] = {
        {.x = 1, .width = 16, .height = 1, .depth = 1},             /* right edge */
        {.y = 16, .width = 1, .height = 1, .depth = 1},             /* below */
        {.x = 0xffffffffu, .width = 2, .height = 1, .depth = 1},    /* x + w wraps 32 bits */
        {.y = 0xfffffff0u, .width = 1, .height = 0x20, .depth = 1}, /* y + h wraps 32 bits */
        {.z = 1, .width = 1, .height = 1, .depth = 1},              /* layer 1 of 1 */
        {.width = 1, .height = 1, .depth = 2},                      /* two layers */
        {.width = 1, .height = 1, .depth = 1, .level = 1},          /* mip level */
        {.width = 16, .height = 2, .depth = 1, .stride_bytes = 63}, /* stride < row */
        {.width = 16, .height = 16, .depth = 1, .offset_bytes = 1}, /* backing 1 byte short */
        {.width = 1, .height = 2, .depth = 1, .offset_bytes = UINT64_MAX - 2}, /* overflow */
        {.width = 1, .height = 16, .depth = 1, .stride_bytes = 0xffffffffu},   /* huge stride */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &cases[i]), -EINVAL);
        CHECK_EQ(neep_resource_transfer_read(renderer, 0, 1, &cases[i], NULL, 0), -EINVAL);
    }
    /* A destination that is too short for a read is refused too. */
    uint8_t small[15];
    struct iovec small_iov = {small, sizeof(small)};
    struct neep_transfer pixel4 = {.width = 4, .height = 1, .depth = 1};
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, 1, &pixel4, &small_iov, 1), -EINVAL);
    /* The exact fit still passes. */
    struct neep_transfer all = {.width = 16, .height = 16, .depth = 1};
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &all), 0);
    neep_renderer_destroy(renderer);
}

TEST(transfer_without_backing_is_rejected)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    support_create_2d(renderer, 1, 4, 4);
    struct neep_transfer box = {.width = 4, .height = 4, .depth = 1};
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &box), -EINVAL);
    CHECK_EQ(neep_resource_transfer_read(renderer, 0, 1, &box, NULL, 0), -EINVAL);
    uint8_t guest[64];
    struct iovec iov = {guest, sizeof(guest)};
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, &iov, 1), 0);
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &box), 0);
    CHECK_EQ(neep_resource_detach_backing(renderer, 1), 0);
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &box), -EINVAL);
    neep_renderer_destroy(renderer);
}

TEST(bad_backing_is_rejected)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    support_create_2d(renderer, 1, 4, 4);
    uint8_t guest[64];
    struct iovec iov[2] = {{guest, 32}, {guest + 32, 32}};
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, iov, 0), -EINVAL);
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, NULL, 2), -EINVAL);
    struct iovec null_base = {NULL, 16};
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, &null_base, 1), -EINVAL);
    struct iovec overflowing[2] = {{guest, SIZE_MAX}, {guest, 2}};
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, overflowing, 2), -EINVAL);
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, iov, NEEP_MAX_BACKING_ENTRIES + 1), -E2BIG);
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, iov, 2), 0);
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, iov, 2), -EEXIST);
    neep_renderer_destroy(renderer);
}

TEST(budget_refuses_then_recovers)
{
    struct log_capture log = {0};
    /* Room for one 256x256 resource (256 KiB) and bookkeeping, not two. */
    struct neep_renderer *renderer = support_renderer(&log, 400 * 1024);
    support_create_2d(renderer, 1, 256, 256);
    struct neep_resource_create_3d create = {
        .target = 2, .format = 1, .width = 256, .height = 256, .depth = 1, .array_size = 1};
    CHECK_EQ(neep_resource_create_3d(renderer, 2, &create), -ENOMEM);
    CHECK(strstr(log.last_error, "budget") != NULL);
    uint64_t used = neep_renderer_memory_used_bytes(renderer);
    CHECK(used >= 256 * 256 * 4);
    CHECK(used <= neep_renderer_memory_budget_bytes(renderer));
    CHECK_EQ(neep_resource_unref(renderer, 1), 0);
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), 0);
    CHECK_EQ(neep_resource_create_3d(renderer, 2, &create), 0);
    neep_renderer_destroy(renderer);
}

TEST(budget_covers_backing_arrays)
{
    struct neep_renderer *renderer = support_renderer(NULL, 64 * 1024);
    support_create_2d(renderer, 1, 8, 8);
    static uint8_t page[4096];
    static struct iovec many[8192];
    for (size_t i = 0; i < 8192; i++) {
        many[i].iov_base = page;
        many[i].iov_len = 1;
    }
    /* 8192 entries are 128 KiB of bookkeeping: over a 64 KiB budget. */
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, many, 8192), -ENOMEM);
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, many, 256), 0);
    neep_renderer_destroy(renderer);
}

TEST(guest_blob_lifecycle)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    static uint8_t memory[8192];
    struct iovec iov[2] = {{memory, 4096}, {memory + 4096, 4096}};
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_GUEST,
                                    .blob_flags = NEEP_BLOB_FLAG_USE_MAPPABLE,
                                    .size_bytes = 8192};
    CHECK_EQ(neep_resource_create_blob(renderer, 0, 10, &blob, iov, 2), 0);
    struct neep_resource_info info;
    CHECK_EQ(neep_resource_get_info(renderer, 10, &info), 0);
    CHECK(info.is_blob);
    CHECK(info.has_backing);
    CHECK_EQ(info.size_bytes, 8192);
    /* A guest blob has no host pixels to move, map or share. */
    struct neep_transfer box = {.width = 1, .height = 1, .depth = 1};
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 10, &box), -EOPNOTSUPP);
    void *ptr;
    uint64_t size;
    CHECK_EQ(neep_resource_map(renderer, 10, &ptr, &size), -EOPNOTSUPP);
    int fd;
    uint32_t type;
    CHECK_EQ(neep_resource_export(renderer, 10, &fd, &type), -EOPNOTSUPP);
    /* Backing may come later. */
    CHECK_EQ(neep_resource_create_blob(renderer, 0, 11, &blob, NULL, 0), 0);
    CHECK_EQ(neep_resource_attach_backing(renderer, 11, iov, 2), 0);
    CHECK_EQ(neep_resource_unref(renderer, 10), 0);
    CHECK_EQ(neep_resource_unref(renderer, 11), 0);
    neep_renderer_destroy(renderer);
}

TEST(bad_blobs_are_rejected)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    static uint8_t memory[4096];
    struct iovec iov = {memory, sizeof(memory)};
    struct neep_blob_create blob = {.blob_mem = NEEP_BLOB_MEM_GUEST, .size_bytes = 4096};
    struct neep_blob_create c = blob;
    c.size_bytes = 0;
    CHECK_EQ(neep_resource_create_blob(renderer, 0, 1, &c, &iov, 1), -EINVAL);
    c = blob;
    c.size_bytes = 4097; /* more than the backing */
    CHECK_EQ(neep_resource_create_blob(renderer, 0, 1, &c, &iov, 1), -EINVAL);
    c = blob;
    c.blob_mem = 0;
    CHECK_EQ(neep_resource_create_blob(renderer, 0, 1, &c, &iov, 1), -EINVAL);
    c.blob_mem = 4;
    CHECK_EQ(neep_resource_create_blob(renderer, 0, 1, &c, &iov, 1), -EINVAL);
    c = blob;
    c.blob_flags = 8;
    CHECK_EQ(neep_resource_create_blob(renderer, 0, 1, &c, &iov, 1), -EINVAL);
    c = blob;
    c.blob_mem = NEEP_BLOB_MEM_HOST3D;
    CHECK_EQ(neep_resource_create_blob(renderer, 0, 1, &c, NULL, 0), -EINVAL); /* no context */
    CHECK_EQ(neep_resource_create_blob(renderer, 9, 1, &c, NULL, 0), -ESRCH);
    CHECK_EQ(neep_resource_create_blob(renderer, 9, 1, &c, &iov, 1), -EINVAL);
    CHECK_EQ(neep_resource_create_blob(renderer, 0, 0, &blob, &iov, 1), -EINVAL);
    CHECK_EQ(neep_resource_create_blob(renderer, 0, 1, &blob, &iov, 1), 0);
    CHECK_EQ(neep_resource_create_blob(renderer, 0, 1, &blob, &iov, 1), -EEXIST);
    neep_renderer_destroy(renderer);
}

TEST(export_shares_the_pixels)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    support_create_2d(renderer, 1, 32, 8);
    uint8_t guest[32 * 8 * 4];
    support_fill_pattern(guest, sizeof(guest), 3);
    struct iovec iov = {guest, sizeof(guest)};
    CHECK_EQ(neep_resource_attach_backing(renderer, 1, &iov, 1), 0);
    struct neep_transfer box = {.width = 32, .height = 8, .depth = 1};
    CHECK_EQ(neep_resource_transfer_write(renderer, 0, 1, &box), 0);

    int fd = -1;
    uint32_t type = 0;
    CHECK_EQ(neep_resource_export(renderer, 1, &fd, &type), 0);
    CHECK_EQ(type, NEEP_HANDLE_MEM_SHM);
    void *view = mmap(NULL, sizeof(guest), PROT_READ, MAP_SHARED, fd, 0);
    CHECK(view != MAP_FAILED);
    CHECK(memcmp(view, guest, sizeof(guest)) == 0);
    /* The consumer cannot shrink the memory under the renderer. */
    CHECK(ftruncate(fd, 0) < 0);
    munmap(view, sizeof(guest));
    close(fd);
    CHECK_EQ(neep_resource_export(renderer, 2, &fd, &type), -ENOENT);
    neep_renderer_destroy(renderer);
}

static int memfd_with(const uint8_t *bytes, size_t size)
{
    int fd = memfd_create("test-import", MFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, bytes, size), (long long)size);
    return fd;
}

#define FOURCC_XRGB8888 0x34325258u

TEST(import_makes_a_resource_of_an_fd)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    const uint32_t width = 10, height = 6, stride = 48, offset = 16;
    uint8_t image[16 + 48 * 6];
    support_fill_pattern(image, sizeof(image), 4);
    int fd = memfd_with(image, sizeof(image));
    struct neep_import import = {.width = width,
                                 .height = height,
                                 .drm_fourcc = FOURCC_XRGB8888,
                                 .stride_bytes = stride,
                                 .offset_bytes = offset};
    CHECK_EQ(neep_resource_import(renderer, 3, fd, &import), 0);
    struct neep_resource_info info;
    CHECK_EQ(neep_resource_get_info(renderer, 3, &info), 0);
    CHECK_EQ(info.format, NEEP_FORMAT_B8G8R8X8_UNORM);
    uint8_t out[10 * 6 * 4];
    read_all(renderer, 3, width, height, out);
    for (uint32_t row = 0; row < height; row++) {
        CHECK(memcmp(out + row * width * 4, image + offset + row * stride, width * 4) == 0);
    }

    /* Refresh with new storage, keeping the content. */
    uint8_t blank[40 * 6];
    memset(blank, 0, sizeof(blank));
    int fd2 = memfd_with(blank, sizeof(blank));
    struct neep_import refresh = {.flags =
                                      NEEP_IMPORT_RESOURCE_EXISTS | NEEP_IMPORT_PRESERVE_CONTENT,
                                  .width = width,
                                  .height = height,
                                  .drm_fourcc = FOURCC_XRGB8888,
                                  .stride_bytes = 40};
    CHECK_EQ(neep_resource_import(renderer, 3, fd2, &refresh), 0);
    uint8_t again[10 * 6 * 4];
    read_all(renderer, 3, width, height, again);
    CHECK(memcmp(out, again, sizeof(out)) == 0);
    neep_renderer_destroy(renderer);
}

TEST(bad_imports_are_rejected_and_close_the_fd)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    uint8_t small[100] = {0};
    struct neep_import good = {
        .width = 4, .height = 4, .drm_fourcc = FOURCC_XRGB8888, .stride_bytes = 16};
    struct neep_import c = good;
    c.height = 8; /* needs 128 bytes, the fd has 100 */
    CHECK_EQ(neep_resource_import(renderer, 1, memfd_with(small, sizeof(small)), &c), -EINVAL);
    c = good;
    c.stride_bytes = 15;
    CHECK_EQ(neep_resource_import(renderer, 1, memfd_with(small, sizeof(small)), &c), -EINVAL);
    c = good;
    c.drm_fourcc = 0x3231564e; /* NV12 */
    CHECK_EQ(neep_resource_import(renderer, 1, memfd_with(small, sizeof(small)), &c), -EINVAL);
    c = good;
    c.flags = NEEP_IMPORT_RESOURCE_EXISTS;
    CHECK_EQ(neep_resource_import(renderer, 1, memfd_with(small, sizeof(small)), &c), -ENOENT);
    c = good;
    c.offset_bytes = 0xffffffffu;
    CHECK_EQ(neep_resource_import(renderer, 1, memfd_with(small, sizeof(small)), &c), -EINVAL);
    CHECK_EQ(neep_resource_import(renderer, 1, -1, &good), -EINVAL);
    CHECK_EQ(neep_resource_import(renderer, 1, memfd_with(small, sizeof(small)), &good), 0);
    CHECK_EQ(neep_resource_import(renderer, 1, memfd_with(small, sizeof(small)), &good), -EEXIST);
    /* The harness fails this test if any of those fds stayed open. */
    neep_renderer_destroy(renderer);
}

TEST(many_resources_churn)
{
    struct neep_renderer *renderer = support_renderer(NULL, 0);
    for (uint32_t round = 0; round < 4; round++) {
        for (uint32_t i = 1; i <= 500; i++) {
            support_create_2d(renderer, i * 7919u + round, 4, 4);
        }
        for (uint32_t i = 1; i <= 500; i++) {
            CHECK_EQ(neep_resource_unref(renderer, i * 7919u + round), 0);
        }
    }
    CHECK_EQ(neep_renderer_memory_used_bytes(renderer), 0);
    neep_renderer_destroy(renderer);
}
