#!/usr/bin/env python3
"""A gfxstream server that a guest has taken over, for test_gfxstream: it speaks the protocol
of src/contexts/gfxstream_protocol.h (calls on fd 3, events on fd 4) well enough to start, then
answers EXPORT_BLOB with what HOSTILE_EXPORT names instead of a sealed memfd:
  pipe     a pipe's read end
  file     a regular file on a disk, not tmpfs
  unsealed a memfd on tmpfs that it keeps, to shrink once neep has mapped it
and answers everything else with success. With HOSTILE_DELAY_MS, every answer after the start
comes that late (a server that keeps the VMM waiting just under its timeout)."""
import os
import socket
import struct
import sys
import time

CALL = struct.Struct("<IIIIQ72s")  # op, ctx, resource, value, size, union
START, GET_CAPSET, EXPORT_BLOB, MAP_INFO = 1, 2, 15, 16
NO_REPLY = 0x80000000


def main():
    calls = socket.socket(fileno=3)
    mode = os.environ.get("HOSTILE_EXPORT", "pipe")
    kept = []
    while True:
        try:
            data, _, _, _ = calls.recvmsg(CALL.size, socket.CMSG_SPACE(16))
        except OSError:
            return
        if len(data) != CALL.size:
            return
        op, _ctx, _resource, value, _size, _union = CALL.unpack(data)
        if op & NO_REPLY:
            continue
        if op not in (START, GET_CAPSET):
            time.sleep(int(os.environ.get("HOSTILE_DELAY_MS", "0")) / 1000)
        values, value64, payload, fds = (0, 0), 0, b"", []
        if op == START:
            value64 = (1 << 19) - 1  # every format makes images
            print("hostile server: started", file=sys.stderr, flush=True)
        elif op == GET_CAPSET:
            # The Vulkan capset: protocol version, ring bytes, buffer bytes, then zeros.
            payload = struct.pack("<III", 1, 12288, 1 << 20).ljust(104, b"\0")
            values = (0, len(payload))
        elif op == EXPORT_BLOB:
            values = (4, 0)  # "SHM"
            if mode == "pipe":
                read_end, write_end = os.pipe()
                kept.append(write_end)
                fds = [read_end]
            elif mode == "file":
                path = f"hostile-blob-{os.getpid()}"
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                os.unlink(path)
                os.ftruncate(fd, 1 << 20)
                fds = [fd]
            else:
                fd = os.memfd_create("hostile", os.MFD_ALLOW_SEALING)
                os.ftruncate(fd, 1 << 20)
                kept.append(fd)
                fds = [fd]
        header = struct.pack("<IiIIQ", op, 0, values[0], values[1], value64)
        calls.sendmsg([header + payload],
                      [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
                      if fds else [])
        if mode == "unsealed" and op == EXPORT_BLOB:
            # neep seals it against shrinking before it maps it (well within this pause): this
            # must fail.
            time.sleep(0.05)
            try:
                os.ftruncate(kept[-1], 0)
                os.write(2, b"hostile server: shrank the blob under neep's mapping\n")
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
