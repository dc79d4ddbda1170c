"""Framed messages over a Unix socketpair between the agent and one of its task processes.

zmq costs two thread hand-offs per message; this link is on one host and has two ends, so a
plain stream socket is enough. A message is ``u32 n`` then ``n`` ``u64`` lengths, then the frames
(the same ``[header, *payloads]`` batches as everywhere else). The task process reads and writes
blocking. The agent never blocks: ``FrameReader`` reassembles what arrives, and ``FrameWriter``
keeps what the socket would not take yet (a large message, or one sent to a busy process that is
not reading) until the agent's loop sees the socket writable again.
"""

from __future__ import annotations

import socket
import struct
from collections import deque
from collections.abc import Sequence
from typing import Any

_COUNT = struct.Struct("<I")
MAX_FRAMES = 1 << 16


class PipeClosed(ConnectionError):
    pass


def _view(frame: Any) -> memoryview:
    buf = getattr(frame, "buffer", None)
    view = buf if buf is not None else memoryview(frame)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _parts(frames: Sequence[Any]) -> list[memoryview]:
    views = [_view(f) for f in frames]
    header = _COUNT.pack(len(views)) + struct.pack(f"<{len(views)}Q", *(v.nbytes for v in views))
    return [memoryview(header), *[v for v in views if v.nbytes]]


class FrameWriter:
    """Non-blocking writes of whole messages: what the socket does not take now waits, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending: deque[memoryview] = deque()

    def send(self, frames: Sequence[Any]) -> bool:
        """Queue one message and write what the socket takes; True when nothing is left waiting."""
        self.pending.extend(_parts(frames))
        return self.flush()

    def flush(self) -> bool:
        pending = self.pending
        while pending:
            try:
                sent = self.sock.sendmsg([pending[i] for i in range(min(512, len(pending)))])
            except BlockingIOError:
                return False
            while sent and pending:
                first = pending[0]
                if sent >= first.nbytes:
                    sent -= first.nbytes
                    pending.popleft()
                else:
                    pending[0] = first[sent:]
                    sent = 0
        return True


def send_frames(sock: socket.socket, frames: Sequence[Any]) -> None:
    """Write one message; blocks until the kernel has taken all of it."""
    pending = _parts(frames)
    while pending:
        sent = sock.sendmsg(pending[:512])
        while sent and pending:
            first = pending[0]
            if sent >= first.nbytes:
                sent -= first.nbytes
                pending.pop(0)
            else:
                pending[0] = first[sent:]
                sent = 0


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            raise PipeClosed("the other end closed the pipe")
        got += k
    return buf


def recv_frames(sock: socket.socket) -> list[bytearray]:
    """Read one whole message (blocking)."""
    (count,) = _COUNT.unpack(_recv_exact(sock, 4))
    if count > MAX_FRAMES:
        raise PipeClosed(f"message announces {count} frames")
    lengths = struct.unpack(f"<{count}Q", _recv_exact(sock, 8 * count)) if count else ()
    return [_recv_exact(sock, n) if n else bytearray() for n in lengths]


class FrameReader:
    """Non-blocking reassembly of messages from a stream socket (the agent's side)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.frames: list[Any] = []
        self.lengths: list[int] = []
        self.big: bytearray | None = None
        self.big_got = 0

    def read(self) -> list[list[Any]]:
        """Read what is available; return the complete messages. Raises PipeClosed at EOF."""
        out: list[list[Any]] = []
        if self.big is not None:
            self._fill_big()
            if self.big is not None:
                return out
            out = self._parse()
            if self.big is not None:
                return out
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return out
        if not data:
            if out:
                return out
            raise PipeClosed("task process closed its pipe")
        self.buffer += data
        return out + self._parse()

    def _fill_big(self) -> None:
        big = self.big
        if big is None:
            return
        view = memoryview(big)
        while self.big_got < len(big):
            try:
                k = self.sock.recv_into(view[self.big_got :])
            except BlockingIOError:
                return
            if k == 0:
                raise PipeClosed("task process closed its pipe")
            self.big_got += k
        self.frames.append(big)
        self.big = None

    def _parse(self) -> list[list[Any]]:
        out: list[list[Any]] = []
        buf = self.buffer
        pos = 0
        while True:
            if not self.lengths and not self.frames:
                if len(buf) - pos < 4:
                    break
                (count,) = _COUNT.unpack_from(buf, pos)
                if count > MAX_FRAMES:
                    raise PipeClosed(f"task process sent a message announcing {count} frames")
                if len(buf) - pos < 4 + 8 * count:
                    break
                self.lengths = list(struct.unpack_from(f"<{count}Q", buf, pos + 4))
                pos += 4 + 8 * count
                if count == 0:
                    out.append([])
                    continue
            while self.lengths:
                need = self.lengths[0]
                have = len(buf) - pos
                if have >= need:
                    self.frames.append(bytes(buf[pos : pos + need]))
                    pos += need
                    self.lengths.pop(0)
                    continue
                big = bytearray(need)
                big[:have] = buf[pos:]
                pos = len(buf)
                self.lengths.pop(0)
                self.big, self.big_got = big, have
                self.buffer = bytearray()
                self._fill_big()
                if self.big is not None:
                    return out
                buf = self.buffer
                pos = 0
            if not self.lengths and self.frames:
                out.append(self.frames)
                self.frames = []
                continue
            break
        del buf[:pos]
        self.buffer = buf
        return out
