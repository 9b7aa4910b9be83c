/* File descriptors in the order their messages will consume them. */
#include <unistd.h>

#include "proxy.h"

bool fd_fifo_push(struct fd_fifo *fifo, int fd)
{
    if (fifo->count == PROXY_MAX_QUEUED_FDS) {
        return false;
    }
    fifo->fds[(fifo->head + fifo->count) % PROXY_MAX_QUEUED_FDS] = fd;
    fifo->count++;
    return true;
}

int fd_fifo_pop(struct fd_fifo *fifo)
{
    if (fifo->count == 0) {
        return -1;
    }
    int fd = fifo->fds[fifo->head];
    fifo->head = (fifo->head + 1) % PROXY_MAX_QUEUED_FDS;
    fifo->count--;
    return fd;
}

void fd_fifo_clear(struct fd_fifo *fifo)
{
    int fd;
    while ((fd = fd_fifo_pop(fifo)) >= 0) {
        close(fd);
    }
}
