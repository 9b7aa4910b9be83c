/* The vhost-user guest memory table and split-ring walker, fed well-formed and hostile rings. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "vhost_user/memory.h"
#include "vhost_user/memory_guard.h"
#include "vhost_user/virtqueue.h"

#define REGION_BYTES (1u << 20)
#define UVA_BASE     0x7f0000000000ull
#define DESC_GPA     0x1000u
#define AVAIL_GPA    0x2000u
#define USED_GPA     0x3000u
#define QUEUE_SIZE   8u

struct ring_fixture {
    struct vu_memory_table memory;
    struct vu_virtqueue vq;
    struct vu_chain *chain;
    uint8_t *guest; /* our own view of the region */
};

static int make_memfd(size_t size)
{
    int fd = memfd_create("guest", MFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_EQ(ftruncate(fd, (off_t)size), 0);
    return fd;
}

/* One region: guest-physical [0, 1 MiB), front-end virtual at UVA_BASE. */
static void fixture_init(struct ring_fixture *f)
{
    memset(f, 0, sizeof(*f));
    vu_memory_init(&f->memory);
    struct vu_memory message = {.nregions = 1};
    message.regions[0] = (struct vu_memory_region){0, REGION_BYTES, UVA_BASE, 0};
    int fd = make_memfd(REGION_BYTES);
    const char *reason = NULL;
    CHECK_EQ(vu_memory_set(&f->memory, &message, &fd, 1, &reason), 0);
    uint64_t contiguous;
    f->guest = vu_memory_gpa(&f->memory, 0, REGION_BYTES, &contiguous);
    CHECK(f->guest && contiguous == REGION_BYTES);

    vu_virtqueue_init(&f->vq, 0);
    f->vq.size = QUEUE_SIZE;
    f->vq.addr.desc_user_addr = UVA_BASE + DESC_GPA;
    f->vq.addr.avail_user_addr = UVA_BASE + AVAIL_GPA;
    f->vq.addr.used_user_addr = UVA_BASE + USED_GPA;
    f->vq.addr_set = true;
    CHECK_EQ(vu_virtqueue_map(&f->vq, &f->memory, &reason), 0);
    f->chain = malloc(sizeof(*f->chain));
}

static void fixture_finish(struct ring_fixture *f)
{
    vu_virtqueue_stop(&f->vq);
    vu_memory_finish(&f->memory);
    free(f->chain);
}

static struct vring_desc *desc(struct ring_fixture *f, uint32_t index)
{
    return (struct vring_desc *)(f->guest + DESC_GPA) + index;
}

static void set_desc(struct ring_fixture *f, uint32_t index, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    *desc(f, index) = (struct vring_desc){addr, len, flags, next};
}

/* Makes `head` available as the next chain. */
static void offer(struct ring_fixture *f, uint16_t head)
{
    struct vring_avail *avail = (struct vring_avail *)(f->guest + AVAIL_GPA);
    avail->ring[avail->idx % QUEUE_SIZE] = head;
    avail->idx++;
}

static int pop(struct ring_fixture *f, const char **reason)
{
    *reason = NULL;
    return vu_virtqueue_pop(&f->vq, &f->memory, f->chain, reason);
}

TEST(a_command_chain_is_read)
{
    struct ring_fixture f;
    fixture_init(&f);
    const char *reason;
    CHECK_EQ(pop(&f, &reason), 0); /* empty */
    set_desc(&f, 0, 0x10000, 24, VRING_DESC_F_NEXT, 1);
    set_desc(&f, 1, 0x10100, 100, VRING_DESC_F_NEXT, 2);
    set_desc(&f, 2, 0x20000, 24, VRING_DESC_F_WRITE, 0);
    offer(&f, 0);
    CHECK_EQ(pop(&f, &reason), 1);
    CHECK_EQ(f.chain->head, 0);
    CHECK_EQ(f.chain->out_count, 2);
    CHECK_EQ(f.chain->in_count, 1);
    CHECK(f.chain->out[1].iov_base == f.guest + 0x10100);
    CHECK_EQ(f.chain->in[0].iov_len, 24);
    vu_virtqueue_push(&f.vq, 0, 24);
    struct vring_used *used = (struct vring_used *)(f.guest + USED_GPA);
    CHECK_EQ(used->idx, 1);
    CHECK_EQ(used->ring[0].len, 24);
    CHECK_EQ(pop(&f, &reason), 0);
    fixture_finish(&f);
}

TEST(an_indirect_table_is_followed_once)
{
    struct ring_fixture f;
    fixture_init(&f);
    struct vring_desc *table = (struct vring_desc *)(f.guest + 0x30000);
    table[0] = (struct vring_desc){0x10000, 24, VRING_DESC_F_NEXT, 1};
    table[1] = (struct vring_desc){0x20000, 24, VRING_DESC_F_WRITE, 0};
    set_desc(&f, 0, 0x30000, 2 * sizeof(struct vring_desc), VRING_DESC_F_INDIRECT, 0);
    offer(&f, 0);
    const char *reason;
    CHECK_EQ(pop(&f, &reason), 1);
    CHECK_EQ(f.chain->out_count, 1);
    CHECK_EQ(f.chain->in_count, 1);
    fixture_finish(&f);
}

/* Each broken ring below stops the queue with a reason and never reads outside memory. */
static void expect_broken(struct ring_fixture *f, const char *expected_reason)
{
    const char *reason;
    CHECK(pop(f, &reason) < 0);
    CHECK(f->vq.broken);
    CHECK(reason && strstr(reason, expected_reason));
    CHECK_EQ(pop(f, &reason), 0); /* stays stopped */
}

TEST(looping_chains_break_the_ring)
{
    struct ring_fixture f;
    fixture_init(&f);
    set_desc(&f, 0, 0x10000, 24, VRING_DESC_F_NEXT, 1);
    set_desc(&f, 1, 0x10000, 24, VRING_DESC_F_NEXT, 0);
    offer(&f, 0);
    expect_broken(&f, "loops");
    fixture_finish(&f);
}

TEST(out_of_range_indices_break_the_ring)
{
    struct ring_fixture f;
    fixture_init(&f);
    set_desc(&f, 0, 0x10000, 24, VRING_DESC_F_NEXT, QUEUE_SIZE);
    offer(&f, 0);
    expect_broken(&f, "out of range");
    fixture_finish(&f);

    fixture_init(&f);
    offer(&f, QUEUE_SIZE + 3); /* head itself out of range */
    expect_broken(&f, "out of range");
    fixture_finish(&f);
}

TEST(an_available_index_that_jumps_breaks_the_ring)
{
    struct ring_fixture f;
    fixture_init(&f);
    struct vring_avail *avail = (struct vring_avail *)(f.guest + AVAIL_GPA);
    avail->idx = QUEUE_SIZE + 1;
    expect_broken(&f, "further than the ring");
    fixture_finish(&f);
}

TEST(buffers_outside_guest_memory_break_the_ring)
{
    const struct {
        uint64_t addr;
        uint32_t len;
        const char *reason;
    } cases[] = {
        {REGION_BYTES, 16, "outside guest memory"},
        {REGION_BYTES - 8, 16, "outside guest memory"},
        {UINT64_MAX - 4, 16, "wraps"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ring_fixture f;
        fixture_init(&f);
        set_desc(&f, 0, cases[i].addr, cases[i].len, 0, 0);
        offer(&f, 0);
        expect_broken(&f, cases[i].reason);
        fixture_finish(&f);
    }
}

TEST(bad_indirect_tables_break_the_ring)
{
    struct ring_fixture f;
    fixture_init(&f);
    struct vring_desc *table = (struct vring_desc *)(f.guest + 0x30000);
    table[0] = (struct vring_desc){0x30000, 16, VRING_DESC_F_INDIRECT, 0};
    set_desc(&f, 0, 0x30000, 16, VRING_DESC_F_INDIRECT, 0);
    offer(&f, 0);
    expect_broken(&f, "nested indirect");
    fixture_finish(&f);

    fixture_init(&f);
    set_desc(&f, 0, 0x30000, 15, VRING_DESC_F_INDIRECT, 0);
    offer(&f, 0);
    expect_broken(&f, "bad length");
    fixture_finish(&f);

    fixture_init(&f);
    set_desc(&f, 0, 0x30000, 16 * (VU_MAX_INDIRECT_DESCRIPTORS + 1), VRING_DESC_F_INDIRECT, 0);
    offer(&f, 0);
    expect_broken(&f, "bad length");
    fixture_finish(&f);

    fixture_init(&f);
    set_desc(&f, 0, REGION_BYTES - 16, 32, VRING_DESC_F_INDIRECT, 0);
    offer(&f, 0);
    expect_broken(&f, "outside guest memory");
    fixture_finish(&f);

    fixture_init(&f);
    set_desc(&f, 0, 0x30000, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
    offer(&f, 0);
    expect_broken(&f, "with a next");
    fixture_finish(&f);
}

TEST(readable_after_writable_breaks_the_ring)
{
    struct ring_fixture f;
    fixture_init(&f);
    set_desc(&f, 0, 0x20000, 24, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    set_desc(&f, 1, 0x10000, 24, 0, 0);
    offer(&f, 0);
    expect_broken(&f, "follows a writable");
    fixture_finish(&f);
}

TEST(rings_outside_memory_do_not_start)
{
    struct ring_fixture f;
    fixture_init(&f);
    const char *reason = NULL;
    f.vq.addr.used_user_addr = UVA_BASE + REGION_BYTES - 8;
    CHECK_EQ(vu_virtqueue_map(&f.vq, &f.memory, &reason), -EINVAL);
    f.vq.addr.used_user_addr = UVA_BASE + USED_GPA + 2; /* misaligned */
    CHECK_EQ(vu_virtqueue_map(&f.vq, &f.memory, &reason), -EINVAL);
    fixture_finish(&f);
}

TEST(buffers_split_across_regions)
{
    struct vu_memory_table memory;
    vu_memory_init(&memory);
    struct vu_memory message = {.nregions = 2};
    message.regions[0] = (struct vu_memory_region){0, 0x10000, UVA_BASE, 0};
    message.regions[1] = (struct vu_memory_region){0x10000, 0x10000, UVA_BASE + 0x100000, 0};
    int fds[2] = {make_memfd(0x10000), make_memfd(0x10000)};
    const char *reason;
    CHECK_EQ(vu_memory_set(&memory, &message, fds, 2, &reason), 0);
    uint64_t contiguous;
    CHECK(vu_memory_gpa(&memory, 0xff00, 0x200, &contiguous) != NULL);
    CHECK_EQ(contiguous, 0x100);
    CHECK(vu_memory_gpa(&memory, 0x20000, 1, &contiguous) == NULL);
    /* A ring must lie within one region of the front-end's address space. */
    CHECK(vu_memory_uva(&memory, UVA_BASE + 0xfff0, 0x20) == NULL);
    vu_memory_finish(&memory);
}

TEST(bad_memory_tables_are_refused_and_their_fds_closed)
{
    struct vu_memory_table memory;
    vu_memory_init(&memory);
    const char *reason;
    struct vu_memory message = {.nregions = 2};
    message.regions[0] = (struct vu_memory_region){0, 0x10000, UVA_BASE, 0};
    message.regions[1] = (struct vu_memory_region){0x8000, 0x10000, UVA_BASE + 0x100000, 0};
    int fds[2] = {make_memfd(0x10000), make_memfd(0x10000)};
    CHECK_EQ(vu_memory_set(&memory, &message, fds, 2, &reason), -EINVAL); /* overlap */
    CHECK(strstr(reason, "overlap"));

    message.nregions = 1;
    message.regions[0].memory_size = 0x20000; /* bigger than its file */
    fds[0] = make_memfd(0x10000);
    CHECK_EQ(vu_memory_set(&memory, &message, fds, 1, &reason), -EINVAL);

    message.regions[0] = (struct vu_memory_region){UINT64_MAX - 10, 0x1000, 0, 0};
    fds[0] = make_memfd(0x10000);
    CHECK_EQ(vu_memory_set(&memory, &message, fds, 1, &reason), -EINVAL);

    message.regions[0] = (struct vu_memory_region){0, 0x1000, 0, 0};
    fds[0] = make_memfd(0x10000);
    fds[1] = make_memfd(0x10000);
    CHECK_EQ(vu_memory_set(&memory, &message, fds, 2, &reason), -EINVAL); /* fd count */
    CHECK_EQ(memory.count, 0);
    vu_memory_finish(&memory);
}

/* ---- guest memory the front-end shrinks --------------------------------------------------- */

static void count_broken(void *user_data, const struct vu_mapped_region *region, uint32_t index,
                         bool retired)
{
    int *counts = user_data;
    counts[retired ? 1 : 0]++;
}

TEST(a_guarded_mapping_reads_zeros_where_its_file_shrank)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int fd = make_memfd(2 * page);
    uint8_t *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(map != MAP_FAILED);
    memset(map, 0xab, 2 * page);
    int slot = vu_memory_guard_register(map, 2 * page, page);
    CHECK(slot >= 0);
    CHECK(!vu_memory_guard_broken(slot));

    CHECK_EQ(ftruncate(fd, (off_t)page), 0);
    volatile uint8_t *gone = map + page;
    CHECK_EQ(gone[17], 0); /* would be SIGBUS */
    gone[17] = 1;          /* private now: the file does not grow */
    CHECK_EQ(gone[17], 1);
    CHECK(vu_memory_guard_broken(slot));
    CHECK_EQ(map[0], 0xab); /* the page the file still has stays shared */
    struct stat st;
    CHECK_EQ(fstat(fd, &st), 0);
    CHECK_EQ(st.st_size, (off_t)page);

    vu_memory_guard_unregister(slot);
    munmap(map, 2 * page);
    close(fd);
}

TEST(a_fault_outside_guarded_memory_still_kills)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int guarded_fd = make_memfd(page);
    void *guarded = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, guarded_fd, 0);
    CHECK(guarded != MAP_FAILED);
    int slot = vu_memory_guard_register(guarded, page, page);
    CHECK(slot >= 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int quiet = open("/dev/null", O_WRONLY);
        if (quiet >= 0) {
            dup2(quiet, STDERR_FILENO); /* a sanitizer's report of the fault is expected */
        }
        int fd = make_memfd(page);
        volatile uint8_t *other = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
        if (other == MAP_FAILED || ftruncate(fd, 0) < 0) {
            _exit(41);
        }
        uint8_t byte = other[0];
        _exit(byte == 0 ? 42 : 43); /* survived: the guard swallowed someone else's fault */
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    /* Killed by SIGBUS, or (under a sanitizer, whose handler was there first) reported and
     * made to abort or exit. Never still running past the fault. */
    CHECK((WIFSIGNALED(status) && (WTERMSIG(status) == SIGBUS || WTERMSIG(status) == SIGABRT)) ||
          (WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) < 41));
    vu_memory_guard_unregister(slot);
    munmap(guarded, page);
    close(guarded_fd);
}

TEST(a_shrunk_region_is_reported_once_and_mapped_afresh_by_the_next_table)
{
    struct vu_memory_table memory;
    vu_memory_init(&memory);
    const char *reason;
    struct vu_memory message = {.nregions = 1};
    message.regions[0] = (struct vu_memory_region){0, REGION_BYTES, UVA_BASE, 0};
    int fd = make_memfd(REGION_BYTES);
    int sent = dup(fd);
    CHECK_EQ(vu_memory_set(&memory, &message, &sent, 1, &reason), 0);
    int counts[2] = {0, 0};
    CHECK_EQ(vu_memory_take_broken(&memory, count_broken, counts), 0);

    CHECK_EQ(ftruncate(fd, REGION_BYTES / 2), 0);
    uint64_t contiguous;
    volatile uint8_t *tail = vu_memory_gpa(&memory, REGION_BYTES - 1, 1, &contiguous);
    CHECK(tail);
    CHECK_EQ(*tail, 0);
    CHECK(vu_memory_broken(&memory));
    CHECK_EQ(vu_memory_take_broken(&memory, count_broken, counts), 1);
    CHECK_EQ(counts[0], 1);
    CHECK_EQ(vu_memory_take_broken(&memory, count_broken, counts), 0); /* once */

    /* The same region again, its file whole: mapped afresh, the broken mapping retired. */
    CHECK_EQ(ftruncate(fd, REGION_BYTES), 0);
    sent = dup(fd);
    CHECK_EQ(vu_memory_set(&memory, &message, &sent, 1, &reason), 0);
    CHECK(!vu_memory_broken(&memory));
    CHECK_EQ(memory.retired_count, 1);
    CHECK_EQ(vu_memory_take_broken(&memory, count_broken, counts), 0); /* told already */
    uint8_t *head = vu_memory_gpa(&memory, 0, 1, &contiguous);
    head[0] = 7;
    uint8_t byte = 0;
    CHECK_EQ(pread(fd, &byte, 1, 0), 1);
    CHECK_EQ(byte, 7); /* shared with the front-end again */

    /* The same table once more keeps the (healthy) mapping. */
    sent = dup(fd);
    CHECK_EQ(vu_memory_set(&memory, &message, &sent, 1, &reason), 0);
    CHECK_EQ(memory.retired_count, 1);
    vu_memory_finish(&memory);
    close(fd);
}

TEST(the_guest_is_interrupted_only_when_it_asks)
{
    struct ring_fixture f;
    fixture_init(&f);
    int call[2];
    CHECK_EQ(pipe(call), 0);
    f.vq.call_fd = call[1];
    f.vq.event_idx = true;
    uint16_t *used_event = (uint16_t *)(f.guest + AVAIL_GPA + 4 + 2 * QUEUE_SIZE);
    *used_event = 1; /* interrupt once used index passes 1 */
    vu_virtqueue_push(&f.vq, 0, 0);
    vu_virtqueue_notify(&f.vq); /* first notification always goes out */
    vu_virtqueue_push(&f.vq, 1, 0);
    vu_virtqueue_notify(&f.vq); /* used 1 -> 2 crosses event 1 */
    vu_virtqueue_push(&f.vq, 2, 0);
    vu_virtqueue_notify(&f.vq); /* 2 -> 3 does not */
    close(call[1]);
    f.vq.call_fd = -1;
    uint64_t counter;
    int writes = 0;
    while (read(call[0], &counter, sizeof(counter)) == sizeof(counter)) {
        writes++;
    }
    CHECK_EQ(writes, 2);
    close(call[0]);
    fixture_finish(&f);
}

TEST(overlapping_ring_parts_do_not_start)
{
    struct ring_fixture f;
    fixture_init(&f);
    const char *reason = NULL;
    /* All three parts at one address: our used-index writes would land on the avail index. */
    f.vq.addr.avail_user_addr = f.vq.addr.desc_user_addr;
    f.vq.addr.used_user_addr = f.vq.addr.desc_user_addr;
    CHECK_EQ(vu_virtqueue_map(&f.vq, &f.memory, &reason), -EINVAL);
    CHECK(reason && strstr(reason, "overlap"));
    CHECK(f.vq.ring.used == NULL);
    /* The used ring starting inside the available ring's last word (its used_event). */
    f.vq.addr.avail_user_addr = UVA_BASE + AVAIL_GPA;
    f.vq.addr.used_user_addr = UVA_BASE + AVAIL_GPA + 4 + 2 * QUEUE_SIZE;
    CHECK_EQ(vu_virtqueue_map(&f.vq, &f.memory, &reason), -EINVAL);
    /* Back to back is fine. */
    f.vq.addr.used_user_addr = UVA_BASE + AVAIL_GPA + 4 + 2 * QUEUE_SIZE + 4;
    CHECK_EQ(vu_virtqueue_map(&f.vq, &f.memory, &reason), 0);
    fixture_finish(&f);
}
