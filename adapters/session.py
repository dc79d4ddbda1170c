"""The adapter's connection to its scheduler, which outlives a scheduler restart.

Sends never wait. A handshake the scheduler refused (wrong or missing secret or CURVE keys) ends
libzmq's connection for good, which the socket monitor reports: before the first ``Welcome`` that is
a failure (``failure`` says what to check), unless a new cluster secret was published for the port
since this socket dialed (a scheduler restarted there). After a ``Welcome``, a scheduler that says
this adapter must say Hello first (``Refused`` after a Welcome: it restarted, or dropped the adapter
as silent), a refused handshake, or ``peer_timeout`` without a word all mean the session is gone:
``dropped`` says why, and ``rejoin`` dials again under a new identity; the first message sent on
each dial is preceded by Hello. The runner,
not this module, decides when silence is long enough to give up (``death_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from scaler.protocol import messages as m
from scaler.protocol.wire import ProtocolError, encode, split_batch
from scaler.utility.security import CurveKeys, find_secret, handshake_failed, secret_changed
from scaler.utility.sockets import HANDSHAKE_REFUSED, SECRET_WAIT, dial, event_name, monitor_event

log = logging.getLogger(__name__)
REJOIN_PAUSE = 1.0  # at most one new dial per second while the scheduler keeps refusing


class SchedulerSession:
    def __init__(self, name: str, address: str, curve_keys: Path | None, hello: Callable[[], m.Hello]) -> None:
        self.name = name
        self.address = address
        self.curve_keys = curve_keys
        self.keys = CurveKeys(curve_keys) if curve_keys else None
        self.hello = hello
        self.context = zmq.asyncio.Context()
        self.sock: Any = None
        self.monitor: Any = None
        self.poller = zmq.asyncio.Poller()
        self.secret: bytes | None = None
        self.welcomed = False  # on this dial
        self.said_hello = False  # on this dial: the first send of each dial starts with Hello
        self.ever_welcomed = False
        self.heartbeat_interval = 1.0
        self.last_heard = time.monotonic()
        self.last_dial = 0.0
        self.dropped: str | None = None
        self.failure: str | None = None
        self.rejoins = 0

    async def dial(self) -> None:
        """A new DEALER (a new identity) to the scheduler; the secret lookup may wait, so it runs in a thread."""
        if self.keys is None:
            await asyncio.to_thread(find_secret, self.address, SECRET_WAIT)
        sock: Any = dial(self.context, "d", self.address, self.keys, secret_wait=0.0)
        self.secret = sock.plain_password if sock.mechanism == zmq.PLAIN else None
        self.monitor = sock.get_monitor_socket(HANDSHAKE_REFUSED)
        sock.connect(self.address)
        self.sock = sock
        self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self.monitor, zmq.POLLIN)
        self.welcomed = self.said_hello = False
        self.last_dial = time.monotonic()

    def hang_up(self, linger_ms: int) -> None:
        if self.sock is None:
            return
        self.poller.unregister(self.sock)
        self.poller.unregister(self.monitor)
        self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close(linger_ms)
        self.sock = None

    def close(self) -> None:
        self.hang_up(500)
        self.context.term()

    def send(self, msgs: list[Any]) -> None:
        if self.sock is None:
            return
        if not self.said_hello:
            self.said_hello = True
            msgs = [self.hello(), *msgs]
        try:
            self.sock.send_multipart([encode(msgs)], flags=zmq.NOBLOCK)
        except zmq.Again:  # no connection will take it: libzmq gave up on a refused handshake
            self._handshake_refused("the connection is closed")

    async def receive(self, timeout: float) -> list[Any]:
        """The scheduler's messages that arrive within ``timeout`` seconds, after session bookkeeping."""
        ready = dict(await self.poller.poll(int(timeout * 1000) + 1))
        if self.monitor in ready:
            event = monitor_event(await self.monitor.recv_multipart())
            self._handshake_refused(event_name(event["event"]))
        if self.sock not in ready:
            return []
        frames = await self.sock.recv_multipart(copy=False)
        self.last_heard = time.monotonic()
        try:
            batch = split_batch(frames)
        except ProtocolError as exc:
            log.warning("adapter %s dropped a malformed message from the scheduler: %s", self.name, exc)
            return []
        out = []
        for msg, _ in batch:
            if isinstance(msg, m.Welcome):
                self.welcomed = self.ever_welcomed = True
                self.heartbeat_interval = msg.heartbeat_interval
                if self.rejoins:
                    log.warning("adapter %s: rejoined scheduler %s", self.name, self.address)
            elif isinstance(msg, m.Refused):
                if self.welcomed:  # only "say Hello first" comes after a Welcome
                    self.dropped = self.dropped or f"it no longer knows this adapter ({msg.reason})"
                else:
                    self.failure = f"scheduler {self.address} refused this adapter: {msg.reason}"
            else:
                out.append(msg)
        return out

    def silent(self, now: float) -> float:
        return now - self.last_heard

    async def rejoin(self) -> bool:
        """Dial again (the next send says Hello), if ``dropped`` and not within ``REJOIN_PAUSE`` of the last dial."""
        if self.dropped is None or time.monotonic() - self.last_dial < REJOIN_PAUSE:
            return False
        log.warning("adapter %s: the scheduler session is gone (%s); saying hello again", self.name, self.dropped)
        self.dropped = None
        self.rejoins += 1
        self.hang_up(0)
        await self.dial()
        return True

    def _handshake_refused(self, what: str) -> None:
        if self.ever_welcomed or (self.keys is None and secret_changed(self.address, self.secret)):
            # A scheduler (re)started on this port with a new secret, or keys this adapter will not have.
            self.dropped = self.dropped or f"the handshake was refused ({what}); a restarted scheduler?"
            return
        self.failure = handshake_failed(self.address, what, self.keys is not None)
