"""OpenGL and Vulkan in a real guest through neep's virgl and venus context types: Mesa's
virgl and venus drivers in the guest, virglrenderer on llvmpipe and lavapipe on the host. GL
on both faces (neep-gpu under QEMU's vhost-user-gpu-pci, and QEMU's virtio-gpu-rutabaga on
neep's library); venus on the rutabaga face only (it needs a host-visible memory window,
which vhost-user-gpu-pci does not give), on virglrenderer 1.2.0.

The guest boots the GL initramfs (tests/vm/build-gl-initramfs.sh) and runs, from its command
loop: eglinfo (the EGL driver must be virtio_gpu), gl_pattern (a GLES2 frame with known
colours, checked with glReadPixels in the guest and pixel for pixel in QMP's screendump on the
host), and kmscube for a number of frames.
"""
import os
import re
import time

from vmlib import BOOT_TIMEOUT, Guest, Weston, check_image, rutabaga_guest, settled_check
from wayland_tests import find_simple_shm, settle, shell

GL_MEMORY_MIB = 2048  # the initramfs alone is over 200 MB
GL_TIMEOUT = 180
KMSCUBE_FRAMES = 120
# kmscube stops when its stdin turns readable ("user interrupted"), as the serial console can:
# it reads this FIFO, which stays open and silent.
SILENT_FIFO = "[ -p /tmp/silent ] || { mkfifo /tmp/silent; sleep 1000000 > /tmp/silent & }"

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
           "white": (255, 255, 255), "yellow": (255, 255, 0)}


def gl_pattern_pixel(x, y, width, height):
    """What gl_pattern draws at screen pixel (x, y), as (r, g, b)."""
    if width // 4 <= x < 3 * width // 4 and height // 4 <= y < 3 * height // 4:
        return COLOURS["yellow"]
    top = y < height // 2
    left = x < width // 2
    if top:
        return COLOURS["red"] if left else COLOURS["green"]
    return COLOURS["blue"] if left else COLOURS["white"]


def check_gl_pattern(image, width, height):
    check_image(image, width, height, lambda x, y: gl_pattern_pixel(x, y, width, height),
                label="the GL frame on the display")


def gl_guest_steps(guest):
    """eglinfo, gl_pattern (checked in the guest and on the display), kmscube. Returns
    (renderer, kmscube frames, kmscube frames/s)."""
    status, lines = shell(guest, "eglinfo 2>&1 | grep -A8 'GBM platform' | "
                                 "grep 'EGL driver name'", timeout=GL_TIMEOUT)
    if status != 0 or not any("virtio_gpu" in line for line in lines):
        raise AssertionError("eglinfo does not name the virtio_gpu driver: " + " | ".join(lines))
    shell(guest, "gl_pattern 100000 > /tmp/gl.log 2>&1 &")
    status, lines = shell(guest, "for i in $(seq 600); do grep -q 'gl-shown\\|gl-failed' "
                                 "/tmp/gl.log && break; sleep 0.1; done; cat /tmp/gl.log",
                          timeout=GL_TIMEOUT)
    text = "\n".join(lines)
    renderer = re.search(r"NEEP: gl-renderer (.*)", text)
    if not renderer or not renderer.group(1).startswith("virgl"):
        raise AssertionError("gl_pattern did not render on virgl: " + text)
    if "NEEP: gl-readpixels ok" not in text:
        raise AssertionError("glReadPixels in the guest disagrees: " + text)
    shown = re.search(r"NEEP: gl-shown (\d+)x(\d+)", text)
    if not shown:
        raise AssertionError("gl_pattern did not show its frame: " + text)
    width, height = int(shown.group(1)), int(shown.group(2))
    settled_check(guest, "gl.ppm", lambda image: check_gl_pattern(image, width, height))
    shell(guest, "killall gl_pattern")
    shell(guest, SILENT_FIFO)
    status, lines = shell(guest, f"kmscube -c {KMSCUBE_FRAMES} < /tmp/silent 2>&1 | "
                                 "grep -v 'Using modifier' | tail -n 4",
                          timeout=GL_TIMEOUT)
    # It reports every two seconds as it goes: the last report is the whole run.
    results = list(re.finditer(r"Rendered (\d+) frames in ([0-9.]+) sec \(([0-9.]+) fps\)",
                               "\n".join(lines)))
    result = results[-1] if results else None
    if status != 0 or not result:
        raise AssertionError("kmscube did not finish: " + " | ".join(lines))
    frames = int(result.group(1))
    if frames < KMSCUBE_FRAMES - 1:  # it counts from the first frame shown
        raise AssertionError(f"kmscube rendered only {frames} frames: " + " | ".join(lines))
    return renderer.group(1), frames, float(result.group(3))


def gl_guest(guest):
    guest.memory_mib = GL_MEMORY_MIB
    guest.cpus = 2
    guest.start()
    guest.wait_for("NEEP: shell-ready", timeout=BOOT_TIMEOUT * 2)


def test_gl(args, workdir):
    """neep-gpu --virgl: GL in the guest, its frame on QEMU's display by read-back."""
    guest = Guest(workdir, args.backend + ["--virgl"], args.gl_initrd,
                  "neep.test=run neep.program=shell.sh")
    # In the sanitised build: Mesa's driver is unloaded before LeakSanitizer looks, so what
    # it keeps for the process's life shows as leaks of an unknown module. Memory errors are
    # still caught; neep's own leaks are checked by the unit tests (test_virgl).
    guest.extra_env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"}
    try:
        gl_guest(guest)
        renderer, frames, fps = gl_guest_steps(guest)
        return f"{renderer}; frame exact on the display; kmscube {frames} frames at {fps:.0f}/s"
    finally:
        guest.stop()


# The guest's gfxstream Vulkan driver alone (so vk_pattern may take its one device, which
# carries the host's name), for the gfxstream test.
GFXSTREAM_ICD = ("VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/gfxstream_vk_icd.json "
                 "VK_PATTERN_ANY_DEVICE=1")


def vk_guest_steps(guest, runs=1, driver="venus", device_mark="Virtio-GPU Venus", env=""):
    """vulkaninfo names the `driver`'s device; vk_pattern (compute and render, checked in the
    guest through mapped memory) passes, `runs` copies at once. Returns the device name."""
    status, lines = shell(guest, f"{env} vulkaninfo --summary 2>&1 | "
                                 "grep -E 'deviceName|driverName'", timeout=GL_TIMEOUT)
    text = "\n".join(lines)
    if driver == "gfxstream":
        # gfxstream shows the guest the host's device as it is (lavapipe here): the loader's
        # own account says which driver serves it.
        status, loaded = shell(guest, f"{env} VK_LOADER_DEBUG=driver vulkaninfo --summary 2>&1 "
                                      "| grep -c 'libvulkan_gfxstream.so'", timeout=GL_TIMEOUT)
        if not next((int(line) for line in loaded if line.strip().isdigit()), 0):
            raise AssertionError("the Vulkan loader did not use gfxstream's driver: "
                                 + " | ".join(loaded))
        if "deviceName" not in text:
            raise AssertionError("vulkaninfo lists no device through gfxstream: " + text)
    elif f"driverName         = {driver}" not in text or device_mark not in text:
        raise AssertionError(f"vulkaninfo does not list the {driver} device: " + text)
    device = re.search(r"deviceName\s*=\s*(.*)", text).group(1).strip()
    shell(guest, " ".join(f"{env} vk_pattern > /tmp/vk{i}.log 2>&1 &" for i in range(runs)))
    for i in range(runs):
        status, lines = shell(guest, f"for i in $(seq 1200); do grep -q 'vk-done\\|vk-failed' "
                                     f"/tmp/vk{i}.log && break; sleep 0.1; done; cat /tmp/vk{i}.log",
                              timeout=GL_TIMEOUT)
        log = "\n".join(lines)
        if "NEEP: vk-compute ok" not in log or "NEEP: vk-render ok" not in log:
            raise AssertionError(f"vk_pattern run {i} failed: " + log)
    return device


def show_simple_shm(guest, weston):
    """neep-wl in the guest, and weston-simple-shm through it on the host's weston."""
    shell(guest, "neep-wl --verbose > /tmp/neep-wl.log 2>&1 &")
    status, _ = shell(guest, "for i in $(seq 100); do [ -S $XDG_RUNTIME_DIR/wayland-0 ] && "
                             "exit 0; sleep 0.1; done; exit 1")
    if status != 0:
        raise AssertionError("neep-wl did not create its socket")
    shell(guest, "weston-simple-shm &")
    settle(lambda: find_simple_shm(weston.screenshot()))


def test_rutabaga_gl(args, workdir):
    """QEMU's rutabaga device on neep with NEEP_CONTEXT_TYPES=venus,virgl2 (venus on
    virglrenderer 1.2.0): GL and Vulkan in the guest while a Wayland client in the same guest
    shows on the host's weston through neep-wl."""
    weston = Weston(workdir, screenshots=True)
    guest = rutabaga_guest(args, workdir, "neep.test=run neep.program=shell.sh", weston.socket)
    guest.initrd = args.gl_initrd
    guest.extra_env = {"NEEP_CONTEXT_TYPES": "venus,virgl2",
                       "LD_LIBRARY_PATH": args.virglrenderer_lib}
    try:
        gl_guest(guest)
        status, lines = shell(guest, "dmesg | grep 'cap set'")
        capsets = " ".join(lines)
        for wanted in ("id 2", "id 4", "id 5"):
            if wanted not in capsets:
                raise AssertionError(f"the guest does not see capsets 2, 4 and 5: {capsets}")
        device = vk_guest_steps(guest)
        show_simple_shm(guest, weston)
        # Vulkan twice at once, GL and a Wayland client meanwhile.
        shell(guest, SILENT_FIFO)
        shell(guest, "kmscube -c 100000 > /dev/null 2>&1 < /tmp/silent &")
        vk_guest_steps(guest, runs=2)
        shell(guest, "killall kmscube; sleep 1")
        renderer, frames, fps = gl_guest_steps(guest)
        # The Wayland client carried on while GL and Vulkan ran.
        settle(lambda: find_simple_shm(weston.screenshot()))
        status, _ = shell(guest, "pidof weston-simple-shm")
        if status != 0:
            raise AssertionError("weston-simple-shm did not survive the GL and Vulkan work")
        return (f"{device}: compute and render exact, twice at once next to kmscube; "
                f"{renderer}; frame exact on the display; kmscube {frames} frames at "
                f"{fps:.0f}/s; weston-simple-shm on the host meanwhile")
    finally:
        guest.stop()
        weston.stop()


def find_render_server(qemu_pid):
    """The pid of venus's render server: a child of QEMU (neep's library spawned it)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if comm.startswith("virgl_render_se") and ppid == qemu_pid:
            return int(entry)
    return None


def test_rutabaga_venus_loss(args, workdir):
    """venus's render server is killed on the host while a guest Vulkan program is in its
    submit loop and kmscube draws through virgl: neep says venus is lost, the Vulkan program
    can be killed (its fences complete), a new Vulkan program fails cleanly rather than hang,
    and GL goes on exact."""
    guest = rutabaga_guest(args, workdir, "neep.test=run neep.program=shell.sh",
                           os.path.join(workdir, "no-wayland"))
    guest.initrd = args.gl_initrd
    guest.extra_env = {"NEEP_CONTEXT_TYPES": "venus,virgl2",
                       "LD_LIBRARY_PATH": args.virglrenderer_lib}
    try:
        gl_guest(guest)
        shell(guest, SILENT_FIFO)
        shell(guest, "kmscube -c 100000 > /dev/null 2>&1 < /tmp/silent &")
        shell(guest, "vk_pattern bench 100000000 > /tmp/vk.log 2>&1 &")
        status, lines = shell(guest, "for i in $(seq 1200); do grep -q 'vk-render ok\\|vk-failed' "
                                     "/tmp/vk.log && break; sleep 0.1; done; cat /tmp/vk.log",
                              timeout=GL_TIMEOUT)
        if "NEEP: vk-render ok" not in "\n".join(lines):
            raise AssertionError("vk_pattern did not reach its submit loop: " + " | ".join(lines))
        qemu = guest.processes[-1]
        server = find_render_server(qemu.pid)
        if server is None:
            raise AssertionError("no render server among QEMU's children")
        os.kill(server, 9)
        deadline = time.monotonic() + 30
        log = ""
        while "venus contexts are lost" not in log and time.monotonic() < deadline:
            time.sleep(0.2)
            guest.qemu_log.flush()
            with open(guest.path("qemu.log")) as f:
                log = f.read()
        if "venus contexts are lost" not in log:
            raise AssertionError("neep did not report the render server's death: " + log[-2000:])
        if qemu.poll() is not None:
            raise AssertionError(f"QEMU exited ({qemu.returncode}) with the render server")
        # The Vulkan program waits on feedback the dead server will never write; it must at
        # least die when killed: no task hangs on a fence.
        status, lines = shell(guest, "kill -9 $(pidof vk_pattern); for i in $(seq 100); do "
                                     "pidof vk_pattern > /dev/null || exit 0; sleep 0.1; done; "
                                     "exit 1")
        if status != 0:
            raise AssertionError("vk_pattern could not be killed after the loss")
        # A new Vulkan program is refused (no venus context), and says so: it does not hang.
        status, lines = shell(guest, "timeout 60 vk_pattern > /tmp/vk2.log 2>&1; echo rc=$?; "
                                     "tail -n 2 /tmp/vk2.log", timeout=GL_TIMEOUT)
        text = " | ".join(lines)
        rc = re.search(r"rc=(\d+)", text)
        # busybox's timeout ends a hung program with SIGTERM (143).
        if not rc or int(rc.group(1)) in (0, 124, 143) or "vk-done" in text:
            raise AssertionError("a Vulkan program after the loss ran or hung: " + text)
        shell(guest, "killall kmscube; sleep 1")
        renderer, frames, fps = gl_guest_steps(guest)
        return (f"render server killed mid-submit: venus lost and said, vk_pattern killable, "
                f"a new one refused ({text.strip()[-80:]}); {renderer} exact after it, kmscube "
                f"{frames} frames at {fps:.0f}/s")
    finally:
        guest.stop()


class Skipped(Exception):
    """A test that cannot run on this machine, and why."""


def test_rutabaga_gfxstream(args, workdir):
    """QEMU's rutabaga device on neep with gfxstream-vulkan=on and cross-domain=on (the
    founding document's configuration), gfxstream's backend on lavapipe: in the guest,
    vulkaninfo names gfxstream's device, vk_pattern renders and computes exactly through it,
    twice at once, while weston-simple-shm shows on the host's weston through neep-wl."""
    if not args.gfxstream_library:
        raise Skipped("gfxstream's source snapshot (../shared/deps/gfxstream) is not here")
    weston = Weston(workdir, screenshots=True)
    guest = rutabaga_guest(args, workdir, "neep.test=run neep.program=shell.sh", weston.socket)
    guest.initrd = args.gl_initrd
    guest.extra_device = ",gfxstream-vulkan=on"
    guest.extra_env = {"NEEP_GFXSTREAM_LIBRARY": args.gfxstream_library,
                           "NEEP_GFXSTREAM_SERVER": os.path.join(args.neep_library_dir,
                                                                 "neep-gfxstream-server")}
    try:
        gl_guest(guest)
        status, lines = shell(guest, "dmesg | grep 'cap set'")
        capsets = " ".join(lines)
        for wanted in ("id 3", "id 5"):
            if wanted not in capsets:
                raise AssertionError(f"the guest does not see capsets 3 and 5: {capsets}")
        device = vk_guest_steps(guest, driver="gfxstream", device_mark="", env=GFXSTREAM_ICD)
        show_simple_shm(guest, weston)
        vk_guest_steps(guest, runs=2, driver="gfxstream", device_mark="", env=GFXSTREAM_ICD)
        settle(lambda: find_simple_shm(weston.screenshot()))
        status, _ = shell(guest, "pidof weston-simple-shm")
        if status != 0:
            raise AssertionError("weston-simple-shm did not survive the Vulkan work")
        return (f"{device} through gfxstream: compute and render exact, twice at once; "
                "weston-simple-shm on the host meanwhile")
    finally:
        guest.stop()
        weston.stop()


GL_TESTS = {"gl": test_gl}
RUTABAGA_GL_TESTS = {"rutabaga_gl": test_rutabaga_gl,
                     "rutabaga_venus_loss": test_rutabaga_venus_loss,
                     "rutabaga_gfxstream": test_rutabaga_gfxstream}


def run_gl_demo(args, png_path):
    """The demo's GL frame: gl_pattern rendered by virgl in the guest on neep-gpu --virgl,
    as QEMU's display received it."""
    import shutil
    import tempfile
    from vmlib import write_png
    workdir = tempfile.mkdtemp(prefix="neep-gl-demo-")
    guest = Guest(workdir, args.backend + ["--virgl"], args.gl_initrd,
                  "neep.test=run neep.program=shell.sh")
    try:
        gl_guest(guest)
        shell(guest, "gl_pattern 100000 > /tmp/gl.log 2>&1 &")
        status, lines = shell(guest, "for i in $(seq 600); do grep -q 'gl-shown\\|gl-failed' "
                                     "/tmp/gl.log && break; sleep 0.1; done; cat /tmp/gl.log",
                              timeout=GL_TIMEOUT)
        shown = re.search(r"NEEP: gl-shown (\d+)x(\d+)", "\n".join(lines))
        if not shown:
            raise AssertionError("gl_pattern did not show its frame: " + " | ".join(lines))
        width, height = int(shown.group(1)), int(shown.group(2))
        image = settled_check(guest, "gl.ppm",
                              lambda image: check_gl_pattern(image, width, height))
        write_png(image, png_path)
        renderer = re.search(r"NEEP: gl-renderer (.*)", "\n".join(lines)).group(1)
    finally:
        guest.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"The GL guest's display ({image.width}x{image.height}, rendered by {renderer}) "
          f"is in {png_path}")
    return 0
