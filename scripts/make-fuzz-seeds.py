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
