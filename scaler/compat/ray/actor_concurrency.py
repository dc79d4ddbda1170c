"""Async and threaded actors: how many calls of an actor run at once, in which group, and how.

As in Ray 2.60, an actor class with an ``async def`` method (or an async generator method) is an
*async* actor: its calls run as coroutines of one event loop in the actor's process, up to
``max_concurrency`` at once (default 1,000). A sync actor with ``max_concurrency > 1`` is a
*threaded* actor: its calls run on that many threads. ``concurrency_groups={"io": 2, ...}`` adds
named groups with limits of their own; a method joins one with ``@ray.method(concurrency_group=)``
or a call with ``.options(concurrency_group=)``, and the rest share the default group, whose limit
is ``max_concurrency``. This module turns those options into the host's ``Concurrency`` and each
call's capability request; ``scaler/worker/actor_calls.py`` runs the calls.

``ray.get`` on the event loop of an async actor blocks every other call of the actor while it
waits, so it logs a warning the first time, as Ray does (``await`` the ref instead).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from scaler.worker import dedicated
from scaler.worker.actor_calls import Concurrency, call_capabilities

log = logging.getLogger(__name__)
DEFAULT_ASYNC_CONCURRENCY = 1000
GROUP_ATTRIBUTE = "__ray_concurrency_group__"
_warned: set[str] = set()  # actors (in this process) that already warned about a blocking get


def is_async_class(cls: type) -> bool:
    """An actor class is async if any of its methods (dunder ones too) is a coroutine or async
    generator function."""
    return any(
        inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value) for _, value in inspect.getmembers(cls)
    )


def concurrency_of(options: dict[str, Any], is_async: bool, where: str) -> tuple[Concurrency, dict[str, int]]:
    """The actor's ``Concurrency`` and its named groups' indexes (none: the actor has no groups)."""
    limit = options.get("max_concurrency")
    if limit is None:
        limit = DEFAULT_ASYNC_CONCURRENCY if is_async else 1
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"{where}: max_concurrency must be an integer >= 1, not {limit!r}")
    groups = options.get("concurrency_groups") or {}
    if not isinstance(groups, dict):
        raise TypeError(f"{where}: concurrency_groups must be a dict of group name to limit")
    limits = [limit]
    indexes: dict[str, int] = {}
    for name, size in groups.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{where}: concurrency group names must be non-empty strings, not {name!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{where}: concurrency group {name!r} needs an integer limit >= 1, not {size!r}")
        indexes[name] = len(limits)
        limits.append(size)
    in_order = options.get("allow_out_of_order_execution")
    if in_order is False and (is_async or limit > 1):
        kind = "async" if is_async else "multi-threaded"
        raise ValueError(f"{where}: {kind} actors run their calls out of order; allow_out_of_order_execution=False")
    return Concurrency(tuple(limits), is_async), indexes


def method_group(function: Any) -> str | None:
    """The concurrency group ``@ray.method(concurrency_group=...)`` put a method in."""
    group = getattr(function, GROUP_ATTRIBUTE, None)
    return group if isinstance(group, str) else None


def call_request(actor_id: str, groups: dict[str, int], group: str | None, label: str) -> str:
    """The capabilities one call of ``label`` asks for, in concurrency group ``group``."""
    if group is None:
        return call_capabilities(actor_id, 0, bool(groups))
    if group not in groups:
        known = ", ".join(sorted(groups)) or "none"
        raise ValueError(f"{label}: the actor has no concurrency group {group!r} (it has: {known})")
    return call_capabilities(actor_id, groups[group], True)


def warn_blocking_get() -> None:
    """Inside an async actor's event loop, ``ray.get`` stalls the actor: say so, once per actor."""
    if not dedicated.on_event_loop():
        return
    actor = dedicated.current_host_id() or ""
    if actor in _warned or os.environ.get("RAY_WARN_BLOCKING_GET_INSIDE_ASYNC", "1").lower() in ("0", "false"):
        return
    _warned.add(actor)
    log.warning(
        "Blocking ray.get inside an async actor method: it holds the actor's event loop, so none of "
        "its other calls run until the get returns. Await the ref instead (`await ref`, or "
        "`await asyncio.gather(*refs)` for several)."
    )


async def drain(generator: AsyncIterator[Any]) -> Iterator[Any]:
    """An async generator's values, run to its end, replayed as a plain iterator (its error last)."""
    values: list[Any] = []
    try:
        async for value in generator:
            values.append(value)
    except Exception as exc:
        return _replay(values, exc)
    return _replay(values, None)


def _replay(values: list[Any], error: Exception | None) -> Iterator[Any]:
    yield from values
    if error is not None:
        raise error
