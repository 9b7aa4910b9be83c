/*
 * neep-wl the program (its path in $NEEP_WL), run on the host: there is no virtio-gpu here,
 * so every client it takes is refused with "cannot reach the host compositor", which is
 * enough to see its listener at work when file descriptors run out.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

struct neep_wl {
    pid_t pid;
    char dir[64];
    struct sockaddr_un address;
    struct rlimit fd_limit; /* as it started */
};

static uint64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

static int connect_client(const struct neep_wl *n)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    if (connect(fd, (const struct sockaddr *)&n->address, sizeof(n->address)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits up to `timeout_ms` for the wl_display.error that refuses a client; false if none. */
static bool hear_refusal(int fd, int timeout_ms, char *text, size_t size)
{
    struct pollfd ready = {.fd = fd, .events = POLLIN};
    if (poll(&ready, 1, timeout_ms) != 1) {
        return false;
    }
    uint8_t event[1024];
    ssize_t got = recv(fd, event, sizeof(event), MSG_DONTWAIT);
    uint32_t header[5];
    if (got < (ssize_t)sizeof(header)) {
        return false;
    }
    memcpy(header, event, sizeof(header));
    CHECK_EQ(header[0], 1); /* wl_display.error */
    CHECK_EQ(header[1] & 0xffff, 0);
    size_t length = strnlen((const char *)event + sizeof(header), (size_t)got - sizeof(header));
    length = length < size - 1 ? length : size - 1;
    memcpy(text, event + sizeof(header), length);
    text[length] = 0;
    return true;
}

/* A client's whole life: connects, and expects to be refused with `reason` at once. */
static void expect_refusal(const struct neep_wl *n, const char *reason)
{
    int fd = connect_client(n);
    CHECK(fd >= 0);
    char text[512];
    CHECK(hear_refusal(fd, 5000, text, sizeof(text)));
    if (!strstr(text, reason)) {
        fprintf(stderr, "refused with \"%s\", expected \"%s\"\n", text, reason);
    }
    CHECK(strstr(text, reason) != NULL);
    close(fd);
}

static void start(struct neep_wl *n)
{
    const char *program = getenv("NEEP_WL");
    CHECK(program != NULL);
    snprintf(n->dir, sizeof(n->dir), "/tmp/neep-wl-test-XXXXXX");
    CHECK(mkdtemp(n->dir) != NULL);
    n->address = (struct sockaddr_un){.sun_family = AF_UNIX};
    snprintf(n->address.sun_path, sizeof(n->address.sun_path), "%s/wayland-test", n->dir);
    n->pid = fork();
    CHECK(n->pid >= 0);
    if (n->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed check must not leave it running */
        setenv("XDG_RUNTIME_DIR", n->dir, 1);
        execl(program, "neep-wl", "--socket", "wayland-test", "--render-node", "/nonexistent",
              (char *)NULL);
        _exit(127);
    }
    /* Listening once a client gets its answer. */
    int fd = -1;
    for (int i = 0; i < 500 && fd < 0; i++) {
        fd = connect_client(n);
        if (fd < 0) {
            usleep(10000);
        }
    }
    CHECK(fd >= 0);
    char text[512];
    CHECK(hear_refusal(fd, 5000, text, sizeof(text)));
    CHECK(strstr(text, "cannot reach the host compositor") != NULL);
    /* Its end closed (end of stream here), neep-wl holds the fds it holds when idle. */
    struct pollfd closed = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&closed, 1, 5000), 1);
    CHECK_EQ(recv(fd, text, sizeof(text), MSG_DONTWAIT), 0);
    close(fd);
    CHECK_EQ(prlimit(n->pid, RLIMIT_NOFILE, NULL, &n->fd_limit), 0);
}

static void stop(struct neep_wl *n)
{
    CHECK_EQ(kill(n->pid, SIGTERM), 0);
    int status;
    CHECK_EQ(waitpid(n->pid, &status, 0), n->pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char path[128];
    snprintf(path, sizeof(path), "%s.lock", n->address.sun_path);
    unlink(path);
    unlink(n->address.sun_path);
    CHECK_EQ(rmdir(n->dir), 0);
}

/* The lowest fd number neep-wl does not use now: the next fd it opens gets it. */
static int lowest_free_fd(const struct neep_wl *n)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)n->pid);
    bool used[1024] = {false};
    DIR *dir = opendir(path);
    CHECK(dir != NULL);
    for (struct dirent *entry; (entry = readdir(dir));) {
        int fd = atoi(entry->d_name);
        if (entry->d_name[0] != '.' && fd < 1024) {
            used[fd] = true;
        }
    }
    closedir(dir);
    int fd = 0;
    while (fd < 1024 && used[fd]) {
        fd++;
    }
    CHECK(fd < 1024);
    return fd;
}

/* Lets neep-wl open fds numbered below `limit` only (0: as it started). */
static void limit_fds(const struct neep_wl *n, rlim_t limit)
{
    struct rlimit lowered = {limit ? limit : n->fd_limit.rlim_cur, n->fd_limit.rlim_max};
    CHECK_EQ(prlimit(n->pid, RLIMIT_NOFILE, &lowered, NULL), 0);
}

/* CPU time neep-wl has used, in milliseconds. */
static uint64_t cpu_ms(const struct neep_wl *n)
{
    char path[64], stat[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)n->pid);
    FILE *file = fopen(path, "re");
    CHECK(file != NULL);
    size_t got = fread(stat, 1, sizeof(stat) - 1, file);
    fclose(file);
    stat[got] = 0;
    /* After the command's closing parenthesis: state is field 3, utime 14, stime 15. */
    const char *fields = strrchr(stat, ')');
    CHECK(fields != NULL);
    unsigned long long user = 0, system = 0;
    CHECK_EQ(
        sscanf(fields + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &user, &system),
        2);
    return (user + system) * 1000u / (uint64_t)sysconf(_SC_CLK_TCK);
}

/* Busy-looping on a readable listener would take most of a core; refusing takes nothing. */
static void check_idle(const struct neep_wl *n, uint64_t cpu_before_ms, uint64_t since_ms)
{
    uint64_t used_ms = cpu_ms(n) - cpu_before_ms, wall_ms = now_ms() - since_ms;
    if (used_ms * 4 > wall_ms) {
        fprintf(stderr, "neep-wl used %llu ms of CPU in %llu ms\n", (unsigned long long)used_ms,
                (unsigned long long)wall_ms);
    }
    CHECK(used_ms * 4 <= wall_ms);
}

TEST(clients_beyond_the_fd_limit_are_refused_without_spinning)
{
    struct neep_wl n;
    start(&n);
    /* Not one more fd than it has now: each client has to be accepted on the spare one. */
    limit_fds(&n, (rlim_t)lowest_free_fd(&n));
    uint64_t cpu_before_ms = cpu_ms(&n), since_ms = now_ms();
    for (int i = 0; i < 5; i++) {
        expect_refusal(&n, "no file descriptors left");
    }
    usleep(1000 * 1000);
    check_idle(&n, cpu_before_ms, since_ms);
    /* Fds to spare again: clients are served (here: told there is no virtio-gpu). */
    limit_fds(&n, 0);
    expect_refusal(&n, "cannot reach the host compositor");
    stop(&n);
}

TEST(without_a_spare_fd_the_listener_waits_instead_of_spinning)
{
    struct neep_wl n;
    start(&n);
    /* One fd fewer: even the spare one (the last neep-wl opened as it started) is past the
     * limit once given up, so the client has to wait. */
    limit_fds(&n, (rlim_t)lowest_free_fd(&n) - 1);
    uint64_t cpu_before_ms = cpu_ms(&n), since_ms = now_ms();
    int waiting = connect_client(&n);
    CHECK(waiting >= 0);
    char text[512];
    CHECK(!hear_refusal(waiting, 1500, text, sizeof(text)));
    check_idle(&n, cpu_before_ms, since_ms);
    /* The waiting client is taken once fds are free again. */
    limit_fds(&n, 0);
    CHECK(hear_refusal(waiting, 5000, text, sizeof(text)));
    CHECK(strstr(text, "cannot reach the host compositor") != NULL);
    close(waiting);
    expect_refusal(&n, "cannot reach the host compositor");
    stop(&n);
}
