/*
 * The cross-domain path on the rutabaga ABI, written against the public header only, in the
 * order a VMM drives it (rutabaga's own FFI test follows the same one): capset mask from names,
 * init with a Wayland channel, capset info, context create with capset 5, guest-blob rings
 * attached to the context, INIT, image requirements fenced on ring 0, a HOST3D blob from them,
 * map_info, map, export, and a fenced POLL answered with what the compositor sent.
 *
 * The compositor is played by this program on a UNIX socket it listens on.
 */
#define RUTABAGA_GFX_FFI_UNSTABLE
#include <rutabaga_gfx/rutabaga_gfx_ffi.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CTX          1
#define QUERY_RING   10
#define CHANNEL_RING 11
#define IMAGE        12

static pthread_mutex_t fence_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fence_cond = PTHREAD_COND_INITIALIZER;
static uint64_t last_fence[2];

static void on_fence(uint64_t user_data, const struct rutabaga_fence *fence)
{
    (void)user_data;
    pthread_mutex_lock(&fence_lock);
    if (fence->ring_idx < 2) {
        last_fence[fence->ring_idx] = fence->fence_id;
    }
    pthread_cond_broadcast(&fence_cond);
    pthread_mutex_unlock(&fence_lock);
}

static void on_debug(uint64_t user_data, const struct rutabaga_debug *debug)
{
    (void)user_data;
    fprintf(stderr, "debug: %s\n", debug->message);
}

static int wait_fence(uint32_t ring, uint64_t id)
{
    pthread_mutex_lock(&fence_lock);
    int result = 0;
    while (last_fence[ring] < id && result == 0) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 5;
        result = pthread_cond_timedwait(&fence_cond, &fence_lock, &deadline);
    }
    pthread_mutex_unlock(&fence_lock);
    return result;
}

#define EXPECT(call)                                                                               \
    do {                                                                                           \
        int32_t result_ = (call);                                                                  \
        if (result_ != 0) {                                                                        \
            fprintf(stderr, "%s:%d: %s returned %d\n", __FILE__, __LINE__, #call, result_);        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static int32_t make_ring(struct rutabaga *rutabaga, uint32_t id, struct iovec *iov)
{
    iov->iov_base = aligned_alloc(4096, 4096);
    iov->iov_len = 4096;
    memset(iov->iov_base, 0, 4096);
    struct rutabaga_create_blob blob = {.blob_mem = RUTABAGA_BLOB_MEM_GUEST,
                                        .blob_flags = RUTABAGA_BLOB_FLAG_USE_MAPPABLE,
                                        .size = 4096};
    struct rutabaga_iovecs vecs = {iov, 1};
    int32_t ret = rutabaga_resource_create_blob(rutabaga, CTX, id, &blob, &vecs, NULL);
    return ret ? ret : rutabaga_context_attach_resource(rutabaga, CTX, id);
}

int main(void)
{
    char dir[] = "/tmp/neep-ffi-cd-XXXXXX";
    if (!mkdtemp(dir)) {
        return 1;
    }
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s/wayland-0", dir);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(listener, 1)) {
        return 1;
    }

    uint64_t capset_mask = 0;
    EXPECT(rutabaga_calculate_capset_mask("cross-domain", &capset_mask));
    struct rutabaga_channel channel = {address.sun_path, RUTABAGA_CHANNEL_TYPE_WAYLAND};
    struct rutabaga_channels channels = {&channel, 1};
    struct rutabaga_builder builder = {.capset_mask = capset_mask,
                                       .wsi = RUTABAGA_WSI_SURFACELESS,
                                       .fence_cb = on_fence,
                                       .debug_cb = on_debug,
                                       .channels = &channels};
    struct rutabaga *rutabaga = NULL;
    EXPECT(rutabaga_init(&builder, &rutabaga));
    uint32_t count = 0, id = 0, version = 0, size = 0;
    EXPECT(rutabaga_get_num_capsets(rutabaga, &count));
    EXPECT(rutabaga_get_capset_info(rutabaga, 0, &id, &version, &size));
    /* rutabaga's four fields, then neep's: the channel ring may be any ring but 0. */
    uint32_t caps[5];
    EXPECT(count == 1 && id == RUTABAGA_CAPSET_CROSS_DOMAIN && size == 20 ? 0 : -1);
    EXPECT(rutabaga_get_capset(rutabaga, id, version, (uint8_t *)caps, size));
    EXPECT(caps[0] == 1 && caps[1] == 1u << RUTABAGA_CHANNEL_TYPE_WAYLAND && caps[4] == 1 ? 0 : -1);

    EXPECT(rutabaga_context_create(rutabaga, CTX, RUTABAGA_CAPSET_CROSS_DOMAIN, "seq", 3));
    struct iovec query, chan;
    EXPECT(make_ring(rutabaga, QUERY_RING, &query));
    EXPECT(make_ring(rutabaga, CHANNEL_RING, &chan));

    /* INIT {hdr, query ring, channel ring, channel type}: 20 bytes. */
    uint32_t init[5] = {1u | (20u << 16), 0, QUERY_RING, CHANNEL_RING,
                        RUTABAGA_CHANNEL_TYPE_WAYLAND};
    struct rutabaga_command command = {
        .ctx_id = CTX, .cmd_size = sizeof(init), .cmd = (uint8_t *)init};
    EXPECT(rutabaga_submit_command(rutabaga, &command));
    int compositor = accept(listener, NULL, NULL);
    EXPECT(compositor >= 0 ? 0 : -1);

    /* GET_IMAGE_REQUIREMENTS 64x64 ABGR8888, fenced on the query ring. */
    uint32_t get[6] = {2u | (24u << 16), 0, 64, 64, 0x34324241, 0x11};
    command.cmd = (uint8_t *)get;
    command.cmd_size = sizeof(get);
    EXPECT(rutabaga_submit_command(rutabaga, &command));
    struct rutabaga_fence fence = {.flags = RUTABAGA_FLAG_FENCE | RUTABAGA_FLAG_INFO_RING_IDX,
                                   .fence_id = 1,
                                   .ctx_id = CTX,
                                   .ring_idx = 0};
    EXPECT(rutabaga_create_fence(rutabaga, &fence));
    EXPECT(wait_fence(0, 1));
    uint32_t stride, blob_id;
    uint64_t blob_size;
    memcpy(&stride, query.iov_base, 4);
    memcpy(&blob_size, (uint8_t *)query.iov_base + 40, 8);
    memcpy(&blob_id, (uint8_t *)query.iov_base + 48, 4);
    EXPECT(stride == 256 && blob_size == 16384 ? 0 : -1);

    struct rutabaga_create_blob host = {.blob_mem = RUTABAGA_BLOB_MEM_HOST3D,
                                        .blob_flags = RUTABAGA_BLOB_FLAG_USE_MAPPABLE |
                                                      RUTABAGA_BLOB_FLAG_USE_SHAREABLE,
                                        .blob_id = blob_id,
                                        .size = blob_size};
    EXPECT(rutabaga_resource_create_blob(rutabaga, CTX, IMAGE, &host, NULL, NULL));
    uint32_t map_info = 0;
    EXPECT(rutabaga_resource_map_info(rutabaga, IMAGE, &map_info));
    EXPECT((map_info & RUTABAGA_MAP_CACHE_MASK) == RUTABAGA_MAP_CACHE_CACHED ? 0 : -1);
    struct rutabaga_mapping mapping;
    EXPECT(rutabaga_resource_map(rutabaga, IMAGE, &mapping));
    memcpy(mapping.ptr, "guest pixels", 12);
    struct rutabaga_handle handle;
    EXPECT(rutabaga_resource_export_blob(rutabaga, IMAGE, &handle));
    char seen[12];
    EXPECT(pread((int)handle.os_handle, seen, 12, 0) == 12 && !memcmp(seen, "guest pixels", 12)
               ? 0
               : -1);
    close((int)handle.os_handle);

    /* POLL, fenced on the channel ring, answered by the compositor's message. */
    uint32_t poll_cmd[4] = {3u | (16u << 16), 0, 0, 0};
    command.cmd = (uint8_t *)poll_cmd;
    command.cmd_size = sizeof(poll_cmd);
    EXPECT(rutabaga_submit_command(rutabaga, &command));
    fence.fence_id = 2;
    fence.ring_idx = 1;
    EXPECT(rutabaga_create_fence(rutabaga, &fence));
    if (write(compositor, "hello guest", 11) != 11) {
        return 1;
    }
    EXPECT(wait_fence(1, 2)); /* delivered by neep's fence thread */
    uint32_t data_size;
    memcpy(&data_size, (uint8_t *)chan.iov_base + 12, 4);
    EXPECT(data_size == 11 && !memcmp((uint8_t *)chan.iov_base + 352, "hello guest", 11) ? 0 : -1);

    EXPECT(rutabaga_resource_unmap(rutabaga, IMAGE));
    EXPECT(rutabaga_resource_unref(rutabaga, IMAGE));
    EXPECT(rutabaga_context_detach_resource(rutabaga, CTX, QUERY_RING));
    EXPECT(rutabaga_context_destroy(rutabaga, CTX));
    EXPECT(rutabaga_resource_unref(rutabaga, QUERY_RING));
    EXPECT(rutabaga_resource_unref(rutabaga, CHANNEL_RING));
    EXPECT(rutabaga_finish(&rutabaga));
    close(compositor);
    close(listener);
    unlink(address.sun_path);
    rmdir(dir);
    free(query.iov_base);
    free(chan.iov_base);
    printf("cross_domain_sequence: INIT, image requirements, host blob map/export and POLL "
           "work through the rutabaga ABI\n");
    return 0;
}
