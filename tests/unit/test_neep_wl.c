/*
 * neep-wl the program (its path in $NEEP_WL), run on the host: there is no virtio-gpu here,
 * so every client it takes is refused with "cannot reach the host compositor", which is
 * enough to see its listener at work when file descriptors run out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

/* --- Socket activation: the listening socket handed over as systemd's .socket unit does. --- */

/* A listening socket at `dir`/`name`, as systemd's ListenStream= makes it. */
static int listening_socket(const char *dir, const char *name, struct sockaddr_un *address)
{
    *address = (struct sockaddr_un){.sun_family = AF_UNIX};
    snprintf(address->sun_path, sizeof(address->sun_path), "%s/%s", dir, name);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK_EQ(bind(fd, (const struct sockaddr *)address, sizeof(*address)), 0);
    CHECK_EQ(listen(fd, 16), 0);
    return fd;
}

struct activation {
    const char *listen_fds;  /* LISTEN_FDS, or NULL to leave it unset */
    bool pid_is_other;       /* LISTEN_PID names another process */
    bool pid_unset;          /* no LISTEN_PID at all */
    const char *socket_name; /* --socket, or NULL */
    const char *pid_text;    /* LISTEN_PID as given (overrides the pid) */
    int passed_fds[2];       /* what becomes fds 3 and 4 (-1: nothing) */
    char *const *program;    /* run by neep-wl after "--", or NULL */
};

/* Starts neep-wl with fds and LISTEN_* set as `how` says; its stderr comes back in `*errors`. */
static pid_t start_activated(const char *dir, const struct activation *how, int *errors)
{
    const char *program = getenv("NEEP_WL");
    CHECK(program != NULL);
    int error_pipe[2];
    CHECK_EQ(pipe2(error_pipe, O_CLOEXEC), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(error_pipe[1], STDERR_FILENO);
        /* Out of the way of 3 and 4 first, then into place (dup2 clears close-on-exec). */
        int moved[2] = {-1, -1};
        for (int i = 0; i < 2; i++) {
            moved[i] =
                how->passed_fds[i] >= 0 ? fcntl(how->passed_fds[i], F_DUPFD_CLOEXEC, 10) : -1;
        }
        close(3);
        close(4);
        for (int i = 0; i < 2; i++) {
            if (moved[i] >= 0) {
                dup2(moved[i], 3 + i);
            }
        }
        char pid_text[32];
        snprintf(pid_text, sizeof(pid_text), "%d", (int)(how->pid_is_other ? getppid() : getpid()));
        if (!how->pid_unset) {
            setenv("LISTEN_PID", how->pid_text ? how->pid_text : pid_text, 1);
        }
        if (how->listen_fds) {
            setenv("LISTEN_FDS", how->listen_fds, 1);
        }
        setenv("XDG_RUNTIME_DIR", dir, 1);
        char *argv[16] = {"neep-wl", "--render-node", "/nonexistent"};
        int argc = 3;
        if (how->socket_name) {
            argv[argc++] = "--socket";
            argv[argc++] = (char *)how->socket_name;
        }
        if (how->program) {
            argv[argc++] = "--";
            for (int i = 0; how->program[i] && argc < 15; i++) {
                argv[argc++] = how->program[i];
            }
        }
        argv[argc] = NULL;
        execv(program, argv);
        _exit(127);
    }
    close(error_pipe[1]);
    *errors = error_pipe[0];
    return pid;
}

/* Waits for neep-wl's end; its exit status, and what it wrote to stderr in `text`. */
static int finish(pid_t pid, int errors, char *text, size_t size)
{
    size_t length = 0;
    for (ssize_t got;
         length < size - 1 && (got = read(errors, text + length, size - 1 - length)) > 0;) {
        length += (size_t)got;
    }
    text[length] = 0;
    close(errors);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void make_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/neep-wl-test-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static void remove_dir(const char *dir, const char *const *names)
{
    for (int i = 0; names[i]; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    CHECK_EQ(rmdir(dir), 0);
}

/* Connects to `address` and expects neep-wl's refusal for want of a virtio-gpu. */
static void expect_served(const struct sockaddr_un *address)
{
    struct neep_wl n = {.address = *address};
    expect_refusal(&n, "cannot reach the host compositor");
}

/* As expect_served, for a socket that may still be on its way: a path is bound before its
 * socket listens, so the first connections may be refused by the kernel. */
static void expect_served_once_listening(const struct sockaddr_un *address)
{
    struct neep_wl n = {.address = *address};
    int fd = -1;
    for (int i = 0; i < 500 && (fd = connect_client(&n)) < 0; i++) {
        usleep(10000);
    }
    CHECK(fd >= 0);
    char text[512];
    CHECK(hear_refusal(fd, 5000, text, sizeof(text)));
    CHECK(strstr(text, "cannot reach the host compositor") != NULL);
    close(fd);
}

TEST(a_socket_passed_by_systemd_is_served)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    struct sockaddr_un address;
    int listener = listening_socket(dir, "wayland-passed", &address);
    /* The program neep-wl runs reports what it was given, then runs until told to stop. */
    char script[768];
    /* (fd 3, systemd's socket, must not reach it; the wait is bounded should the test die.) */
    snprintf(script, sizeof(script),
             "if [ -e /proc/$$/fd/3 ]; then fd3=open; else fd3=closed; fi; "
             "printf '%%s|%%s|%%s|%%s' \"$WAYLAND_DISPLAY\" \"${LISTEN_FDS-unset}\" "
             "\"${LISTEN_PID-unset}\" $fd3 > %s/seen.tmp && mv %s/seen.tmp %s/seen && "
             "i=0; while [ -e %s/seen ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done",
             dir, dir, dir, dir);
    char *const program[] = {"/bin/sh", "-c", script, NULL};
    struct activation how = {.listen_fds = "1", .passed_fds = {listener, -1}, .program = program};
    int errors;
    pid_t pid = start_activated(dir, &how, &errors);
    close(listener); /* neep-wl holds the only copy now */

    char seen_path[96], seen[256] = "";
    snprintf(seen_path, sizeof(seen_path), "%s/seen", dir);
    for (int i = 0; i < 500; i++) {
        FILE *file = fopen(seen_path, "re");
        if (file) {
            size_t got = fread(seen, 1, sizeof(seen) - 1, file);
            seen[got] = 0;
            fclose(file);
            break;
        }
        usleep(10000);
    }
    /* Clients find it by name, and the hand-over is not passed on to the program. */
    if (strcmp(seen, "wayland-passed|unset|unset|closed") != 0) {
        fprintf(stderr, "the program saw \"%s\"\n", seen);
    }
    CHECK(strcmp(seen, "wayland-passed|unset|unset|closed") == 0);
    expect_served(&address);
    expect_served(&address);
    /* It holds the socket's lock as a compositor would, so a compositor (or another neep-wl)
     * that starts later leaves systemd's socket alone. */
    char lock_path[128];
    snprintf(lock_path, sizeof(lock_path), "%s.lock", address.sun_path);
    int lock = open(lock_path, O_RDWR | O_CLOEXEC);
    CHECK(lock >= 0);
    CHECK(flock(lock, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK);
    close(lock);
    struct stat before, after;
    CHECK_EQ(stat(address.sun_path, &before), 0);
    int second_errors;
    pid_t second = start_activated(dir,
                                   &(struct activation){.pid_unset = true,
                                                        .passed_fds = {-1, -1},
                                                        .socket_name = "wayland-passed"},
                                   &second_errors);
    char said[1024];
    CHECK_EQ(finish(second, second_errors, said, sizeof(said)), 1);
    CHECK(strstr(said, "in use by another compositor") != NULL);
    CHECK_EQ(stat(address.sun_path, &after), 0);
    CHECK_EQ(after.st_ino, before.st_ino);
    expect_served(&address);

    CHECK_EQ(unlink(seen_path), 0); /* the program ends, and neep-wl with its status */
    char text[1024];
    int status = finish(pid, errors, text, sizeof(text));
    if (status != 0) {
        fprintf(stderr, "neep-wl said: %s\n", text);
    }
    CHECK_EQ(status, 0);
    remove_dir(dir, (const char *const[]){"wayland-passed", "wayland-passed.lock", NULL});
}

/* neep-wl started with `how` refuses to start, and says `reason`. */
static void expect_bad_activation(const struct activation *how, const char *reason)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    int errors;
    pid_t pid = start_activated(dir, how, &errors);
    char text[1024];
    int status = finish(pid, errors, text, sizeof(text));
    if (status != 1 || !strstr(text, reason)) {
        fprintf(stderr, "exit status %d, said \"%s\"; expected 1 and \"%s\"\n", status, text,
                reason);
    }
    CHECK_EQ(status, 1);
    CHECK(strstr(text, "bad socket activation") != NULL);
    CHECK(strstr(text, reason) != NULL);
    /* It did not fall back to a socket of its own. */
    remove_dir(dir, (const char *const[]){NULL});
}

TEST(a_bad_socket_hand_over_is_refused_with_the_reason)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    struct sockaddr_un address;
    int listener = listening_socket(dir, "wayland-bad", &address);
    int second = listening_socket(dir, "wayland-second", &address);
    int not_listening = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int datagram = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int file = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(not_listening >= 0 && datagram >= 0 && file >= 0);

    expect_bad_activation(&(struct activation){.listen_fds = "2", .passed_fds = {listener, second}},
                          "LISTEN_FDS=2: neep-wl takes exactly one listening socket");
    expect_bad_activation(&(struct activation){.listen_fds = "0", .passed_fds = {-1, -1}},
                          "LISTEN_FDS=0");
    expect_bad_activation(&(struct activation){.listen_fds = "1x", .passed_fds = {listener, -1}},
                          "LISTEN_FDS=1x");
    expect_bad_activation(&(struct activation){.listen_fds = NULL, .passed_fds = {listener, -1}},
                          "LISTEN_FDS=(unset)");
    expect_bad_activation(
        &(struct activation){.listen_fds = "1", .pid_text = "-1", .passed_fds = {listener, -1}},
        "LISTEN_PID=-1 is not a process id");
    expect_bad_activation(&(struct activation){.listen_fds = "1",
                                               .pid_text = "99999999999999999999",
                                               .passed_fds = {listener, -1}},
                          "is not a process id");
    expect_bad_activation(&(struct activation){.listen_fds = "1", .passed_fds = {-1, -1}},
                          "fd 3 is not open");
    expect_bad_activation(&(struct activation){.listen_fds = "1", .passed_fds = {file, -1}},
                          "fd 3 is not a socket");
    expect_bad_activation(&(struct activation){.listen_fds = "1", .passed_fds = {datagram, -1}},
                          "fd 3 is not a Unix stream socket");
    expect_bad_activation(
        &(struct activation){.listen_fds = "1", .passed_fds = {not_listening, -1}},
        "fd 3 is a socket that is not listening");
    int abstract = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un abstract_address = {.sun_family = AF_UNIX};
    snprintf(abstract_address.sun_path + 1, sizeof(abstract_address.sun_path) - 1,
             "neep-wl-test-%d", (int)getpid());
    CHECK_EQ(bind(abstract, (const struct sockaddr *)&abstract_address, sizeof(abstract_address)),
             0);
    CHECK_EQ(listen(abstract, 4), 0);
    expect_bad_activation(&(struct activation){.listen_fds = "1", .passed_fds = {abstract, -1}},
                          "fd 3 is an unnamed or abstract socket");
    close(abstract);
    close(listener);
    close(second);
    close(not_listening);
    close(datagram);
    close(file);
    remove_dir(dir, (const char *const[]){"wayland-bad", "wayland-second", NULL});
}

/* LISTEN_PID naming the parent (the variables leaked through), or missing: the fds are not
 * neep-wl's, and it listens on its own wayland-0 instead. */
static void expect_hand_over_ignored(const struct activation *how_template)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    struct sockaddr_un address;
    int listener = listening_socket(dir, "wayland-parent", &address);
    struct activation how = *how_template;
    how.passed_fds[0] = listener;
    how.passed_fds[1] = -1;
    int errors;
    pid_t pid = start_activated(dir, &how, &errors);
    /* It listens on its own wayland-0 instead. */
    struct sockaddr_un own = {.sun_family = AF_UNIX};
    snprintf(own.sun_path, sizeof(own.sun_path), "%s/wayland-0", dir);
    expect_served_once_listening(&own);
    CHECK_EQ(kill(pid, SIGTERM), 0);
    char text[1024];
    CHECK_EQ(finish(pid, errors, text, sizeof(text)), 0);
    close(listener);
    remove_dir(dir, (const char *const[]){"wayland-parent", "wayland-0", "wayland-0.lock", NULL});
}

TEST(a_hand_over_meant_for_another_process_is_ignored)
{
    expect_hand_over_ignored(&(struct activation){.listen_fds = "1", .pid_is_other = true});
    expect_hand_over_ignored(&(struct activation){.listen_fds = "1", .pid_unset = true});
}

/* systemd's own hand-over, by its tool for running socket-activated programs by hand. */
TEST(systemd_socket_activate_starts_it_on_the_first_client)
{
    const char *tool = "/usr/bin/systemd-socket-activate";
    CHECK(access(tool, X_OK) == 0); /* part of systemd, installed by scripts/install-deps.sh */
    char dir[64];
    make_dir(dir, sizeof(dir));
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s/wayland-0", dir);
    /* Its own runtime directory elsewhere: were the hand-over ignored, it would listen there
     * and the client below would wait unanswered. */
    char runtime_dir[96];
    snprintf(runtime_dir, sizeof(runtime_dir), "XDG_RUNTIME_DIR=%s/run", dir);
    CHECK_EQ(mkdir(runtime_dir + strlen("XDG_RUNTIME_DIR="), 0700), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDERR_FILENO);
        execl(tool, tool, "-l", address.sun_path, "-E", runtime_dir, getenv("NEEP_WL"),
              "--render-node", "/nonexistent", (char *)NULL);
        _exit(127);
    }
    /* The tool holds the socket; neep-wl starts on the first connection and serves it. */
    expect_served_once_listening(&address);
    expect_served(&address);
    CHECK_EQ(kill(pid, SIGTERM), 0);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK_EQ(rmdir(runtime_dir + strlen("XDG_RUNTIME_DIR=")), 0); /* nothing bound there */
    remove_dir(dir, (const char *const[]){"wayland-0", "wayland-0.lock", NULL});
}
