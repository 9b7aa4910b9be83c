#include "harness.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS            512
#define TEST_TIMEOUT_SECONDS 60

static struct {
    const char *name;
    harness_test_fn fn;
} tests[MAX_TESTS];
static size_t test_count;

void harness_register(const char *name, harness_test_fn fn)
{
    if (test_count == MAX_TESTS) {
        fprintf(stderr, "harness: more than %d tests\n", MAX_TESTS);
        abort();
    }
    tests[test_count].name = name;
    tests[test_count].fn = fn;
    test_count++;
}

static int count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) {
        return -1;
    }
    int count = 0;
    while (readdir(dir)) {
        count++;
    }
    closedir(dir);
    return count;
}

static int run_in_child(size_t index)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 0;
    }
    if (pid == 0) {
        alarm(TEST_TIMEOUT_SECONDS);
        int fds_before = count_open_fds();
        tests[index].fn();
        int fds_after = count_open_fds();
        if (fds_after != fds_before) {
            fprintf(stderr, "%s: %d file descriptors open before, %d after\n", tests[index].name,
                    fds_before, fds_after);
            _exit(3);
        }
        exit(0); /* exit(), not _exit(): LeakSanitizer reports at exit */
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "%s: killed by signal %d%s\n", tests[index].name, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
        return 0;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0;
    int failed = 0;
    for (size_t i = 0; i < test_count; i++) {
        if (filter && !strstr(tests[i].name, filter)) {
            continue;
        }
        if (run_in_child(i)) {
            printf("ok - %s\n", tests[i].name);
            passed++;
        } else {
            printf("not ok - %s\n", tests[i].name);
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
