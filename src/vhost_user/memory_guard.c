#include "memory_guard.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>

/*
 * A slot goes FREE -> CLAIMED (being filled in) -> ACTIVE -> RETIRING (waiting for handlers
 * to finish) -> FREE. The handler only looks at ACTIVE slots, and counts itself in
 * `handlers_running` before it looks, so unregistering can wait until no handler can still
 * act on a range about to be unmapped (and perhaps reused by someone else's mapping).
 */
enum { SLOT_FREE, SLOT_CLAIMED, SLOT_ACTIVE, SLOT_RETIRING };

struct guard_slot {
    atomic_uint state;
    atomic_uintptr_t base;
    atomic_size_t size;
    atomic_size_t page_bytes;
    atomic_bool broken;
};

static struct guard_slot slots[VU_MEMORY_GUARD_SLOTS];
static atomic_int handlers_running;
static struct sigaction previous_action;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_error;

/* What would have happened to a SIGBUS that is none of ours. */
static void chain(int sig, siginfo_t *info, void *context)
{
    if (previous_action.sa_flags & SA_SIGINFO) {
        if (previous_action.sa_sigaction) {
            previous_action.sa_sigaction(sig, info, context);
            return;
        }
    } else if (previous_action.sa_handler == SIG_IGN) {
        if (info->si_code <= 0) {
            return; /* sent by someone, and ignored before we came */
        }
        /* A real fault cannot be ignored: returning would fault again forever. */
    } else if (previous_action.sa_handler != SIG_DFL) {
        previous_action.sa_handler(sig);
        return;
    }
    /* The default action: restore it, then let the fault recur (or the signal come again). */
    struct sigaction fallback = {.sa_handler = SIG_DFL};
    sigemptyset(&fallback.sa_mask);
    sigaction(SIGBUS, &fallback, NULL);
    if (info->si_code <= 0) {
        raise(sig); /* delivered once this handler returns */
    }
}

/* Replaces the faulting page with zeros if it lies in a guarded mapping. */
static bool patch_fault(const siginfo_t *info)
{
    /* A truncated file faults with BUS_ADRERR; hardware errors and signals sent by a process
     * are not ours to hide. */
    if (info->si_code != BUS_ADRERR) {
        return false;
    }
    uintptr_t address = (uintptr_t)info->si_addr;
    for (uint32_t i = 0; i < VU_MEMORY_GUARD_SLOTS; i++) {
        struct guard_slot *slot = &slots[i];
        if (atomic_load(&slot->state) != SLOT_ACTIVE) {
            continue;
        }
        uintptr_t base = atomic_load(&slot->base);
        if (address < base || address - base >= atomic_load(&slot->size)) {
            continue;
        }
        size_t page_bytes = atomic_load(&slot->page_bytes);
        void *page = (void *)(address & ~(uintptr_t)(page_bytes - 1));
        /* mmap is a plain system call: safe here in practice, though POSIX does not list it. */
        void *zeros = mmap(page, page_bytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (zeros == MAP_FAILED) {
            return false;
        }
        atomic_store(&slot->broken, true);
        return true;
    }
    return false;
}

static void on_sigbus(int sig, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    atomic_fetch_add(&handlers_running, 1);
    bool patched = patch_fault(info);
    atomic_fetch_sub(&handlers_running, 1);
    errno = saved_errno;
    if (!patched) {
        chain(sig, info, context);
    }
}

static void install(void)
{
    struct sigaction action = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_ONSTACK};
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGBUS, &action, &previous_action) < 0) {
        install_error = errno;
    }
}

int vu_memory_guard_register(void *base, size_t size, size_t page_bytes)
{
    if (size == 0 || page_bytes == 0 || (page_bytes & (page_bytes - 1)) ||
        ((uintptr_t)base & (page_bytes - 1))) {
        return -EINVAL;
    }
    pthread_once(&install_once, install);
    if (install_error) {
        return -install_error;
    }
    for (uint32_t i = 0; i < VU_MEMORY_GUARD_SLOTS; i++) {
        struct guard_slot *slot = &slots[i];
        unsigned expected = SLOT_FREE;
        if (!atomic_compare_exchange_strong(&slot->state, &expected, SLOT_CLAIMED)) {
            continue;
        }
        atomic_store(&slot->base, (uintptr_t)base);
        atomic_store(&slot->size, size);
        atomic_store(&slot->page_bytes, page_bytes);
        atomic_store(&slot->broken, false);
        atomic_store(&slot->state, SLOT_ACTIVE);
        return (int)i;
    }
    return -ENOSPC;
}

void vu_memory_guard_unregister(int slot)
{
    if (slot < 0 || (unsigned)slot >= VU_MEMORY_GUARD_SLOTS) {
        return;
    }
    atomic_store(&slots[slot].state, SLOT_RETIRING);
    /* A handler that saw the slot active has counted itself already: wait for it. */
    while (atomic_load(&handlers_running) > 0) {
        sched_yield();
    }
    atomic_store(&slots[slot].state, SLOT_FREE);
}

bool vu_memory_guard_broken(int slot)
{
    return slot >= 0 && (unsigned)slot < VU_MEMORY_GUARD_SLOTS && atomic_load(&slots[slot].broken);
}
