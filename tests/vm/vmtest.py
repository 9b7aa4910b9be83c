#!/usr/bin/env python3
"""Real-guest tests: a Debian kernel under QEMU (TCG) with neep-gpu as its GPU.

Each test boots the test initramfs, talks to the guest over its serial console, and checks
what QEMU received from neep-gpu with QMP screendump, pixel by pixel where it matters.

    vmtest.py --neep-gpu PATH --initrd PATH [--keep DIR] [TEST...]

Prints one line per test and closes with "N passed, N failed".
"""
import argparse
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BOOT_TIMEOUT = 90
STEP_TIMEOUT = 30


class Image:
    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        fields = []
        pos = 0
        while len(fields) < 4:
            while data[pos:pos + 1].isspace():
                pos += 1
            end = pos
            while not data[end:end + 1].isspace():
                end += 1
            fields.append(data[pos:end])
            pos = end
        if fields[0] != b"P6" or fields[3] != b"255":
            raise AssertionError(f"{path} is not an 8-bit PPM")
        self.width, self.height = int(fields[1]), int(fields[2])
        self.pixels = data[pos + 1:]
        if len(self.pixels) != self.width * self.height * 3:
            raise AssertionError(f"{path}: pixel data is cut short")

    def pixel(self, x, y):
        i = (y * self.width + x) * 3
        return tuple(self.pixels[i:i + 3])


class Guest:
    """One QEMU guest: with a vhost-user-gpu back-end (`backend`, a command), or, when
    `rutabaga` is given, QEMU's in-process virtio-gpu-rutabaga on neep's library."""

    def __init__(self, workdir, backend, initrd, cmdline, max_outputs=1, rutabaga=None):
        self.workdir = workdir
        self.backend = backend
        self.initrd = initrd
        self.cmdline = cmdline
        self.max_outputs = max_outputs
        self.extra_device = ""
        self.rutabaga = rutabaga  # {"qemu": path, "library_dir": dir, "wayland": socket path}
        self.check_backend_exit = True  # neep-gpu must exit cleanly; baselines need not
        self.lines = []
        self.lines_lock = threading.Condition()
        self.processes = []
        self.serial = None
        self.qmp = None

    def path(self, name):
        return os.path.join(self.workdir, name)

    def start(self):
        gpu_socket = self.path("gpu.sock")
        self.backend_log = open(self.path("backend.log"), "w")
        if not self.rutabaga:
            backend = subprocess.Popen(self.backend + [f"--socket-path={gpu_socket}"],
                                       stdout=self.backend_log, stderr=subprocess.STDOUT)
            self.processes.append(backend)
            wait_for_path(gpu_socket, backend)

        kernel = sorted(glob.glob("/boot/vmlinuz-*"))[-1]
        serial_socket = self.path("serial.sock")
        qmp_socket = self.path("qmp.sock")
        device = "vhost-user-gpu-pci,id=video0,chardev=gpu"
        if self.max_outputs > 1:
            device += f",max_outputs={self.max_outputs}"
        device += self.extra_device
        environment = None
        if self.rutabaga:
            device = ("virtio-gpu-rutabaga-pci,id=video0,cross-domain=on,hostmem=256M,"
                      f"wayland-socket-path={self.rutabaga['wayland']}" + self.extra_device)
            gpu_args = ["-nic", "none", "-device", device]
            qemu_binary = self.rutabaga["qemu"]
            environment = dict(os.environ, LD_LIBRARY_PATH=self.rutabaga["library_dir"])
        else:
            gpu_args = ["-chardev", f"socket,id=gpu,path={gpu_socket}", "-device", device]
            qemu_binary = "qemu-system-x86_64"
        qemu = [
            qemu_binary, "-machine", "q35", "-vga", "none", "-m", "512M",
            "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
            "-numa", "node,memdev=mem",
            "-kernel", kernel, "-initrd", self.initrd,
            "-append", f"console=ttyS0 quiet panic=-1 {self.cmdline}",
            *gpu_args,
            "-display", "none",
            "-chardev", f"socket,id=ser,path={serial_socket},server=on,wait=on",
            "-serial", "chardev:ser",
            "-qmp", f"unix:{qmp_socket},server=on,wait=off",
            "-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
        ]
        self.qemu_log = open(self.path("qemu.log"), "w")
        qemu_process = subprocess.Popen(qemu, stdout=self.qemu_log, stderr=subprocess.STDOUT,
                                        env=environment)
        self.processes.append(qemu_process)
        self.serial = connect_unix(serial_socket, qemu_process)
        threading.Thread(target=self._read_serial, daemon=True).start()
        self.qmp = Qmp(connect_unix(qmp_socket, qemu_process))

    def _read_serial(self):
        buffer = b""
        with open(self.path("serial.log"), "wb") as log:
            while True:
                try:
                    chunk = self.serial.recv(4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                log.write(chunk)
                log.flush()
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    with self.lines_lock:
                        self.lines.append(line.decode(errors="replace").strip())
                        self.lines_lock.notify_all()

    def wait_for(self, prefix, timeout=STEP_TIMEOUT, start=0):
        """Returns the index and text of the first serial line at or after `start` that
        starts with `prefix`."""
        deadline = time.monotonic() + timeout
        with self.lines_lock:
            while True:
                for i in range(start, len(self.lines)):
                    if self.lines[i].startswith(prefix):
                        return i, self.lines[i]
                for process in self.processes:
                    if process.poll() is not None:
                        raise AssertionError(f"{process.args[0]} exited with {process.returncode}"
                                             f" waiting for '{prefix}'")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no '{prefix}' on the serial console in {timeout}s")
                self.lines_lock.wait(left)

    def send(self, line):
        self.serial.sendall(line.encode() + b"\n")

    def screendump(self, name, head=None):
        path = self.path(name)
        args = {"filename": path, "device": "video0"}
        if head is not None:
            args["head"] = head
        self.qmp.command("screendump", **args)
        return Image(path)

    def backend_log_text(self):
        self.backend_log.flush()
        with open(self.path("backend.log")) as f:
            return f.read()

    def stop(self):
        try:
            if self.qmp:
                self.qmp.command("quit")
        except Exception:
            pass
        for process in reversed(self.processes):
            if process is self.processes[0] and process.poll() is None and not self.rutabaga:
                # The back-end outlives its front-end (it waits for the next one): stop it.
                process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if (self.check_backend_exit and not self.rutabaga and self.processes and
                self.processes[0].returncode != 0):
            raise AssertionError(f"back-end exited with {self.processes[0].returncode}")


class Qmp:
    def __init__(self, sock):
        self.file = sock.makefile("rw")
        json.loads(self.file.readline())
        self.command("qmp_capabilities")

    def command(self, name, **arguments):
        request = {"execute": name}
        if arguments:
            request["arguments"] = arguments
        self.file.write(json.dumps(request) + "\n")
        self.file.flush()
        while True:
            line = self.file.readline()
            if not line:
                if name == "quit":
                    return None
                raise AssertionError(f"QMP closed during {name}")
            reply = json.loads(line)
            if "error" in reply:
                raise AssertionError(f"QMP {name}: {reply['error']}")
            if "return" in reply:
                return reply["return"]


def wait_for_path(path, process, timeout=10):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)


def connect_unix(path, process, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"cannot connect to {path}")
            time.sleep(0.05)


# ---- expectations --------------------------------------------------------------------------

def pattern_pixel(head, x, y):
    """What kms_pattern draws, as (r, g, b)."""
    return (x & 0xff, y & 0xff, ((x ^ y) + head * 85) & 0xff)


def check_pattern(image, head, width, height, exceptions=()):
    """Every pixel matches the pattern, except inside `exceptions` ((x, y, w, h, rgb))."""
    if (image.width, image.height) != (width, height):
        raise AssertionError(f"head {head} is {image.width}x{image.height}, "
                             f"expected {width}x{height}")
    wrong = 0
    first = None
    for y in range(height):
        row = y * width * 3
        for x in range(width):
            expected = pattern_pixel(head, x, y)
            for ex, ey, ew, eh, colour in exceptions:
                if ex <= x < ex + ew and ey <= y < ey + eh:
                    expected = colour
                    break
            got = tuple(image.pixels[row + x * 3:row + x * 3 + 3])
            if got != expected:
                wrong += 1
                if first is None:
                    first = (x, y, got, expected)
    if wrong:
        x, y, got, expected = first
        raise AssertionError(f"head {head}: {wrong} pixels differ; first at ({x},{y}): "
                             f"{got}, expected {expected}")


def settled_check(guest, name, check, head=None, timeout=5.0):
    """QEMU draws what neep-gpu sent on its own schedule: retry the check until it passes or
    the time is up, then report the last failure."""
    deadline = time.monotonic() + timeout
    while True:
        image = guest.screendump(name, head=head)
        try:
            check(image)
            return image
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


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


def write_png(image, path):
    """Writes an Image as an 8-bit RGB PNG (no third-party modules needed)."""
    import struct
    import zlib

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    stride = image.width * 3
    raw = b"".join(b"\x00" + image.pixels[y * stride:(y + 1) * stride]
                   for y in range(image.height))
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


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


class Weston:
    """A headless weston on the host: the compositor guest windows and cross-domain reach."""

    def __init__(self, workdir):
        self.runtime_dir = os.path.join(workdir, "xdg")
        os.makedirs(self.runtime_dir, mode=0o700)
        self.socket = os.path.join(self.runtime_dir, "wayland-neep")
        self.log = open(os.path.join(workdir, "weston.log"), "w")
        self.process = subprocess.Popen(
            ["weston", "--backend=headless-backend.so", "--socket=wayland-neep",
             "--idle-time=0", "--no-config"],
            env=dict(os.environ, XDG_RUNTIME_DIR=self.runtime_dir),
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_path(self.socket, self.process)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class PipePeer:
    """The other end of a clipboard exchange, on the device's channel socket. Headless weston
    has no seat, so no Wayland client can own a selection there; this peer plays the part a
    compositor plays for wl_data_offer.receive and wl_data_source.send: it writes into the
    pipe the guest sends, then sends a pipe of its own and reads what the guest writes."""

    def __init__(self, workdir):
        self.socket = os.path.join(workdir, "clipboard.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.socket)
        self.listener.listen(1)
        self.received = None
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            connection, _ = self.listener.accept()
            with connection:
                _, fds, _, _ = socket.recv_fds(connection, 16, 4)
                if len(fds) != 1:
                    raise AssertionError(f"expected one pipe from the guest, got {len(fds)}")
                with os.fdopen(fds[0], "wb") as pipe:
                    pipe.write(b"from the host")
                read_end, write_end = os.pipe()
                socket.send_fds(connection, [b"w"], [write_end])
                os.close(write_end)
                with os.fdopen(read_end, "rb") as pipe:
                    self.received = pipe.read().decode(errors="replace")
        except Exception as error:  # reported by the test
            self.error = error

    def wait(self, timeout):
        self.thread.join(timeout)
        self.listener.close()
        if self.error:
            raise self.error
        return self.received


def rutabaga_guest(args, workdir, cmdline, wayland_socket):
    return Guest(workdir, None, args.initrd, cmdline,
                 rutabaga={"qemu": args.qemu_rutabaga, "library_dir": args.neep_library_dir,
                           "wayland": wayland_socket})


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
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--neep-gpu")
    parser.add_argument("--qemu-rutabaga", help="QEMU built with --enable-rutabaga-gfx")
    parser.add_argument("--neep-library-dir", help="where librutabaga_gfx_ffi.so.0 is")
    parser.add_argument("--initrd", required=True)
    parser.add_argument("--keep", help="keep logs and screendumps in this directory")
    parser.add_argument("--demo", metavar="PNG", help="boot the demo guest and save its display")
    parser.add_argument("tests", nargs="*")
    args = parser.parse_args()
    args.backend = [args.neep_gpu]
    if args.demo:
        return run_demo(args, args.demo)
    every = dict(TESTS, **RUTABAGA_TESTS)
    names = args.tests or (list(RUTABAGA_TESTS) if args.qemu_rutabaga else list(TESTS))
    passed = failed = 0
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
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
