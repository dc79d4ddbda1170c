"""What code running inside a task can ask of its surroundings.

A task process sets this up once: the scheduler address (so ``Client()`` with no address works in
a task), the current task, and a way to tell the agent the task is blocked waiting for subtasks,
so its capacity is lent out meanwhile (DESIGN §3).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class TaskContext:
    task_id: str
    name: str
    stream_output: bool


_scheduler_address: str | None = None
_current: TaskContext | None = None
_notify: Callable[[str, bool], None] | None = None
_lock = threading.Lock()
_depth = 0
_senders: list[Any] = []  # clients that submitted or put something during the current task


def install(scheduler_address: str, notify: Callable[[str, bool], None]) -> None:
    global _scheduler_address, _notify
    _scheduler_address = scheduler_address
    _notify = notify


def scheduler_address() -> str | None:
    return _scheduler_address


def set_current(context: TaskContext | None) -> None:
    global _current, _depth
    _current = context
    _depth = 0
    _senders.clear()


def note_sender(client: Any) -> None:
    if _current is not None and all(c is not client for c in _senders):
        _senders.append(client)


def settle(held: Sequence[str] = (), timeout: float = 30.0) -> None:
    """Before a task's result leaves: wait until the scheduler has what the task's own clients
    sent (objects put, tasks submitted), so refs to them in the result resolve. Those go on
    other connections than the result, and nothing else orders them.

    ``held`` are the refs inside the result. Each client first lends them to the task: it drops its
    own refs when the task's locals go, and its release must not free them before the result that
    holds them is stored (the scheduler then keeps them while the result is kept)."""
    task_id = current_task_id()
    while _senders:
        client = _senders.pop()
        if not client._closed:
            if held and task_id:
                client._lend(task_id, list(held))
            client.sync(timeout)


def current() -> TaskContext | None:
    return _current


def current_task_id() -> str:
    return _current.task_id if _current is not None else ""


@contextmanager
def blocking() -> Iterator[None]:
    """Around a wait inside a task: the agent lends the task's capacity out until it returns."""
    global _depth
    context = _current
    if context is None or _notify is None:
        yield
        return
    with _lock:
        _depth += 1
        first = _depth == 1
    if first:
        _notify(context.task_id, True)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            last = _depth == 0
        if last and _current is context:
            _notify(context.task_id, False)
