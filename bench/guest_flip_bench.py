#!/usr/bin/env python3
"""Page flips in a real guest (QEMU TCG, Linux virtio_gpu), full-screen, each waited for, in
one run on three devices: QEMU's in-process virtio-gpu-pci, neep-gpu and Debian's
vhost-user-gpu (both under QEMU's vhost-user-gpu-pci). Prints flips/s for each, and the
frames per second that reached QEMU's display: every flip on the two peers (their flushes
wait for the display), what neep-gpu wrote whole to the display channel on neep-gpu (it
merges flips the display did not get to).

    guest_flip_bench.py --neep-gpu PATH --initrd PATH [--flips N] [--size WxH] [--rounds N]
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


def measure(kind, neep_gpu, initrd, flips, width, height):
    workdir = tempfile.mkdtemp(prefix="neep-flip-")
    size = f",xres={width},yres={height}"
    if kind == "in-process":
        guest = vmlib.Guest(workdir, None, initrd, "neep.test=run neep.program=kms_pattern")
        guest.builtin = {"device": "virtio-gpu-pci" + size, "display": ["-display", "none"]}
        guest.check_backend_exit = False
    else:
        backend = [neep_gpu, "--verbose"] if kind == "neep-gpu" else ["/usr/lib/qemu/vhost-user-gpu"]
        guest = vmlib.Guest(workdir, backend, initrd, "neep.test=run neep.program=kms_pattern")
        guest.extra_device = size
        guest.check_backend_exit = kind == "neep-gpu"
    try:
        guest.start()
        guest.wait_for("NEEP: kms-ready", timeout=vmlib.BOOT_TIMEOUT)
        guest.send(f"flip {flips}")
        _, line = guest.wait_for("NEEP: flips", timeout=600)
        guest.send("exit")
        guest.wait_for("NEEP: kms-exit")
    finally:
        guest.stop()
        log = guest.backend_log_text() if kind == "neep-gpu" else ""
        shutil.rmtree(workdir, ignore_errors=True)
    # "NEEP: flips N WxH in T ms"
    words = line.split()
    seconds = float(words[5]) / 1000.0
    displayed = flips
    if kind == "neep-gpu":
        # neep-gpu's exit line (it counts the few frames of the mode set too).
        found = re.search(r"display: (\d+) updates flushed, (\d+) sent whole", log)
        if not found:
            raise RuntimeError("neep-gpu did not report its display: " + log[-500:])
        displayed = int(found.group(2))
    return words[3], flips / seconds, min(displayed, flips) / seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--neep-gpu", required=True)
    parser.add_argument("--initrd", required=True)
    parser.add_argument("--flips", type=int, default=2000)
    parser.add_argument("--size", default="1280x800")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure each device this many times, interleaved; report medians "
                        "(these machines' speed drifts from minute to minute)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    rates = {kind: [] for kind in ("in-process", "neep-gpu", "debian")}
    shown = {kind: [] for kind in rates}
    for _ in range(args.rounds):
        for kind in rates:
            size, rate, frames = measure(kind, args.neep_gpu, args.initrd, args.flips, width,
                                         height)
            rates[kind].append(rate)
            shown[kind].append(frames)
            print(f"{kind}: {args.flips} page flips of {size} at {rate:.0f} flips/s; "
                  f"{frames:.0f} frames/s reached QEMU's display", flush=True)
    ratios = sorted(n / i for n, i in zip(rates["neep-gpu"], rates["in-process"]))
    median = statistics.median
    if args.rounds > 1:
        print(f"medians of {args.rounds} rounds: " + "; ".join(
            f"{kind} {median(rates[kind]):.0f} flips/s, {median(shown[kind]):.0f} frames/s"
            for kind in rates))
    print(f"neep-gpu vs in-process: {median(ratios):.2f}x (target >= 0.5, aim 0.8; rounds, sorted: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}); vs Debian's vhost-user-gpu: "
          f"{median(rates['neep-gpu']) / median(rates['debian']):.2f}x")


if __name__ == "__main__":
    main()
