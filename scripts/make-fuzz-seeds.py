#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets: a valid snapshot file and a few op streams."""
import os
import struct
import sys

out = sys.argv[1]
os.makedirs(f"{out}/snapshot_restore", exist_ok=True)
os.makedirs(f"{out}/renderer_ops", exist_ok=True)

# Snapshot: header {magic, version, count}; record {id, kind, format, w, h, flags, size}.
records = b""
w, h = 5, 3
records += struct.pack("<IIIIIIQ", 1, 0, 1, w, h, 0, w * h * 4) + bytes(range(w * h * 4))
records += struct.pack("<IIIIIIQ", 2, 1, 0, 0, 0, 1, 8192)
with open(f"{out}/snapshot_restore/two-resources", "wb") as f:
    f.write(b"NEEPSNP1" + struct.pack("<II", 1, 2) + records)

# Ops: create 2D, attach backing, transfer write, read back, fence, dispatch, unref.
ops = bytes([0, 2, 1]) + struct.pack("<I", 4 * 16) + struct.pack("<I", 4 * 16) + bytes([0, 0, 1])
ops += bytes([2, 1, 1]) + struct.pack("<II", 0, 65536)
ops += bytes([4, 1]) + struct.pack("<IIB", 0, 0, 0) + struct.pack("<II", 4 * 16, 4 * 16)
ops += bytes([1, 0, 0]) + struct.pack("<II", 0, 0) + struct.pack("<IIB", 0, 0, 0) + bytes([0])
ops += bytes([7, 1]) + struct.pack("<I", 9) + bytes([0, 0, 8, 1, 1])
with open(f"{out}/renderer_ops/create-attach-transfer", "wb") as f:
    f.write(ops)

# Device commands: [length u16][split u8][queue u8][bytes], after one feature byte.
def command(body, split=24, queue=0):
    return struct.pack("<HBB", len(body), min(split, 255), queue) + body

hdr = lambda kind: struct.pack("<IIQIB3x", kind, 0, 0, 0, 0)
os.makedirs(f"{out}/device_commands", exist_ok=True)
frame = b"\x00"
frame += command(hdr(0x0100))  # GET_DISPLAY_INFO
frame += command(hdr(0x0101) + struct.pack("<IIII", 1, 2, 32, 32))  # CREATE_2D
frame += command(hdr(0x0106) + struct.pack("<II", 1, 1) + struct.pack("<QII", 0x10000, 4096, 0))
frame += command(hdr(0x0105) + struct.pack("<IIIIQII", 0, 0, 32, 32, 0, 1, 0))  # TRANSFER
frame += command(hdr(0x0103) + struct.pack("<IIIIII", 0, 0, 32, 32, 0, 1))  # SET_SCANOUT
frame += command(hdr(0x0104) + struct.pack("<IIIIII", 4, 4, 8, 8, 1, 0))  # FLUSH
frame += command(hdr(0x0300) + struct.pack("<IIIIIIII", 0, 5, 5, 0, 1, 0, 0, 0), queue=1)
with open(f"{out}/device_commands/frame", "wb") as f:
    f.write(frame)

os.makedirs(f"{out}/cross_domain", exist_ok=True)
# [flags: 1 = INIT first, 2 = compositor speaks] then commands.
cd = bytes([3])
cd += struct.pack("<BBHIIIII", 2, 0, 24, 0, 64, 64, 0x34325258, 0x11)  # GET_IMAGE_REQUIREMENTS
cd += struct.pack("<BBHIQ", 3, 1, 16, 0, 0)  # POLL
send = struct.pack("<BBHIII", 4, 0, 352 + 12, 0, 0, 12) + bytes(336) + struct.pack("<III", 1, 12 << 16, 2)
cd += send
cd += struct.pack("<BBHIIIII", 7, 0, 24, 0, 5, 1, 0, 0)  # WRITE to an unknown pipe
with open(f"{out}/cross_domain/session", "wb") as f:
    f.write(cd)

os.makedirs(f"{out}/wayland_wire", exist_ok=True)
# All requests: get_registry(2), bind(7, "wl_shm", 1, 3), create_pool(4, fd, 4096).
wire = bytes([0])
wire += struct.pack("<III", 1, (12 << 16) | 1, 2)
wire += struct.pack("<IIII", 2, (32 << 16) | 0, 7, 7) + b"wl_shm\0\0" + struct.pack("<II", 1, 3)
wire += struct.pack("<IIII", 3, (16 << 16) | 0, 4, 4096)
with open(f"{out}/wayland_wire/session", "wb") as f:
    f.write(wire)

os.makedirs(f"{out}/relay", exist_ok=True)
# A client's shm session: get_registry, bind wl_shm and wl_compositor, a surface, a pool
# (one memfd), a buffer, attach, damage_buffer and commit; then the compositor's release.
def request(words, fds=0):
    return bytes([0, fds]) + struct.pack(f"<{len(words)}I", *words)
relay = request([1, (12 << 16) | 1, 2])
relay += bytes([0, 0]) + struct.pack("<IIII", 2, (32 << 16) | 0, 1, 7) + b"wl_shm\0\0" + struct.pack("<II", 1, 3)
relay += bytes([0, 0]) + struct.pack("<IIII", 2, (40 << 16) | 0, 2, 14) + b"wl_compositor\0\0\0" + struct.pack("<II", 4, 4)
relay += request([4, (12 << 16) | 0, 5])
relay += request([3, (16 << 16) | 0, 6, 1 << 16], fds=1)
relay += request([6, (32 << 16) | 0, 7, 0, 64, 64, 256, 1])
relay += request([5, (20 << 16) | 1, 7, 0, 0])
relay += request([5, (24 << 16) | 9, 0, 0, 16, 16])
relay += request([5, (8 << 16) | 6])
relay += bytes([1, 0]) + struct.pack("<II", 5, (8 << 16) | 0)
with open(f"{out}/relay/shm-session", "wb") as f:
    f.write(relay)

os.makedirs(f"{out}/virtqueue", exist_ok=True)
# size 8 (index 3), desc at 0x100, avail at 0x200, used at 0x300; one two-part chain.
ring = bytearray(4096)
struct.pack_into("<QIHH", ring, 0x100, 0x1000, 24, 1, 1)
struct.pack_into("<QIHH", ring, 0x110, 0x2000, 24, 2, 0)
struct.pack_into("<HHH", ring, 0x200, 0, 1, 0)
with open(f"{out}/virtqueue/one-chain", "wb") as f:
    f.write(bytes([3, 1, 2, 3]) + bytes(ring))
