"""Running several calls of one actor at once: a thread pool per concurrency group, or an event loop.

An actor hosted by a dedicated worker (``dedicated.py``) may run more than one call at a time:
a *threaded* actor runs up to ``max_concurrency`` calls on a pool of that many threads; an *async*
actor runs its calls as coroutines of one event loop, on a thread of its own, up to its limit at
once. Concurrency groups split those limits: each group has its own, and its calls are counted
against it alone (a sync actor gets one thread pool per group). A plain actor is the case of one
group of one thread, so its calls still run one at a time, in order.

The scheduler learns the limits from the dedicated worker's capabilities (``Concurrency.capabilities``):
``actor.<id>`` holds the sum of all groups, and with groups, ``actorgroup.<id>.<n>`` holds group
``n``'s limit (0 is the default group) and each call asks for one of its group's. So no more calls
of a group reach the host than it may run, save a few prefetched ones, which wait in the host.

The host's loop stays free while calls run: it keeps heartbeating, takes new calls and cancels,
and sends each result as soon as the call ends (``finished`` is called from the call's thread).
A cancel reaching an async call cancels its coroutine (it reports ``cancelled``); a running call
of a sync actor is not interrupted, as in Ray, but ``runtime.current().cancelled`` turns true.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scaler.protocol import messages as m
from scaler.utility.capabilities import DEDICATED_PREFIX, GROUP_PREFIX, parse_capabilities
from scaler.worker import runtime
from scaler.worker.execute import Done, Executor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Concurrency:
    """How many calls of an actor run at once, per group (index 0 is the default group), and how."""

    limits: tuple[int, ...] = (1,)
    is_async: bool = False

    @property
    def in_order(self) -> bool:
        """One call at a time, in arrival order: a plain actor."""
        return self.limits == (1,) and not self.is_async

    def capabilities(self, host_id: str) -> str:
        """The dedicated worker's capabilities: its total, and each group's limit if it has groups."""
        parts = [f"{DEDICATED_PREFIX}{host_id}={sum(self.limits)}"]
        if len(self.limits) > 1:
            parts += [f"{GROUP_PREFIX}{host_id}.{n}={limit}" for n, limit in enumerate(self.limits)]
        return ",".join(parts)


def call_capabilities(host_id: str, group: int, grouped: bool) -> str:
    """What one call asks for: a slot of the actor, and one of its group's if the actor has groups."""
    base = f"{DEDICATED_PREFIX}{host_id}=1"
    return f"{base},{GROUP_PREFIX}{host_id}.{group}=1" if grouped else base


def group_of(capabilities: str, host_id: str) -> int:
    """The concurrency group a call asked for (its ``actorgroup.<id>.<n>`` quantity; else 0)."""
    prefix = f"{GROUP_PREFIX}{host_id}."
    for name, _ in parse_capabilities(capabilities).quantities:
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            return int(name[len(prefix) :])
    return 0


class CallRunner:
    """Starts calls on the actor's threads or event loop; ``finished(task_id, done)`` reports each."""

    def __init__(
        self,
        executor: Executor,
        concurrency: Concurrency,
        finished: Callable[[str, Done], None],
        caps_key: str = "",
    ) -> None:
        self.executor = executor
        self.concurrency = concurrency
        self.finished = finished
        self.caps_key = caps_key  # what the actor's host asked for: its calls' assigned resources
        self.busy = [0] * len(concurrency.limits)
        self.running: dict[str, tuple[int, runtime.TaskContext, concurrent.futures.Future[Any]]] = {}
        self.pools: list[concurrent.futures.ThreadPoolExecutor] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        if concurrency.is_async:
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(target=self._run_loop, name="actor-event-loop", daemon=True)
            self.thread.start()
        else:
            for n, limit in enumerate(concurrency.limits):
                pool = concurrent.futures.ThreadPoolExecutor(limit, thread_name_prefix=f"actor-group-{n}")
                self.pools.append(pool)

    def _run_loop(self) -> None:
        loop = self.loop
        if loop is None:
            return
        asyncio.set_event_loop(loop)
        loop.run_forever()

    def build(self, make: Callable[[], Any]) -> Any:
        """Run the actor's constructor: an async actor's on its event loop, so that it may start
        tasks there and ``asyncio.get_event_loop()`` in it is the loop its calls run on."""
        if self.loop is None:
            return make()
        return asyncio.run_coroutine_threadsafe(_constructed(make), self.loop).result()

    def on_loop(self) -> bool:
        """True in the thread of the actor's event loop."""
        return self.thread is not None and threading.current_thread() is self.thread

    def has_room(self, group: int) -> bool:
        return 0 <= group < len(self.busy) and self.busy[group] < self.concurrency.limits[group]

    def start(self, msg: m.RunTask, args: list[Any], group: int) -> None:
        context = runtime.TaskContext(msg.task_id, msg.name, msg.stream_output, self.caps_key, lends=False)
        self.busy[group] += 1
        future: concurrent.futures.Future[Any]
        if self.loop is not None:
            future = asyncio.run_coroutine_threadsafe(self.executor.run_async(msg, args, context), self.loop)
        else:
            future = self.pools[group].submit(self.executor.run, msg, args, context)
        self.running[msg.task_id] = (group, context, future)
        future.add_done_callback(lambda done: self._report(msg, done))

    def _report(self, msg: m.RunTask, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled():
            outcome: Done = m.TaskDone(msg.task_id, "cancelled", attempt=msg.attempt), []
        elif future.exception() is not None:
            error = future.exception()
            log.error("actor call %s failed in its runner: %r", msg.task_id, error)
            text = f"the actor's runner failed: {error!r}"
            outcome = m.TaskDone(msg.task_id, "crashed", message=text, attempt=msg.attempt), []
        else:
            outcome = future.result()
        self.finished(msg.task_id, outcome)

    def ended(self, task_id: str) -> None:
        """The host sent ``task_id``'s result: its slot is free (called from the host's loop)."""
        entry = self.running.pop(task_id, None)
        if entry is not None:
            self.busy[entry[0]] -= 1

    def cancel(self, task_id: str) -> bool:
        """A cancel for a running call: an async one's coroutine is cancelled. False: not running."""
        entry = self.running.get(task_id)
        if entry is None:
            return False
        _, context, future = entry
        context.cancelled = True
        if self.loop is not None:
            future.cancel()
        return True

    def count(self) -> int:
        return len(self.running)

    def close(self) -> None:
        """Stop taking calls: running coroutines are cancelled; threads still in a call finish it."""
        for pool in self.pools:
            pool.shutdown(wait=False, cancel_futures=True)
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_stop, loop)
            if self.thread is not None:
                self.thread.join(5.0)


async def _constructed(make: Callable[[], Any]) -> Any:
    return make()


def _stop(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.stop()
