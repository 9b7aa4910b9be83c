#include "protocols.h"

#include "fractional-scale-client-protocol.h"
#include "idle-inhibit-client-protocol.h"
#include "pointer-constraints-client-protocol.h"
#include "presentation-time-client-protocol.h"
#include "primary-selection-client-protocol.h"
#include "relative-pointer-client-protocol.h"
#include "single-pixel-buffer-client-protocol.h"
#include "text-input-v1-client-protocol.h"
#include "text-input-v3-client-protocol.h"
#include "viewporter-client-protocol.h"
#include "wayland-client-protocol.h"
#include "xdg-activation-client-protocol.h"
#include "xdg-decoration-client-protocol.h"
#include "xdg-output-client-protocol.h"
#include "xdg-shell-client-protocol.h"

/* Globals a client binds directly; interfaces reached from them are known through their
 * descriptions. linux-dmabuf is absent on purpose: it is not advertised to guest clients. */
const struct wl_interface *const neep_wl_known_interfaces[] = {
    &wl_compositor_interface,
    &wl_subcompositor_interface,
    &wl_shm_interface,
    &wl_seat_interface,
    &wl_output_interface,
    &wl_data_device_manager_interface,
    &xdg_wm_base_interface,
    &wp_viewporter_interface,
    &wp_presentation_interface,
    &zxdg_decoration_manager_v1_interface,
    &zxdg_output_manager_v1_interface,
    &zwp_primary_selection_device_manager_v1_interface,
    &zwp_text_input_manager_v1_interface,
    &zwp_text_input_manager_v3_interface,
    &zwp_relative_pointer_manager_v1_interface,
    &zwp_pointer_constraints_v1_interface,
    &zwp_idle_inhibit_manager_v1_interface,
    &xdg_activation_v1_interface,
    &wp_fractional_scale_manager_v1_interface,
    &wp_single_pixel_buffer_manager_v1_interface,
};
const size_t neep_wl_known_interface_count =
    sizeof(neep_wl_known_interfaces) / sizeof(neep_wl_known_interfaces[0]);
