#include "shm.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "wayland-client-protocol.h"

struct damage_box {
    int32_t x0, y0, x1, y1; /* half-open; empty when x0 >= x1 or y0 >= y1 */
};

/* A few boxes, merged into one when more arrive: small scattered damage stays small. */
#define DAMAGE_MAX_BOXES 8u
struct damage {
    struct damage_box boxes[DAMAGE_MAX_BOXES];
    uint32_t count;
};

/* A client's pool, mapped whole for as long as it or one of its buffers lives; its fd is
 * closed as soon as it is mapped. */
struct shm_pool {
    const uint8_t *map;
    uint64_t size_bytes;  /* as the client declared it, and mapped */
    uint32_t shm_host_id; /* the wl_shm it came from, on the host */
    uint32_t refs;        /* the pool object and each of its buffers */
};

struct shm_buffer {
    struct shm_pool *pool;
    uint64_t offset_bytes;
    int32_t width_px;
    int32_t height_px;
    int32_t stride_bytes;
    uint32_t bytes_per_pixel;
    struct virtgpu_blob shadow;
    uint64_t shadow_bytes; /* counted in the client's shm_shadow_bytes */
    struct damage stale;   /* where the shadow may differ from the client's bytes */
};

/* Buffers a surface showed lately: damage to the surface makes them stale too (a client
 * redraws a buffer by the damage since it last used it). */
#define SURFACE_RECENT_BUFFERS 4u

struct surface_state {
    bool attach_pending;
    uint32_t pending_buffer_id;
    struct damage pending_surface_damage;
    struct damage pending_buffer_damage;
    int32_t pending_scale, scale;
    uint32_t pending_transform, transform;
    bool has_viewport;
    uint32_t recent[SURFACE_RECENT_BUFFERS];
};

/* --- damage --- */

static struct damage_box box_union(struct damage_box a, struct damage_box b)
{
    return (struct damage_box){a.x0 < b.x0 ? a.x0 : b.x0, a.y0 < b.y0 ? a.y0 : b.y0,
                               a.x1 > b.x1 ? a.x1 : b.x1, a.y1 > b.y1 ? a.y1 : b.y1};
}

static void damage_add(struct damage *damage, struct damage_box box)
{
    if (box.x0 >= box.x1 || box.y0 >= box.y1) {
        return;
    }
    for (uint32_t i = 0; i < damage->count; i++) {
        struct damage_box *have = &damage->boxes[i];
        if (box.x0 >= have->x0 && box.y0 >= have->y0 && box.x1 <= have->x1 && box.y1 <= have->y1) {
            return; /* already covered */
        }
    }
    if (damage->count == DAMAGE_MAX_BOXES) {
        struct damage_box all = damage->boxes[0];
        for (uint32_t i = 1; i < damage->count; i++) {
            all = box_union(all, damage->boxes[i]);
        }
        damage->boxes[0] = all;
        damage->count = 1;
    }
    damage->boxes[damage->count++] = box;
}

static void damage_add_all(struct damage *into, const struct damage *from)
{
    for (uint32_t i = 0; i < from->count; i++) {
        damage_add(into, from->boxes[i]);
    }
}

/* Reads a damage rectangle (x, y, width, height) as a box; overflow-safe. */
static struct damage_box box_from_rect(int32_t x, int32_t y, int32_t width, int32_t height)
{
    if (width <= 0 || height <= 0) {
        return (struct damage_box){0, 0, 0, 0};
    }
    int64_t x1 = (int64_t)x + width;
    int64_t y1 = (int64_t)y + height;
    return (struct damage_box){x, y, x1 > INT32_MAX ? INT32_MAX : (int32_t)x1,
                               y1 > INT32_MAX ? INT32_MAX : (int32_t)y1};
}

/* --- formats --- */

static uint32_t format_bytes_per_pixel(uint32_t format)
{
    switch (format) {
    case WL_SHM_FORMAT_ARGB8888:
    case WL_SHM_FORMAT_XRGB8888:
    case DRM_FOURCC('A', 'B', '2', '4'):
    case DRM_FOURCC('X', 'B', '2', '4'):
    case DRM_FOURCC('A', 'R', '3', '0'):
    case DRM_FOURCC('X', 'R', '3', '0'):
    case DRM_FOURCC('A', 'B', '3', '0'):
    case DRM_FOURCC('X', 'B', '3', '0'):
        return 4;
    case DRM_FOURCC('R', 'G', '1', '6'):
        return 2;
    case DRM_FOURCC('A', 'B', '4', 'H'):
    case DRM_FOURCC('X', 'B', '4', 'H'):
        return 8;
    default:
        return 0;
    }
}

bool shm_format_supported(uint32_t format)
{
    return format_bytes_per_pixel(format) != 0;
}

/* --- guarded copies --- */

static sigjmp_buf *volatile copy_guard;

static void on_sigbus(int signal_number, siginfo_t *info, void *context)
{
    (void)info;
    (void)context;
    if (copy_guard) {
        siglongjmp(*copy_guard, 1);
    }
    signal(signal_number, SIG_DFL);
    raise(signal_number);
}

int shm_install_guard(void)
{
    struct sigaction action = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER};
    sigemptyset(&action.sa_mask);
    return sigaction(SIGBUS, &action, NULL);
}

/* Copies the damaged parts of a buffer into its shadow; false if the client's memory went
 * away underneath (its memfd shrank). */
static bool copy_damage(struct proxy_client *client, struct shm_buffer *buffer,
                        const struct damage *damage)
{
    const uint8_t *source = buffer->pool->map + buffer->offset_bytes;
    uint8_t *shadow = buffer->shadow.map;
    uint64_t stride = (uint64_t)buffer->stride_bytes;
    sigjmp_buf guard;
    if (sigsetjmp(guard, 1)) {
        copy_guard = NULL;
        return false;
    }
    copy_guard = &guard;
    for (uint32_t i = 0; i < damage->count; i++) {
        struct damage_box box = damage->boxes[i];
        /* Clip to the buffer: damage is a client's word, not a bound. */
        int32_t x0 = box.x0 < 0 ? 0 : box.x0, y0 = box.y0 < 0 ? 0 : box.y0;
        int32_t x1 = box.x1 > buffer->width_px ? buffer->width_px : box.x1;
        int32_t y1 = box.y1 > buffer->height_px ? buffer->height_px : box.y1;
        if (x0 >= x1 || y0 >= y1) {
            continue;
        }
        if (x0 == 0 && x1 == buffer->width_px) {
            uint64_t start = (uint64_t)y0 * stride, bytes = (uint64_t)(y1 - y0) * stride;
            memcpy(shadow + start, source + start, bytes);
            client->shm_copied_bytes += bytes;
            continue;
        }
        uint64_t column = (uint64_t)x0 * buffer->bytes_per_pixel;
        uint64_t row_bytes = (uint64_t)(x1 - x0) * buffer->bytes_per_pixel;
        for (int32_t y = y0; y < y1; y++) {
            uint64_t start = (uint64_t)y * stride + column;
            memcpy(shadow + start, source + start, row_bytes);
        }
        client->shm_copied_bytes += row_bytes * (uint64_t)(y1 - y0);
    }
    copy_guard = NULL;
    return true;
}

/* --- pools and buffers --- */

static void pool_unref(struct proxy_client *client, struct shm_pool *pool)
{
    if (--pool->refs > 0) {
        return;
    }
    munmap((void *)pool->map, pool->size_bytes);
    client->shm_pool_count--;
    client->shm_pool_bytes -= pool->size_bytes;
    free(pool);
}

/* Whether the client may map `more_bytes` more (and one more pool if `new_pool`); if not,
 * it is told which of neep-wl's limits it reached. */
static bool pool_fits(struct proxy_client *client, uint32_t object_id, const char *request,
                      uint64_t more_bytes, bool new_pool)
{
    if ((new_pool && client->shm_pool_count >= PROXY_MAX_POOLS_PER_CLIENT) ||
        more_bytes > PROXY_MAX_POOL_BYTES_PER_CLIENT - client->shm_pool_bytes) {
        proxy_client_fail(client, object_id, WL_DISPLAY_ERROR_NO_MEMORY,
                          "%s: the client's shm pools (%u, %llu MiB) would pass neep-wl's limit "
                          "of %u pools and %llu MiB per client",
                          request, client->shm_pool_count,
                          (unsigned long long)(client->shm_pool_bytes >> 20),
                          PROXY_MAX_POOLS_PER_CLIENT,
                          (unsigned long long)(PROXY_MAX_POOL_BYTES_PER_CLIENT >> 20));
        return false;
    }
    return true;
}

bool shm_create_pool(struct proxy_client *client, uint32_t pool_id, uint32_t shm_host_id, int fd,
                     int32_t size_bytes)
{
    if (size_bytes <= 0) {
        close(fd);
        proxy_client_fail(client, pool_id, WL_SHM_ERROR_INVALID_STRIDE,
                          "wl_shm.create_pool: size %d is not positive", size_bytes);
        return false;
    }
    if (!pool_fits(client, pool_id, "wl_shm.create_pool", (uint64_t)size_bytes, true)) {
        close(fd);
        return false;
    }
    /* Mapped now and the fd closed, as compositors do: a pool holds address space (capped
     * above), never one of neep-wl's fds. Bytes past the file's end fault only when copied,
     * under the SIGBUS guard. */
    void *map = mmap(NULL, (size_t)size_bytes, PROT_READ, MAP_SHARED, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) {
        proxy_client_fail(client, pool_id, WL_SHM_ERROR_INVALID_FD,
                          "wl_shm.create_pool: the file cannot be mapped (%s)",
                          strerror(map_errno));
        return false;
    }
    struct shm_pool *pool = calloc(1, sizeof(*pool));
    if (!pool || id_table_insert(&client->pools, pool_id, pool) < 0) {
        free(pool);
        munmap(map, (size_t)size_bytes);
        proxy_client_fail(client, pool_id, WL_DISPLAY_ERROR_NO_MEMORY, "out of memory");
        return false;
    }
    *pool = (struct shm_pool){map, (uint64_t)size_bytes, shm_host_id, 1};
    client->shm_pool_count++;
    client->shm_pool_bytes += (uint64_t)size_bytes;
    if (!relay_mark_client_only(client, pool_id)) {
        id_table_remove(&client->pools, pool_id);
        pool_unref(client, pool);
        proxy_client_fail(client, pool_id, WL_DISPLAY_ERROR_NO_MEMORY, "out of memory");
        return false;
    }
    return true;
}

static void buffer_free(struct proxy_client *client, struct shm_buffer *buffer)
{
    client->shm_shadow_bytes -= buffer->shadow_bytes;
    virtgpu_blob_free(&client->channel, &buffer->shadow);
    pool_unref(client, buffer->pool);
    free(buffer);
}

/* On the host: a pool on the shadow, the buffer under the client's id, the pool dropped. */
static bool create_host_buffer(struct proxy_client *client, uint32_t buffer_id,
                               struct shm_buffer *buffer, uint32_t format)
{
    uint64_t size_bytes = (uint64_t)buffer->stride_bytes * (uint64_t)buffer->height_px;
    if (virtgpu_byte_buffer(&client->channel, size_bytes, &buffer->shadow) < 0) {
        proxy_log("client %u: no host memory for a %llu-byte shadow buffer", client->serial,
                  (unsigned long long)size_bytes);
        return false;
    }
    buffer->shadow_bytes = size_bytes;
    client->shm_shadow_bytes += size_bytes;
    uint32_t host_pool = relay_alloc_host_id(client, 0);
    uint32_t host_buffer = host_pool ? relay_alloc_host_id(client, buffer_id) : 0;
    if (!host_buffer) {
        return false;
    }
    uint8_t message[32];
    uint32_t create_pool[] = {buffer->pool->shm_host_id, (16u << 16) | WL_SHM_CREATE_POOL,
                              host_pool, (uint32_t)size_bytes};
    uint32_t blob_type = CROSS_DOMAIN_ID_TYPE_VIRTGPU_BLOB;
    memcpy(message, create_pool, sizeof(create_pool));
    if (!proxy_client_send(client, message, 16, &buffer->shadow.res_handle, &blob_type, 1)) {
        return false;
    }
    uint32_t create_buffer[] = {host_pool,
                                (32u << 16) | WL_SHM_POOL_CREATE_BUFFER,
                                host_buffer,
                                0,
                                (uint32_t)buffer->width_px,
                                (uint32_t)buffer->height_px,
                                (uint32_t)buffer->stride_bytes,
                                format};
    memcpy(message, create_buffer, sizeof(create_buffer));
    if (!proxy_client_send(client, message, 32, NULL, NULL, 0)) {
        return false;
    }
    uint32_t destroy[] = {host_pool, (8u << 16) | WL_SHM_POOL_DESTROY};
    memcpy(message, destroy, sizeof(destroy));
    return proxy_client_send(client, message, 8, NULL, NULL, 0);
}

static bool create_buffer(struct proxy_client *client, uint32_t pool_id, struct shm_pool *pool,
                          const uint8_t *bytes)
{
    uint32_t buffer_id;
    int32_t offset, width, height, stride;
    uint32_t format;
    memcpy(&buffer_id, bytes + 8, 4);
    memcpy(&offset, bytes + 12, 4);
    memcpy(&width, bytes + 16, 4);
    memcpy(&height, bytes + 20, 4);
    memcpy(&stride, bytes + 24, 4);
    memcpy(&format, bytes + 28, 4);
    uint32_t bytes_per_pixel = format_bytes_per_pixel(format);
    if (!bytes_per_pixel) {
        proxy_client_fail(client, pool_id, WL_SHM_ERROR_INVALID_FORMAT,
                          "wl_shm_pool.create_buffer: format 0x%08x was not offered", format);
        return false;
    }
    /* All in 64 bits: each factor is below 2^31, so no product overflows. */
    if (offset < 0 || width <= 0 || height <= 0 || stride <= 0 ||
        (int64_t)width * bytes_per_pixel > stride ||
        (int64_t)offset + (int64_t)stride * height > (int64_t)pool->size_bytes) {
        proxy_client_fail(client, pool_id, WL_SHM_ERROR_INVALID_STRIDE,
                          "wl_shm_pool.create_buffer: %dx%d, stride %d at offset %d does not fit "
                          "a %llu-byte pool",
                          width, height, stride, offset, (unsigned long long)pool->size_bytes);
        return false;
    }
    uint64_t shadow_bytes = (uint64_t)stride * (uint64_t)height;
    if (shadow_bytes > PROXY_MAX_SHADOW_BYTES_PER_CLIENT - client->shm_shadow_bytes) {
        proxy_client_fail(client, pool_id, WL_DISPLAY_ERROR_NO_MEMORY,
                          "wl_shm_pool.create_buffer: the client's buffers (%llu MiB of host "
                          "memory) would pass neep-wl's limit of %llu MiB per client",
                          (unsigned long long)(client->shm_shadow_bytes >> 20),
                          (unsigned long long)(PROXY_MAX_SHADOW_BYTES_PER_CLIENT >> 20));
        return false;
    }
    struct shm_buffer *buffer = calloc(1, sizeof(*buffer));
    if (!buffer) {
        proxy_client_fail(client, pool_id, WL_DISPLAY_ERROR_NO_MEMORY, "out of memory");
        return false;
    }
    *buffer = (struct shm_buffer){.pool = pool,
                                  .offset_bytes = (uint64_t)offset,
                                  .width_px = width,
                                  .height_px = height,
                                  .stride_bytes = stride,
                                  .bytes_per_pixel = bytes_per_pixel};
    pool->refs++;
    damage_add(&buffer->stale, (struct damage_box){0, 0, width, height});
    if (!create_host_buffer(client, buffer_id, buffer, format) ||
        id_table_insert(&client->buffers, buffer_id, buffer) < 0) {
        buffer_free(client, buffer);
        proxy_client_fail(client, pool_id, WL_DISPLAY_ERROR_IMPLEMENTATION,
                          "neep-wl could not make a host buffer of %dx%d", width, height);
        return false;
    }
    return true;
}

bool shm_pool_request(struct proxy_client *client, const struct wire_message *message,
                      const uint8_t *bytes)
{
    uint32_t pool_id = message->object_id;
    struct shm_pool *pool = id_table_get(&client->pools, pool_id);
    if (!pool) {
        proxy_client_fail(client, pool_id, WL_DISPLAY_ERROR_INVALID_OBJECT,
                          "wl_shm_pool@%u is not a pool", pool_id);
        return false;
    }
    switch (message->opcode) {
    case WL_SHM_POOL_CREATE_BUFFER:
        return create_buffer(client, pool_id, pool, bytes);
    case WL_SHM_POOL_DESTROY:
        id_table_remove(&client->pools, pool_id);
        pool_unref(client, pool);
        return relay_delete_client_only(client, pool_id);
    case WL_SHM_POOL_RESIZE: {
        int32_t size_bytes;
        memcpy(&size_bytes, bytes + 8, 4);
        if (size_bytes <= 0 || (uint64_t)size_bytes < pool->size_bytes) {
            proxy_client_fail(client, pool_id, WL_SHM_ERROR_INVALID_STRIDE,
                              "wl_shm_pool.resize: %d bytes is not larger than %llu", size_bytes,
                              (unsigned long long)pool->size_bytes);
            return false;
        }
        uint64_t growth_bytes = (uint64_t)size_bytes - pool->size_bytes;
        if (!pool_fits(client, pool_id, "wl_shm_pool.resize", growth_bytes, false)) {
            return false;
        }
        /* The mapping grows over the same file (its fd is long closed). */
        void *map = mremap((void *)pool->map, pool->size_bytes, (size_t)size_bytes, MREMAP_MAYMOVE);
        if (map == MAP_FAILED) {
            proxy_client_fail(client, pool_id, WL_DISPLAY_ERROR_NO_MEMORY,
                              "wl_shm_pool.resize: cannot map %d bytes (%s)", size_bytes,
                              strerror(errno));
            return false;
        }
        pool->map = map;
        pool->size_bytes = (uint64_t)size_bytes;
        client->shm_pool_bytes += growth_bytes;
        return true;
    }
    default:
        proxy_client_fail(client, pool_id, WL_DISPLAY_ERROR_INVALID_METHOD,
                          "wl_shm_pool request %u is not known", message->opcode);
        return false;
    }
}

void shm_buffer_destroyed(struct proxy_client *client, uint32_t buffer_id)
{
    struct shm_buffer *buffer = id_table_remove(&client->buffers, buffer_id);
    if (buffer) {
        buffer_free(client, buffer);
    }
}

/* --- surfaces --- */

static struct surface_state *surface_get(struct proxy_client *client, uint32_t surface_id)
{
    struct surface_state *surface = id_table_get(&client->surfaces, surface_id);
    if (surface) {
        return surface;
    }
    surface = calloc(1, sizeof(*surface));
    if (!surface) {
        return NULL;
    }
    surface->pending_scale = surface->scale = 1;
    if (id_table_insert(&client->surfaces, surface_id, surface) < 0) {
        free(surface);
        return NULL;
    }
    return surface;
}

void shm_viewport_created(struct proxy_client *client, uint32_t surface_id)
{
    struct surface_state *surface = surface_get(client, surface_id);
    if (surface) {
        surface->has_viewport = true; /* damage in surface coordinates no longer maps 1:1 */
    }
}

static bool commit(struct proxy_client *client, uint32_t surface_id, struct surface_state *surface)
{
    surface->scale = surface->pending_scale;
    surface->transform = surface->pending_transform;
    struct damage damage = surface->pending_buffer_damage;
    struct shm_buffer *buffer = NULL;
    uint32_t buffer_id = 0;
    if (surface->attach_pending) {
        buffer_id = surface->pending_buffer_id;
        buffer = buffer_id ? id_table_get(&client->buffers, buffer_id) : NULL;
    }
    if (buffer && surface->pending_surface_damage.count) {
        /* Surface coordinates equal buffer coordinates only without scale, transform or
         * viewport; otherwise the whole buffer counts as damaged. */
        if (surface->scale == 1 && surface->transform == WL_OUTPUT_TRANSFORM_NORMAL &&
            !surface->has_viewport) {
            damage_add_all(&damage, &surface->pending_surface_damage);
        } else {
            damage_add(&damage, (struct damage_box){0, 0, buffer->width_px, buffer->height_px});
        }
    }
    surface->attach_pending = false;
    memset(&surface->pending_surface_damage, 0, sizeof(surface->pending_surface_damage));
    memset(&surface->pending_buffer_damage, 0, sizeof(surface->pending_buffer_damage));
    if (!buffer) {
        return true;
    }
    /* The other buffers this surface showed now lag behind by this damage. */
    for (uint32_t i = 0; i < SURFACE_RECENT_BUFFERS; i++) {
        struct shm_buffer *other = surface->recent[i] && surface->recent[i] != buffer_id
                                       ? id_table_get(&client->buffers, surface->recent[i])
                                       : NULL;
        if (other) {
            damage_add_all(&other->stale, &damage);
        }
    }
    /* Most recent first; a buffer that falls off the list is wholly stale. */
    uint32_t position = SURFACE_RECENT_BUFFERS - 1;
    for (uint32_t i = 0; i < SURFACE_RECENT_BUFFERS; i++) {
        if (surface->recent[i] == buffer_id) {
            position = i;
            break;
        }
    }
    struct shm_buffer *dropped = position == SURFACE_RECENT_BUFFERS - 1 && surface->recent[position]
                                     ? id_table_get(&client->buffers, surface->recent[position])
                                     : NULL;
    if (dropped && dropped != buffer) {
        damage_add(&dropped->stale,
                   (struct damage_box){0, 0, dropped->width_px, dropped->height_px});
    }
    memmove(&surface->recent[1], &surface->recent[0], position * sizeof(surface->recent[0]));
    surface->recent[0] = buffer_id;

    damage_add_all(&buffer->stale, &damage);
    client->shm_commits++;
    struct timespec started, ended;
    clock_gettime(CLOCK_MONOTONIC, &started);
    bool copied = copy_damage(client, buffer, &buffer->stale);
    clock_gettime(CLOCK_MONOTONIC, &ended);
    client->shm_copy_ns += (uint64_t)((ended.tv_sec - started.tv_sec) * 1000000000ll +
                                      (ended.tv_nsec - started.tv_nsec));
    if (!copied) {
        proxy_client_fail(client, surface_id, WL_SHM_ERROR_INVALID_FD,
                          "the memory of wl_buffer@%u cannot be read (was its file shrunk?)",
                          buffer_id);
        return false;
    }
    memset(&buffer->stale, 0, sizeof(buffer->stale));
    return true;
}

bool shm_surface_request(struct proxy_client *client, const struct wire_message *message,
                         const uint8_t *bytes)
{
    uint32_t surface_id = message->object_id;
    if (message->opcode == WL_SURFACE_DESTROY) {
        free(id_table_remove(&client->surfaces, surface_id));
        return true;
    }
    struct surface_state *surface = surface_get(client, surface_id);
    if (!surface) {
        proxy_client_fail(client, surface_id, WL_DISPLAY_ERROR_NO_MEMORY, "out of memory");
        return false;
    }
    int32_t args[4];
    memcpy(args, bytes + 8,
           message->size_bytes - 8u < sizeof(args) ? message->size_bytes - 8u : sizeof(args));
    switch (message->opcode) {
    case WL_SURFACE_ATTACH:
        surface->attach_pending = true;
        surface->pending_buffer_id = (uint32_t)args[0];
        return true;
    case WL_SURFACE_DAMAGE:
        damage_add(&surface->pending_surface_damage,
                   box_from_rect(args[0], args[1], args[2], args[3]));
        return true;
    case WL_SURFACE_DAMAGE_BUFFER:
        damage_add(&surface->pending_buffer_damage,
                   box_from_rect(args[0], args[1], args[2], args[3]));
        return true;
    case WL_SURFACE_SET_BUFFER_SCALE:
        surface->pending_scale = args[0];
        return true;
    case WL_SURFACE_SET_BUFFER_TRANSFORM:
        surface->pending_transform = (uint32_t)args[0];
        return true;
    case WL_SURFACE_COMMIT:
        return commit(client, surface_id, surface);
    default:
        return true;
    }
}

void shm_finish(struct proxy_client *client)
{
    struct id_table *tables[] = {&client->buffers, &client->pools, &client->surfaces};
    for (size_t t = 0; t < 3; t++) {
        struct id_table *table = tables[t];
        for (size_t i = 0; i < table->capacity; i++) {
            if (!table->keys[i]) {
                continue;
            }
            if (table == &client->buffers) {
                buffer_free(client, table->values[i]);
            } else if (table == &client->pools) {
                pool_unref(client, table->values[i]);
            } else {
                free(table->values[i]);
            }
        }
        id_table_finish(table);
    }
}
