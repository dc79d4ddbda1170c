"""The client's I/O thread and the one lock every use of its DEALER socket takes.

A message sent after a quiet spell (``DIRECT_AFTER``) leaves from the sender's own thread: a lone
request, the common case of interactive use, then costs no thread wake-up. Within a burst, user
threads append ``(message, frames)`` to a queue and wake the I/O thread through a pipe (only when it
sleeps), so a burst of submits leaves as one batch. Order is kept: a direct send happens only
under the lock and with the queue empty. The I/O thread sleeps on the socket's ``FD`` (never
polling the socket itself, which another thread may be using) and receives under the lock;
incoming batches are handed to a callback on that thread, outside the lock. A sender that sees
input pending after its send wakes the I/O thread, since the ``FD`` only signals changes. A CURVE
handshake refusal seen on the socket monitor fails the session clearly.

So does a dropped connection (``EVENT_DISCONNECTED``), at once and after handing on what arrived
before it (a ``Shutdown`` says why). The DEALER would reconnect by itself, but no grace is given
for that: a restarted scheduler has lost every task, object and session of this client, and even
the same scheduler ends a session whose connection dropped (and what was in flight is lost), so
pending futures could never complete: failing them now beats the peer timeout.

At interpreter exit the owner's ``close`` (``Client``'s exit hook) stops and joins the I/O thread;
the wake pipe is never closed under it, so a program that just ends leaves without a word.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from scaler.protocol import messages as m
from scaler.protocol.wire import ProtocolError, encode, split_batch
from scaler.utility.security import CurveKeys, auth_hint
from scaler.utility.sockets import (
    HANDSHAKE_REFUSED,
    SECRET_WAIT,
    dial,
    readable,
    recv_frames,
    recv_monitor_event,
    send_frames,
)

log = logging.getLogger(__name__)
MAX_BATCH_MESSAGES = 8192
DIRECT_AFTER = 0.0002
MAX_BATCH_BYTES = 64 << 20
_WATCHED = HANDSHAKE_REFUSED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_DISCONNECTED


class Connection:
    def __init__(
        self,
        address: str,
        keys: CurveKeys | None,
        on_batch: Callable[[list[tuple[Any, list[Any]]]], None],
        on_failure: Callable[[str], None],
        heartbeat_interval: float,
        peer_timeout: float,
        secret_wait: float = SECRET_WAIT,
    ) -> None:
        self.address = address
        self.keyed = keys is not None
        self.context = zmq.Context()
        self.socket = dial(self.context, "c", address, keys, linger_ms=2000, secret_wait=secret_wait)
        self.monitor = self.socket.get_monitor_socket(_WATCHED)
        self.socket.connect(address)
        self.on_batch = on_batch
        self.on_failure = on_failure
        self.heartbeat_interval = heartbeat_interval
        self.peer_timeout = peer_timeout
        self.queue: deque[tuple[Any, list[Any] | None]] = deque()
        self.lock = threading.Lock()
        self.last_send = 0.0
        self.signaled = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)  # a full pipe already means a wake is pending
        # Closed once nothing can reach this object (no sender may write then, and the I/O thread,
        # which holds it, has ended), but never at interpreter exit: the I/O thread may still poll
        # them then. ``close`` stops it; at exit the OS closes the fds.
        closer = weakref.finalize(self, _close_fds, self.wake_r, self.wake_w)
        closer.atexit = False
        self.socket_fd = self.socket.getsockopt(zmq.FD)
        self.running = True
        self.linger_ms = 2000
        self.last: Any = None
        self.last_heard = time.monotonic()
        self.thread = threading.Thread(target=self._loop, name="scaler-client-io", daemon=True)
        self.thread.start()

    def send(self, msg: Any, frames: list[Any] | None = None) -> None:
        if threading.get_ident() == self.thread.ident:
            self.queue.append((msg, frames))  # sent before the I/O thread next sleeps
            return
        now = time.monotonic()
        quiet = now - self.last_send >= DIRECT_AFTER
        self.last_send = now
        if quiet and self.running and self.lock.acquire(timeout=0.05):
            try:
                if self.running and not self.queue:
                    send_frames(self.socket, [encode([msg]), *(frames or ())], noblock=True)
                    if readable(self.socket) and not self.signaled:
                        self._wake()
                    return
            except zmq.ZMQError:
                pass  # queued below: the I/O thread retries it, or meets the same error and fails the session
            finally:
                self.lock.release()
        self.queue.append((msg, frames))
        if not self.signaled:
            self._wake()

    def _wake(self) -> None:
        self.signaled = True
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass

    def close(self, linger_ms: int = 2000, last: Any = None) -> None:
        """Stop the I/O thread; unsent messages get ``linger_ms`` to leave (none if never welcomed).

        ``last`` (a ``Goodbye``) leaves after everything queued before the thread stops, whichever
        thread queued it: the scheduler reads nothing from this session after it."""
        if not self.running:
            return
        self.linger_ms = linger_ms
        self.last = last
        self.running = False
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass
        if threading.current_thread() is not self.thread:
            self.thread.join(5)

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket_fd, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        next_beat = time.monotonic() + self.heartbeat_interval
        try:
            while self.running:
                self.signaled = False
                with self.lock:
                    sent = self._send_queued()
                    batches = self._receive()
                for frames in batches:
                    self._deliver(frames)
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + self.heartbeat_interval
                    self.send(m.Heartbeat())
                    if now - self.last_heard > self.peer_timeout:
                        self.on_failure(f"no word from scheduler {self.address} for {self.peer_timeout:g}s")
                if batches or (self.queue and sent):
                    continue
                wait_ms = 10 if self.queue else max(1, int((next_beat - now) * 1000) + 1)
                ready = dict(poller.poll(wait_ms))
                if self.wake_r in ready:
                    try:
                        os.read(self.wake_r, 65536)
                    except BlockingIOError:
                        pass
                if self.monitor in ready:
                    self._check_monitor()
            with self.lock:
                if self.last is not None:
                    self.queue.append((self.last, None))
                self._send_queued()
        except zmq.ZMQError as exc:
            self.on_failure(f"connection to {self.address} failed: {exc}")
        except Exception as exc:
            log.exception("the client's I/O thread failed")
            self.on_failure(f"the client's I/O thread failed: {exc!r}")
        finally:
            with self.lock:  # no sender may be inside the socket while it closes
                self.running = False
                self.socket.disable_monitor()
                self.monitor.close(0)
                self.socket.close(self.linger_ms)
            self.context.term()

    def _send_queued(self) -> bool:
        """Send what is queued; False if the socket has no pipe to take it (a failed handshake)."""
        queue = self.queue
        while queue:
            taken: list[tuple[Any, list[Any] | None]] = []
            msgs: list[Any] = []
            frames: list[Any] = []
            size = 0
            while queue and len(msgs) < MAX_BATCH_MESSAGES and size < MAX_BATCH_BYTES:
                entry = queue.popleft()
                taken.append(entry)
                msg, payload = entry
                msgs.append(msg)
                if payload:
                    frames.extend(payload)
                    for f in payload:
                        size += f.nbytes if isinstance(f, memoryview) else len(f)
            try:
                send_frames(self.socket, [encode(msgs), *frames], noblock=True)
            except zmq.Again:
                queue.extendleft(reversed(taken))
                return False
        return True

    def _receive(self) -> list[list[Any]]:
        """What the socket holds now (at most 256 messages); the caller holds the lock."""
        socket = self.socket
        got: list[list[Any]] = []
        while len(got) < 256 and readable(socket):
            got.append(recv_frames(socket, noblock=True))
        if got:
            self.last_heard = time.monotonic()
        return got

    def _deliver(self, frames: list[Any]) -> None:
        try:
            batch = split_batch(frames)
        except ProtocolError as exc:
            log.warning("dropped a malformed message from the scheduler: %s", exc)
            return
        self.on_batch(batch)

    def _check_monitor(self) -> None:
        while True:
            try:
                event = recv_monitor_event(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                while batches := self._receive_locked():
                    for frames in batches:
                        self._deliver(frames)
                self.on_failure(
                    f"lost the connection to scheduler {self.address} (it stopped or was killed, or dropped "
                    "this client); the tasks and objects it held for this client are gone"
                )
                continue
            self.on_failure(
                f"scheduler {self.address} refused the connection during the handshake "
                f"(event {event['event']!r}): {auth_hint(self.address, self.keyed)}"
            )

    def _receive_locked(self) -> list[list[Any]]:
        with self.lock:
            return self._receive() if self.running else []


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
