"""``ray.util``: ``as_completed``, ``map_unordered``, ``ActorPool`` and the ``log_once`` helpers, on the compat API.

Its submodules ``queue``, ``multiprocessing``, ``scheduling_strategies``, ``actor_pool`` and
``placement_group`` are attached by ``layout``. Other public ``ray.util`` names raise
``NotImplementedError`` naming them (``list_named_actors``, ...), as the rest of the compat API does.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from scaler.compat.ray.exceptions import GetTimeoutError
from scaler.compat.ray.placement_groups import (  # noqa: F401 - ray.util's names for them
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from scaler.compat.ray.refs import ObjectRef, get, wait
from scaler.compat.ray.unsupported import UTIL_CALLABLES, module_getattr, stand_ins

__getattr__ = module_getattr("ray.util")
globals().update(stand_ins("ray.util", UTIL_CALLABLES))  # list_named_actors, ...: refuse when called

_PERIOD = 60.0
_first_seen: dict[str, float] = {}  # key -> when log_once last answered True for it
_log_once = {"enabled": True, "periodic": False}


def log_once(key: str) -> bool:
    """True the first time it is asked about ``key`` in this process; with periodic logging on, again a
    minute after; never once disabled globally."""
    if not _log_once["enabled"]:
        return False
    now = time.monotonic()
    seen = _first_seen.get(key)
    if seen is not None and not (_log_once["periodic"] and now - seen >= _PERIOD):
        return False
    _first_seen[key] = now
    return True


def disable_log_once_globally() -> None:
    """From now on ``log_once`` answers False in this process."""
    _log_once["enabled"] = False


def enable_periodic_logging() -> None:
    """From now on ``log_once`` answers True for a key again once a minute has passed."""
    _log_once["periodic"] = True


def get_node_ip_address() -> str:
    """This host's IP address, as Ray reports it for the current node."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def as_completed(
    refs: Sequence[ObjectRef], *, chunk_size: int = 10, yield_obj_refs: bool = False, **kwargs: Any
) -> Iterator[Any]:
    """Yield results (or refs) in batches of up to ``chunk_size`` as they complete."""
    pending = list(refs)
    while pending:
        ready, pending = wait(pending, num_returns=min(chunk_size, len(pending)), **kwargs)
        if not ready:
            raise GetTimeoutError("as_completed timed out")
        yield from (ready if yield_obj_refs else get(ready))


def map_unordered(
    fn: Any,
    items: Iterable[Any],
    *,
    backpressure_size: int | None = 100,
    chunk_size: int = 10,
    yield_obj_refs: bool = False,
    **kwargs: Any,
) -> Iterator[Any]:
    """Apply remote function ``fn`` to ``items``, at most ``backpressure_size`` in flight; yield as done."""
    pending: list[ObjectRef] = []
    for item in items:
        pending.append(fn.remote(item))
        if backpressure_size is not None and len(pending) >= backpressure_size:
            ready, pending = wait(pending, num_returns=min(chunk_size, len(pending)), **kwargs)
            yield from (ready if yield_obj_refs else get(ready))
    yield from as_completed(pending, chunk_size=chunk_size, yield_obj_refs=yield_obj_refs, **kwargs)


class ActorPool:
    """Spread work over a fixed set of actors, one call per actor at a time."""

    def __init__(self, actors: list[Any]) -> None:
        self._idle = list(actors)
        self._busy: dict[ObjectRef, tuple[int, Any]] = {}
        self._by_index: dict[int, ObjectRef] = {}
        self._next_index = 0
        self._next_return = 0
        self._queued: list[tuple[Callable[[Any, Any], ObjectRef], Any]] = []

    def map(self, fn: Callable[[Any, Any], ObjectRef], values: Iterable[Any]) -> Iterator[Any]:
        while self.has_next():
            self.get_next_unordered()
        for value in values:
            self.submit(fn, value)
        while self.has_next():
            yield self.get_next()

    def map_unordered(self, fn: Callable[[Any, Any], ObjectRef], values: Iterable[Any]) -> Iterator[Any]:
        while self.has_next():
            self.get_next_unordered()
        for value in values:
            self.submit(fn, value)
        while self.has_next():
            yield self.get_next_unordered()

    def submit(self, fn: Callable[[Any, Any], ObjectRef], value: Any) -> None:
        if not self._idle:
            self._queued.append((fn, value))
            return
        actor = self._idle.pop()
        ref = fn(actor, value)
        self._busy[ref] = (self._next_index, actor)
        self._by_index[self._next_index] = ref
        self._next_index += 1

    def has_next(self) -> bool:
        return bool(self._busy) or bool(self._queued)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return not in self._by_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        ref = self._by_index[self._next_return]
        if timeout is not None:
            ready, _ = wait([ref], timeout=timeout)
            if not ready:
                if ignore_if_timedout:
                    return None
                raise TimeoutError("Timed out waiting for result")
        del self._by_index[self._next_return]
        self._next_return += 1
        _, actor = self._busy.pop(ref)
        self._return(actor)
        return get(ref)

    def get_next_unordered(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        if not self.has_next():
            raise StopIteration("No more results to get")
        ready, _ = wait(list(self._busy), num_returns=1, timeout=timeout)
        if not ready:
            if ignore_if_timedout:
                return None
            raise TimeoutError("Timed out waiting for result")
        ref = ready[0]
        index, actor = self._busy.pop(ref)
        self._by_index.pop(index, None)
        self._next_return = max(self._next_return, index + 1)
        self._return(actor)
        return get(ref)

    def _return(self, actor: Any) -> None:
        self._idle.append(actor)
        if self._queued:
            self.submit(*self._queued.pop(0))

    def has_free(self) -> bool:
        return bool(self._idle) and not self._queued

    def pop_idle(self) -> Any:
        return self._idle.pop() if self.has_free() else None

    def push(self, actor: Any) -> None:
        if actor in self._idle or any(actor is a for _, a in self._busy.values()):
            raise ValueError("Actor already belongs to current ActorPool")
        self._return(actor)
