"""Shared parts of the real-guest tests: QEMU guests (vhost-user or rutabaga), QMP,
the host compositors and peers the guests talk to, and image helpers."""
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

from display_standin import DisplayStandIn

BOOT_TIMEOUT = 90
STEP_TIMEOUT = 30


class Image:
    @classmethod
    def from_rgb(cls, width, height, pixels):
        image = cls.__new__(cls)
        image.width, image.height, image.pixels = width, height, pixels
        return image

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
        self.cpus = 1
        self.memory_mib = 512  # GL guests need 2048: their initramfs is over 200 MB
        self.extra_env = {}  # for the back-end, or QEMU (and neep's library) on rutabaga
        # QEMU's own device instead of neep (baselines): {"device": ..., "display": [...]}.
        self.builtin = None
        self.rutabaga = rutabaga  # {"qemu": path, "library_dir": dir, "wayland": socket path}
        self.check_backend_exit = True  # neep-gpu must exit cleanly; baselines need not
        # A DisplayStandIn between QEMU and neep-gpu once started, if asked for (True).
        self.display_standin = None
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
        if not self.rutabaga and not self.builtin:
            backend_socket = self.path("gpu-backend.sock") if self.display_standin else gpu_socket
            backend = subprocess.Popen(self.backend + [f"--socket-path={backend_socket}"],
                                       stdout=self.backend_log, stderr=subprocess.STDOUT,
                                       env=dict(os.environ, **self.extra_env))
            self.processes.append(backend)
            wait_for_path(backend_socket, backend)
            if self.display_standin:
                self.display_standin = DisplayStandIn(gpu_socket, backend_socket)

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
            environment = dict(os.environ, **self.extra_env)
            # neep's library first; extra directories (a newer virglrenderer) after it.
            environment["LD_LIBRARY_PATH"] = ":".join(
                [self.rutabaga["library_dir"]] +
                ([self.extra_env["LD_LIBRARY_PATH"]] if "LD_LIBRARY_PATH" in self.extra_env
                 else []))
        elif self.builtin:
            gpu_args = ["-device", self.builtin["device"] + ",id=video0"]
            qemu_binary = "qemu-system-x86_64"
        else:
            gpu_args = ["-chardev", f"socket,id=gpu,path={gpu_socket}", "-device", device]
            qemu_binary = "qemu-system-x86_64"
        qemu = [
            qemu_binary, "-machine", "q35", "-vga", "none", "-m", f"{self.memory_mib}M",
            "-smp", str(self.cpus),
            "-object", f"memory-backend-memfd,id=mem,size={self.memory_mib}M,share=on",
            "-numa", "node,memdev=mem",
            "-kernel", kernel, "-initrd", self.initrd,
            "-append", f"console=ttyS0 quiet panic=-1 {self.cmdline}",
            *gpu_args,
            *(self.builtin["display"] if self.builtin else ["-display", "none"]),
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

    def wait_for(self, prefix, timeout=STEP_TIMEOUT, start=0, anywhere=False):
        """Returns the index and text of the first serial line at or after `start` that
        starts with `prefix` (or, with `anywhere`, contains it: other programs' output may
        share the line), the text from `prefix` on."""
        deadline = time.monotonic() + timeout
        with self.lines_lock:
            while True:
                for i in range(start, len(self.lines)):
                    line = self.lines[i]
                    if line.startswith(prefix) or (anywhere and prefix in line):
                        return i, line[line.index(prefix):]
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
        if isinstance(self.display_standin, DisplayStandIn):
            self.display_standin.close()
        for process in reversed(self.processes):
            if process is self.processes[0] and process.poll() is None and not self.rutabaga:
                # The back-end outlives its front-end (it waits for the next one): stop it.
                stop_process(process)
            else:
                wait_process(process)
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


def check_image(image, width, height, expected, label="the display"):
    """Every pixel of `image` is expected(x, y) as (r, g, b), and its size width x height."""
    if (image.width, image.height) != (width, height):
        raise AssertionError(f"{label} is {image.width}x{image.height}, "
                             f"expected {width}x{height}")
    wrong = 0
    first = None
    for y in range(height):
        row = y * width * 3
        for x in range(width):
            got = tuple(image.pixels[row + x * 3:row + x * 3 + 3])
            want = expected(x, y)
            if got != want:
                wrong += 1
                if first is None:
                    first = (x, y, got, want)
    if wrong:
        x, y, got, want = first
        raise AssertionError(f"{label}: {wrong} pixels differ; first at ({x},{y}): {got}, "
                             f"expected {want}")


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


def read_png(path):
    """Reads an 8-bit RGB or RGBA PNG (as cairo writes them) into an Image."""
    import struct
    import zlib

    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError(f"{path} is not a PNG")
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace:
                raise AssertionError(f"{path}: unsupported PNG layout")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = row[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                row[i] = (row[i] + left) & 0xff
            elif kind == 2:
                row[i] = (row[i] + up) & 0xff
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xff
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                row[i] = (row[i] + best) & 0xff
        rows.append(bytes(row))
        previous = row
    pixels = b"".join(rows)
    if channels == 4:
        pixels = b"".join(pixels[i:i + 3] for i in range(0, len(pixels), 4))
    return Image.from_rgb(width, height, pixels)


class Weston:
    """A headless weston on the host: the compositor guest windows and cross-domain reach.
    With `screenshots`, it renders with pixman and lets weston-screenshooter capture it."""

    def __init__(self, workdir, screenshots=False, name="wayland-neep"):
        self.workdir = workdir
        self.runtime_dir = os.path.join(workdir, "xdg-" + name)
        os.makedirs(self.runtime_dir, mode=0o700)
        self.socket = os.path.join(self.runtime_dir, name)
        self.log = open(os.path.join(workdir, name + ".log"), "w")
        extra = ["--use-pixman", "--debug", "--width=1024", "--height=768"] if screenshots else []
        self.environment = dict(os.environ, XDG_RUNTIME_DIR=self.runtime_dir,
                                WAYLAND_DISPLAY=name)
        self.process = subprocess.Popen(
            ["weston", "--backend=headless-backend.so", f"--socket={name}",
             "--idle-time=0", "--no-config", *extra],
            env=dict(os.environ, XDG_RUNTIME_DIR=self.runtime_dir),
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_path(self.socket, self.process)

    def screenshot(self, keep_as=None):
        """The whole output, through weston's screenshooter (needs `screenshots`); the PNG
        is also kept as `keep_as` if given."""
        shots = tempfile.mkdtemp(dir=self.workdir)
        subprocess.run(["weston-screenshooter"], cwd=shots, env=self.environment, timeout=20,
                       check=True, capture_output=True)
        files = glob.glob(os.path.join(shots, "*.png"))
        if not files:
            raise AssertionError("weston-screenshooter wrote no file")
        if keep_as:
            shutil.copyfile(files[0], keep_as)
        image = read_png(files[0])
        shutil.rmtree(shots, ignore_errors=True)
        return image

    def stop(self):
        stop_process(self.process)


def stop_process(process):
    """Asks a host-side helper (a compositor, a back-end) to end, then insists."""
    process.terminate()
    wait_process(process)


def wait_process(process):
    """Gives a process ten seconds to end, then kills it."""
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
