"""Cheap unique ids that cannot be guessed: a random per-process prefix, a counter and 64 random bits.

Knowing an object's id is what lets a peer fetch it (a ref is a capability), so one id must not
reveal another: the counter keeps ids unique and ordered within a process, the random tail keeps the
next one unknown. Random bytes are read from the OS in blocks, so an id costs well under a microsecond.
"""

from __future__ import annotations

import itertools
import os
import threading

_BLOCK = 8 * 512


class IdMaker:
    """Makes ``<prefix><counter>-<16 hex digits>`` ids, unique across processes by the random prefix."""

    def __init__(self, kind: str) -> None:
        self._prefix = f"{kind}{os.urandom(6).hex()}."
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._random = b""
        self._at = 0

    @property
    def prefix(self) -> str:
        return self._prefix

    def next(self) -> str:
        with self._lock:
            n = next(self._counter)
            if self._at >= len(self._random):
                self._random, self._at = os.urandom(_BLOCK), 0
            tail = self._random[self._at : self._at + 8]
            self._at += 8
        return f"{self._prefix}{n:x}-{tail.hex()}"


def random_id(kind: str) -> str:
    return f"{kind}{os.urandom(8).hex()}"
