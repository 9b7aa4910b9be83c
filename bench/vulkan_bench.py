#!/usr/bin/env python3
"""Guest Vulkan in one run, on venus or on gfxstream: the round trip of an empty vkQueueSubmit +
fence wait in a guest on QEMU's rutabaga device on neep, the same on lavapipe directly on the
host, and the guest's own fenced virtqueue round trip (a no-op command on the same context
type's terms); then the bandwidth of guest writes into mapped host-visible Vulkan memory (a
HOST3D blob) against guest writes into its own memory.

venus: NEEP_CONTEXT_TYPES=venus,virgl2 on virglrenderer 1.2.0. gfxstream: QEMU's
gfxstream-vulkan=on on gfxstream's backend, the guest's gfxstream driver alone.

    vulkan_bench.py --context-type venus|gfxstream --qemu-rutabaga PATH --neep-library-dir DIR
                    --gl-initrd PATH --host-vk-pattern PATH
                    [--virglrenderer-lib DIR] [--gfxstream-library PATH] [--rounds N]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vm"))
import vmlib  # noqa: E402
from wayland_tests import shell  # noqa: E402


def number(pattern, text):
    found = re.search(pattern, text)
    if not found:
        raise RuntimeError(f"no '{pattern}' in: {text}")
    return float(found.group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--qemu-rutabaga", required=True)
    parser.add_argument("--neep-library-dir", required=True)
    parser.add_argument("--gl-initrd", required=True)
    parser.add_argument("--context-type", choices=["venus", "gfxstream"], default="venus")
    parser.add_argument("--virglrenderer-lib")
    parser.add_argument("--gfxstream-library")
    parser.add_argument("--host-vk-pattern", required=True)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--guest-cpus", type=int, default=2)
    args = parser.parse_args()

    host_rtts = []
    for _ in range(3):
        host = subprocess.run([args.host_vk_pattern, "bench", str(args.rounds)], check=True,
                              capture_output=True, text=True,
                              env=dict(os.environ, VK_PATTERN_ANY_DEVICE="1")).stdout
        host_rtts.append(number(r"submit-roundtrip-us ([0-9.]+)", host))
    host_rtt = statistics.median(host_rtts)

    workdir = tempfile.mkdtemp(prefix=f"neep-{args.context_type}-bench-")
    guest = vmlib.Guest(workdir, None, args.gl_initrd, "neep.test=run neep.program=shell.sh",
                        rutabaga={"qemu": args.qemu_rutabaga,
                                  "library_dir": args.neep_library_dir,
                                  "wayland": os.path.join(workdir, "none")})
    if args.context_type == "venus":
        guest.extra_env = {"NEEP_CONTEXT_TYPES": "venus,virgl2",
                           "LD_LIBRARY_PATH": args.virglrenderer_lib}
        guest_env, fence_args = "", ""
    else:
        guest.extra_device = ",gfxstream-vulkan=on"
        guest.extra_env = {"NEEP_GFXSTREAM_LIBRARY": args.gfxstream_library,
                           "NEEP_GFXSTREAM_SERVER": os.path.join(args.neep_library_dir,
                                                                 "neep-gfxstream-server")}
        guest_env = ("VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/gfxstream_vk_icd.json "
                     "VK_PATTERN_ANY_DEVICE=1")
        fence_args = " gfxstream"
    guest.memory_mib = 2048
    guest.cpus = args.guest_cpus
    try:
        guest.start()
        guest.wait_for("NEEP: shell-ready", timeout=vmlib.BOOT_TIMEOUT * 2)
        # Three passes each, the median kept: the guest runs under emulation on a busy host.
        fence_rtts, guest_rtts, mapped_rates, own_rates = [], [], [], []
        for _ in range(3):
            _, lines = shell(guest, f"fence_rtt {args.rounds}{fence_args}", timeout=600)
            fence_rtts.append(number(r"fence-rtt-us ([0-9.]+)", "\n".join(lines)))
            _, lines = shell(guest, f"{guest_env} vk_pattern bench {args.rounds}", timeout=600)
            text = "\n".join(lines)
            guest_rtts.append(number(r"submit-roundtrip-us ([0-9.]+)", text))
            mapped_rates.append(number(r"mapped-write-mbps ([0-9.]+)", text))
            own_rates.append(number(r"own-write-mbps ([0-9.]+)", text))
        fence_rtt = statistics.median(fence_rtts)
        guest_rtt = statistics.median(guest_rtts)
        mapped = statistics.median(mapped_rates)
        own = statistics.median(own_rates)
    finally:
        guest.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{args.context_type}: empty vkQueueSubmit + fence wait: guest {guest_rtt:.0f} us, "
          f"host lavapipe "
          f"{host_rtt:.1f} us, guest fenced virtqueue round trip {fence_rtt:.0f} us")
    print(f"  guest / (3 x host + virtqueue) = {guest_rtt / (3 * host_rtt + fence_rtt):.2f} "
          f"(target <= 1.00)")
    print(f"guest writes: mapped HOST3D memory {mapped:.0f} MB/s, its own memory {own:.0f} MB/s, "
          f"ratio {mapped / own:.2f} (target >= 0.80)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
