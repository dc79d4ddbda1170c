"""Cheap unique ids: a random per-process prefix plus a counter (no uuid per task)."""

from __future__ import annotations

import itertools
import os
import threading


class IdMaker:
    """Makes ``<prefix><counter>`` ids, unique across processes by the random prefix."""

    def __init__(self, kind: str) -> None:
        self._prefix = f"{kind}{os.urandom(6).hex()}."
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def prefix(self) -> str:
        return self._prefix

    def next(self) -> str:
        with self._lock:
            n = next(self._counter)
        return f"{self._prefix}{n:x}"


def random_id(kind: str) -> str:
    return f"{kind}{os.urandom(8).hex()}"
