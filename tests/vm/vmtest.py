#!/usr/bin/env python3
"""Real-guest tests: a Debian kernel under QEMU (TCG) with neep-gpu as its GPU.

Each test boots the test initramfs, talks to the guest over its serial console, and checks
what QEMU received from neep-gpu with QMP screendump, pixel by pixel where it matters.

    vmtest.py --neep-gpu PATH --initrd PATH [--keep DIR] [TEST...]

Prints one line per test and closes with "N passed, N failed".
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback

from gl_tests import GL_TESTS, RUTABAGA_GL_TESTS, Skipped, run_gl_demo
from wayland_tests import NEEP_WL_TESTS, run_wayland_demo
from vmlib import (BOOT_TIMEOUT, Guest, PipePeer, Weston, check_image, rutabaga_guest,
                   settled_check, write_png)

# ---- expectations --------------------------------------------------------------------------

def pattern_pixel(head, x, y):
    """What kms_pattern draws, as (r, g, b)."""
    return (x & 0xff, y & 0xff, ((x ^ y) + head * 85) & 0xff)


def check_pattern(image, head, width, height, exceptions=()):
    """Every pixel matches the pattern, except inside `exceptions` ((x, y, w, h, rgb))."""
    def expected(x, y):
        for ex, ey, ew, eh, colour in exceptions:
            if ex <= x < ex + ew and ey <= y < ey + eh:
                return colour
        return pattern_pixel(head, x, y)
    check_image(image, width, height, expected, label=f"head {head}")


def parse_mode(line):
    # "NEEP: kms-mode head=0 1280x800"
    size = line.split()[-1]
    width, height = size.split("x")
    return int(width), int(height)


# ---- tests ---------------------------------------------------------------------------------

def test_fbcon(args, workdir):
    """fbcon's text reaches the display: the eight test lines in fbcon's grey, black below."""
    guest = Guest(workdir, args.backend, args.initrd, "neep.test=fbcon")
    try:
        guest.start()
        guest.wait_for("NEEP: fbcon-written", timeout=BOOT_TIMEOUT)
        time.sleep(0.5)
        image = settled_check(guest, "fbcon.ppm", check_fbcon)
        return f"{image.width}x{image.height}, {count_text_pixels(image)} text pixels"
    finally:
        guest.stop()


def count_text_pixels(image):
    # The 8x16 console font: eight lines of text occupy rows 0-127.
    return sum(1 for y in range(0, 8 * 16) for x in range(0, 70 * 8)
               if image.pixel(x, y) == (0xaa, 0xaa, 0xaa))


def check_fbcon(image):
    """The eight test lines in fbcon's grey on black, and black below them."""
    lit = count_text_pixels(image)
    if lit < 8 * 2000:
        raise AssertionError(f"only {lit} text pixels in the first eight console lines")
    others = set(image.pixel(x, y) for y in range(0, 8 * 16) for x in range(0, 70 * 8))
    if not others <= {(0, 0, 0), (0xaa, 0xaa, 0xaa)}:
        raise AssertionError(f"unexpected colours in the text area: {sorted(others)[:4]}")
    below = set(image.pixel(x, y) for y in range(200, image.height, 7)
                for x in range(0, image.width, 5))
    if below - {(0, 0, 0)}:
        raise AssertionError("pixels below the text are not black")


def run_kms(guest):
    guest.start()
    index, _ = guest.wait_for("NEEP: kms-ready", timeout=BOOT_TIMEOUT)
    modes = [parse_mode(line) for line in guest.lines[:index] if line.startswith("NEEP: kms-mode")]
    return modes


SOLID = {"red": bytes((255, 0, 0)), "blue": bytes((0, 0, 255))}


def solid_colour(image):
    """The name of the solid colour the whole image is, or None if it is anything else."""
    for name, rgb in SOLID.items():
        if image.pixels == rgb * (image.width * image.height):
            return name
    return None


def test_flips_whole(args, workdir):
    """A guest page-flips between solid red and solid blue as fast as it can while QEMU's
    display is dumped again and again: every dump is exactly one of the two frames (the display
    never shows a mix), and after the loop the display shows exactly the last frame."""
    guest = Guest(workdir, args.backend, args.initrd, "neep.test=run neep.program=kms_pattern")
    guest.extra_device = ",xres=1280,yres=800"
    try:
        run_kms(guest)
        start = len(guest.lines)
        guest.send("solid 3000")
        dumps, seen = 0, set()
        while not any(line.startswith("NEEP: solid-flips") for line in guest.lines[start:]):
            image = guest.screendump(f"during-{dumps % 2}.ppm")
            colour = solid_colour(image)
            # Until the first flip shows, the pattern may; from then on only whole frames.
            if colour is None and seen:
                odd = {image.pixel(x, y) for y in range(0, image.height, 97)
                       for x in range(0, image.width, 89)}
                raise AssertionError(f"dump {dumps} during the flips is no single frame: "
                                     f"colours {sorted(odd)[:6]}")
            if colour:
                seen.add(colour)
                dumps += 1
        if dumps < 4 or len(seen) < 2:
            raise AssertionError(f"only {dumps} dumps ({seen}) during the flips: too few to tell")
        index, line = guest.wait_for("NEEP: solid-flips", start=start)
        last = line.split()[-1]

        def shows_last(image):
            if solid_colour(image) != last:
                raise AssertionError(f"after the flips the display is not all {last}")
        settled_check(guest, "after.ppm", shows_last)
        words = line.split()
        rate = int(words[2]) / (float(words[5]) / 1000.0)
        return (f"{dumps} dumps during {words[2]} flips of {words[3]} ({rate:.0f}/s), each one "
                f"whole frame ({', '.join(sorted(c for c in seen if c))}); the last ({last}) "
                f"shown after")
    finally:
        guest.stop()


def resident_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_display_stall(args, workdir):
    """A front-end stand-in between QEMU and neep-gpu stops reading the display socket while the
    guest page-flips between solid red and solid blue: every flip still completes, neep-gpu's
    memory stays put, and QEMU's display shows nothing new; when the stand-in reads again, the
    display shows exactly the last frame the guest flipped to."""
    guest = Guest(workdir, args.backend, args.initrd, "neep.test=run neep.program=kms_pattern")
    guest.extra_device = ",xres=1280,yres=800"
    guest.display_standin = True
    try:
        run_kms(guest)
        standin = guest.display_standin
        backend_pid = guest.processes[0].pid
        time.sleep(0.5)  # the pattern's frames reach QEMU
        standin.pause()
        time.sleep(0.2)  # a chunk the relay held when paused goes on
        held_from = standin.relayed_bytes
        resident_before = resident_kib(backend_pid)
        start = len(guest.lines)
        guest.send("solid 1001")
        # The flips complete although the display takes nothing.
        _, line = guest.wait_for("NEEP: solid-flips", start=start, timeout=60)
        words = line.split()
        last = words[-1]
        rate = int(words[2]) / (float(words[5]) / 1000.0)
        resident_growth = resident_kib(backend_pid) - resident_before
        if standin.relayed_bytes != held_from:
            raise AssertionError("the stand-in relayed display bytes while paused")
        image = guest.screendump("paused.ppm")
        if solid_colour(image) is not None:
            raise AssertionError("QEMU shows a flipped frame although the display was held")
        # The guest's two new 4 MiB buffers: their storage and their guest pages mapped, 16 MiB.
        # A display that queued what it could not send would hold a frame per flip (4 GiB).
        if resident_growth > 24 * 1024:
            raise AssertionError(f"neep-gpu grew {resident_growth} KiB while the display was held")
        standin.resume()

        def shows_last(image):
            if solid_colour(image) != last:
                raise AssertionError(f"after the display read again it is not all {last}")
        settled_check(guest, "resumed.ppm", shows_last)
        return (f"{words[2]} flips of {words[3]} at {rate:.0f}/s while the display read nothing "
                f"(neep-gpu resident {resident_growth:+d} KiB); on reading again the display "
                f"shows the last ({last}) whole")
    finally:
        guest.stop()

def test_kms_pattern(args, workdir):
    """A mode set with a known pattern shows exactly; then only the damaged rectangle of two
    changes appears; the cursor image and moves reach the front-end."""
    guest = Guest(workdir, args.backend + ["--log-level=debug"], args.initrd,
                  "neep.test=run neep.program=kms_pattern")
    # A size other than neep-gpu's default: the front-end's layout must win.
    guest.extra_device = ",xres=1600,yres=900"
    try:
        modes = run_kms(guest)
        if modes[0] != (1600, 900):
            raise AssertionError(f"the guest chose {modes[0]}, not the front-end's 1600x900")
        width, height = modes[0]
        settled_check(guest, "pattern.ppm", lambda image: check_pattern(image, 0, width, height))

        guest.send("damage")
        guest.wait_for("NEEP: damage-done")
        green = (0, 255, 0)
        # Rectangle A changed in guest memory but was never flushed: it must not show.
        settled_check(guest, "damage.ppm", lambda image: check_pattern(
            image, 0, width, height, exceptions=[(400, 300, 300, 150, green)]))

        guest.send("cursor")
        guest.wait_for("NEEP: cursor-done")
        time.sleep(0.5)
        log = guest.backend_log_text()
        # 2048 opaque blue pixels (0xff0000ff), the rest fully transparent.
        expected_sum = (2048 * 0xff0000ff) & 0xffffffff
        image_line = ("cursor image on scanout 0 at (200,150) hot (3,5): 2048 opaque pixels, "
                      f"sum 0x{expected_sum:08x}")
        if image_line not in log:
            raise AssertionError("the cursor image was not sent as drawn")
        if "cursor on scanout 0 moved to (300,250)" not in log:
            raise AssertionError("the cursor move was not sent")
        guest.send("exit")
        guest.wait_for("NEEP: kms-exit")
        return f"{width}x{height} exact, damage-only flush, cursor image and move"
    finally:
        guest.stop()


def test_two_scanouts(args, workdir):
    """With two outputs each head shows its own pattern."""
    # QEMU without a UI enables only output 0; the kernel is told the second is connected.
    guest = Guest(workdir, args.backend, args.initrd,
                  "video=Virtual-2:e neep.test=run neep.program=kms_pattern", max_outputs=2)
    try:
        modes = run_kms(guest)
        if len(modes) != 2:
            raise AssertionError(f"the guest found {len(modes)} outputs, expected 2")
        for head, (width, height) in enumerate(modes):
            settled_check(guest, f"head{head}.ppm",
                          lambda image: check_pattern(image, head, width, height), head=head)
        return f"heads {modes[0][0]}x{modes[0][1]} and {modes[1][0]}x{modes[1][1]} exact"
    finally:
        guest.stop()


def test_reboot(args, workdir):
    """A guest reset with live resources: the next boot starts clean and shows the pattern."""
    guest = Guest(workdir, args.backend + ["--log-level=info"], args.initrd,
                  "neep.test=run neep.program=kms_pattern")
    try:
        modes = run_kms(guest)
        width, height = modes[0]
        mark = len(guest.lines)
        guest.qmp.command("system_reset")
        index, _ = guest.wait_for("NEEP: kms-ready", timeout=BOOT_TIMEOUT, start=mark)
        settled_check(guest, "after-reset.ppm",
                      lambda image: check_pattern(image, 0, width, height))
        if "releasing the guest's resources" not in guest.backend_log_text():
            raise AssertionError("neep-gpu did not release the first boot's resources")
        if any("error" in line for line in guest.lines[mark:index]):
            raise AssertionError("the second boot reported errors")
        return "second boot exact, first boot's resources released"
    finally:
        guest.stop()


def run_demo(args, png_path):
    workdir = tempfile.mkdtemp(prefix="neep-demo-")
    guest = Guest(workdir, args.backend, args.initrd, "neep.test=demo")
    try:
        guest.start()
        guest.wait_for("NEEP: demo-written", timeout=BOOT_TIMEOUT)
        time.sleep(0.5)
        image = guest.screendump("demo.ppm")
        write_png(image, png_path)
    finally:
        guest.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"The guest's display ({image.width}x{image.height}) is in {png_path}")
    return 0


def test_rutabaga_fbcon(args, workdir):
    """QEMU's virtio-gpu-rutabaga on neep: the guest sees the features and capset, and fbcon
    reaches the display through transfer_write/transfer_read."""
    guest = rutabaga_guest(args, workdir, "neep.test=fbcon", os.path.join(workdir, "none"))
    try:
        guest.start()
        index, _ = guest.wait_for("NEEP: fbcon-written", timeout=BOOT_TIMEOUT)
        dmesg = "\n".join(guest.lines[:index])
        for wanted in ("+virgl +edid +resource_blob +host_visible", "+context_init",
                       "cap set 0: id 5"):
            if wanted not in dmesg:
                raise AssertionError(f"the guest did not report '{wanted}'")
        settled_check(guest, "fbcon.ppm", check_fbcon)
        return "features and capset 5 seen, fbcon text shown"
    finally:
        guest.stop()


def test_rutabaga_kms_pattern(args, workdir):
    """The KMS pattern, exact, and damage-only updates on the rutabaga path."""
    guest = rutabaga_guest(args, workdir, "neep.test=run neep.program=kms_pattern",
                           os.path.join(workdir, "none"))
    try:
        modes = run_kms(guest)
        width, height = modes[0]
        settled_check(guest, "pattern.ppm", lambda image: check_pattern(image, 0, width, height))
        guest.send("damage")
        guest.wait_for("NEEP: damage-done")
        settled_check(guest, "damage.ppm", lambda image: check_pattern(
            image, 0, width, height, exceptions=[(400, 300, 300, 150, (0, 255, 0))]))
        return f"{width}x{height} exact, dirty rectangle shown"
    finally:
        guest.stop()


def test_rutabaga_cross_domain(args, workdir):
    """The cross-domain protocol end to end against a real weston."""
    weston = Weston(workdir)
    guest = rutabaga_guest(args, workdir, "neep.test=run neep.program=cross_domain_test",
                           weston.socket)
    try:
        guest.start()
        index, line = guest.wait_for("NEEP: program-exit", timeout=BOOT_TIMEOUT)
        steps = [l for l in guest.lines[:index] if l.startswith("NEEP: cd-")]
        if "NEEP: cd-ok" not in steps:
            raise AssertionError("cross-domain test failed: " + "; ".join(steps))
        return "; ".join(s[len("NEEP: cd-"):] for s in steps[:-1])
    finally:
        guest.stop()
        weston.stop()


TESTS = {
    "fbcon": test_fbcon,
    "kms_pattern": test_kms_pattern,
    "flips_whole": test_flips_whole,
    "display_stall": test_display_stall,
    "two_scanouts": test_two_scanouts,
    "reboot": test_reboot,
}

def test_rutabaga_cross_domain_pipes(args, workdir):
    """Clipboard-style pipes through cross-domain: READ events carry what the host wrote,
    WRITE commands carry what the guest writes."""
    peer = PipePeer(workdir)
    guest = rutabaga_guest(args, workdir, "neep.test=run neep.program=cross_domain_test "
                           "neep.args=pipes", peer.socket)
    try:
        guest.start()
        index, _ = guest.wait_for("NEEP: program-exit", timeout=BOOT_TIMEOUT)
        steps = [l for l in guest.lines[:index] if l.startswith("NEEP: cd-")]
        if "NEEP: cd-pipe-read 'from the host'" not in steps or "NEEP: cd-ok" not in steps:
            raise AssertionError("pipe exchange failed: " + "; ".join(steps))
        received = peer.wait(timeout=20)
        if received != "from the guest":
            raise AssertionError(f"the host read {received!r} from the guest's pipe")
        return "host-to-guest through READ, guest-to-host through WRITE"
    finally:
        guest.stop()


RUTABAGA_TESTS = {
    "rutabaga_fbcon": test_rutabaga_fbcon,
    "rutabaga_kms_pattern": test_rutabaga_kms_pattern,
    "rutabaga_cross_domain": test_rutabaga_cross_domain,
    "rutabaga_cross_domain_pipes": test_rutabaga_cross_domain_pipes,
    **NEEP_WL_TESTS,
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--neep-gpu")
    parser.add_argument("--qemu-rutabaga", help="QEMU built with --enable-rutabaga-gfx")
    parser.add_argument("--neep-library-dir", help="where librutabaga_gfx_ffi.so.0 is")
    parser.add_argument("--initrd", required=True)
    parser.add_argument("--gl-initrd", help="the GL guest's initramfs: adds the GL tests")
    parser.add_argument("--virglrenderer-lib",
                        help="where virglrenderer 1.2.0 is (venus, on the rutabaga face)")
    parser.add_argument("--gfxstream-library",
                        help="gfxstream's host backend (the gfxstream test is skipped without)")
    parser.add_argument("--keep", help="keep logs and screendumps in this directory")
    parser.add_argument("--demo", metavar="PNG", help="boot the demo guest and save its display")
    parser.add_argument("--demo-wayland", metavar="PNG",
                        help="run guest Wayland clients through neep-wl on a host weston and "
                             "save its screen (needs --qemu-rutabaga)")
    parser.add_argument("--demo-gl", metavar="PNG",
                        help="boot the GL guest on neep-gpu --virgl and save its display "
                             "(needs --gl-initrd)")
    parser.add_argument("tests", nargs="*")
    args = parser.parse_args()
    args.backend = [args.neep_gpu]
    if args.demo:
        return run_demo(args, args.demo)
    if args.demo_wayland:
        return run_wayland_demo(args, args.demo_wayland)
    if args.demo_gl:
        return run_gl_demo(args, args.demo_gl)
    every = dict(TESTS, **RUTABAGA_TESTS, **GL_TESTS, **RUTABAGA_GL_TESTS)
    defaults = dict(RUTABAGA_TESTS) if args.qemu_rutabaga else dict(TESTS)
    if args.gl_initrd:
        defaults.update(RUTABAGA_GL_TESTS if args.qemu_rutabaga else GL_TESTS)
    names = args.tests or list(defaults)
    passed = failed = skipped = 0
    root = args.keep or tempfile.mkdtemp(prefix="neep-vm-")
    for name in names:
        workdir = os.path.join(root, name)
        shutil.rmtree(workdir, ignore_errors=True)
        os.makedirs(workdir)
        started = time.monotonic()
        try:
            detail = every[name](args, workdir)
            print(f"ok - {name} ({time.monotonic() - started:.1f}s): {detail}", flush=True)
            passed += 1
        except Skipped as reason:
            print(f"ok - {name} # SKIP {reason}", flush=True)
            skipped += 1
        except Exception as error:
            print(f"not ok - {name} ({time.monotonic() - started:.1f}s): {error}", flush=True)
            traceback.print_exc(file=sys.stdout)
            for log in ("backend.log", "qemu.log", "serial.log"):
                path = os.path.join(workdir, log)
                if os.path.exists(path):
                    with open(path, errors="replace") as f:
                        tail = f.read()[-2000:]
                    print(f"--- {log} (end) ---\n{tail}", flush=True)
            failed += 1
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
