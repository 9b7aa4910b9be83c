/*
 * neep-gfxstream-server's sandbox (src/gfxstream_server/sandbox.c) from the inside: a child
 * enters it as the server does, then tries what a guest that took over the backend would try
 * next. It reports each attempt's errno on a pipe (it cannot CHECK there: a sanitizer's exit
 * work needs ptrace, which the sandbox refuses), and the test checks them here. No backend
 * needed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/landlock.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "gfxstream_server/server.h"
#include "harness.h"

enum attempt {
    /* Files of the host's. */
    CREATE_FILE,
    WRITE_FILE,
    TRUNCATE_FILE,
    REMOVE_FILE,
    MAKE_DIR,
    RENAME_FILE,
    MAKE_SYMLINK,
    EXECUTE,
    CHANGE_MODE,
    CHANGE_TIMES,
    SET_ATTRIBUTE,
    READ_USER_FILE,
    LOCK_RECORD, /* on a file it had open before */
    LOCK_FILE,
    /* Sockets, terminals, the kernel's shared objects. */
    UNIX_SOCKET,
    CONNECT_UNIX,
    TCP_SOCKET,
    DATAGRAM_PAIR,
    BIND_ABSTRACT,
    TERMINAL_INPUT,
    IO_URING,
    KEYRING,
    SHARED_MEMORY,
    /* Outliving neep, or new namespaces. */
    CLEAR_DEATH_SIGNAL,
    NEW_SESSION,
    CLONE_NAMESPACE,
    CLONE3,
    /* What the backend needs, which must still work. */
    READ_SYSTEM_FILE,
    WRITE_DEV_NULL,
    MEMFD,
    STREAM_PAIR,
    ATTEMPT_COUNT,
};

#define SHARED_MEMORY_KEY 0x4e454550 /* a segment of the host's */

struct report {
    int sandboxed; /* what server_sandbox returned */
    char why[256];
    int error[ATTEMPT_COUNT]; /* 0 when the attempt worked, else its errno */
    struct rlimit tasks;      /* RLIMIT_NPROC inside */
    uint32_t capabilities[2]; /* effective and permitted, low words */
};

static int result(long ret)
{
    return ret < 0 ? errno : 0;
}

/* In the sandboxed child: each attempt, in a directory of the host's. `held` is a file of the
 * host's it opened before (as a disk image). */
static void attempt_all(const char *dir, const struct sockaddr_un *listener, int terminal, int held,
                        struct report *report)
{
    char path[300], other[300];
    int *error = report->error;
    snprintf(path, sizeof(path), "%s/new", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    error[CREATE_FILE] = result(fd);
    snprintf(path, sizeof(path), "%s/.profile", dir);
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    error[WRITE_FILE] = result(fd);
    error[TRUNCATE_FILE] = result(truncate(path, 0));
    error[CHANGE_MODE] = result(chmod(path, 0666));
    error[CHANGE_TIMES] = result(utimensat(AT_FDCWD, path, NULL, 0));
    error[SET_ATTRIBUTE] = result(setxattr(path, "user.neep", "x", 1, 0));
    snprintf(other, sizeof(other), "%s/moved", dir);
    error[RENAME_FILE] = result(rename(path, other));
    error[REMOVE_FILE] = result(unlink(path));
    snprintf(other, sizeof(other), "%s/dir", dir);
    error[MAKE_DIR] = result(mkdir(other, 0700));
    snprintf(other, sizeof(other), "%s/link", dir);
    error[MAKE_SYMLINK] = result(symlink(path, other));
    snprintf(path, sizeof(path), "%s/id_ed25519", dir);
    char byte;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    error[READ_USER_FILE] = fd < 0 ? errno : read(fd, &byte, 1) == 1 ? 0 : EIO;
    struct flock lock = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    error[LOCK_RECORD] = result(fcntl(held, F_OFD_SETLK, &lock));
    error[LOCK_FILE] = result(flock(held, LOCK_SH | LOCK_NB));
    pid_t child = fork();
    if (child == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(errno);
    }
    int status = 0;
    waitpid(child, &status, 0);
    error[EXECUTE] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    error[UNIX_SOCKET] = result(fd);
    error[CONNECT_UNIX] =
        fd >= 0 ? result(connect(fd, (const struct sockaddr *)listener, sizeof(*listener)))
                : error[UNIX_SOCKET];
    error[TCP_SOCKET] = result(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int pair[2];
    error[DATAGRAM_PAIR] = result(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair));
    error[STREAM_PAIR] = result(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair));
    struct sockaddr_un abstract = {.sun_family = AF_UNIX, .sun_path = "\0/tmp/.X11-unix/X7"};
    error[BIND_ABSTRACT] = error[STREAM_PAIR]
                               ? error[STREAM_PAIR]
                               : result(bind(pair[0], (struct sockaddr *)&abstract,
                                             offsetof(struct sockaddr_un, sun_path) + 19));
    char key = 'x';
    error[TERMINAL_INPUT] = result(ioctl(terminal, TIOCSTI, &key));
    struct io_uring_params params = {0};
    error[IO_URING] = result(syscall(SYS_io_uring_setup, 4, &params));
    error[KEYRING] = result(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0));
    error[SHARED_MEMORY] = result(shmget(SHARED_MEMORY_KEY, 0, 0));

    error[CLEAR_DEATH_SIGNAL] = result(prctl(PR_SET_PDEATHSIG, 0));
    error[NEW_SESSION] = result(setsid());
    long cloned = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (cloned == 0) {
        _exit(0);
    }
    error[CLONE_NAMESPACE] = result(cloned);
    if (cloned > 0) {
        waitpid((pid_t)cloned, NULL, 0);
    }
    struct clone_args args = {.exit_signal = SIGCHLD};
    long cloned3 = syscall(SYS_clone3, &args, sizeof(args));
    if (cloned3 == 0) {
        _exit(0);
    }
    error[CLONE3] = result(cloned3);
    if (cloned3 > 0) {
        waitpid((pid_t)cloned3, NULL, 0);
    }
    getrlimit(RLIMIT_NPROC, &report->tasks);
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};
    if (syscall(SYS_capget, &header, data) == 0) {
        report->capabilities[0] = data[0].effective | data[1].effective;
        report->capabilities[1] = data[0].permitted | data[1].permitted;
    } else {
        report->capabilities[0] = report->capabilities[1] = ~0u;
    }

    fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    error[READ_SYSTEM_FILE] = fd < 0 ? errno : read(fd, &byte, 1) == 1 ? 0 : EIO;
    fd = open("/dev/null", O_WRONLY | O_TRUNC | O_CLOEXEC);
    error[WRITE_DEV_NULL] = fd < 0 ? errno : write(fd, "x", 1) == 1 ? 0 : EIO;
    fd = memfd_create("blob", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    error[MEMFD] = fd < 0 ? errno : ftruncate(fd, 4096) == 0 && write(fd, "x", 1) == 1 ? 0 : EIO;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, text, strlen(text)), (long)strlen(text));
    close(fd);
}

/* Runs the attempts in a sandboxed child; the host's side is prepared and checked here. */
static struct report run_sandboxed(char dir[64])
{
    snprintf(dir, 64, "/tmp/neep-sandbox-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    write_file(dir, ".profile", "echo hello\n");
    write_file(dir, "id_ed25519", "a private key");
    char held_path[100];
    snprintf(held_path, sizeof(held_path), "%s/id_ed25519", dir);
    int held = open(held_path, O_RDONLY | O_CLOEXEC);
    CHECK(held >= 0);
    int segment = shmget(SHARED_MEMORY_KEY, 4096, IPC_CREAT | 0600);
    CHECK(segment >= 0);
    /* A socket of the host's, standing for the VMM's monitor or the user's session bus. */
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    CHECK(strlen(dir) + sizeof("/monitor") <= sizeof(address.sun_path));
    strcpy(address.sun_path, dir);
    strcat(address.sun_path, "/monitor");
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    CHECK(listener >= 0 && bind(listener, (struct sockaddr *)&address, sizeof(address)) == 0 &&
          listen(listener, 4) == 0);
    /* A terminal the server could have inherited from the VMM. */
    int terminal = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(terminal >= 0 && grantpt(terminal) == 0 && unlockpt(terminal) == 0);
    int pipe_fds[2];
    CHECK(pipe2(pipe_fds, O_CLOEXEC) == 0);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        struct report report = {0};
        close(pipe_fds[0]);
        /* The terminal as the VMM's own controlling one: input pushed there is read by its
         * shell. (In a user namespace the kernel refuses that too; the filter is for hosts
         * without them.) */
        if (setsid() < 0 || ioctl(terminal, TIOCSCTTY, 0) < 0) {
            _exit(3);
        }
        report.sandboxed = server_sandbox(report.why, sizeof(report.why));
        if (report.sandboxed >= 0) {
            attempt_all(dir, &address, terminal, held, &report);
        }
        ssize_t ignored = write(pipe_fds[1], &report, sizeof(report));
        (void)ignored;
        _exit(0);
    }
    close(pipe_fds[1]);
    struct report report;
    CHECK_EQ(read(pipe_fds[0], &report, sizeof(report)), (long)sizeof(report));
    int status = 0;
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(pipe_fds[0]);
    close(terminal);
    close(held);
    CHECK_EQ(shmctl(segment, IPC_RMID, NULL), 0);
    /* No connection reached the host's socket. */
    CHECK(accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC) < 0 && errno == EAGAIN);
    close(listener);
    fprintf(stderr, "sandbox: %d%s%s\n", report.sandboxed, report.why[0] ? ": " : "", report.why);
    return report;
}

static void remove_dir(const char *dir)
{
    static const char *const names[] = {".profile", "id_ed25519", "monitor", "new",
                                        "moved",    "dir",        "link"};
    char path[300];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (unlink(path) < 0 && errno == EISDIR) {
            rmdir(path);
        }
        rmdir(path);
    }
    CHECK_EQ(rmdir(dir), 0);
}

/* Refused by Landlock, or by the read-only mounts beneath it. */
static bool refused(int error)
{
    return error == EACCES || error == EROFS;
}

TEST(a_taken_over_server_changes_and_reads_no_file_of_the_users)
{
    char dir[64];
    struct report report = run_sandboxed(dir);
    if (syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) < 0) {
        fprintf(stderr, "skipped: this kernel has no Landlock\n");
        remove_dir(dir);
        return;
    }
    CHECK_EQ(report.sandboxed, 0);
    const int *error = report.error;
    CHECK(refused(error[CREATE_FILE]));
    CHECK(refused(error[WRITE_FILE]));
    CHECK(refused(error[TRUNCATE_FILE]));
    CHECK(refused(error[RENAME_FILE]));
    CHECK(refused(error[REMOVE_FILE]));
    CHECK(refused(error[MAKE_DIR]));
    CHECK(refused(error[MAKE_SYMLINK]));
    CHECK(refused(error[EXECUTE]));
    /* What Landlock does not cover, the filter refuses. */
    CHECK_EQ(error[CHANGE_MODE], EPERM);
    CHECK_EQ(error[CHANGE_TIMES], EPERM);
    CHECK_EQ(error[SET_ATTRIBUTE], EPERM);
    CHECK_EQ(error[LOCK_RECORD], EPERM);
    CHECK_EQ(error[LOCK_FILE], EPERM);
    /* A user's key stays unread (it could go back to the guest through blob memory). */
    CHECK_EQ(error[READ_USER_FILE], EACCES);
    /* The host's side agrees. */
    char path[300], text[32] = "";
    snprintf(path, sizeof(path), "%s/.profile", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(read(fd, text, sizeof(text) - 1) > 0);
    close(fd);
    CHECK(strcmp(text, "echo hello\n") == 0);
    struct stat status;
    CHECK(stat(path, &status) == 0 && (status.st_mode & 0777) == 0600);
    snprintf(path, sizeof(path), "%s/new", dir);
    CHECK(access(path, F_OK) < 0);
    /* What the backend needs still works. */
    CHECK_EQ(error[READ_SYSTEM_FILE], 0);
    CHECK_EQ(error[WRITE_DEV_NULL], 0);
    CHECK_EQ(error[MEMFD], 0);
    remove_dir(dir);
}

TEST(a_taken_over_server_reaches_no_socket_terminal_or_shared_object_of_the_hosts)
{
    char dir[64];
    struct report report = run_sandboxed(dir);
    CHECK(report.sandboxed >= 0);
    const int *error = report.error;
    CHECK_EQ(error[UNIX_SOCKET], EPERM);
    CHECK_EQ(error[CONNECT_UNIX], EPERM);
    CHECK_EQ(error[TCP_SOCKET], EPERM);
    CHECK_EQ(error[DATAGRAM_PAIR], EPERM);
    CHECK_EQ(error[BIND_ABSTRACT], EPERM);
    CHECK_EQ(error[TERMINAL_INPUT], EPERM);
    CHECK_EQ(error[IO_URING], EPERM);
    CHECK_EQ(error[KEYRING], EPERM);
    CHECK_EQ(error[SHARED_MEMORY], ENOENT); /* an IPC namespace of its own */
    CHECK_EQ(error[STREAM_PAIR], 0);
    remove_dir(dir);
}

TEST(a_taken_over_server_cannot_outlive_neep_or_make_namespaces)
{
    char dir[64];
    struct report report = run_sandboxed(dir);
    CHECK(report.sandboxed >= 0);
    const int *error = report.error;
    CHECK_EQ(error[CLEAR_DEATH_SIGNAL], EPERM);
    CHECK_EQ(error[NEW_SESSION], EPERM);
    CHECK_EQ(error[CLONE_NAMESPACE], EPERM);
    CHECK_EQ(error[CLONE3], ENOSYS);
    /* Its processes and threads are counted apart from the VMM user's, and capped. */
    CHECK(report.tasks.rlim_max <= 1024);
    /* No capability left, in its namespace or the host's (the tests run as root here). */
    CHECK_EQ(report.capabilities[0], 0);
    CHECK_EQ(report.capabilities[1], 0);
    remove_dir(dir);
}
