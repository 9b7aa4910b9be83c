"""Wayland passthrough end to end: real Wayland clients in the guest, through neep-wl and
QEMU's virtio-gpu-rutabaga on neep's library, shown by a real compositor on the host.

The host compositor is a headless sway (wlroots' pixman renderer): unlike headless weston it
has a seat, so the tests can type into guest windows (wtype's virtual keyboard), exchange the
clipboard (wl-copy / wl-paste) and take screenshots (grim) from the host side.
"""
import glob
import os
import shutil
import subprocess
import tempfile
import time

from vmlib import (BOOT_TIMEOUT, STEP_TIMEOUT, Image, Weston, rutabaga_guest, stop_process,
                   wait_for_path)

SWAY_CONFIG = """\
xwayland disable
output HEADLESS-1 resolution 1280x720 position 0 0 background #203040 solid_color
default_border none
default_floating_border none
for_window [title=".*"] floating enable
"""
BACKGROUND = (0x20, 0x30, 0x40)
UNPRIVILEGED = "65534"  # sway refuses to run as root


class Sway:
    """A headless sway on the host, and the host-side tools that act on it."""

    def __init__(self, workdir, log_name="sway.log"):
        # Its own directory: the test's work directory is private to root.
        self.home = tempfile.mkdtemp(prefix="neep-sway-")
        os.chmod(self.home, 0o755)
        self.runtime_dir = os.path.join(self.home, "xdg")
        os.makedirs(self.runtime_dir, mode=0o700)
        config = os.path.join(self.home, "sway.config")
        with open(config, "w") as f:
            f.write(SWAY_CONFIG)
        command = ["sway", "--config", config]
        if os.getuid() == 0:
            os.chown(self.runtime_dir, int(UNPRIVILEGED), int(UNPRIVILEGED))
            command = ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}",
                       "--clear-groups"] + command
        self.log = open(os.path.join(workdir, log_name), "w")
        environment = dict(os.environ, XDG_RUNTIME_DIR=self.runtime_dir, HOME=self.home,
                           WLR_BACKENDS="headless", WLR_RENDERER="pixman",
                           WLR_LIBINPUT_NO_DEVICES="1")
        environment.pop("WAYLAND_DISPLAY", None)
        environment.pop("DISPLAY", None)
        self.process = subprocess.Popen(command, env=environment, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            sockets = [p for p in glob.glob(os.path.join(self.runtime_dir, "wayland-*"))
                       if not p.endswith(".lock")]
            if sockets:
                self.socket = sockets[0]
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("sway did not start (see sway.log)")
            time.sleep(0.05)
        wait_for_path(self.socket, self.process)
        self.environment = dict(os.environ, XDG_RUNTIME_DIR=self.runtime_dir,
                                WAYLAND_DISPLAY=os.path.basename(self.socket))

    def run(self, command, timeout=20, **kwargs):
        return subprocess.run(command, env=self.environment, timeout=timeout,
                              capture_output=True, **kwargs)

    def screenshot(self, path):
        result = self.run(["grim", "-t", "ppm", path])  # wlr-screencopy
        if result.returncode != 0:
            raise AssertionError(f"grim failed: {result.stderr.decode(errors='replace')}")
        return Image(path)

    def stop(self):
        stop_process(self.process)
        shutil.rmtree(self.home, ignore_errors=True)


def shell(guest, command, timeout=STEP_TIMEOUT):
    """Runs a command in the guest's command loop; returns its status and its output lines."""
    start = len(guest.lines)
    guest.send(command)
    index, line = guest.wait_for("NEEP: shell-done", timeout=timeout, start=start, anywhere=True)
    return int(line.split()[-1]), guest.lines[start:index]


def start_session(args, workdir, compositor_socket, cpus=1):
    """A guest on the host compositor at `compositor_socket`, with neep-wl serving in it."""
    guest = rutabaga_guest(args, workdir, "neep.test=run neep.program=shell.sh",
                           compositor_socket)
    guest.cpus = cpus
    try:
        guest.start()
        guest.wait_for("NEEP: shell-ready", timeout=BOOT_TIMEOUT)
        shell(guest, "neep-wl --verbose &")
        status, _ = shell(guest, "for i in $(seq 100); do [ -S $XDG_RUNTIME_DIR/wayland-0 ] && "
                                 "exit 0; sleep 0.1; done; exit 1")
        if status != 0:
            raise AssertionError("neep-wl did not create its socket")
    except BaseException:
        guest.stop()
        raise
    return guest


def settle(check, timeout=20.0, interval=0.5):
    """Retries a check until it passes; the guest runs under emulation at its own pace."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


WHITE = (255, 255, 255)
SIMPLE_SHM_SIZE = 250
SIMPLE_SHM_PADDING = 20


def find_simple_shm(image):
    """weston-simple-shm's window: 250x250, a 20-pixel white frame around a colourful
    pattern crossed by two diagonals. Returns its top-left corner."""
    whites = [(x, y) for y in range(40, image.height, 2) for x in range(0, image.width, 2)
              if image.pixel(x, y) == WHITE]
    if not whites:
        raise AssertionError("no white pixels: no weston-simple-shm window on the host")
    x0, y0 = min(x for x, _ in whites), min(y for _, y in whites)
    while x0 > 0 and image.pixel(x0 - 1, y0) == WHITE:  # the scan went in steps of two
        x0 -= 1
    while y0 > 0 and image.pixel(x0, y0 - 1) == WHITE:
        y0 -= 1
    for dy in range(SIMPLE_SHM_SIZE):
        for dx in (0, SIMPLE_SHM_SIZE // 2, SIMPLE_SHM_SIZE - 1):
            if dy < SIMPLE_SHM_PADDING or dy >= SIMPLE_SHM_SIZE - SIMPLE_SHM_PADDING or \
                    dx in (0, SIMPLE_SHM_SIZE - 1):
                if image.pixel(x0 + dx, y0 + dy) != WHITE:
                    raise AssertionError(f"the frame of the window at ({x0},{y0}) is not white "
                                         f"at +({dx},{dy})")
    # The diagonals are drawn with alpha 0: one colour all along (whatever the compositor
    # makes of it), unlike the pattern around them.
    inner = SIMPLE_SHM_SIZE - 2 * SIMPLE_SHM_PADDING
    diagonal = {image.pixel(x0 + SIMPLE_SHM_PADDING + d, y0 + SIMPLE_SHM_PADDING + d)
                for d in range(0, inner, 3)}
    diagonal |= {image.pixel(x0 + SIMPLE_SHM_SIZE - SIMPLE_SHM_PADDING - 1 - d,
                             y0 + SIMPLE_SHM_PADDING + d) for d in range(0, inner, 3)}
    if len(diagonal) != 1:
        raise AssertionError(f"the diagonals have {len(diagonal)} colours, not one")
    colours = {image.pixel(x0 + x, y0 + y) for y in range(SIMPLE_SHM_PADDING, 230, 3)
               for x in range(SIMPLE_SHM_PADDING, 230, 3)}
    if len(colours) < 50:
        raise AssertionError(f"only {len(colours)} colours inside the window")
    return x0, y0


def test_neep_wl_clients(args, workdir):
    """wayland-info sees the host compositor's globals that neep-wl relays and none that it
    hides; weston-simple-shm's window shows on the host with its frame, diagonals and
    pattern, and animates."""
    weston = Weston(workdir, screenshots=True)
    guest = start_session(args, workdir, weston.socket)
    try:
        status, output = shell(guest, "wayland-info", timeout=60)
        text = "\n".join(output)
        if status != 0:
            raise AssertionError(f"wayland-info exited with {status}: {text[-800:]}")
        for wanted in ("wl_compositor", "wl_shm", "xdg_wm_base", "wl_output", "wp_viewporter"):
            if f"'{wanted}'" not in text:
                raise AssertionError(f"wayland-info did not list {wanted}")
        for hidden in ("weston_screenshooter", "weston_debug_v1",
                       "zwp_linux_explicit_synchronization_v1", "zwp_linux_dmabuf_v1"):
            if hidden in text:
                raise AssertionError(f"wayland-info listed {hidden}, which neep-wl hides")
        globals_seen = text.count("interface: '")

        # Many clients at once, each its own cross-domain context and host connection.
        status, lines = shell(guest, "for i in $(seq 16); do wayland-info > /tmp/info.$i 2>&1 "
                                     "& done; wait; grep -l \"'wl_compositor'\" /tmp/info.* "
                                     "| wc -l", timeout=180)
        complete = [line for line in lines if line.strip().isdigit()]
        if status != 0 or complete != ["16"]:
            raise AssertionError(f"of 16 wayland-info at once, {complete} saw the globals")

        shell(guest, "weston-simple-shm &")
        x0, y0 = settle(lambda: find_simple_shm(weston.screenshot()))

        def interior(image):
            return [image.pixel(x0 + x, y0 + y) for y in range(30, 220, 5)
                    for x in range(30, 220, 5)]

        first = interior(weston.screenshot())

        def animates():
            image = weston.screenshot()
            find_simple_shm(image)
            if interior(image) == first:
                raise AssertionError("weston-simple-shm's window does not change")

        settle(animates)

        # A hostile client, case by case: an error for it, nothing for the others.
        status, lines = shell(guest, "wl_hostile", timeout=120)
        results = {line.split()[2]: line for line in lines if line.startswith("NEEP: hostile ")}
        for case in HOSTILE_CASES:
            if case not in results or " error " not in results[case]:
                raise AssertionError(f"hostile case {case}: {results.get(case, 'no answer')}")
        first = interior(weston.screenshot())
        settle(animates)  # weston-simple-shm carried on throughout
        status, _ = shell(guest, "pidof weston-simple-shm")
        if status != 0:
            raise AssertionError("weston-simple-shm did not survive the hostile client")

        rects = check_wl_pattern(guest, weston.screenshot)
        shell(guest, "killall weston-simple-shm")
        return (f"wayland-info listed {globals_seen} globals (16 at once too); "
                f"weston-simple-shm's window at "
                f"({x0},{y0}) shows its pattern and animates on the host; "
                f"{len(HOSTILE_CASES)} hostile cases refused; wl_pattern exact after "
                f"{rects} partial updates")
    finally:
        guest.stop()
        weston.stop()


HOSTILE_CASES = ("tiny-size", "unknown-object", "unknown-opcode", "long-string",
                 "hidden-interface", "far-id", "server-range-object", "missing-fd",
                 "buffer-past-pool", "short-stride", "shrunk-pool")


def pattern_pixel(x, y):
    """What wl_pattern draws, as (r, g, b)."""
    return ((x * 3) & 0xff, (y * 5) & 0xff, (x ^ y) & 0xff)


def find_pattern(image, width, height):
    """The top-left corner of wl_pattern's window: where its first pixels match."""
    probes = [(1, 0), (0, 1), (7, 3), (40, 20), (width - 1, height - 1)]
    for y in range(image.height - height + 1):
        for x in range(image.width - width + 1):
            if image.pixel(x, y) != (0, 0, 0):
                continue
            if all(image.pixel(x + px, y + py) == pattern_pixel(px, py) for px, py in probes):
                return x, y
    raise AssertionError("wl_pattern's window is not on the host's screen")


def check_exact(image, origin, width, height, rects):
    x0, y0 = origin
    wrong, first = 0, None
    for y in range(height):
        for x in range(width):
            expected = pattern_pixel(x, y)
            for rx, ry, rw, rh, colour in rects:
                if rx <= x < rx + rw and ry <= y < ry + rh:
                    expected = colour
            got = image.pixel(x0 + x, y0 + y)
            if got != expected:
                wrong += 1
                first = first or (x, y, got, expected)
    if wrong:
        raise AssertionError(f"{wrong} pixels of wl_pattern differ; first at {first[:2]}: "
                             f"{first[2]}, expected {first[3]}")


def check_wl_pattern(guest, screenshot, width=400, height=300):
    """wl_pattern's content, pixel for pixel, first whole and then after rectangles each
    damaged alone in the next of its three buffers: a buffer shown again must also carry
    what the others showed in between."""
    shell(guest, "rm -f /tmp/pattern; mkfifo /tmp/pattern")
    start = len(guest.lines)
    shell(guest, f"wl_pattern show {width} {height} < /tmp/pattern &")
    shell(guest, "sleep 100000 > /tmp/pattern &")  # holds the command pipe open
    guest_prints(guest, "NEEP: wl-pattern-shown", start, timeout=30)
    origin = settle(lambda: find_pattern(screenshot(), width, height))
    settle(lambda: check_exact(screenshot(), origin, width, height, []))
    rects = [(50, 40, 100, 60, (0, 255, 0)), (200, 150, 80, 50, (255, 0, 0)),
             (10, 200, 30, 30, (0, 0, 255)), (120, 60, 60, 200, (255, 255, 0))]
    for i, (x, y, w, h, (r, g, b)) in enumerate(rects):
        shell(guest, f"echo 'rect {x} {y} {w} {h} {r:02x}{g:02x}{b:02x}' > /tmp/pattern")
        guest_prints(guest, f"NEEP: wl-pattern-rect {i + 1}", start, timeout=30)
    settle(lambda: check_exact(screenshot(), origin, width, height, rects))
    shell(guest, "echo quit > /tmp/pattern; killall sleep")
    return len(rects)


def window_box(image):
    """The bounding box of everything that is not sway's background."""
    xs, ys = [], []
    for y in range(0, image.height, 4):
        for x in range(0, image.width, 4):
            if image.pixel(x, y) != BACKGROUND:
                xs.append(x)
                ys.append(y)
    if not xs:
        raise AssertionError("no window on the host's screen")
    return min(xs), min(ys), max(xs) + 4, max(ys) + 4


class KeyboardOnHost:
    """A virtual keyboard on the host's seat for `seconds` (wtype), typing `text` if given:
    sway's seat has no keyboard otherwise, and clients need one for focus and key events."""

    def __init__(self, sway, seconds, text=None):
        command = ["wtype", "-s", str(int(seconds * 1000))]
        if text:
            command += [text, "-s", "1000"]
        self.process = subprocess.Popen(command, env=sway.environment)

    def wait(self):
        self.process.wait(timeout=60)
        if self.process.returncode != 0:
            raise AssertionError(f"wtype exited with {self.process.returncode}")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def guest_prints(guest, text, start=0, timeout=20.0):
    """Waits for a serial line containing `text` (guest clients print to the console)."""
    def check():
        with guest.lines_lock:
            if any(text in line for line in guest.lines[start:]):
                return
        raise AssertionError(f"the guest never printed '{text}'")
    settle(check, timeout=timeout, interval=0.5)


def test_neep_wl_input(args, workdir):
    """Against sway: wev's window shows on the host, keys typed on the host reach it with the
    host's keymap, the clipboard crosses both ways, and when the host compositor restarts
    neep-wl carries on and serves the new one."""
    sway = Sway(workdir)
    # QEMU connects per guest client through this link: the restart re-points it.
    link = os.path.join(workdir, "compositor")
    os.symlink(sway.socket, link)
    guest = start_session(args, workdir, link)
    try:
        sway = input_steps(guest, sway, workdir, link)
        return sway.detail
    except BaseException:
        shell(guest, "ps")
        raise
    finally:
        guest.stop()
        sway.stop()


def input_steps(guest, sway, workdir, link):
    start = len(guest.lines)
    shell(guest, "wev &")  # prints each event on the console
    box = settle(lambda: window_box(sway.screenshot(os.path.join(workdir, "wev.ppm"))))

    typing = KeyboardOnHost(sway, 4, "neep")
    typing.wait()
    guest_prints(guest, "keymap: format: 1 (xkb v1)", start)
    for key in "nep":
        guest_prints(guest, f"sym: {key} ", start)

    # Guest to host: wl-copy in the guest owns the selection (it needs the keyboard focus
    # a seat with a keyboard gives), wl-paste on the host reads it through a pipe.
    keyboard = KeyboardOnHost(sway, 60)
    try:
        status, _ = shell(guest, "echo from-the-guest | wl-copy", timeout=30)
        if status != 0:
            raise AssertionError(f"wl-copy in the guest exited with {status}")

        def host_pastes():
            got = sway.run(["wl-paste", "--no-newline"]).stdout.decode(errors="replace")
            if got.strip() != "from-the-guest":
                raise AssertionError(f"the host pasted {got!r}")

        settle(host_pastes)

        # Host to guest.
        subprocess.run(["wl-copy", "from-the-host"], env=sway.environment, timeout=20,
                       check=True)

        def guest_pastes():
            status, lines = shell(guest, "wl-paste --no-newline; echo", timeout=30)
            if status != 0 or not any("from-the-host" in line for line in lines):
                raise AssertionError(f"the guest pasted {lines!r}")

        settle(guest_pastes, timeout=30, interval=1.0)
    finally:
        keyboard.stop()

    # The host compositor goes away: neep-wl ends its clients' connections and stays. (wev
    # itself keeps running: it does not stop when its connection fails.)
    start = len(guest.lines)
    sway.stop()
    guest_prints(guest, "the host compositor closed the connection", start)
    guest_prints(guest, "client 1: disconnected", start)
    shell(guest, "killall wev")
    status, _ = shell(guest, "pidof neep-wl")
    if status != 0:
        raise AssertionError("neep-wl did not survive the host compositor's restart")
    sway = Sway(workdir, log_name="sway-restarted.log")
    os.remove(link)
    os.symlink(sway.socket, link)
    status, lines = shell(guest, "wayland-info | grep -c \"'wl_seat'\"", timeout=60)
    if status != 0:
        raise AssertionError(f"wayland-info failed against the restarted compositor: {lines}")
    sway.detail = (f"wev's window {box[2] - box[0]}x{box[3] - box[1]} on the host; keys and "
                   f"keymap reached it; clipboard both ways; survived a compositor restart")
    return sway


def run_wayland_demo(args, png_path):
    """The demo of Wayland passthrough: weston-simple-shm and wl_pattern run in the guest
    through neep-wl, and their windows show on a headless weston on the host, whose screen
    is saved as a PNG."""
    workdir = tempfile.mkdtemp(prefix="neep-wl-demo-")
    weston = Weston(workdir, screenshots=True)
    try:
        guest = start_session(args, workdir, weston.socket)
        try:
            shell(guest, "weston-simple-shm &")
            settle(lambda: find_simple_shm(weston.screenshot()))
            start = len(guest.lines)
            shell(guest, "sleep 100000 | wl_pattern show 400 300 &")
            guest_prints(guest, "NEEP: wl-pattern-shown", start, timeout=30)
            settle(lambda: find_pattern(weston.screenshot(), 400, 300))
            weston.screenshot(keep_as=png_path)
        finally:
            guest.stop()
    finally:
        weston.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"guest Wayland windows on the host's weston: {png_path}")
    return 0


NEEP_WL_TESTS = {
    "neep_wl_clients": test_neep_wl_clients,
    "neep_wl_input": test_neep_wl_input,
}
