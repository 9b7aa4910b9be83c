/*
 * Restores a snapshot file made of the fuzzer's bytes, then uses whatever came back. The
 * snapshot file is untrusted input: it may come from another host or a tampered disk.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <neep/renderer.h>

static char snapshot_dir[64];

static void remove_snapshot_dir(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/neep-2d-state", snapshot_dir);
    unlink(path);
    rmdir(snapshot_dir);
}

static const char *prepare_dir(void)
{
    if (snapshot_dir[0] == '\0') {
        snprintf(snapshot_dir, sizeof(snapshot_dir), "/tmp/neep-fuzz-restore-XXXXXX");
        if (!mkdtemp(snapshot_dir)) {
            abort();
        }
        atexit(remove_snapshot_dir);
    }
    return snapshot_dir;
}

/* Failures are expected by the thousand; the rate-limited log would only slow things down. */
static void quiet_log(void *user_data, enum neep_log_level level, const char *message)
{
    (void)user_data;
    (void)level;
    (void)message;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = prepare_dir();
    char path[128];
    snprintf(path, sizeof(path), "%s/neep-2d-state", dir);
    FILE *file = fopen(path, "wb");
    if (!file) {
        abort();
    }
    if (size > 0 && fwrite(data, 1, size, file) != size) {
        abort();
    }
    fclose(file);

    struct neep_renderer_config config = {.memory_budget_bytes = 256u << 20, .log_fn = quiet_log};
    struct neep_renderer *renderer;
    if (neep_renderer_create(&config, &renderer) < 0) {
        abort();
    }
    if (neep_renderer_restore(renderer, dir) == 0) {
        /* Read every restored resource back in full. */
        static uint8_t pixels[1u << 22];
        for (uint32_t id = 1; id < 64; id++) {
            struct neep_resource_info info;
            if (neep_resource_get_info(renderer, id, &info) < 0 || info.is_blob) {
                continue;
            }
            struct neep_transfer box = {.width = info.width, .height = info.height, .depth = 1};
            struct iovec iov = {pixels, sizeof(pixels)};
            neep_resource_transfer_read(renderer, 0, id, &box, &iov, 1);
        }
    } else if (neep_renderer_memory_used_bytes(renderer) != 0) {
        abort(); /* a failed restore must leave nothing behind */
    }
    neep_renderer_destroy(renderer);
    return 0;
}
