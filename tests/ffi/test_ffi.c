/* The rutabaga ABI as a C caller sees it, through the shared library. */
#define RUTABAGA_GFX_FFI_UNSTABLE
#include <rutabaga_gfx/rutabaga_gfx_ffi.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

struct callbacks {
    int fence_count;
    struct rutabaga_fence fences[16];
    int debug_count;
    char last_debug[512];
};

static void on_fence(uint64_t user_data, const struct rutabaga_fence *fence)
{
    struct callbacks *cb = (struct callbacks *)(uintptr_t)user_data;
    CHECK(cb->fence_count < 16);
    cb->fences[cb->fence_count++] = *fence;
}

static void on_debug(uint64_t user_data, const struct rutabaga_debug *debug)
{
    struct callbacks *cb = (struct callbacks *)(uintptr_t)user_data;
    cb->debug_count++;
    snprintf(cb->last_debug, sizeof(cb->last_debug), "%s", debug->message);
}

static struct rutabaga *make(struct callbacks *cb, const char *features)
{
    struct rutabaga_builder builder = {
        .user_data = (uint64_t)(uintptr_t)cb,
        .wsi = RUTABAGA_WSI_SURFACELESS,
        .fence_cb = on_fence,
        .debug_cb = on_debug,
        .renderer_features = features,
    };
    struct rutabaga *rutabaga = NULL;
    CHECK_EQ(rutabaga_init(&builder, &rutabaga), 0);
    return rutabaga;
}

static void create_2d(struct rutabaga *rutabaga, uint32_t id, uint32_t w, uint32_t h)
{
    struct rutabaga_create_3d create = {
        .target = 2, .format = 1, .bind = 2, .width = w, .height = h, .depth = 1, .array_size = 1};
    CHECK_EQ(rutabaga_resource_create_3d(rutabaga, id, &create), 0);
}

TEST(capset_names_become_a_mask)
{
    uint64_t mask = 0;
    CHECK_EQ(rutabaga_calculate_capset_mask("cross-domain", &mask), 0);
    CHECK_EQ(mask, 1ull << 5);
    CHECK_EQ(rutabaga_calculate_capset_mask("gfxstream-vulkan:venus:bogus:drm", &mask), 0);
    CHECK_EQ(mask, (1ull << 3) | (1ull << 4) | (1ull << 6));
    CHECK_EQ(rutabaga_calculate_capset_mask("virgl:virgl2::magma:", &mask), 0);
    CHECK_EQ(mask, (1ull << 1) | (1ull << 2) | (1ull << 7));
    CHECK_EQ(rutabaga_calculate_capset_mask("", &mask), 0);
    CHECK_EQ(mask, 0);
    CHECK_EQ(rutabaga_calculate_capset_mask(NULL, &mask), -EINVAL);
}

TEST(init_checks_its_builder)
{
    struct callbacks cb = {0};
    struct rutabaga_builder builder = {.user_data = (uint64_t)(uintptr_t)&cb,
                                       .wsi = RUTABAGA_WSI_SURFACELESS,
                                       .fence_cb = on_fence,
                                       .debug_cb = on_debug};
    struct rutabaga *rutabaga = NULL;
    builder.wsi = 2;
    CHECK_EQ(rutabaga_init(&builder, &rutabaga), -EINVAL);
    CHECK(strstr(cb.last_debug, "WSI") != NULL);
    builder.wsi = RUTABAGA_WSI_SURFACELESS;
    builder.fence_cb = NULL;
    CHECK_EQ(rutabaga_init(&builder, &rutabaga), -EINVAL);
    builder.fence_cb = on_fence;
    builder.renderer_features = "memory_budget_mib=abc";
    CHECK_EQ(rutabaga_init(&builder, &rutabaga), -EINVAL);
    builder.renderer_features = NULL;
    /* A context type this build lacks is refused, loudly. */
    builder.capset_mask = 1ull << RUTABAGA_CAPSET_DRM;
    CHECK_EQ(rutabaga_init(&builder, &rutabaga), -EOPNOTSUPP);
    CHECK(strstr(cb.last_debug, "drm") != NULL);
    CHECK(rutabaga == NULL);
    CHECK_EQ(rutabaga_init(NULL, &rutabaga), -EINVAL);
    CHECK_EQ(rutabaga_finish(NULL), -EINVAL);
    CHECK_EQ(rutabaga_finish(&rutabaga), -EINVAL);
}

TEST(errors_are_distinct_and_explained)
{
    struct callbacks cb = {0};
    struct rutabaga *rutabaga = make(&cb, NULL);
    create_2d(rutabaga, 1, 16, 16);

    struct rutabaga_create_3d create = {
        .target = 2, .format = 1, .width = 16, .height = 16, .depth = 1, .array_size = 1};
    CHECK_EQ(rutabaga_resource_create_3d(rutabaga, 1, &create), -EEXIST);
    CHECK(strstr(cb.last_debug, "already in use") != NULL);
    CHECK_EQ(rutabaga_resource_unref(rutabaga, 2), -ENOENT);
    CHECK(strstr(cb.last_debug, "no resource 2") != NULL);
    CHECK_EQ(rutabaga_context_destroy(rutabaga, 3), -ESRCH);
    create.width = 0;
    CHECK_EQ(rutabaga_resource_create_3d(rutabaga, 4, &create), -EINVAL);
    create.width = 100000;
    CHECK_EQ(rutabaga_resource_create_3d(rutabaga, 4, &create), -E2BIG);
    create.width = 16;
    create.target = 4;
    CHECK_EQ(rutabaga_resource_create_3d(rutabaga, 4, &create), -EOPNOTSUPP);

    struct rutabaga_transfer outside = {.x = 10, .w = 10, .h = 1, .d = 1};
    uint8_t buf[64];
    struct iovec iov = {buf, sizeof(buf)};
    CHECK_EQ(rutabaga_resource_transfer_read(rutabaga, 0, 1, &outside, &iov), -EINVAL);
    CHECK(strstr(cb.last_debug, "leaves resource 1") != NULL);
    struct rutabaga_transfer wrapping = {.y = 2, .w = 1, .h = 1, .d = 1, .offset = UINT64_MAX - 8};
    CHECK_EQ(rutabaga_resource_transfer_read(rutabaga, 0, 1, &wrapping, &iov), -EINVAL);
    CHECK_EQ(rutabaga_resource_transfer_write(rutabaga, 0, 1, NULL), -EINVAL);
    CHECK_EQ(rutabaga_resource_attach_backing(rutabaga, 1, NULL), -EINVAL);

    uint32_t id, version, size;
    CHECK_EQ(rutabaga_get_capset_info(rutabaga, 0, &id, &version, &size), -EINVAL);
    CHECK_EQ(rutabaga_get_capset(rutabaga, 5, 0, buf, 8), -EINVAL);
    CHECK_EQ(rutabaga_context_create(rutabaga, 1, 5, "x", 1), -EINVAL);

    struct rutabaga_command command = {.ctx_id = 9, .cmd_size = 4, .cmd = buf};
    CHECK_EQ(rutabaga_submit_command(rutabaga, &command), -ESRCH);
    uint64_t in_fence = 1;
    command.num_in_fences = 1;
    command.fence_ids = &in_fence;
    CHECK_EQ(rutabaga_submit_command(rutabaga, &command), -EOPNOTSUPP);

    struct rutabaga_fence ring_fence = {
        .flags = RUTABAGA_FLAG_FENCE | RUTABAGA_FLAG_INFO_RING_IDX, .fence_id = 1, .ctx_id = 9};
    CHECK_EQ(rutabaga_create_fence(rutabaga, &ring_fence), -ESRCH);
    CHECK(cb.debug_count >= 14);
    CHECK_EQ(cb.fence_count, 0);
    CHECK_EQ(rutabaga_finish(&rutabaga), 0);
}

TEST(budget_from_renderer_features)
{
    struct callbacks cb = {0};
    struct rutabaga *rutabaga = make(&cb, "memory_budget_mib=1");
    create_2d(rutabaga, 1, 256, 256); /* 256 KiB */
    struct rutabaga_create_3d big = {
        .target = 2, .format = 1, .width = 1024, .height = 1024, .depth = 1, .array_size = 1};
    CHECK_EQ(rutabaga_resource_create_3d(rutabaga, 2, &big), -ENOMEM);
    CHECK(strstr(cb.last_debug, "budget") != NULL);
    CHECK_EQ(rutabaga_finish(&rutabaga), 0);
}

TEST(fences_arrive_in_order_with_their_fields)
{
    struct callbacks cb = {0};
    struct rutabaga *rutabaga = make(&cb, NULL);
    for (uint64_t n = 1; n <= 5; n++) {
        struct rutabaga_fence fence = {
            .flags = RUTABAGA_FLAG_FENCE, .fence_id = n * 10, .ctx_id = 3, .ring_idx = 0};
        CHECK_EQ(rutabaga_create_fence(rutabaga, &fence), 0);
    }
    CHECK_EQ(cb.fence_count, 5);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(cb.fences[i].fence_id, (uint64_t)(i + 1) * 10);
        CHECK_EQ(cb.fences[i].ctx_id, 3);
        CHECK_EQ(cb.fences[i].flags, RUTABAGA_FLAG_FENCE);
    }
    CHECK_EQ(rutabaga_finish(&rutabaga), 0);
}

/* A 3D transfer with rutabaga's offset convention: box placed at offset + y*stride + x*4. */
TEST(transfer_write_uses_rutabaga_offset_convention)
{
    struct callbacks cb = {0};
    struct rutabaga *rutabaga = make(&cb, NULL);
    create_2d(rutabaga, 1, 8, 8);
    uint8_t guest[64 + 40 * 8];
    for (size_t i = 0; i < sizeof(guest); i++) {
        guest[i] = (uint8_t)i;
    }
    struct iovec backing = {guest, sizeof(guest)};
    struct rutabaga_iovecs vecs = {&backing, 1};
    CHECK_EQ(rutabaga_resource_attach_backing(rutabaga, 1, &vecs), 0);
    struct rutabaga_transfer t = {
        .x = 2, .y = 3, .w = 4, .h = 2, .d = 1, .stride = 40, .offset = 64};
    CHECK_EQ(rutabaga_resource_transfer_write(rutabaga, 0, 1, &t), 0);
    uint8_t out[8 * 8 * 4];
    struct iovec out_iov = {out, sizeof(out)};
    struct rutabaga_transfer all = {.w = 8, .h = 8, .d = 1};
    CHECK_EQ(rutabaga_resource_transfer_read(rutabaga, 0, 1, &all, &out_iov), 0);
    for (int row = 3; row < 5; row++) {
        CHECK(memcmp(out + (row * 8 + 2) * 4, guest + 64 + row * 40 + 2 * 4, 16) == 0);
    }
    CHECK_EQ(out[0], 0);
    /* transfer_read with no iovec writes into the backing. */
    memset(guest, 0, sizeof(guest));
    CHECK_EQ(rutabaga_resource_transfer_read(rutabaga, 0, 1, &t, NULL), 0);
    CHECK_EQ(guest[64 + 3 * 40 + 8], out[(3 * 8 + 2) * 4]);
    CHECK_EQ(rutabaga_finish(&rutabaga), 0);
}

TEST(export_snapshot_and_restore_through_the_abi)
{
    struct callbacks cb = {0};
    struct rutabaga *rutabaga = make(&cb, NULL);
    create_2d(rutabaga, 1, 4, 4);
    uint8_t guest[64];
    for (int i = 0; i < 64; i++) {
        guest[i] = (uint8_t)(200 - i);
    }
    struct iovec backing = {guest, sizeof(guest)};
    struct rutabaga_iovecs vecs = {&backing, 1};
    CHECK_EQ(rutabaga_resource_attach_backing(rutabaga, 1, &vecs), 0);
    struct rutabaga_transfer all = {.w = 4, .h = 4, .d = 1};
    CHECK_EQ(rutabaga_resource_transfer_write(rutabaga, 0, 1, &all), 0);

    struct rutabaga_handle handle = {.os_handle = -1};
    CHECK_EQ(rutabaga_resource_export_blob(rutabaga, 1, &handle), 0);
    CHECK_EQ(handle.handle_type, RUTABAGA_HANDLE_TYPE_MEM_SHM);
    uint8_t shared[64];
    CHECK_EQ(pread((int)handle.os_handle, shared, 64, 0), 64);
    CHECK(memcmp(shared, guest, 64) == 0);
    close((int)handle.os_handle);

    char dir[] = "/tmp/neep-ffi-snapshot-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ(rutabaga_snapshot(rutabaga, dir), 0);
    CHECK_EQ(rutabaga_finish(&rutabaga), 0);

    rutabaga = make(&cb, NULL);
    CHECK_EQ(rutabaga_restore(rutabaga, dir), 0);
    uint8_t out[64];
    struct iovec out_iov = {out, sizeof(out)};
    CHECK_EQ(rutabaga_resource_transfer_read(rutabaga, 0, 1, &all, &out_iov), 0);
    CHECK(memcmp(out, guest, 64) == 0);
    CHECK_EQ(rutabaga_finish(&rutabaga), 0);
    char file[128];
    snprintf(file, sizeof(file), "%s/neep-2d-state", dir);
    unlink(file);
    rmdir(dir);
}

TEST(import_takes_the_handle_in_every_case)
{
    struct callbacks cb = {0};
    struct rutabaga *rutabaga = make(&cb, NULL);
    int fd = memfd_create("import", MFD_CLOEXEC);
    CHECK_EQ(ftruncate(fd, 4 * 4 * 4), 0);
    CHECK_EQ(pwrite(fd, "\x11\x22\x33\x44", 4, 0), 4);
    struct rutabaga_handle handle = {.os_handle = fd, .handle_type = RUTABAGA_HANDLE_TYPE_MEM_SHM};
    struct rutabaga_import_data data = {.flags = RUTABAGA_IMPORT_FLAG_3D_INFO};
    data.info_3d.width = 4;
    data.info_3d.height = 4;
    data.info_3d.drm_fourcc = 0x34325241; /* AR24 */
    data.info_3d.strides[0] = 16;
    CHECK_EQ(rutabaga_resource_import(rutabaga, 5, &handle, &data), 0);
    uint8_t out[4];
    struct iovec out_iov = {out, 4};
    struct rutabaga_transfer first = {.w = 1, .h = 1, .d = 1};
    CHECK_EQ(rutabaga_resource_transfer_read(rutabaga, 0, 5, &first, &out_iov), 0);
    CHECK(memcmp(out, "\x11\x22\x33\x44", 4) == 0);

    /* Refused imports still close the descriptor (the harness counts fds). */
    handle.os_handle = memfd_create("import", MFD_CLOEXEC);
    handle.handle_type = RUTABAGA_HANDLE_TYPE_SIGNAL_SYNC_FD;
    CHECK_EQ(rutabaga_resource_import(rutabaga, 6, &handle, &data), -EINVAL);
    handle.os_handle = memfd_create("import", MFD_CLOEXEC);
    handle.handle_type = RUTABAGA_HANDLE_TYPE_MEM_SHM;
    data.flags = 0;
    CHECK_EQ(rutabaga_resource_import(rutabaga, 6, &handle, &data), -EINVAL);
    handle.os_handle = memfd_create("import", MFD_CLOEXEC); /* empty: too small */
    data.flags = RUTABAGA_IMPORT_FLAG_3D_INFO;
    CHECK_EQ(rutabaga_resource_import(rutabaga, 6, &handle, &data), -EINVAL);

    struct rutabaga_create_blob blob = {.blob_mem = RUTABAGA_BLOB_MEM_GUEST, .size = 4096};
    struct rutabaga_handle blob_handle = {.os_handle = memfd_create("b", MFD_CLOEXEC),
                                          .handle_type = RUTABAGA_HANDLE_TYPE_MEM_SHM};
    CHECK_EQ(rutabaga_resource_create_blob(rutabaga, 0, 7, &blob, NULL, &blob_handle), -EOPNOTSUPP);
    CHECK_EQ(rutabaga_finish(&rutabaga), 0);
}

TEST(guest_blob_through_the_abi)
{
    struct callbacks cb = {0};
    struct rutabaga *rutabaga = make(&cb, NULL);
    static uint8_t memory[8192];
    struct iovec iov[2] = {{memory, 4096}, {memory + 4096, 4096}};
    struct rutabaga_iovecs vecs = {iov, 2};
    struct rutabaga_create_blob blob = {.blob_mem = RUTABAGA_BLOB_MEM_GUEST,
                                        .blob_flags = RUTABAGA_BLOB_FLAG_USE_MAPPABLE,
                                        .size = 8192};
    CHECK_EQ(rutabaga_resource_create_blob(rutabaga, 0, 3, &blob, &vecs, NULL), 0);
    struct rutabaga_mapping mapping;
    CHECK_EQ(rutabaga_resource_map(rutabaga, 3, &mapping), -EOPNOTSUPP);
    uint32_t map_info;
    CHECK_EQ(rutabaga_resource_map_info(rutabaga, 3, &map_info), -EOPNOTSUPP);
    CHECK_EQ(rutabaga_resource_unmap(rutabaga, 3), -EOPNOTSUPP);
    CHECK_EQ(rutabaga_resource_unref(rutabaga, 3), 0);
    CHECK_EQ(rutabaga_finish(&rutabaga), 0);
}

TEST(unknown_context_types_in_the_environment_are_refused)
{
    setenv("NEEP_CONTEXT_TYPES", "virgl2,vulkan-please", 1);
    struct callbacks cb = {0};
    struct rutabaga_builder builder = {.user_data = (uint64_t)(uintptr_t)&cb,
                                       .wsi = RUTABAGA_WSI_SURFACELESS,
                                       .fence_cb = on_fence,
                                       .debug_cb = on_debug};
    struct rutabaga *rutabaga = NULL;
    CHECK_EQ(rutabaga_init(&builder, &rutabaga), -EINVAL);
    CHECK(strstr(cb.last_debug, "NEEP_CONTEXT_TYPES") != NULL);
    CHECK(rutabaga == NULL);
}

#if NEEP_HAVE_VIRGL
/* QEMU's rutabaga device asks for cross-domain only; the environment adds virgl2. A GL clear
 * submitted through the ABI, fenced on the context's ring, read back through the ABI. */
TEST(virgl_from_the_environment_draws_next_to_cross_domain)
{
    setenv("NEEP_CONTEXT_TYPES", "virgl2", 1);
    struct callbacks cb = {0};
    struct rutabaga_builder builder = {.user_data = (uint64_t)(uintptr_t)&cb,
                                       .capset_mask = 1ull << RUTABAGA_CAPSET_CROSS_DOMAIN,
                                       .wsi = RUTABAGA_WSI_SURFACELESS,
                                       .fence_cb = on_fence,
                                       .debug_cb = on_debug};
    struct rutabaga *rutabaga = NULL;
    CHECK_EQ(rutabaga_init(&builder, &rutabaga), 0);
    uint32_t count = 0;
    CHECK_EQ(rutabaga_get_num_capsets(rutabaga, &count), 0);
    CHECK_EQ(count, 2);
    uint32_t id, version, size;
    CHECK_EQ(rutabaga_get_capset_info(rutabaga, 0, &id, &version, &size), 0);
    CHECK_EQ(id, RUTABAGA_CAPSET_VIRGL2);
    CHECK_EQ(rutabaga_get_capset_info(rutabaga, 1, &id, &version, &size), 0);
    CHECK_EQ(id, RUTABAGA_CAPSET_CROSS_DOMAIN);

    CHECK_EQ(rutabaga_context_create(rutabaga, 1, RUTABAGA_CAPSET_VIRGL2, "gl", 2), 0);
    CHECK_EQ(rutabaga_context_create(rutabaga, 2, RUTABAGA_CAPSET_CROSS_DOMAIN, NULL, 0), 0);
    create_2d(rutabaga, 7, 16, 8);
    CHECK_EQ(rutabaga_context_attach_resource(rutabaga, 1, 7), 0);
    /* Surface 1 on resource 7, framebuffer of it, clear to blue (virgl protocol words). */
    uint32_t words[] = {
        1 | 8 << 8 | 5 << 16,
        1,
        7,
        1,
        0,
        0, /* CREATE_OBJECT surface */
        5 | 3 << 16,
        1,
        0,
        1, /* SET_FRAMEBUFFER_STATE */
        7 | 8 << 16,
        4, /* CLEAR colour buffer 0 */
        0,
        0,
        0x3f800000u,
        0x3f800000u,
        0,
        0x3ff00000u,
        0,
    };
    struct rutabaga_command command = {
        .ctx_id = 1, .cmd_size = sizeof(words), .cmd = (uint8_t *)words};
    CHECK_EQ(rutabaga_submit_command(rutabaga, &command), 0);
    struct rutabaga_fence fence = {.flags = RUTABAGA_FLAG_FENCE | RUTABAGA_FLAG_INFO_RING_IDX,
                                   .fence_id = 41,
                                   .ctx_id = 1,
                                   .ring_idx = 0};
    CHECK_EQ(rutabaga_create_fence(rutabaga, &fence), 0);
    for (int waited_ms = 0; __atomic_load_n(&cb.fence_count, __ATOMIC_ACQUIRE) == 0; waited_ms++) {
        CHECK(waited_ms < 5000);
        usleep(1000);
    }
    CHECK_EQ(cb.fences[0].fence_id, 41);
    uint32_t pixels[16 * 8];
    struct iovec out = {pixels, sizeof(pixels)};
    struct rutabaga_transfer all = {.w = 16, .h = 8, .d = 1};
    CHECK_EQ(rutabaga_resource_transfer_read(rutabaga, 0, 7, &all, &out), 0);
    for (int i = 0; i < 16 * 8; i++) {
        CHECK_EQ(pixels[i], 0xff0000ffu); /* B8G8R8A8: blue, opaque */
    }
    CHECK_EQ(rutabaga_context_destroy(rutabaga, 1), 0);
    CHECK_EQ(rutabaga_context_destroy(rutabaga, 2), 0);
    CHECK_EQ(rutabaga_finish(&rutabaga), 0);
}
#endif
