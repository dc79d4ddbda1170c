"""The worker agent's connection to its scheduler: one DEALER per session, its handshake watched.

Sends never block: a handshake the scheduler refused (wrong or missing secret or CURVE keys) ends
libzmq's connection for good, which the socket monitor reports and a send finds (``zmq.Again``).
What a refusal means is decided here once: if a scheduler (re)started at this address has published
another cluster secret than the one dialed with, the agent dials again under a new identity; else it
stops, saying what to check. Each dial is a new identity, so a scheduler that dropped this worker
sees a new peer that says hello.
"""

from __future__ import annotations

from typing import Any

import zmq

from scaler.utility.security import CurveKeys, handshake_failed, secret_changed
from scaler.utility.sockets import (
    HANDSHAKE_REFUSED,
    dial,
    event_name,
    readable,
    recv_frames,
    recv_monitor_event,
    send_frames,
)


class Upstream:
    def __init__(self, context: zmq.Context[Any], address: str, keys: CurveKeys | None, poller: zmq.Poller) -> None:
        self.context = context
        self.address = address
        self.keys = keys
        self.poller = poller
        self.dial()

    def dial(self) -> None:
        """A new DEALER to the scheduler (a new identity), its handshake watched by a monitor."""
        self.sock = dial(self.context, "w", self.address, self.keys)
        password = self.sock.plain_password if self.sock.mechanism == zmq.PLAIN else None
        self.secret = password if isinstance(password, bytes) else None  # as dialed
        self.monitor = self.sock.get_monitor_socket(HANDSHAKE_REFUSED)
        self.sock.connect(self.address)
        self.poller.register(self.sock, zmq.POLLIN)
        self.poller.register(self.monitor, zmq.POLLIN)

    def hang_up(self, linger_ms: int) -> None:
        self.poller.unregister(self.sock)
        self.poller.unregister(self.monitor)
        self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close(linger_ms)

    def send(self, frames: list[Any]) -> bool:
        """Send without blocking; False when no connection will take it (a refused handshake)."""
        try:
            send_frames(self.sock, frames, noblock=True)
        except zmq.Again:
            return False
        return True

    def receive(self) -> list[Any] | None:
        """The next message from the scheduler, or None when none is waiting."""
        return recv_frames(self.sock) if readable(self.sock) else None

    def refusals(self) -> list[str]:
        """The handshake failures the monitor reported since last asked, by name."""
        found: list[str] = []
        while True:
            try:
                event = recv_monitor_event(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return found
            found.append(event_name(event["event"]))

    def refusal(self, what: str) -> str | None:
        """After a refused handshake (``what``): None when a new cluster secret was published for this
        address since this dial (dial again), else why this worker must stop."""
        if self.keys is None and secret_changed(self.address, self.secret):
            return None
        return handshake_failed(self.address, what, self.keys is not None)
