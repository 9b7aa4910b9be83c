/*
 * Guest memory that survives its front-end shrinking it.
 *
 * The front-end owns the files behind guest memory. If it truncates one after SET_MEM_TABLE,
 * any later access to the vanished pages raises SIGBUS, and accesses happen everywhere (ring
 * reads, iov copies, third-party renderers), so they cannot be wrapped one by one. Instead,
 * every mapping of guest memory is registered here, and a process-wide SIGBUS handler maps
 * an anonymous zero page over a faulting page inside a registered mapping: the access
 * restarts and reads zeros (writes go nowhere shared). The mapping is then flagged broken for
 * its owner to notice and stop the device. Faults anywhere else go to the handler that was
 * there before (or the default action).
 *
 * The registry is a fixed array of atomics, safe to read from the handler on any thread.
 */
#ifndef NEEP_VHOST_USER_MEMORY_GUARD_H
#define NEEP_VHOST_USER_MEMORY_GUARD_H

#include <stdbool.h>
#include <stddef.h>

/* Mappings registered at once, process-wide. */
#define VU_MEMORY_GUARD_SLOTS 64u

/* Guards the mapping [base, base + size), whose pages are `page_bytes` long (a power of two;
 * base must be aligned to it). Installs the SIGBUS handler on first use. Returns a slot
 * (>= 0) or a negative errno: -ENOSPC when every slot is taken. */
int vu_memory_guard_register(void *base, size_t size, size_t page_bytes);
/* Stops guarding a slot (negative slots are ignored). Call it before unmapping: once it
 * returns, no handler still works on the range. */
void vu_memory_guard_unregister(int slot);
/* True if an access to the slot's mapping faulted since it was registered. */
bool vu_memory_guard_broken(int slot);

#endif
