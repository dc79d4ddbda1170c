"""A client's requests that wait for the scheduler's reply: named values (KV), a sync, the status.

The scheduler answers one connection's requests in the order they came, so waiters are kept per
key (a ``KVReply`` names its key) or in one line (status). A lost connection fails every waiter at
once with the connection's error, instead of leaving each to its timeout.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

from scaler.protocol import messages as m

SYNC_KEY = "\x00scaler.sync"  # never stored: a KVGet of it is a plain round trip


class RoundTrips:
    def __init__(self, send: Callable[[Any, list[Any]], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._named: dict[str, list[concurrent.futures.Future[Any]]] = {}
        self._status: list[concurrent.futures.Future[Any]] = []
        self._failure: BaseException | None = None

    def named(self, key: str, msg: m.KVPut | m.KVGet, frames: list[Any], timeout: float) -> list[Any] | None:
        """Send ``msg`` about ``key`` and wait for the reply: the value's frames, or None if absent."""
        waiter = self._waiter(self._named.setdefault(key, []))
        self._send(msg, frames)
        result: list[Any] | None = waiter.result(timeout)
        return result

    def status(self, timeout: float) -> m.StatusReply:
        waiter = self._waiter(self._status)
        self._send(m.StatusRequest(), [])
        reply: m.StatusReply = waiter.result(timeout)
        return reply

    def _waiter(self, line: list[concurrent.futures.Future[Any]]) -> concurrent.futures.Future[Any]:
        waiter: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._failure is not None:
                raise self._failure
            line.append(waiter)
        return waiter

    def on_reply(self, msg: m.KVReply | m.StatusReply, payload: list[Any]) -> None:
        """In the I/O thread: a reply came; the oldest waiter for it gets it."""
        with self._lock:
            line = self._named.get(msg.key) if isinstance(msg, m.KVReply) else self._status
            waiter = line.pop(0) if line else None
            if isinstance(msg, m.KVReply) and line is not None and not line:
                self._named.pop(msg.key, None)
        if waiter is not None:
            waiter.set_result((payload if msg.found else None) if isinstance(msg, m.KVReply) else msg)

    def fail(self, error: BaseException) -> None:
        """The connection is gone: every waiter, now and later, gets ``error``."""
        with self._lock:
            self._failure = error
            waiters = [w for line in self._named.values() for w in line] + self._status
            self._named, self._status = {}, []
        for waiter in waiters:
            waiter.set_exception(error)
