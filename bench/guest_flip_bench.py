#!/usr/bin/env python3
"""Page flips in a real guest (QEMU TCG, Linux virtio_gpu): full-screen 1920x1080 flips, each
waited for, on neep-gpu and on Debian's vhost-user-gpu, in the same run.

    guest_flip_bench.py --neep-gpu PATH --initrd PATH [--flips N]
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vm"))
import vmlib  # noqa: E402


def measure(backend, initrd, flips):
    workdir = tempfile.mkdtemp(prefix="neep-flip-")
    guest = vmlib.Guest(workdir, backend, initrd, "neep.test=run neep.program=kms_pattern")
    guest.max_outputs = 1
    guest.extra_device = ",xres=1920,yres=1080"
    guest.check_backend_exit = backend[0].endswith("neep-gpu")
    try:
        guest.start()
        guest.wait_for("NEEP: kms-ready", timeout=vmlib.BOOT_TIMEOUT)
        guest.send(f"flip {flips}")
        _, line = guest.wait_for("NEEP: flips", timeout=600)
        guest.send("exit")
    finally:
        guest.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    # "NEEP: flips N WxH in T ms"
    words = line.split()
    return words[3], flips / (float(words[5]) / 1000.0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--neep-gpu", required=True)
    parser.add_argument("--initrd", required=True)
    parser.add_argument("--flips", type=int, default=200)
    args = parser.parse_args()
    results = {}
    for name, backend in (("neep-gpu", [args.neep_gpu]),
                          ("debian", ["/usr/lib/qemu/vhost-user-gpu"])):
        size, rate = measure(backend, args.initrd, args.flips)
        results[name] = rate
        print(f"{name}: {args.flips} page flips of {size} at {rate:.1f} flips/s", flush=True)
    print(f"neep-gpu vs debian: {results['neep-gpu'] / results['debian']:.2f}x")


if __name__ == "__main__":
    main()
