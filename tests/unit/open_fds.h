/*
 * How many fds the process has open: one directory read of /proc/self/fd (a handful of system
 * calls, where probing every fd number with fcntl takes a thousand). Shared by the tests and the
 * fuzz targets that check nothing leaks an fd.
 */
#ifndef NEEP_TESTS_OPEN_FDS_H
#define NEEP_TESTS_OPEN_FDS_H

#include <dirent.h>

/* The entries under `path` (not "." or ".."), or -1 if it cannot be read. */
static inline int count_directory_entries(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir) {
        return -1;
    }
    int count = 0;
    for (struct dirent *entry; (entry = readdir(dir));) {
        count += entry->d_name[0] != '.';
    }
    closedir(dir);
    return count;
}

/* Open fds, not counting the one this reads them through; -1 if /proc is not there. */
static inline int count_open_fds(void)
{
    int count = count_directory_entries("/proc/self/fd");
    return count < 0 ? -1 : count - 1;
}

#endif
