#!/usr/bin/env python3
"""neep-gpu as libvirt drives it: --print-capabilities (which libvirt parses to choose a
back-end and its arguments) and --fd (the connection libvirt hands over), bad ones included.

    check_neep_gpu_cli.py NEEP_GPU HAS_VIRGL(0|1)
"""
import glob
import json
import os
import socket
import subprocess
import sys

neep_gpu, has_virgl = sys.argv[1], sys.argv[2] == "1"
failures = []


def check(condition, what):
    print(("ok - " if condition else "not ok - ") + what)
    if not condition:
        failures.append(what)


def run(*args, **kwargs):
    return subprocess.run([neep_gpu, *args], capture_output=True, text=True, timeout=20, **kwargs)


# Capabilities: "render-node" makes libvirt demand a DRM render node for every domain, so it
# is listed only where the host has one; "virgl" wherever neep-gpu was built with it.
result = run("--print-capabilities")
capabilities = json.loads(result.stdout)
features = set(capabilities.get("features", []))
has_render_node = bool(glob.glob("/dev/dri/renderD*"))
check(result.returncode == 0 and capabilities.get("type") == "gpu",
      "--print-capabilities prints a gpu back-end's JSON")
check(("virgl" in features) == has_virgl, f"virgl listed only if built with it ({has_virgl})")
check(("render-node" in features) == (has_virgl and has_render_node),
      f"render-node listed only with a render node on the host ({has_render_node})")
check(features <= {"virgl", "render-node"}, f"no feature libvirt does not know: {features}")

# A bad --fd: refused at once, with the reason.
closed = os.open("/dev/null", os.O_RDONLY)
os.close(closed)
result = run(f"--fd={closed}")
check(result.returncode == 1 and f"--fd={closed}: Bad file descriptor" in result.stderr,
      f"--fd naming no open file: exit 1 with the reason ({result.stderr.strip()})")
NOT_A_CONNECTION = "is not a connected Unix stream socket"
with open("/dev/null", "rb") as null:
    result = run("--fd=0", stdin=null)
check(result.returncode == 1 and f"--fd=0 {NOT_A_CONNECTION}" in result.stderr,
      f"--fd naming a file that is no socket: exit 1 with the reason ({result.stderr.strip()})")


def refused(sock, what):
    result = run(f"--fd={sock.fileno()}", pass_fds=[sock.fileno()])
    check(result.returncode == 1 and NOT_A_CONNECTION in result.stderr,
          f"--fd naming {what}: exit 1 with the reason")
    sock.close()


datagram, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
refused(datagram, "a datagram socket")
peer.close()
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind("\0neep-gpu-cli-test-%d" % os.getpid())
listener.listen(1)
refused(listener, "a listening socket (it would wait forever)")
refused(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), "an unconnected socket")
tcp_listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp_listener.bind(("127.0.0.1", 0))
tcp_listener.listen(1)
tcp = socket.create_connection(tcp_listener.getsockname())
refused(tcp, "a TCP connection (vhost-user is a Unix socket)")
tcp_listener.close()
for text in ("x", "", "4294967296", "-1", "3x"):
    result = run(f"--fd={text}")
    check(result.returncode == 2 and "--fd needs a file descriptor number" in result.stderr,
          f"--fd={text}: exit 2 (bad option)")

# A good --fd whose front-end has gone: served, and the end is a clean exit.
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
theirs.close()
result = run(f"--fd={ours.fileno()}", pass_fds=[ours.fileno()])
check(result.returncode == 0, f"--fd whose front-end hung up: exit 0 ({result.stderr.strip()})")
ours.close()

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
