#!/usr/bin/env python3
"""kmscube in the same GL guest (QEMU TCG, Mesa's virgl driver, llvmpipe on the host) on three
devices, in one run: neep-gpu --virgl under QEMU's vhost-user-gpu-pci, QEMU's
virtio-gpu-rutabaga on neep's library (NEEP_CONTEXT_TYPES=virgl2), and QEMU's own
virtio-gpu-gl-pci (in-process virglrenderer) as the baseline. Prints frames/s and the ratio of
each neep face to the baseline.

    gl_bench.py --neep-gpu PATH --qemu-rutabaga PATH --neep-library-dir DIR --gl-initrd PATH
                [--frames N] [--rounds R]
"""
import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vm"))
import vmlib  # noqa: E402
from wayland_tests import shell  # noqa: E402


def make_guest(kind, args, workdir):
    cmdline = "neep.test=run neep.program=shell.sh"
    if kind == "neep-gpu":
        guest = vmlib.Guest(workdir, [args.neep_gpu, "--virgl"], args.gl_initrd, cmdline)
    elif kind == "rutabaga":
        guest = vmlib.Guest(workdir, None, args.gl_initrd, cmdline,
                            rutabaga={"qemu": args.qemu_rutabaga,
                                      "library_dir": args.neep_library_dir,
                                      "wayland": os.path.join(workdir, "none")})
        guest.extra_env = {"NEEP_CONTEXT_TYPES": "virgl2"}
    else:
        # QEMU's own GL device needs a GL display; egl-headless takes /dev/null as its node
        # here (no GPU), as the test rig notes say.
        guest = vmlib.Guest(workdir, None, args.gl_initrd, cmdline)
        guest.builtin = {"device": "virtio-gpu-gl-pci",
                         "display": ["-display", "egl-headless,rendernode=/dev/null"]}
        guest.check_backend_exit = False
    guest.memory_mib = 2048
    guest.cpus = 2
    return guest


def measure(kind, args):
    workdir = tempfile.mkdtemp(prefix="neep-gl-bench-")
    guest = make_guest(kind, args, workdir)
    rates = []
    try:
        guest.start()
        guest.wait_for("NEEP: shell-ready", timeout=vmlib.BOOT_TIMEOUT * 2)
        # kmscube stops when its stdin turns readable: it reads a FIFO that stays silent.
        shell(guest, "mkfifo /tmp/silent; sleep 1000000 > /tmp/silent &")
        for _ in range(args.rounds):
            status, lines = shell(guest, f"kmscube -c {args.frames} < /tmp/silent 2>&1 | "
                                         "tail -n 1", timeout=600)
            found = re.search(r"Rendered (\d+) frames in ([0-9.]+) sec", "\n".join(lines))
            if status != 0 or not found:
                raise RuntimeError(f"kmscube failed on {kind}: {lines}")
            rates.append(int(found.group(1)) / float(found.group(2)))
    finally:
        guest.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return statistics.median(rates), rates


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--neep-gpu", required=True)
    parser.add_argument("--qemu-rutabaga", required=True)
    parser.add_argument("--neep-library-dir", required=True)
    parser.add_argument("--gl-initrd", required=True)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {}
    for kind in ("qemu-virgl", "neep-gpu", "rutabaga"):
        median, rates = measure(kind, args)
        results[kind] = median
        print(f"{kind:12s} kmscube {median:7.1f} frames/s (median of "
              f"{', '.join(f'{r:.1f}' for r in rates)})", flush=True)
    baseline = results["qemu-virgl"]
    for kind in ("neep-gpu", "rutabaga"):
        print(f"{kind:12s} {results[kind] / baseline:.2f}x QEMU's virtio-gpu-gl-pci")
    return 0


if __name__ == "__main__":
    sys.exit(main())
