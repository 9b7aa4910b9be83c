/*
 * wl_shm through neep-wl: a client's shared memory never reaches the host. Each wl_buffer
 * gets a shadow, a host blob of the buffer's size that the guest maps, and on
 * wl_surface.commit the proxy copies the bytes that changed from the client's pool into the
 * shadow (one copy per damaged byte). The compositor sees a pool and buffer made by the
 * proxy on the shadow, under the client's buffer id.
 */
#ifndef NEEP_WL_SHM_H
#define NEEP_WL_SHM_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy.h"

/* Whether wl_shm.format may be offered: formats whose layout the proxy knows. */
bool shm_format_supported(uint32_t format);

/* Installs the SIGBUS guard copies from client memory run under (a client may shrink its
 * memfd under the proxy). */
int shm_install_guard(void);

/* Requests; each returns false when the client must be disconnected (an error is queued). */
bool shm_create_pool(struct proxy_client *client, uint32_t pool_id, uint32_t shm_host_id, int fd,
                     int32_t size_bytes);
bool shm_pool_request(struct proxy_client *client, const struct wire_message *message,
                      const uint8_t *bytes);
/* wl_surface requests: records attach, damage, scale and transform; copies at commit. */
bool shm_surface_request(struct proxy_client *client, const struct wire_message *message,
                         const uint8_t *bytes);
void shm_viewport_created(struct proxy_client *client, uint32_t surface_id);
/* After wl_buffer.destroy went to the host. */
void shm_buffer_destroyed(struct proxy_client *client, uint32_t buffer_id);
void shm_finish(struct proxy_client *client);

#endif
