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

# vhost-user sessions: [config byte: 0x80 = cross-domain] then operations [opcode][arguments]
# (fuzz/fuzz_vhost_user.c). Guest memory is three 64 KiB memfds; the command area is the
# second half of memfd 0.
os.makedirs(f"{out}/vhost_user", exist_ok=True)
(GET_FEATURES, SET_FEATURES, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, SET_OWNER,
 SET_MEM_TABLE, REPLACE_MEMFD, SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, SET_VRING_KICK,
 SET_VRING_CALL, GET_VRING_BASE, SET_VRING_ENABLE, RESET, GET_CONFIG, GPU_SET_SOCKET, KICK,
 PUT_COMMAND, WRITE_RING, WRITE_GUEST, RAW_MESSAGE) = range(22)

def vu_negotiate():
    ops = bytes([GET_FEATURES, GET_PROTOCOL_FEATURES])
    ops += bytes([SET_PROTOCOL_FEATURES, 0]) + bytes(8)  # what was offered
    ops += bytes([SET_FEATURES, 0]) + bytes(8)
    ops += bytes([SET_OWNER])
    # memfd 0 at guest 0 (rings, commands), memfd 1 at guest 0x10000 (pixels).
    ops += bytes([SET_MEM_TABLE, 2, 0, 0, 0, 0, 1, 2, 0, 0])
    return ops

def vu_start(queue, ring_offset, num=8, base=0):
    ops = bytes([SET_VRING_NUM, queue]) + struct.pack("<H", num)
    ops += bytes([SET_VRING_BASE, queue]) + struct.pack("<H", base)
    ops += bytes([SET_VRING_ADDR, queue, 0]) + struct.pack("<HHH", ring_offset, ring_offset + 0x1000, ring_offset + 0x2000)
    ops += bytes([SET_VRING_CALL, queue, SET_VRING_KICK, queue, SET_VRING_ENABLE, queue, 1])
    return ops

def vu_command(body, queue=0, pieces=2, response_units=3, kick=True):
    """A command on the ring: request in `pieces` descriptors, 384-byte response units."""
    layout = (pieces - 1) | ((response_units - 1) << 4) | (0x80 if kick else 0)
    return bytes([PUT_COMMAND, queue, layout]) + struct.pack("<H", len(body)) + body

def gpu_hdr(kind, flags=0, fence=0, ctx=0, ring=0):
    return struct.pack("<IIQIB3x", kind, flags, fence, ctx, ring)

display = bytes([GPU_SET_SOCKET]) + struct.pack("<HH", 640, 480)
frame = vu_negotiate() + display + vu_start(0, 0x0000) + vu_start(1, 0x4000)
frame += vu_command(gpu_hdr(0x0100))  # GET_DISPLAY_INFO
frame += vu_command(gpu_hdr(0x010a) + struct.pack("<I4x", 0))  # GET_EDID
frame += vu_command(gpu_hdr(0x0101) + struct.pack("<IIII", 1, 2, 32, 32))  # CREATE_2D
frame += vu_command(gpu_hdr(0x0106) + struct.pack("<II", 1, 1) + struct.pack("<QII", 0x10000, 4096, 0))
frame += bytes([WRITE_GUEST, 1]) + struct.pack("<HB", 0, 64) + bytes(range(64))
frame += vu_command(gpu_hdr(0x0105) + struct.pack("<IIIIQII", 0, 0, 32, 32, 0, 1, 0))  # TRANSFER
frame += vu_command(gpu_hdr(0x0103) + struct.pack("<IIIIII", 0, 0, 32, 32, 0, 1))  # SET_SCANOUT
frame += vu_command(gpu_hdr(0x0104) + struct.pack("<IIIIII", 4, 4, 8, 8, 1, 0))  # FLUSH
# A converted format on the scanout (conversion staging), then off again.
frame += vu_command(gpu_hdr(0x0101) + struct.pack("<IIII", 2, 134, 64, 64))
frame += vu_command(gpu_hdr(0x0103) + struct.pack("<IIIIII", 0, 0, 64, 64, 0, 2))
frame += vu_command(gpu_hdr(0x0300) + struct.pack("<IIIIIIII", 0, 5, 5, 0, 1, 0, 0, 0), queue=1, response_units=1)
frame += vu_command(gpu_hdr(0x0103) + struct.pack("<IIIIII", 0, 0, 0, 0, 0, 0))
# A resize of the running ring (refused), a pause and resume, a memory move, a reset.
frame += bytes([SET_VRING_NUM, 0]) + struct.pack("<H", 64)
frame += bytes([GET_VRING_BASE, 0, SET_VRING_BASE, 0]) + struct.pack("<H", 10)
frame += bytes([SET_VRING_KICK, 0, SET_VRING_ENABLE, 0, 1])
frame += vu_command(gpu_hdr(0x0104) + struct.pack("<IIIIII", 0, 0, 32, 32, 1, 0))
frame += bytes([REPLACE_MEMFD, 1, SET_MEM_TABLE, 2, 0, 0, 0, 0, 1, 2, 0, 0])
frame += vu_command(gpu_hdr(0x0105) + struct.pack("<IIIIQII", 0, 0, 32, 32, 0, 1, 0))
frame += vu_command(gpu_hdr(0x0107) + struct.pack("<II", 1, 0))  # DETACH_BACKING
frame += bytes([GET_CONFIG, 0, 8, RESET, 0])
with open(f"{out}/vhost_user/frame", "wb") as f:
    f.write(bytes([0]) + frame)

# A guest reset with a cross-domain POLL pending: the rings come back elsewhere.
cd = vu_negotiate() + vu_start(0, 0x0000) + vu_start(1, 0x4000)
cd += vu_command(gpu_hdr(0x0200, ctx=1) + struct.pack("<II", 0, 5) + bytes(64))  # CTX_CREATE
for rid, gpa in ((101, 0x10000), (102, 0x11000)):
    cd += vu_command(gpu_hdr(0x010c, ctx=1) + struct.pack("<IIIIQQ", rid, 1, 1, 1, 0, 4096)
                     + struct.pack("<QII", gpa, 4096, 0))  # CREATE_BLOB
    cd += vu_command(gpu_hdr(0x0202, ctx=1) + struct.pack("<I4x", rid))  # CTX_ATTACH_RESOURCE
init = struct.pack("<BBHIIII", 1, 0, 20, 0, 101, 102, 1)
cd += vu_command(gpu_hdr(0x0207, ctx=1) + struct.pack("<I4x", len(init)) + init)  # SUBMIT_3D
poll = struct.pack("<BBHIQ", 3, 0, 16, 0, 0)
cd += vu_command(gpu_hdr(0x0207, flags=3, fence=1, ctx=1, ring=1) + struct.pack("<I4x", len(poll)) + poll)
cd += bytes([GET_VRING_BASE, 0, GET_VRING_BASE, 1]) + vu_start(0, 0x8000) + vu_start(1, 0xb000)
cd += vu_command(gpu_hdr(0x0100))
with open(f"{out}/vhost_user/cross-domain-reset", "wb") as f:
    f.write(bytes([0x80]) + cd)

# The front-end replaces guest memory again and again while resources live in each copy: the
# retired mappings pile up to their bound, then the oldest is taken back.
churn = vu_negotiate() + vu_start(0, 0x0000) + vu_start(1, 0x4000)
for rid in range(1, 11):
    churn += bytes([REPLACE_MEMFD, 1, SET_MEM_TABLE, 2, 0, 0, 0, 0, 1, 2, 0, 0])
    churn += vu_command(gpu_hdr(0x0101) + struct.pack("<IIII", rid, 2, 16, 16), response_units=1)
    churn += vu_command(gpu_hdr(0x0106) + struct.pack("<II", rid, 1) + struct.pack("<QII", 0x10000, 1024, 0),
                        response_units=1)
churn += vu_command(gpu_hdr(0x0105) + struct.pack("<IIIIQII", 0, 0, 16, 16, 0, 1, 0), response_units=1)
churn += vu_command(gpu_hdr(0x0102) + struct.pack("<I4x", 10), response_units=1)  # UNREF
churn += vu_command(gpu_hdr(0x0301) + struct.pack("<IIIIIIII", 0, 9, 9, 0, 0, 0, 0, 0), queue=1,
                    response_units=1)  # MOVE_CURSOR
with open(f"{out}/vhost_user/memory-churn", "wb") as f:
    f.write(bytes([0]) + churn)

# Every other command once, on a device with cross-domain (capsets, contexts, blobs): the
# fuzzer starts from each command's right size and fields.
more = vu_negotiate() + vu_start(0, 0x0000) + vu_start(1, 0x4000)
more += vu_command(gpu_hdr(0x0108) + struct.pack("<I4x", 0), response_units=1)  # GET_CAPSET_INFO
more += vu_command(gpu_hdr(0x0109) + struct.pack("<II", 5, 0))  # GET_CAPSET
more += vu_command(gpu_hdr(0x0101) + struct.pack("<IIII", 1, 1, 8, 8), response_units=1)
more += vu_command(gpu_hdr(0x010b) + struct.pack("<I4x", 1), response_units=1)  # ASSIGN_UUID
more += vu_command(gpu_hdr(0x0200, ctx=2) + struct.pack("<II", 4, 5) + b"test" + bytes(60))
more += vu_command(gpu_hdr(0x0204, ctx=2) + struct.pack("<12I", 2, 2, 2, 2, 8, 8, 1, 1, 0, 0, 0, 0),
                   response_units=1)  # RESOURCE_CREATE_3D
more += vu_command(gpu_hdr(0x0205, ctx=2) + struct.pack("<IIIIII", 0, 0, 0, 8, 8, 1)
                   + struct.pack("<QIIII", 0, 2, 0, 32, 0), response_units=1)  # TRANSFER_TO_HOST_3D
more += vu_command(gpu_hdr(0x0206, ctx=2) + struct.pack("<IIIIII", 0, 0, 0, 8, 8, 1)
                   + struct.pack("<QIIII", 0, 2, 0, 32, 0), response_units=1)  # TRANSFER_FROM_HOST_3D
reqs = struct.pack("<BBHIIIII", 2, 0, 24, 0, 64, 64, 0x34325258, 0x11)  # GET_IMAGE_REQUIREMENTS
more += vu_command(gpu_hdr(0x0207, ctx=2) + struct.pack("<I4x", len(reqs)) + reqs, response_units=1)
more += vu_command(gpu_hdr(0x010c, ctx=2) + struct.pack("<IIIIQQ", 3, 2, 1, 0, 1, 65536), response_units=1)
more += vu_command(gpu_hdr(0x010d) + struct.pack("<IIII", 0, 0, 8, 8) + struct.pack("<6I", 0, 3, 8, 8, 2, 0)
                   + struct.pack("<4I", 32, 0, 0, 0) + struct.pack("<4I", 0, 0, 0, 0),
                   response_units=1)  # SET_SCANOUT_BLOB
more += vu_command(gpu_hdr(0x0208) + struct.pack("<I4xQ", 3, 0), response_units=1)  # MAP_BLOB
more += vu_command(gpu_hdr(0x0209) + struct.pack("<I4x", 3), response_units=1)  # UNMAP_BLOB
more += vu_command(gpu_hdr(0x0203, ctx=2) + struct.pack("<I4x", 1), response_units=1)  # CTX_DETACH
more += vu_command(gpu_hdr(0x0201, ctx=2), response_units=1)  # CTX_DESTROY
with open(f"{out}/vhost_user/more-commands", "wb") as f:
    f.write(bytes([0x81]) + more)

# Cross-domain rings in memory the front-end then replaces under them, past the bound.
rings = vu_negotiate() + vu_start(0, 0x0000) + vu_start(1, 0x4000)
rings += vu_command(gpu_hdr(0x0200, ctx=1) + struct.pack("<II", 0, 5) + bytes(64), response_units=1)
for rid, gpa in ((101, 0x10000), (102, 0x11000)):
    rings += vu_command(gpu_hdr(0x010c, ctx=1) + struct.pack("<IIIIQQ", rid, 1, 1, 1, 0, 4096)
                        + struct.pack("<QII", gpa, 4096, 0), response_units=1)
    rings += vu_command(gpu_hdr(0x0202, ctx=1) + struct.pack("<I4x", rid), response_units=1)
rings += vu_command(gpu_hdr(0x0207, ctx=1) + struct.pack("<I4x", len(init)) + init, response_units=1)
for rid in range(1, 10):
    rings += bytes([REPLACE_MEMFD, 1, SET_MEM_TABLE, 2, 0, 0, 0, 0, 1, 2, 0, 0])
    rings += vu_command(gpu_hdr(0x0101) + struct.pack("<IIII", rid, 2, 16, 16), response_units=1)
    rings += vu_command(gpu_hdr(0x0106) + struct.pack("<II", rid, 1) + struct.pack("<QII", 0x10000, 1024, 0),
                        response_units=1)
rings += vu_command(gpu_hdr(0x0207, flags=3, fence=1, ctx=1, ring=1) + struct.pack("<I4x", len(poll)) + poll)
with open(f"{out}/vhost_user/cross-domain-memory-churn", "wb") as f:
    f.write(bytes([0x80]) + rings)
