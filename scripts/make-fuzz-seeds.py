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
# A client's shm session (fuzz/fuzz_relay.c): get_registry, bind wl_shm and wl_compositor,
# a surface, a pool (one memfd), a buffer, attach, damage_buffer and commit; then the
# compositor's release. Records: [op: 0 request, 1 event][fds][words - 2: 2 bytes][message].
def relay_record(op, words, fds=0, strings=b""):
    body = struct.pack(f"<{len(words)}I", *words) + strings
    return bytes([op, fds]) + struct.pack("<H", (len(body) - 8) // 4) + body
def relay_bind(name, interface, version, new_id):
    text = interface.encode() + b"\0"
    text += b"\0" * (-len(text) % 4)
    body = struct.pack("<II", name, len(interface) + 1) + text + struct.pack("<II", version, new_id)
    return bytes([0, 0]) + struct.pack("<H", len(body) // 4) + struct.pack("<II", 2, 0) + body
relay = relay_record(0, [1, 1, 2])
relay += relay_bind(1, "wl_shm", 1, 3)
relay += relay_bind(2, "wl_compositor", 4, 4)
relay += relay_record(0, [4, 0, 5])
relay += relay_record(0, [3, 0, 6, 1 << 16], fds=1)
relay += relay_record(0, [6, 0, 7, 0, 64, 64, 256, 1])
relay += relay_record(0, [5, 1, 7, 0, 0])
relay += relay_record(0, [5, 9, 0, 0, 16, 16])
relay += relay_record(0, [5, 6])
relay += relay_record(1, [5, 0])
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

os.makedirs(f"{out}/neep_wl_connection", exist_ok=True)
# One neep-wl connection as events (fuzz/fuzz_neep_wl_connection.c): each starts with an op
# byte. Raw client requests, raw RECEIVEs and READs are enough to reach the deep states;
# the fuzzer mixes in the structured ops from there.
OP_RAW_REQUEST, OP_RAW_RECEIVE, OP_READ, OP_CLIENT_READS = 3, 5, 6, 10
OP_SHRINK, OP_PIPE_WRITE, OP_PIPE_DRAIN, OP_CLOSE_HELD = 11, 12, 13, 14


def wl_string(text):
    data = text.encode() + b"\0"
    return struct.pack("<I", len(data)) + data + b"\0" * (-len(data) % 4)


def wl_message(obj, opcode, body=b""):
    return struct.pack("<II", obj, (8 + len(body)) << 16 | opcode) + body


def fd_kind(kind, size=0):
    """An fd kind byte: 0 memfd of at least `size` bytes, 2 a pipe's write end (the client
    keeps the read end), 3 a pipe's read end."""
    for k in range(256):
        if k % 5 == kind and (kind != 0 or (k >> 3) * 8192 >= size):
            return k
    raise ValueError(kind)


def raw_request(message, fds=()):
    assert len(message) % 4 == 0 and len(message) <= 4096
    return (bytes([OP_RAW_REQUEST, len(fds)]) + struct.pack("<H", (len(message) - 8) // 4)
            + message + bytes(fds))


def raw_receive(data, ids=()):
    """ids: (type, id, size); blobs and write pipes only."""
    out = bytes([OP_RAW_RECEIVE, len(ids)])
    for kind, ident, size in ids:
        out += bytes([{1: 0, 4: 4}[kind] | 0x80 | 0x40]) + struct.pack("<II", ident, size)
    return out + struct.pack("<H", len(data)) + data


def bind(name, interface, version, new_id):
    return raw_request(wl_message(2, 0, struct.pack("<I", name) + wl_string(interface)
                                  + struct.pack("<II", version, new_id)))


registry = raw_request(wl_message(1, 1, struct.pack("<I", 2)))

# shm: a surface, a pool (one memfd), a buffer shown with damage, released by the host;
# then the memfd shrinks under neep-wl and the buffer is shown again.
shm = registry + bind(1, "wl_shm", 1, 3) + bind(2, "wl_compositor", 4, 4)
shm += raw_request(wl_message(4, 0, struct.pack("<I", 5)))
shm += raw_request(wl_message(3, 0, struct.pack("<Ii", 6, 65536)), [fd_kind(0, 65536)])
shm += raw_request(wl_message(6, 0, struct.pack("<IiiiiI", 7, 0, 64, 64, 256, 1)))
shm += raw_request(wl_message(5, 1, struct.pack("<Iii", 7, 0, 0)))
shm += raw_request(wl_message(5, 9, struct.pack("<iiii", 0, 0, 16, 16)))
shm += raw_request(wl_message(5, 6))
shm += raw_receive(wl_message(7, 0))  # wl_buffer.release (the host's buffer is 7 too)
shm += bytes([OP_CLIENT_READS, OP_SHRINK, 0, 0])
shm += raw_request(wl_message(5, 1, struct.pack("<Iii", 7, 0, 0)))
shm += raw_request(wl_message(5, 9, struct.pack("<iiii", 0, 0, 64, 64)))
shm += raw_request(wl_message(5, 6))
with open(f"{out}/neep_wl_connection/shm", "wb") as f:
    f.write(shm)

# A toplevel with titles of 3.8 KB and of the wire maximum, configured by the host.
top = registry + bind(1, "xdg_wm_base", 1, 3) + bind(2, "wl_compositor", 4, 4)
top += raw_request(wl_message(4, 0, struct.pack("<I", 5)))
top += raw_request(wl_message(3, 2, struct.pack("<II", 6, 5)))
top += raw_request(wl_message(6, 1, struct.pack("<I", 7)))
top += raw_request(wl_message(7, 2, wl_string("t" * 3800)))
top += raw_request(wl_message(7, 2, wl_string("m" * 4083)))
top += raw_receive(wl_message(7, 0, struct.pack("<iiI", 640, 480, 0))
                   + wl_message(6, 0, struct.pack("<I", 1)))
top += bytes([OP_CLIENT_READS]) + raw_request(wl_message(6, 4, struct.pack("<I", 1)))
with open(f"{out}/neep_wl_connection/toplevel", "wb") as f:
    f.write(top)

# The clipboard both ways: an offer from the host received into a pipe (READ data, then
# hang-up), and the client's own source asked for its data (a write pipe the client fills).
OFFER = 0xff000001
clip = registry + bind(1, "wl_data_device_manager", 3, 3) + bind(2, "wl_seat", 5, 4)
clip += raw_request(wl_message(3, 1, struct.pack("<II", 5, 4)))
clip += raw_receive(wl_message(5, 0, struct.pack("<I", OFFER))
                    + wl_message(OFFER, 0, wl_string("text/plain"))
                    + wl_message(5, 5, struct.pack("<I", OFFER)))
clip += bytes([OP_CLIENT_READS])
clip += raw_request(wl_message(OFFER, 1, wl_string("text/plain")), [fd_kind(2)])
clip += bytes([OP_READ, 0]) + struct.pack("<IHB", 0, 5, 0) + b"hello"
clip += bytes([OP_PIPE_DRAIN, 0])
# More than the pipe holds before the client drains it: neep-wl keeps the rest, stops polling.
clip += bytes([OP_READ, 0]) + struct.pack("<IHB", 0, 4072, 0xfa) + bytes(range(256)) * 15 + bytes(232)
clip += bytes([OP_PIPE_DRAIN, 0])
clip += bytes([OP_READ, 0x80]) + struct.pack("<IHB", 0, 0, 0)
clip += raw_request(wl_message(3, 0, struct.pack("<I", 6)))
clip += raw_request(wl_message(6, 0, wl_string("text/plain")))
clip += raw_request(wl_message(5, 1, struct.pack("<II", 6, 1)))
clip += raw_receive(wl_message(6, 1, wl_string("text/plain")), [(4, 1, 0)])
clip += bytes([OP_CLIENT_READS, OP_PIPE_WRITE, 1]) + struct.pack("<H", 6) + b"world\n"
clip += bytes([OP_CLOSE_HELD, 1])
with open(f"{out}/neep_wl_connection/clipboard", "wb") as f:
    f.write(clip)

# A compositor flooding a client that does not read (wl_seat.name with the longest name,
# over and over), until neep-wl stops polling for it; then the client reads.
OP_HOST_FLOOD = 17
flood = registry + bind(1, "wl_seat", 5, 3)
flood += bytes([OP_HOST_FLOOD, 0xf1]) + struct.pack("<HHB", 319, 2, 1)
flood += bytes([OP_CLIENT_READS])
with open(f"{out}/neep_wl_connection/flood", "wb") as f:
    f.write(flood)

# A keyboard whose keymap comes from the host as a blob.
keys = registry + bind(1, "wl_seat", 5, 3) + raw_request(wl_message(3, 1, struct.pack("<I", 4)))
keys += raw_receive(wl_message(4, 0, struct.pack("<II", 1, 4096)), [(1, 9, 4096)])
keys += bytes([OP_CLIENT_READS])
with open(f"{out}/neep_wl_connection/keymap", "wb") as f:
    f.write(keys)
