/*
 * What the server may reach once a guest has taken over the backend (it reads guest rings
 * without bounds: assume it can). It runs with the VMM's uid, so without this it could attach
 * to the VMM (ptrace, /proc/PID/mem) and own the VM, write the user's files (a shell's start-up
 * file is code run later, outside any sandbox), or connect to the VMM's monitor socket or the
 * user's session bus. Here it moves into namespaces of its own (user, mount, PID) with a /proc
 * that shows only them: the VMM has no PID it can name. Landlock then takes away every change to
 * the file system (writing, creating, removing, renaming, executing) but writing to render
 * nodes and /dev/null, and TCP. Last, a seccomp filter refuses what could undo that or reach
 * other processes: mount, umount, setns, unshare, ptrace, process_vm_*, pidfd_getfd, new
 * sockets (the server needs none but the two it was given), io_uring (which makes sockets and
 * opens files past seccomp), the kernel keyrings, bpf, perf events, userfaultfd, and pushing
 * input into a terminal it inherited (TIOCSTI, TIOCLINUX). Reading stays as it was: the
 * backend's driver reads its files, devices and /sys. Where the host lacks user namespaces or
 * Landlock, the server runs without them, and says so.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "server.h"

#ifndef AUDIT_ARCH_X86_64
#define AUDIT_ARCH_X86_64 0xc000003eu
#endif

static bool write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    ssize_t written = write(fd, text, strlen(text));
    close(fd);
    return written == (ssize_t)strlen(text);
}

/* In the first process of the new PID namespace: the namespace's own /proc. */
static int mount_private_proc(void)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
        return -errno;
    }
    return 0;
}

/* The file rights Landlock knows at `abi` that change something. Reading is not among them. */
static uint64_t changing_file_rights(long abi)
{
    uint64_t rights =
        LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
        LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
        LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
        LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
    if (abi >= 2) {
        rights |= LANDLOCK_ACCESS_FS_REFER;
    }
    if (abi >= 3) {
        rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
    }
    return rights;
}

/* Lets the server write what is at `path` (beneath it, for a directory); absent is fine. */
static int allow_writing(int ruleset, const char *path, uint64_t handled)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    struct landlock_path_beneath_attr rule = {
        .allowed_access = (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE) & handled,
        .parent_fd = fd,
    };
    int ret = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0
                  ? -errno
                  : 0;
    close(fd);
    return ret;
}

/* Landlock over this process and what it starts: 0, or -ENOSYS / -EOPNOTSUPP where the kernel
 * has none, or another -errno. */
static int restrict_changes(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 0) {
        return -errno;
    }
    struct landlock_ruleset_attr attr = {.handled_access_fs = changing_file_rights(abi)};
    size_t attr_bytes = offsetof(struct landlock_ruleset_attr, handled_access_net);
    if (abi >= 4) {
        attr.handled_access_net = LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
        attr_bytes = offsetof(struct landlock_ruleset_attr, scoped);
    }
    if (abi >= 6) {
        /* No abstract sockets or signals beyond its own processes. */
        attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
        attr_bytes = sizeof(attr);
    }
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_bytes, 0);
    if (ruleset < 0) {
        return -errno;
    }
    /* The render nodes (opened read-write), and /dev/null, which libraries open to write. */
    int ret = allow_writing(ruleset, "/dev/dri", attr.handled_access_fs);
    if (ret == 0) {
        ret = allow_writing(ruleset, "/dev/null", attr.handled_access_fs);
    }
    if (ret == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
        ret = -errno;
    }
    close(ruleset);
    return ret;
}

#define REFUSE(nr)                                                                                 \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),                                               \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))

static int install_filter(void)
{
#if defined(__x86_64__)
    struct sock_filter program[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* x32 calls (bit 30) name other numbers: none is for the backend. */
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        REFUSE(SYS_ptrace),
        REFUSE(SYS_process_vm_readv),
        REFUSE(SYS_process_vm_writev),
        REFUSE(SYS_pidfd_getfd),
        REFUSE(SYS_mount),
        REFUSE(SYS_umount2),
        REFUSE(SYS_pivot_root),
        REFUSE(SYS_setns),
        REFUSE(SYS_unshare),
        REFUSE(SYS_kexec_load),
        REFUSE(SYS_open_tree),
        REFUSE(SYS_move_mount),
        REFUSE(SYS_fsopen),
        REFUSE(SYS_fsmount),
        REFUSE(SYS_fspick),
        REFUSE(SYS_mount_setattr),
        REFUSE(SYS_socket),
        REFUSE(SYS_io_uring_setup),
        REFUSE(SYS_io_uring_enter),
        REFUSE(SYS_io_uring_register),
        REFUSE(SYS_keyctl),
        REFUSE(SYS_add_key),
        REFUSE(SYS_request_key),
        REFUSE(SYS_bpf),
        REFUSE(SYS_perf_event_open),
        REFUSE(SYS_userfaultfd),
        /* ioctl: all but pushing input into a terminal (the command's low 32 bits, as the
         * kernel reads it). */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 4),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog filter = {.len = sizeof(program) / sizeof(program[0]), .filter = program};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter) < 0) {
        return -errno;
    }
    return 0;
#else
    return -ENOSYS;
#endif
}

/* The process neep started waits for the namespace's first process and ends as it did, so
 * neep sees its status (and its process group holds both). */
static _Noreturn void mirror(pid_t child)
{
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        prctl(PR_SET_DUMPABLE, 0); /* no second core dump of the same crash */
        kill(getpid(), WTERMSIG(status));
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

int server_sandbox(char *why, size_t why_bytes)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    char map[64];
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID) < 0) {
        int error = errno;
        int changes = restrict_changes();
        int ret = install_filter();
        snprintf(why, why_bytes,
                 "the host gives it no user namespace (%s), so the VMM's processes stay in its "
                 "reach through /proc%s%s",
                 strerror(error),
                 changes < 0 ? ", and no Landlock: it may change the host's files" : "",
                 ret < 0 ? ", and no seccomp filter either" : "");
        return 1;
    }
    /* The same ids inside: files and devices stay as they were. */
    snprintf(map, sizeof(map), "%u %u 1", (unsigned)uid, (unsigned)uid);
    bool mapped =
        write_file("/proc/self/setgroups", "deny") && write_file("/proc/self/uid_map", map);
    snprintf(map, sizeof(map), "%u %u 1", (unsigned)gid, (unsigned)gid);
    mapped = mapped && write_file("/proc/self/gid_map", map);
    pid_t child = mapped ? fork() : -1;
    if (child > 0) {
        mirror(child);
    }
    if (child < 0) {
        snprintf(why, why_bytes, "cannot enter its namespaces (%s)", strerror(errno));
        return -1;
    }
    /* The namespace's first process: it ends with the one neep started. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int ret = mount_private_proc();
    if (ret < 0) {
        snprintf(why, why_bytes, "cannot mount its own /proc (%s)", strerror(-ret));
        return -1;
    }
    int changes = restrict_changes();
    ret = install_filter();
    if (ret < 0) {
        snprintf(why, why_bytes, "cannot install its seccomp filter (%s)", strerror(-ret));
        return -1;
    }
    if (changes < 0) {
        snprintf(why, why_bytes,
                 "the host gives it no Landlock (%s), so it may change the host's files",
                 strerror(-changes));
        return 1;
    }
    return 0;
}
