"""What code running inside a task can ask of its surroundings.

A task process sets this up once: the scheduler address (so ``Client()`` with no address works in
a task), the current task, and a way to tell the agent the task is blocked waiting for subtasks,
so its capacity is lent out meanwhile (DESIGN §3).

The current task is the process's (``set_current``: one task at a time, seen by every thread the
task starts) unless a thread or coroutine runs one of several concurrent tasks of its own (``running``:
an actor's calls in its thread pool or event loop), which then wins for that thread or coroutine.
What a task's clients sent, and how deep it is in blocking waits, live on its ``TaskContext``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TaskContext:
    task_id: str
    name: str
    stream_output: bool
    caps_key: str = ""  # the capabilities the task asked for
    lends: bool = True  # a blocking wait tells the agent (False: an actor's call, the agent does not run it)
    cancelled: bool = False  # a cancel reached it while it ran (an actor call that cannot be interrupted)
    depth: int = 0  # nested blocking waits
    senders: list[Any] = field(default_factory=list)  # clients that submitted or put something meanwhile
    attempt: int = 0  # which run of the task this is (its RunTask's)
    emit: Callable[[Any, list[Any]], None] | None = None  # sends a message up now (a stream item, streaming.py)


_scheduler_address: str | None = None
_current: TaskContext | None = None
_local: ContextVar[TaskContext | None] = ContextVar("scaler_task", default=None)
_notify: Callable[[str, bool], None] | None = None
_lock = threading.Lock()


def install(scheduler_address: str, notify: Callable[[str, bool], None]) -> None:
    global _scheduler_address, _notify
    _scheduler_address = scheduler_address
    _notify = notify


def scheduler_address() -> str | None:
    return _scheduler_address


def set_current(context: TaskContext | None) -> None:
    """The task this process runs (one at a time)."""
    global _current
    _current = context


@contextmanager
def running(context: TaskContext) -> Iterator[None]:
    """``context`` is the current task of this thread or coroutine for the block (concurrent tasks)."""
    token = _local.set(context)
    try:
        yield
    finally:
        _local.reset(token)


def note_sender(client: Any) -> None:
    context = current()
    if context is not None and all(c is not client for c in context.senders):
        context.senders.append(client)


def settle(held: Sequence[str] = (), timeout: float = 30.0) -> None:
    """Before a task's result leaves: wait until the scheduler has what the task's own clients
    sent (objects put, tasks submitted), so refs to them in the result resolve. Those go on
    other connections than the result, and nothing else orders them.

    ``held`` are the refs inside the result. Each client first lends them to the task: it drops its
    own refs when the task's locals go, and its release must not free them before the result that
    holds them is stored (the scheduler then keeps them while the result is kept)."""
    context = current()
    if context is None:
        return
    task_id = context.task_id
    while context.senders:
        client = context.senders.pop()
        if not client._closed:
            if held and task_id:
                client._lend(task_id, list(held))
            client.sync(timeout)


def current() -> TaskContext | None:
    local = _local.get()
    return local if local is not None else _current


def current_task_id() -> str:
    context = current()
    return context.task_id if context is not None else ""


@contextmanager
def blocking() -> Iterator[None]:
    """Around a wait inside a task: the agent lends the task's capacity out until it returns."""
    context = current()
    notify = _notify
    if context is None or notify is None or not context.lends:
        yield
        return
    with _lock:
        context.depth += 1
        first = context.depth == 1
    if first:
        notify(context.task_id, True)
    try:
        yield
    finally:
        with _lock:
            context.depth -= 1
            last = context.depth == 0
        if last and current() is context:
            notify(context.task_id, False)
