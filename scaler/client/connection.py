"""The client's I/O thread: the only user of its DEALER socket.

User threads append ``(message, frames)`` to a queue and wake the thread through a pipe (only when
it sleeps), so a burst of submits leaves as one batch. Incoming batches are handed to a callback
on this thread. A CURVE handshake refusal seen on the socket monitor fails the session clearly.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from scaler.protocol import messages as m
from scaler.protocol.wire import ProtocolError, encode, split_batch
from scaler.utility.security import CurveKeys
from scaler.utility.sockets import dial

log = logging.getLogger(__name__)
MAX_BATCH_MESSAGES = 8192
MAX_BATCH_BYTES = 64 << 20
_HANDSHAKE_FAILURES = (
    getattr(zmq, "EVENT_HANDSHAKE_FAILED_AUTH", 0)
    | getattr(zmq, "EVENT_HANDSHAKE_FAILED_PROTOCOL", 0)
    | getattr(zmq, "EVENT_HANDSHAKE_FAILED_NO_DETAIL", 0)
)


class Connection:
    def __init__(
        self,
        address: str,
        keys: CurveKeys | None,
        on_batch: Callable[[list[tuple[Any, list[Any]]]], None],
        on_failure: Callable[[str], None],
        heartbeat_interval: float,
        peer_timeout: float,
    ) -> None:
        self.address = address
        self.context = zmq.Context()
        self.socket = dial(self.context, "c", address, keys, linger_ms=2000)
        self.monitor = self.socket.get_monitor_socket(_HANDSHAKE_FAILURES) if _HANDSHAKE_FAILURES else None
        self.socket.connect(address)
        self.on_batch = on_batch
        self.on_failure = on_failure
        self.heartbeat_interval = heartbeat_interval
        self.peer_timeout = peer_timeout
        self.queue: deque[tuple[Any, list[Any] | None]] = deque()
        self.signaled = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        self.running = True
        self.linger_ms = 2000
        self.last_heard = time.monotonic()
        self.thread = threading.Thread(target=self._loop, name="scaler-client-io", daemon=True)
        self.thread.start()

    def send(self, msg: Any, frames: list[Any] | None = None) -> None:
        self.queue.append((msg, frames))
        if not self.signaled:
            self.signaled = True
            try:
                os.write(self.wake_w, b"x")
            except OSError:
                pass

    def close(self, linger_ms: int = 2000) -> None:
        """Stop the I/O thread; unsent messages get ``linger_ms`` to leave (none if never welcomed)."""
        if not self.running:
            return
        self.linger_ms = linger_ms
        self.running = False
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass
        if threading.current_thread() is not self.thread:
            self.thread.join(5)

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        if self.monitor is not None:
            poller.register(self.monitor, zmq.POLLIN)
        next_beat = time.monotonic() + self.heartbeat_interval
        try:
            while self.running:
                ready = dict(poller.poll(max(1, int((next_beat - time.monotonic()) * 1000) + 1)))
                if self.wake_r in ready:
                    try:
                        os.read(self.wake_r, 65536)
                    except BlockingIOError:
                        pass
                self.signaled = False
                self._send_queued()
                if self.socket in ready:
                    self._receive()
                if self.monitor is not None and self.monitor in ready:
                    self._check_monitor()
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + self.heartbeat_interval
                    self.send(m.Heartbeat())
                    if now - self.last_heard > self.peer_timeout:
                        self.on_failure(f"no word from scheduler {self.address} for {self.peer_timeout:g}s")
            self._send_queued()
        except zmq.ZMQError as exc:
            self.on_failure(f"connection to {self.address} failed: {exc}")
        finally:
            if self.monitor is not None:
                self.socket.disable_monitor()
                self.monitor.close(0)
            self.socket.close(self.linger_ms)
            self.context.term()
            os.close(self.wake_r)
            os.close(self.wake_w)

    def _send_queued(self) -> None:
        queue = self.queue
        while queue:
            msgs: list[Any] = []
            frames: list[Any] = []
            size = 0
            while queue and len(msgs) < MAX_BATCH_MESSAGES and size < MAX_BATCH_BYTES:
                msg, payload = queue.popleft()
                msgs.append(msg)
                if payload:
                    frames.extend(payload)
                    for f in payload:
                        size += f.nbytes if isinstance(f, memoryview) else len(f)
            self.socket.send_multipart([encode(msgs), *frames], copy=False)

    def _receive(self) -> None:
        for _ in range(10_000):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.last_heard = time.monotonic()
            try:
                batch = split_batch(frames)
            except ProtocolError as exc:
                log.warning("dropped a malformed message from the scheduler: %s", exc)
                continue
            self.on_batch(batch)

    def _check_monitor(self) -> None:
        while self.monitor is not None:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            self.on_failure(
                f"scheduler {self.address} refused the connection during the CURVE handshake "
                f"(event {event['event']!r}): check the keys (--curve-keys / SCALER_CURVE_KEYS)"
            )
