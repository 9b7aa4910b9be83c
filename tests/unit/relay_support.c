/*
 * What neep-wl's relay and shm code need around them, for tests and fuzzing on the host: the
 * connection plumbing of client.c and channel.c recorded instead of sent (the host blobs come
 * from fake_host.c).
 */
#include "relay_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct relay_record *record_of(struct proxy_client *client)
{
    return (struct relay_record *)client;
}

static void append(struct relay_stream *stream, const uint8_t *bytes, size_t size)
{
    if (stream->size + size <= sizeof(stream->bytes)) {
        memcpy(stream->bytes + stream->size, bytes, size);
        stream->size += size;
    }
    stream->messages++;
}

bool proxy_client_queue(struct proxy_client *client, const uint8_t *message, size_t size,
                        const int *fds, uint32_t fd_count)
{
    struct relay_record *record = record_of(client);
    append(&record->to_client, message, size);
    for (uint32_t i = 0; i < fd_count; i++) {
        struct stat st;
        record->last_fd_to_client_inode = fstat(fds[i], &st) == 0 ? st.st_ino : 0;
        close(fds[i]);
        record->fds_to_client++;
    }
    return true;
}

bool proxy_client_send(struct proxy_client *client, const uint8_t *message, size_t size,
                       const uint32_t *ids, const uint32_t *types, uint32_t id_count)
{
    struct relay_record *record = record_of(client);
    append(&record->to_host, message, size);
    for (uint32_t i = 0; i < id_count && record->id_count < RELAY_RECORD_IDS; i++) {
        record->ids[record->id_count] = ids[i];
        record->id_types[record->id_count++] = types[i];
    }
    return true;
}

bool proxy_client_flush_host(struct proxy_client *client)
{
    (void)client;
    return true;
}

void proxy_client_fail(struct proxy_client *client, uint32_t object_id, uint32_t code,
                       const char *format, ...)
{
    struct relay_record *record = record_of(client);
    if (client->closing) {
        return;
    }
    va_list args;
    va_start(args, format);
    vsnprintf(record->error, sizeof(record->error), format, args);
    va_end(args);
    record->error_object = object_id;
    record->error_code = code;
    client->closing = true;
}

void relay_record_init(struct relay_record *record)
{
    fake_host_reset();
    memset(record, 0, sizeof(*record));
    struct proxy_client *client = &record->client;
    client->channel.drm_fd = -1;
    id_table_init(&client->pools);
    id_table_init(&client->buffers);
    id_table_init(&client->surfaces);
    id_table_init(&client->read_pipes);
    id_table_init(&client->write_pipes);
    if (relay_init(client) < 0) {
        abort();
    }
}

void relay_record_finish(struct relay_record *record)
{
    struct proxy_client *client = &record->client;
    shm_finish(client);
    for (size_t i = 0; i < client->read_pipes.capacity; i++) {
        if (client->read_pipes.keys[i]) {
            struct proxy_pipe *pipe = client->read_pipes.values[i];
            close(pipe->fd);
            free(pipe);
        }
    }
    id_table_finish(&client->read_pipes);
    id_table_finish(&client->write_pipes);
    fd_fifo_clear(&client->client_fds);
    fd_fifo_clear(&client->host_fds);
    relay_finish(client);
}
