/*
 * What the server may reach once a guest has taken over the backend (it reads guest rings
 * without bounds: assume it can). It runs with the VMM's uid, so without this it could attach
 * to the VMM (ptrace, /proc/PID/mem) and own the VM, write the user's files (a shell's start-up
 * file is code run later, outside any sandbox), read them (keys, sent back to the guest through
 * blob memory), or connect to the VMM's monitor socket or the user's session bus. So:
 *  - namespaces of its own (user, mount, PID with a /proc that shows only them, IPC, network,
 *    UTS, cgroup): the VMM has no PID it can name, the host's SysV objects are out of sight;
 *  - every mount read-only and nosuid, and Landlock: reading only the system's trees and the
 *    paths the environment names for the backend and its drivers, writing and device ioctls only
 *    on render nodes (and /dev/null), no TCP, no abstract sockets or signals beyond itself;
 *  - a seccomp filter against what Landlock does not cover or could be undone: ptrace,
 *    process_vm_*, mounts, namespaces (setns, unshare, clone flags), new sockets and io_uring,
 *    file modes, owners, times, attributes and locks, keyrings, bpf, perf events, userfaultfd,
 *    leaving neep's process group or clearing the death signal, TIOCSTI/TIOCLINUX;
 *  - no capabilities, and RLIMIT_NPROC counted in its own user namespace.
 * (neep gives it no terminal: its output is a pipe neep reads.) Where the host lacks user
 * namespaces or Landlock, it runs with what there is and says so; with neither, not at all
 * unless NEEP_GFXSTREAM_UNSANDBOXED=1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "server.h"

/* Processes and threads: the backend's (a render thread per guest context, capped by neep;
 * the driver's), with room to spare. */
#define SERVER_MAX_TASKS 1024

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

/* The file rights Landlock knows at `abi`: all it can take away. */
static uint64_t handled_file_rights(long abi)
{
    uint64_t rights =
        LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
        LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR |
        LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
        LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
        LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
    if (abi >= 2) {
        rights |= LANDLOCK_ACCESS_FS_REFER;
    }
    if (abi >= 3) {
        rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
    }
    if (abi >= 5) {
        rights |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    }
    return rights;
}

#define READING (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FILE_RIGHTS                                                                                \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |   \
     LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)

/* Grants `access` to what is at `path` (beneath it, for a directory); absent is fine. */
static int allow(int ruleset, const char *path, uint64_t access, uint64_t handled)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT || errno == ENOTDIR || errno == EACCES ? 0 : -errno;
    }
    struct stat status;
    bool directory = fstat(fd, &status) == 0 && S_ISDIR(status.st_mode);
    struct landlock_path_beneath_attr rule = {
        .allowed_access = access & handled & (directory ? ~0ull : FILE_RIGHTS),
        .parent_fd = fd,
    };
    int ret = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0
                  ? -errno
                  : 0;
    close(fd);
    return ret;
}

/* The system's libraries, configuration and devices: what the backend and its driver read. */
static const char *const readable_trees[] = {
    "/usr", "/lib",  "/lib32",   "/lib64",    "/libx32",   "/opt",        "/etc",
    "/sys", "/proc", "/dev/dri", "/dev/null", "/dev/zero", "/dev/random", "/dev/urandom",
};

/* Variables that name where the backend, its libraries and its drivers are (lists split at
 * ':'): each directory named, and the directory of each file named, is readable. */
static const char *const path_variables[] = {
    "NEEP_GFXSTREAM_LIBRARY",    "LD_LIBRARY_PATH",     "VK_ICD_FILENAMES",
    "VK_DRIVER_FILES",           "VK_ADD_DRIVER_FILES", "__EGL_VENDOR_LIBRARY_FILENAMES",
    "__EGL_VENDOR_LIBRARY_DIRS", "LIBGL_DRIVERS_PATH",  "GBM_BACKENDS_PATH",
};

static int allow_named_paths(int ruleset, uint64_t handled)
{
    for (size_t i = 0; i < sizeof(path_variables) / sizeof(path_variables[0]); i++) {
        const char *list = getenv(path_variables[i]);
        while (list && *list) {
            size_t length = strcspn(list, ":");
            char path[PATH_MAX];
            if (length > 0 && length < sizeof(path)) {
                memcpy(path, list, length);
                path[length] = '\0';
                struct stat status;
                char *slash = strrchr(path, '/');
                if (stat(path, &status) == 0 && !S_ISDIR(status.st_mode) && slash) {
                    *slash = '\0'; /* a file: its directory, where what it names lives */
                }
                int ret = path[0] ? allow(ruleset, path, READING, handled) : 0;
                if (ret < 0) {
                    return ret;
                }
            }
            list += length + (list[length] == ':');
        }
    }
    return 0;
}

/* Render nodes: opened read-write, driven by ioctls. Not the card nodes (the display). */
static int allow_render_nodes(int ruleset, uint64_t handled)
{
    DIR *dri = opendir("/dev/dri");
    if (!dri) {
        return 0;
    }
    int ret = 0;
    for (struct dirent *entry; ret == 0 && (entry = readdir(dri));) {
        if (strncmp(entry->d_name, "renderD", 7) == 0) {
            char path[300];
            snprintf(path, sizeof(path), "/dev/dri/%s", entry->d_name);
            ret = allow(ruleset, path,
                        LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                            LANDLOCK_ACCESS_FS_IOCTL_DEV,
                        handled);
        }
    }
    closedir(dri);
    return ret;
}

/* Landlock over this process and what it starts: reading only the system's files (not the
 * user's), writing only to render nodes and /dev/null, no TCP, no abstract sockets or signals
 * beyond its own processes. 0, or -ENOSYS / -EOPNOTSUPP where the kernel has none, or another
 * -errno. */
static int restrict_files(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 0) {
        return -errno;
    }
    struct landlock_ruleset_attr attr = {.handled_access_fs = handled_file_rights(abi)};
    size_t attr_bytes = offsetof(struct landlock_ruleset_attr, handled_access_net);
    if (abi >= 4) {
        attr.handled_access_net = LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
        attr_bytes = offsetof(struct landlock_ruleset_attr, scoped);
    }
    if (abi >= 6) {
        attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
        attr_bytes = sizeof(attr);
    }
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_bytes, 0);
    if (ruleset < 0) {
        return -errno;
    }
    uint64_t handled = attr.handled_access_fs;
    int ret = 0;
    for (size_t i = 0; ret == 0 && i < sizeof(readable_trees) / sizeof(readable_trees[0]); i++) {
        ret = allow(ruleset, readable_trees[i], READING, handled);
    }
    if (ret == 0) {
        ret = allow(ruleset, "/dev/null",
                    LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE, handled);
    }
    if (ret == 0) {
        ret = allow_named_paths(ruleset, handled);
    }
    if (ret == 0) {
        ret = allow_render_nodes(ruleset, handled);
    }
    if (ret == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
        ret = -errno;
    }
    close(ruleset);
    return ret;
}

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif
#ifndef SYS_removexattrat
#define SYS_removexattrat 466
#endif

#define REFUSED     (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))
#define LOAD_ARG(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
/* Refuses system call `nr` (the accumulator holds the call's number). */
#define REFUSE(nr)                                                                                 \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, REFUSED)
#define NAMESPACE_FLAGS                                                                            \
    (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |  \
     CLONE_NEWNET | 0x80 /* CLONE_NEWTIME */)

static int install_filter(void)
{
#if defined(__x86_64__)
    /* Arguments are compared by their low 32 bits, all the kernel reads of these ints. Each
     * block that loads an argument ends in a return, so the number stays loaded for the next. */
    struct sock_filter program[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* x32 calls (bit 30) name other numbers: none is for the backend. */
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        /* Other processes, and undoing the namespaces. */
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
        /* Leaving the process group neep kills it by. */
        REFUSE(SYS_setsid),
        REFUSE(SYS_setpgid),
        /* Sockets: it has the two it needs (a pair below is all it may make). */
        REFUSE(SYS_socket),
        REFUSE(SYS_bind),
        REFUSE(SYS_connect),
        REFUSE(SYS_listen),
        REFUSE(SYS_accept),
        REFUSE(SYS_accept4),
        REFUSE(SYS_io_uring_setup),
        REFUSE(SYS_io_uring_enter),
        REFUSE(SYS_io_uring_register),
        /* What Landlock leaves: modes, owners, times and attributes of files, and locks on
         * files it may read (a lock on a disk image keeps a VM from starting). */
        REFUSE(SYS_chmod),
        REFUSE(SYS_fchmod),
        REFUSE(SYS_fchmodat),
        REFUSE(SYS_fchmodat2),
        REFUSE(SYS_chown),
        REFUSE(SYS_fchown),
        REFUSE(SYS_lchown),
        REFUSE(SYS_fchownat),
        REFUSE(SYS_utime),
        REFUSE(SYS_utimes),
        REFUSE(SYS_futimesat),
        REFUSE(SYS_utimensat),
        REFUSE(SYS_setxattr),
        REFUSE(SYS_lsetxattr),
        REFUSE(SYS_fsetxattr),
        REFUSE(SYS_setxattrat),
        REFUSE(SYS_removexattr),
        REFUSE(SYS_lremovexattr),
        REFUSE(SYS_fremovexattr),
        REFUSE(SYS_removexattrat),
        REFUSE(SYS_flock),
        /* The kernel's other doors. */
        REFUSE(SYS_keyctl),
        REFUSE(SYS_add_key),
        REFUSE(SYS_request_key),
        REFUSE(SYS_bpf),
        REFUSE(SYS_perf_event_open),
        REFUSE(SYS_userfaultfd),
        /* clone3 passes its flags in memory, out of a filter's sight: callers fall back to
         * clone, whose flags are checked below. */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        /* clone: no new namespaces. */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4),
        LOAD_ARG(0),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, REFUSED),
        /* ioctl: not pushing input into a terminal. */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 5),
        LOAD_ARG(1),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, REFUSED),
        /* prctl: not outliving neep (the death signal stays). */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_prctl, 0, 4),
        LOAD_ARG(0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_SET_PDEATHSIG, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, REFUSED),
        /* fcntl: no record locks. */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_fcntl, 0, 7),
        LOAD_ARG(1),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETLK, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETLKW, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_OFD_SETLK, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_OFD_SETLKW, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, REFUSED),
        /* socketpair: connected Unix stream or packet pairs only (a datagram one could send
         * to any socket path). */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socketpair, 0, 8),
        LOAD_ARG(0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 0, 5),
        LOAD_ARG(1),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCK_STREAM, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCK_SEQPACKET, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, REFUSED),
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

/* No capabilities left: as root in its user namespace (or a VMM's root) it would otherwise
 * override file permissions on whatever it can reach. */
static void drop_capabilities(void)
{
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {{0}};
    syscall(SYS_capset, &header, none);
}

/* Where neither namespaces nor Landlock can be had, the server runs only when asked to. */
static bool unsandboxed_allowed(void)
{
    const char *allowed = getenv("NEEP_GFXSTREAM_UNSANDBOXED");
    return allowed && strcmp(allowed, "1") == 0;
}

int server_sandbox(char *why, size_t why_bytes)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    char map[64];
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
                CLONE_NEWNET | CLONE_NEWCGROUP) < 0) {
        int error = errno;
        int files = restrict_files();
        int filter = install_filter();
        drop_capabilities();
        if ((files < 0 || filter < 0) && !unsandboxed_allowed()) {
            snprintf(why, why_bytes,
                     "the host gives it no user namespace (%s), and %s (%s): it would reach the "
                     "VMM's processes and the user's files (NEEP_GFXSTREAM_UNSANDBOXED=1 runs it "
                     "so all the same)",
                     strerror(error), files < 0 ? "no Landlock" : "no seccomp filter",
                     strerror(files < 0 ? -files : -filter));
            return -1;
        }
        snprintf(why, why_bytes,
                 "the host gives it no user namespace (%s): it shares the host's network and IPC "
                 "namespaces and sees its processes%s",
                 strerror(error),
                 files < 0 || filter < 0 ? ", and it may reach them and the user's files "
                                           "(NEEP_GFXSTREAM_UNSANDBOXED=1)"
                                         : " (Landlock keeps it from them)");
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
    /* Counted in this user namespace, from none: its processes and threads cannot use up the
     * VMM user's. */
    struct rlimit tasks = {SERVER_MAX_TASKS, SERVER_MAX_TASKS};
    setrlimit(RLIMIT_NPROC, &tasks);
    int ret = mount_private_proc();
    if (ret < 0) {
        snprintf(why, why_bytes, "cannot mount its own /proc (%s)", strerror(-ret));
        return -1;
    }
    /* Every mount read-only and without set-uid, under Landlock and where it is missing
     * (device nodes stay writable on a read-only mount). */
    struct mount_attr read_only = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID};
    int mounts =
        mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &read_only, sizeof(read_only)) < 0 ? -errno : 0;
    int files = restrict_files();
    ret = install_filter();
    if (ret < 0) {
        snprintf(why, why_bytes, "cannot install its seccomp filter (%s)", strerror(-ret));
        return -1;
    }
    drop_capabilities();
    if (files < 0 && mounts < 0 && !unsandboxed_allowed()) {
        snprintf(why, why_bytes,
                 "the host gives it no Landlock (%s) and its mounts cannot be made read-only "
                 "(%s): it would change the user's files (NEEP_GFXSTREAM_UNSANDBOXED=1 runs it so "
                 "all the same)",
                 strerror(-files), strerror(-mounts));
        return -1;
    }
    if (files < 0) {
        snprintf(why, why_bytes,
                 "the host gives it no Landlock (%s), so it may read the user's files%s",
                 strerror(-files), mounts < 0 ? " and change them" : " (not change them)");
        return 1;
    }
    return 0;
}
