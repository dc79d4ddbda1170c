"""``ray.util.queue``: a FIFO queue that the driver, tasks and actors share, kept in one actor.

The items live in an actor (0 CPU unless ``actor_options`` ask otherwise); a ``Queue`` is a small
handle on it, so it pickles and can be passed to tasks and actors, which then use the same queue.
Actor methods run one at a time, so the actor itself never waits: a blocking ``put``/``get`` asks
it again, backing off up to 50 ms between tries, until it succeeds or the timeout has passed, and
then raises ``Full``/``Empty`` (subclasses of the standard library's ``queue.Full``/``queue.Empty``).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import queue as std_queue
import time
from collections.abc import Callable, Iterable
from typing import Any

from scaler.compat.ray.actors import ActorClass, ActorHandle, kill
from scaler.compat.ray.refs import get
from scaler.compat.ray.unsupported import module_getattr

__getattr__ = module_getattr("ray.util.queue")

_MAX_BACKOFF = 0.05


class Empty(std_queue.Empty):
    """``get`` found the queue empty (at once, or until its timeout)."""


class Full(std_queue.Full):
    """``put`` found the queue full (at once, or until its timeout)."""


class _Items:
    """The queue's state inside its actor. Every method answers at once; none waits."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: collections.deque[Any] = collections.deque()

    def qsize(self) -> int:
        return len(self.items)

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self.items)

    def put(self, item: Any) -> bool:
        if self.full():
            return False
        self.items.append(item)
        return True

    def put_batch(self, items: list[Any]) -> bool:
        if self.maxsize > 0 and len(self.items) + len(items) > self.maxsize:
            return False
        self.items.extend(items)
        return True

    def get(self) -> tuple[bool, Any]:
        return (True, self.items.popleft()) if self.items else (False, None)

    def get_batch(self, count: int) -> tuple[bool, list[Any]]:
        if count > len(self.items):
            return False, []
        return True, [self.items.popleft() for _ in range(count)]


_ITEMS = ActorClass(_Items, {"num_cpus": 0})


def _checked_timeout(timeout: float | None) -> float | None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return timeout


class Queue:
    """A first-in, first-out queue whose handle may be passed to tasks and actors."""

    def __init__(self, maxsize: int = 0, actor_options: dict[str, Any] | None = None) -> None:
        self.maxsize = maxsize
        self.actor: ActorHandle = _ITEMS.options(**(actor_options or {})).remote(maxsize)

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue now."""
        return int(get(self.actor.qsize.remote()))

    def qsize(self) -> int:
        return self.size()

    def empty(self) -> bool:
        return self.size() == 0

    def full(self) -> bool:
        return bool(get(self.actor.full.remote()))

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; if the queue is full, wait (up to ``timeout`` seconds) if ``block``, else raise ``Full``."""
        done = self._retry(lambda: (get(self.actor.put.remote(item)), None), block, _checked_timeout(timeout))
        if not done[0]:
            raise Full

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the first item; if none, wait (up to ``timeout``) if ``block``, else raise ``Empty``."""
        found, item = self._retry(lambda: get(self.actor.get.remote()), block, _checked_timeout(timeout))
        if not found:
            raise Empty
        return item

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def put_nowait_batch(self, items: Iterable[Any]) -> None:
        """Add all ``items`` at once, or none (raising ``Full``) if they do not all fit."""
        batch = list(items)
        if not get(self.actor.put_batch.remote(batch)):
            raise Full(f"Cannot add {len(batch)} items to a queue of size {self.maxsize}")

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        """Remove and return ``num_items`` items at once, or none (raising ``Empty``) if there are fewer."""
        if not isinstance(num_items, int) or num_items < 0:
            raise ValueError("'num_items' must be a non-negative integer")
        found, items = get(self.actor.get_batch.remote(num_items))
        if not found:
            raise Empty(f"Cannot get {num_items} items from the queue")
        return list(items)

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, functools.partial(self.put, item, block, timeout))

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(self.get, block, timeout))

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """End the queue's actor; the items still in it are lost."""
        kill(self.actor)

    @staticmethod
    def _retry(attempt: Callable[[], tuple[bool, Any]], block: bool, timeout: float | None) -> tuple[bool, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.001
        while True:
            done, value = attempt()
            if done or not block:
                return done, value
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False, None
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, _MAX_BACKOFF)


__all__ = ["Empty", "Full", "Queue"]
