"""Noticing at once that a peer's connection closed, without trusting a hint too far.

A peer whose process dies (SIGKILL included) closes its TCP connection, and the ROUTER's socket
monitor reports ``EVENT_DISCONNECTED`` with that connection's file descriptor; the scheduler knows
each peer's descriptor from its Hello (``SRCFD``). That is only a hint: by the time the event is
read, the descriptor may belong to a newer connection, and a peer may have reconnected under its
identity (``ROUTER_HANDOVER`` gives a new connection the identity). So the hint only makes a peer
*suspect*, and after a grace (room for a reconnect: ``GRACE`` on the scheduler's host, where a
connection closes only when its process closes it or dies, ``REMOTE_GRACE`` for a peer on another
host, whose network may have dropped a connection it redials at once) the ROUTER is asked whether a
connection with that identity is open: a ``HeartbeatAck`` is sent to it with ``ROUTER_MANDATORY``
on, which fails with ``EHOSTUNREACH`` exactly when none is (the probe costs a peer that is there a
harmless ack). A suspect without a connection is reported ``gone`` and the server drops it through
the same path as a peer timeout. One with a connection is asked once more a grace later (libzmq
reports the close a moment before the ROUTER forgets the connection, so a very slow I/O thread could
make the first answer stale), then stays, and the descriptor of its new connection is read from its
next message. Every mistake this can make keeps a peer, which the peer timeout then drops.

libzmq's ``ZMQ_ROUTER_NOTIFY`` would name the identity directly, but it is a draft API that
pyzmq's wheels do not enable (setting it fails with ``EINVAL``), hence the monitor and the probe.
"""

from __future__ import annotations

from typing import Any

import zmq

from scaler.protocol import messages as m
from scaler.protocol.wire import encode
from scaler.utility.sockets import readable, recv_monitor_event, send_frames

GRACE = 0.05  # seconds a peer on this host whose connection closed has to reconnect before it is dropped
REMOTE_GRACE = 2.0  # the same for a peer on another host
CLOSED_MEMORY = 5.0  # a Hello read this soon after a close on its descriptor makes its peer suspect
SRCFD = getattr(zmq, "SRCFD", 2)


def source_fd(frame: Any) -> int:
    """The descriptor of the connection ``frame`` came in on (-1 if unknown)."""
    try:
        return int(frame.get(SRCFD))
    except (zmq.ZMQError, TypeError, ValueError, AttributeError):
        return -1


class ConnectionWatch:
    def __init__(self, socket: zmq.Socket[Any], remote: set[bytes]) -> None:
        self.socket = socket
        self.remote = remote  # identities of peers on other hosts
        self.monitor: zmq.Socket[Any] = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.by_fd: dict[int, bytes] = {}
        self.fd_of: dict[bytes, int] = {}
        self.suspects: dict[bytes, float] = {}  # identity -> when to ask the ROUTER
        self.closed: dict[int, float] = {}  # descriptor -> when a connection on it closed
        self.refresh: set[bytes] = set()  # kept suspects: their descriptor is read from their next message
        self.looked: set[bytes] = set()  # suspects found connected once, to be asked again
        self.probe = encode([m.HeartbeatAck()])

    def joined(self, identity: bytes, first: Any, now: float) -> None:
        """``identity`` said Hello in a message whose first frame is ``first``."""
        fd = source_fd(first)
        self._bind(identity, fd, now)
        closed = self.closed.get(fd)
        if closed is not None and now - closed < CLOSED_MEMORY:
            self.suspect(identity, now)  # this close may have been its own, read before its Hello

    def heard(self, identity: bytes, first: Any, now: float) -> None:
        """A message from a peer in ``refresh`` (the caller checks, so other messages cost nothing)."""
        self.refresh.discard(identity)
        self._bind(identity, source_fd(first), now)

    def _bind(self, identity: bytes, fd: int, now: float) -> None:
        old = self.fd_of.pop(identity, None)
        if old is not None and self.by_fd.get(old) == identity:
            del self.by_fd[old]
        if fd < 0:
            return
        previous = self.by_fd.get(fd)
        if previous is not None and previous != identity:
            # Descriptors are unique among open connections: the one ``previous`` had is closed.
            self.fd_of.pop(previous, None)
            self.suspect(previous, now)
        self.by_fd[fd] = identity
        self.fd_of[identity] = fd

    def left(self, identity: bytes) -> None:
        """The peer was dropped: forget it."""
        self.suspects.pop(identity, None)
        self.refresh.discard(identity)
        self.looked.discard(identity)
        fd = self.fd_of.pop(identity, None)
        if fd is not None and self.by_fd.get(fd) == identity:
            del self.by_fd[fd]

    def suspect(self, identity: bytes, now: float) -> None:
        self.suspects.setdefault(identity, now + self._grace(identity))

    def _grace(self, identity: bytes) -> float:
        return REMOTE_GRACE if identity in self.remote else GRACE

    def drain_monitor(self, now: float) -> None:
        if len(self.closed) > 256:
            self.closed = {fd: t for fd, t in self.closed.items() if now - t < CLOSED_MEMORY}
        while True:
            try:
                event = recv_monitor_event(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            fd = int(event.get("value", -1))
            self.closed[fd] = now
            identity = self.by_fd.get(fd)
            if identity is not None:
                self.suspect(identity, now)

    def next_due(self) -> float | None:
        return min(self.suspects.values()) if self.suspects else None

    def gone(self, now: float) -> list[bytes]:
        """Suspects past their grace with no open connection: the caller drops them."""
        due = [identity for identity, when in self.suspects.items() if when <= now]
        if not due:
            return []
        readable(self.socket)  # lets the socket process pending commands, such as a closed pipe's end
        dead: list[bytes] = []
        for identity in due:
            del self.suspects[identity]
            if not self._connected(identity):
                self.looked.discard(identity)
                dead.append(identity)
            elif identity in self.looked:
                self.looked.discard(identity)
                self.refresh.add(identity)
            else:
                self.looked.add(identity)
                self.suspects[identity] = now + self._grace(identity)
        return dead

    def _connected(self, identity: bytes) -> bool:
        socket = self.socket
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        try:
            send_frames(socket, [identity, self.probe], noblock=True)
            return True
        except zmq.ZMQError as exc:
            # EHOSTUNREACH: no connection has this identity. EAGAIN (a full pipe) cannot happen
            # without a send HWM, but would mean a connection is there.
            return exc.errno != zmq.EHOSTUNREACH
        finally:
            socket.setsockopt(zmq.ROUTER_MANDATORY, 0)

    def close(self) -> None:
        self.monitor.close(0)
