"""A display front-end stand-in between QEMU's vhost-user-gpu-pci and neep-gpu.

QEMU connects to the stand-in's socket; the stand-in connects to neep-gpu's and relays the
vhost-user channel both ways, fds included. The one message it changes is
VHOST_USER_GPU_SET_SOCKET: neep-gpu gets one end of a socket pair of the stand-in's instead of
QEMU's display socket, and the stand-in relays display messages between the two. A test can
then stop reading what neep-gpu writes to the display (`pause`) while QEMU, the guest and
neep-gpu's command rings run on, and start again (`resume`): what a front-end that stops
reading its display socket looks like to neep-gpu.
"""
import array
import os
import socket
import struct
import threading

VHOST_USER_GPU_SET_SOCKET = 33
# request, flags, payload size: the vhost-user channel's header and the display socket's alike
HEADER = struct.Struct("<III")
MAX_FDS = 8
CHUNK_BYTES = 1 << 20


def recv_exact(sock, size):
    """`size` bytes and the fds that came with them, or (None, []) at the end."""
    data, fds = b"", []
    while len(data) < size:
        try:
            chunk, ancillary, _, _ = sock.recvmsg(size - len(data),
                                                  socket.CMSG_SPACE(MAX_FDS * 4))
        except OSError:  # closed under us by close()
            chunk, ancillary = b"", []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                numbers = array.array("i")
                numbers.frombytes(payload[:len(payload) - len(payload) % 4])
                fds.extend(numbers)
        if not chunk:
            for fd in fds:
                os.close(fd)
            return None, []
        data += chunk
    return data, fds


def send_with_fds(sock, data, fds):
    """False if the socket is gone."""
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    try:
        sent = sock.sendmsg([data], ancillary)
        if sent < len(data):
            sock.sendall(data[sent:])
    except OSError:
        return False
    return True


def shut_writes(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # closed by close() already


class DisplayStandIn:
    def __init__(self, listen_path, backend_path):
        self.backend_path = backend_path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(listen_path)
        self.listener.listen(1)
        self.reading = threading.Event()  # clear: what neep-gpu writes to the display waits
        self.reading.set()
        self.relayed_bytes = 0  # display bytes from neep-gpu to QEMU
        self.sockets = [self.listener]
        threading.Thread(target=self._serve, daemon=True).start()

    def pause(self):
        self.reading.clear()

    def resume(self):
        self.reading.set()

    def close(self):
        self.reading.set()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _serve(self):
        try:
            front, _ = self.listener.accept()
        except OSError:
            return
        back = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        back.connect(self.backend_path)
        self.sockets += [front, back]
        threading.Thread(target=self._relay_replies, args=(back, front), daemon=True).start()
        self._relay_requests(front, back)

    def _relay_requests(self, front, back):
        """QEMU to neep-gpu, message by message (fds ride with their message's header)."""
        while True:
            header, fds = recv_exact(front, HEADER.size)
            if header is None:
                break
            request, _, size = HEADER.unpack(header)
            payload, more_fds = recv_exact(front, size) if size else (b"", [])
            fds += more_fds
            if payload is not None and request == VHOST_USER_GPU_SET_SOCKET and fds:
                fds = [self._take_display(fds[0])] + fds[1:]
            sent = payload is not None and send_with_fds(back, header + payload, fds)
            for fd in fds:
                os.close(fd)
            if not sent:
                break
        shut_writes(back)

    def _relay_replies(self, back, front):
        while True:
            data, fds = recv_exact(back, 1)
            if data is None:
                break
            more = b""
            try:
                more = back.recv(CHUNK_BYTES, socket.MSG_DONTWAIT)
            except OSError:
                pass
            sent = send_with_fds(front, data + more, fds)
            for fd in fds:
                os.close(fd)
            if not sent:
                break
        shut_writes(front)

    def _take_display(self, qemu_fd):
        """Keeps QEMU's display socket; returns the fd to hand neep-gpu instead."""
        qemu = socket.socket(fileno=qemu_fd)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sockets += [qemu, ours]
        threading.Thread(target=self._relay_display, args=(ours, qemu), daemon=True).start()
        threading.Thread(target=self._relay_plain, args=(qemu, ours), daemon=True).start()
        fd = os.dup(theirs.fileno())
        theirs.close()
        return fd

    def _relay_display(self, ours, qemu):
        """neep-gpu's display messages to QEMU, whole, only while reading: QEMU reads a message
        to its end on its main loop, so a pause inside one would freeze the whole VM (a real
        front-end that stops reading stops between messages)."""
        while True:
            self.reading.wait()
            header, _ = recv_exact(ours, HEADER.size)
            if header is None:
                break
            _, _, size = HEADER.unpack(header)
            payload, _ = recv_exact(ours, size) if size else (b"", [])
            if payload is None:
                break
            self.reading.wait()  # paused while this one came: it waits too
            try:
                qemu.sendall(header + payload)
            except OSError:
                break
            self.relayed_bytes += len(header) + len(payload)

    @staticmethod
    def _relay_plain(source, sink):
        """QEMU's replies on the display socket (GET_DISPLAY_INFO) to neep-gpu."""
        while True:
            try:
                chunk = source.recv(CHUNK_BYTES)
                if not chunk:
                    break
                sink.sendall(chunk)
            except OSError:
                break
