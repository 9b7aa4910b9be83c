#!/usr/bin/env python3
"""neep-gpu as a Debian package under real libvirt: installing the package is all it takes for
a domain with a vhostuser video device to get neep-gpu (libvirt finds it through the installed
descriptor and starts it with --fd); the guest's display is checked through `virsh screenshot`;
destroying the domain ends neep-gpu. A neep-gpu that cannot start fails the domain at once,
with its reason in the system log; one that cannot run at all, and a removed package, give
QEMU's own back-end back (which, unlike neep-gpu, libvirt runs only on hosts with a render
node).

Needs root (it installs and removes the package, and runs libvirtd and virtlogd if they are not
running). Prints one "ok - NAME" or "not ok - NAME" line per test, then "N passed, N failed".

    libvirt_test.py --debs DIR --initrd GUEST_INITRD
"""
import argparse
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vm"))
from vmlib import Image, check_image, read_png  # noqa: E402

URI = "qemu:///system"
NEEP_GPU = "/usr/libexec/neep-gpu"
QEMU_GPU = "/usr/lib/qemu/vhost-user-gpu"
OVERRIDE = "/etc/qemu/vhost-user/50-neep-gpu.json"  # same name: takes the package's place
BOOT_TIMEOUT = 120

DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{dir}/vmlinuz</kernel>
    <initrd>{dir}/initrd</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 neep.test=run neep.program=kms_pattern</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'>
      <source path='{dir}/serial.log'/>
    </serial>
    <video>
      <driver name='vhostuser'/>
      <model type='virtio' heads='1'/>
    </video>
  </devices>
</domain>
"""


def virsh(*args, timeout=120, check=True):
    result = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"virsh {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def processes_of(executable):
    """Pids of running processes whose program is `executable`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/exe") == executable:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def arguments_of(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def pattern_pixel(x, y):
    """What the guest's kms_pattern draws on head 0 (tests/vm/guest/kms_pattern.c)."""
    return (x & 0xff, y & 0xff, (x ^ y) & 0xff)


class Daemons:
    """libvirtd and virtlogd: the running ones, or started here (and stopped at the end)."""

    def __init__(self):
        self.started = []

    def start(self):
        for daemon in ("virtlogd", "libvirtd"):
            if not subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode == 0:
                subprocess.run([daemon, "-d"], check=True)
                self.started.append(daemon)
        wait_until(lambda: virsh("version", check=False).returncode == 0, 30, "libvirtd")

    def stop(self):
        for daemon in reversed(self.started):
            subprocess.run(["pkill", "-x", daemon])


class Domain:
    """A transient domain booting the test guest, which draws kms_pattern and waits."""

    def __init__(self, workdir, initrd, label):
        self.name = f"neep-libvirt-{label}-{os.getpid()}"
        self.dir = os.path.join(workdir, label)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)  # QEMU runs as libvirt-qemu and must reach its files
        shutil.copy(sorted(glob.glob("/boot/vmlinuz-*"))[-1], os.path.join(self.dir, "vmlinuz"))
        shutil.copy(initrd, os.path.join(self.dir, "initrd"))
        self.xml = os.path.join(self.dir, "domain.xml")
        with open(self.xml, "w") as f:
            f.write(DOMAIN_XML.format(name=self.name, dir=self.dir))
        self.created = False

    def create(self):
        result = virsh("create", self.xml, check=False)
        self.created = result.returncode == 0
        return result

    def serial(self):
        try:
            with open(os.path.join(self.dir, "serial.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_for_pattern(self):
        wait_until(lambda: "NEEP: kms-ready" in self.serial(), BOOT_TIMEOUT,
                   "the guest to draw its pattern")

    def screenshot_check(self, timeout=10):
        """The display through `virsh screenshot` is exactly the guest's pattern."""
        path = os.path.join(self.dir, "screenshot")
        deadline = time.monotonic() + timeout
        while True:
            virsh("screenshot", self.name, path)
            with open(path, "rb") as f:
                png = f.read(4) == b"\x89PNG"
            image = read_png(path) if png else Image(path)
            try:
                check_image(image, 1280, 800, pattern_pixel, label="virsh screenshot")
                return image
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def destroy(self):
        if self.created:
            virsh("destroy", self.name, check=False)
            self.created = False


def install_package(debs):
    deb = glob.glob(os.path.join(debs, "neep-gpu_*.deb"))
    if len(deb) != 1:
        raise AssertionError(f"no single neep-gpu package in {debs}: {deb}")
    subprocess.run(["dpkg", "-i", deb[0]], check=True, capture_output=True)


def remove_package():
    subprocess.run(["dpkg", "--purge", "neep-gpu"], check=True, capture_output=True)


def write_override(binary, description):
    os.makedirs(os.path.dirname(OVERRIDE), exist_ok=True)
    with open(OVERRIDE, "w") as f:
        f.write(f'{{"description": "{description}", "type": "gpu", "binary": "{binary}"}}\n')


def remove_override():
    if os.path.exists(OVERRIDE):
        os.unlink(OVERRIDE)


class SyslogCatcher:
    """What programs send to the system log: where no syslog daemon runs (these machines),
    binds /dev/log for the test and removes it afterwards; where journald has it, reads the
    journal."""

    def __init__(self):
        self.lines = []
        self.sock = None
        if os.path.exists("/dev/log"):
            if not shutil.which("journalctl"):
                raise AssertionError("/dev/log belongs to a syslog daemon without a journal: "
                                     "cannot read what neep-gpu logged")
            return
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("/dev/log")
        os.chmod("/dev/log", 0o666)
        threading.Thread(target=self._read, daemon=True).start()

    def read(self, since):
        if self.sock:
            return list(self.lines)
        result = subprocess.run(["journalctl", "-t", "neep-gpu", "--since", since, "-o", "cat"],
                                capture_output=True, text=True)
        return result.stdout.splitlines()

    def _read(self):
        while True:
            try:
                self.lines.append(self.sock.recv(4096).decode(errors="replace"))
            except OSError:
                return

    def close(self):
        if self.sock:
            self.sock.close()
            os.unlink("/dev/log")


# ---- tests ---------------------------------------------------------------------------------

def test_installed_package_serves_the_domain(args, workdir):
    """Installed from its package, neep-gpu is what libvirt starts for the domain; the guest's
    pattern shows exactly in `virsh screenshot`; it ends with the domain."""
    install_package(args.debs)
    domain = None
    try:
        domain = Domain(workdir, args.initrd, "installed")
        result = domain.create()
        if result.returncode != 0:
            raise AssertionError(f"virsh create failed: {result.stderr.strip()}")
        domain.wait_for_pattern()
        running = processes_of(NEEP_GPU)
        if len(running) != 1:
            raise AssertionError(f"expected one {NEEP_GPU} process, found {running}")
        argv = arguments_of(running[0])
        if not any(a.startswith("--fd=") for a in argv):
            raise AssertionError(f"libvirt did not start it with --fd: {argv}")
        if processes_of(QEMU_GPU):
            raise AssertionError("QEMU's own back-end is running as well")
        domain.screenshot_check()
    finally:
        if domain:
            domain.destroy()
    wait_until(lambda: not processes_of(NEEP_GPU), 10, "neep-gpu to end with the domain")
    return f"{' '.join(argv)}; pattern exact at 1280x800; gone after destroy"


def test_a_back_end_that_cannot_start_fails_the_domain_at_once(args, workdir):
    """A neep-gpu that fails as it starts (here: handed a bad --fd) makes `virsh create` fail
    promptly, leaves nothing running, and says why in the system log."""
    install_package(args.debs)
    wrapper = os.path.join(workdir, "neep-gpu-bad-fd")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nexec {NEEP_GPU} "$@" --fd=1000\n')
    os.chmod(wrapper, 0o755)
    catcher = domain = None
    since = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        write_override(wrapper, "neep-gpu given a bad fd")
        catcher = SyslogCatcher()
        domain = Domain(workdir, args.initrd, "bad-fd")
        started = time.monotonic()
        result = domain.create()
        seconds = time.monotonic() - started
        if result.returncode == 0:
            raise AssertionError("the domain started with a back-end that cannot")
        if seconds > 30:
            raise AssertionError(f"virsh create took {seconds:.1f} s to fail")
        if processes_of(NEEP_GPU) or processes_of("/usr/bin/qemu-system-x86_64"):
            raise AssertionError("a back-end or QEMU was left running")
        reason = "--fd=1000: Bad file descriptor"
        wait_until(lambda: any(reason in line for line in catcher.read(since)), 5,
                   "neep-gpu's reason in the system log")
        said = next(line for line in catcher.read(since) if reason in line)
    finally:
        if domain:
            domain.destroy()
        if catcher:
            catcher.close()
        remove_override()
    return f"failed in {seconds:.1f} s: {result.stderr.strip()}; system log: {said}"


def test_a_back_end_that_cannot_run_gives_qemus_back(args, workdir):
    """A neep-gpu that cannot run at all (as with a missing library: exit 127 even for
    --print-capabilities) is passed over: libvirt takes QEMU's own back-end."""
    install_package(args.debs)
    wrapper = os.path.join(workdir, "neep-gpu-cannot-run")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\necho 'error while loading shared libraries' >&2\nexit 127\n")
    os.chmod(wrapper, 0o755)
    domain = None
    try:
        write_override(wrapper, "neep-gpu that cannot run")
        domain = Domain(workdir, args.initrd, "cannot-run")
        return run_on_qemus_back_end(domain)
    finally:
        if domain:
            domain.destroy()
        remove_override()


def test_removing_the_package_gives_qemus_back(args, workdir):
    """With the package removed, libvirt uses QEMU's own vhost-user-gpu again."""
    install_package(args.debs)
    remove_package()
    if os.path.exists(NEEP_GPU) or os.path.exists("/usr/share/qemu/vhost-user/50-neep-gpu.json"):
        raise AssertionError("removing the package left neep-gpu or its descriptor")
    domain = None
    try:
        domain = Domain(workdir, args.initrd, "removed")
        return run_on_qemus_back_end(domain)
    finally:
        if domain:
            domain.destroy()


def run_on_qemus_back_end(domain):
    """The domain gets QEMU's back-end. QEMU's lists "render-node" among its capabilities, and
    for such a back-end libvirt demands a DRM render node even for 2D: on a host without one
    (these machines) libvirt refuses the domain for want of /dev/dri, which only QEMU's
    back-end makes it do (neep-gpu lists render-node only where there is one)."""
    result = domain.create()
    if not glob.glob("/dev/dri/renderD*"):
        if result.returncode == 0 or "/dev/dri" not in result.stderr:
            raise AssertionError(f"expected libvirt to refuse QEMU's back-end for want of a "
                                 f"render node; virsh create said: {result.stderr.strip()!r}")
        if processes_of(NEEP_GPU):
            raise AssertionError("neep-gpu is running")
        return f"libvirt chose QEMU's back-end and, with no render node here, said: " \
               f"{result.stderr.strip()}"
    if result.returncode != 0:
        raise AssertionError(f"virsh create failed: {result.stderr.strip()}")
    domain.wait_for_pattern()
    if processes_of(NEEP_GPU) or len(processes_of(QEMU_GPU)) != 1:
        raise AssertionError(f"expected QEMU's back-end alone, found neep-gpu "
                             f"{processes_of(NEEP_GPU)} and QEMU's {processes_of(QEMU_GPU)}")
    domain.screenshot_check()
    return "QEMU's vhost-user-gpu served it; pattern exact"


TESTS = [
    test_installed_package_serves_the_domain,
    test_a_back_end_that_cannot_start_fails_the_domain_at_once,
    test_a_back_end_that_cannot_run_gives_qemus_back,
    test_removing_the_package_gives_qemus_back,
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--debs", required=True)
    parser.add_argument("--initrd", required=True)
    parser.add_argument("tests", nargs="*")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("not ok - libvirt (needs root: it installs the package and runs libvirtd)")
        print("0 passed, 1 failed")
        return 1
    if os.path.exists(OVERRIDE):
        print(f"not ok - libvirt ({OVERRIDE} exists: it would decide which back-end runs)")
        print("0 passed, 1 failed")
        return 1
    if subprocess.run(["dpkg", "-s", "neep-gpu"], capture_output=True).returncode == 0:
        # The test installs and removes the package: it must not take a user's away.
        print("not ok - libvirt (the neep-gpu package is installed here: remove it first)")
        print("0 passed, 1 failed")
        return 1
    # A CI timeout's SIGTERM still cleans up (package, override, /dev/log, daemons).
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    daemons = Daemons()
    passed = failed = 0
    workdir = tempfile.mkdtemp(prefix="neep-libvirt-")
    os.chmod(workdir, 0o755)
    try:
        daemons.start()
        for test in TESTS:
            name = test.__name__[len("test_"):]
            if args.tests and name not in args.tests:
                continue
            try:
                detail = test(args, workdir)
                print(f"ok - {name}: {detail}", flush=True)
                passed += 1
            except Exception as error:  # a failed test must not stop the others
                traceback.print_exc()
                print(f"not ok - {name}: {error}", flush=True)
                failed += 1
    finally:
        remove_override()
        daemons.stop()
        remove_package()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
