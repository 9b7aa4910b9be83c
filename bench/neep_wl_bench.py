#!/usr/bin/env python3
"""wl_shm frames through neep-wl (a guest under QEMU TCG, virtio-gpu-rutabaga on neep) against
the same client run directly on the host, on the same headless weston, in the same run.

For each case: frames per second, host CPU time per frame (the client, or QEMU for the
guest, plus weston), and for the guest the bytes neep-wl copied per frame against the bytes
the client damaged.

    neep_wl_bench.py --qemu-rutabaga PATH --neep-library-dir DIR --initrd PATH
                     --client PATH [--frames N]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vm"))
import vmlib  # noqa: E402
import wayland_tests  # noqa: E402

WIDTH, HEIGHT = 1920, 1080
FRAME_BYTES = WIDTH * HEIGHT * 4
BUFFERS = 3  # wl_pattern's; each is copied whole the first time it is shown
# (damage percent, pacing, region)
CASES = [(100, "frame", "fixed"), (100, "release", "fixed"), (1, "release", "fixed"),
         (1, "release", "moving")]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_fps(text):
    match = re.search(r"NEEP: wl-bench .* fps=([0-9.]+)", text)
    if not match:
        raise AssertionError(f"no result from wl_pattern: {text[-500:]}")
    return float(match.group(1))


def run_host(client, weston, frames, case):
    damage, pacing, region = case
    weston_before = cpu_seconds(weston.process.pid)
    started = os.times()
    result = subprocess.run([client, "bench", str(WIDTH), str(HEIGHT), str(frames), str(damage),
                             pacing, region], env=weston.environment, capture_output=True,
                            text=True, timeout=600)
    ended = os.times()
    client_cpu = (ended.children_user - started.children_user +
                  ended.children_system - started.children_system)
    weston_cpu = cpu_seconds(weston.process.pid) - weston_before
    return parse_fps(result.stdout), (client_cpu + weston_cpu) / frames


def run_guest(guest, qemu_pid, weston, frames, case):
    damage, pacing, region = case
    weston_before = cpu_seconds(weston.process.pid)
    qemu_before = cpu_seconds(qemu_pid)
    start = len(guest.lines)
    status, lines = wayland_tests.shell(
        guest, f"wl_pattern bench {WIDTH} {HEIGHT} {frames} {damage} {pacing} {region}",
        timeout=900)
    cpu = cpu_seconds(qemu_pid) - qemu_before + cpu_seconds(weston.process.pid) - weston_before
    fps = parse_fps("\n".join(lines))
    # neep-wl's account of the connection, printed as it closes.
    copied = None
    deadline = time.monotonic() + 20
    while copied is None and time.monotonic() < deadline:
        for line in guest.lines[start:]:
            match = re.search(r"client \d+: (\d+) commits, (\d+) bytes copied to the host "
                              r"in ([0-9.]+) ms", line)
            if match:
                copied = (int(match.group(1)), int(match.group(2)), float(match.group(3)))
        time.sleep(0.2)
    return fps, cpu / frames, copied


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--qemu-rutabaga", required=True)
    parser.add_argument("--neep-library-dir", required=True)
    parser.add_argument("--initrd", required=True)
    parser.add_argument("--client", required=True, help="wl_pattern")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--guest-cpus", type=int, default=2,
                        help="vCPUs (TCG runs them on separate host threads)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="neep-wl-bench-")
    weston = vmlib.Weston(workdir, name="wayland-bench")
    results = []
    try:
        host = [run_host(args.client, weston, args.frames * 2, case) for case in CASES]
        os.makedirs(os.path.join(workdir, "guest"))
        guest = wayland_tests.start_session(args, os.path.join(workdir, "guest"), weston.socket,
                                            cpus=args.guest_cpus)
        try:
            qemu_pid = guest.processes[0].pid
            for case, (host_fps, host_cpu) in zip(CASES, host):
                results.append((case, host_fps, host_cpu,
                                *run_guest(guest, qemu_pid, weston, args.frames, case)))
        finally:
            guest.stop()
    finally:
        weston.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"wl_shm client, {WIDTH}x{HEIGHT} XRGB8888, {BUFFERS} buffers, headless weston; "
          f"host = the client on the host, guest = the client through neep-wl "
          f"(QEMU TCG, {args.guest_cpus} vCPUs)")
    for (damage, pacing, region), host_fps, host_cpu, fps, cpu, copied in results:
        name = f"{damage}% damage ({region}), paced by {pacing}"
        print(f"== {name}")
        print(f"  frames/s: guest {fps:.1f}, host {host_fps:.1f} ({fps / host_fps:.2f}x)")
        print(f"  host CPU ms/frame: guest (QEMU + weston) {cpu * 1000:.1f}, "
              f"host (client + weston) {host_cpu * 1000:.1f}")
        if copied:
            commits, copied_bytes, copy_ms = copied
            # The first commit of each buffer copies it whole; after that, damage only.
            steady = (copied_bytes - BUFFERS * FRAME_BYTES) / max(commits - BUFFERS, 1)
            damaged = max(HEIGHT * damage // 100, 1) * WIDTH * 4  # wl_pattern's band
            print(f"  neep-wl copied {steady / FRAME_BYTES * 100:.2f}% of a frame per frame "
                  f"({steady / damaged:.2f}x the bytes the client damaged), "
                  f"{copy_ms / commits:.1f} ms/frame of guest time copying")
        target = "met" if fps >= 60 else "NOT met"
        if pacing == "release" and damage == 100:
            print(f"  60 frames/s at 1920x1080 through neep-wl: {target}")


if __name__ == "__main__":
    main()
