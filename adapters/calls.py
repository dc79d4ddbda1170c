"""Provider calls, supervised: each runs apart from the runner's loop, with a timeout and our error classes.

An async provider's call runs as its own task; a ``SyncProvider``'s in a daemon thread, at most
``max_threads`` at once, so no provider can block the loop that heartbeats and reports. A call that
does not answer within ``timeout`` raises ``CallTimeoutError`` to its caller but is not killed
(a thread cannot be): it goes on in the background, abandoned; what it did is found through
``list_units`` later, and a launch's late units are handed to ``late`` if given. A sync call that
timed out while still waiting for a free thread never starts. Abandoned threads hold their slot
until they return, so the bound also caps how much a hung SDK can take.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from scaler.adapters.errors import CallTimeoutError, ErrorTable, table_of, translate
from scaler.adapters.provider import Provider, SizesGroups, SyncProvider, Unit, WorkerGroup

log = logging.getLogger(__name__)
T = TypeVar("T")


class Supervisor:
    """Background tasks of the runner: kept referenced, their unexpected errors logged, cancelled on close."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine, name=f"{self.name}: {what}")
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("adapter %s: %s failed", self.name, task.get_name(), exc_info=task.exception())

    async def settle(self) -> None:
        """Wait until no spawned task is left (those spawned meanwhile included)."""
        while self.tasks:
            await asyncio.wait(set(self.tasks))

    def cancel(self) -> None:
        for task in list(self.tasks):
            task.cancel()


class ProviderCalls:
    def __init__(self, provider: Provider | SyncProvider, name: str, timeout: float, max_threads: int) -> None:
        self.provider = provider
        self.name = name
        self.timeout = timeout
        self.table: ErrorTable = table_of(provider)
        self.sync = not inspect.iscoroutinefunction(provider.launch)
        self.threads = asyncio.Semaphore(max_threads)
        self.abandoned: set[asyncio.Future[Any]] = set()

    async def launch(
        self, group: WorkerGroup, count: int, request_id: str, late: Callable[[list[Unit]], None]
    ) -> list[Unit]:
        what = f"launching {count} unit(s) of group {group.name}"
        result: list[Unit] = await self._call(what, self.provider.launch, (group, count, request_id), late)
        return result

    async def groups(self, configured: tuple[WorkerGroup, ...]) -> tuple[WorkerGroup, ...]:
        """The provider's optional ``groups(configured)`` hook: the groups as it sizes them (called once)."""
        if not isinstance(self.provider, SizesGroups):
            return configured
        result = await self._call("sizing the worker groups", self.provider.groups, (configured,), None)
        return tuple(result)

    async def terminate(self, unit_ids: list[str]) -> None:
        await self._call(f"terminating {len(unit_ids)} unit(s)", self.provider.terminate, (unit_ids,), None)

    async def list_units(self) -> list[Unit]:
        result: list[Unit] = await self._call("listing units", self.provider.list_units, (), None)
        return result

    async def _call(
        self, what: str, method: Callable[..., Any], args: tuple[Any, ...], late: Callable[[Any], None] | None
    ) -> Any:
        started = threading.Event()
        with translate(self.table, what):
            if self.sync:
                future: asyncio.Future[Any] = asyncio.ensure_future(self._in_thread(method, args, started))
            else:
                started.set()
                future = asyncio.ensure_future(_awaited(method(*args)))
            try:
                done, _ = await asyncio.wait({future}, timeout=self.timeout)
            except asyncio.CancelledError:
                future.cancel()
                raise
            if done:
                return future.result()
            if not started.is_set():
                future.cancel()
                raise CallTimeoutError(f"{what}: no free thread within {self.timeout:g}s (max_threads busy)")
            self.abandoned.add(future)
            future.add_done_callback(lambda f: self._finished_late(f, what, late))
            raise CallTimeoutError(f"{what}: no answer within {self.timeout:g}s (call_timeout); left running")

    async def _in_thread(self, method: Callable[..., Any], args: tuple[Any, ...], started: threading.Event) -> Any:
        loop = asyncio.get_running_loop()
        await self.threads.acquire()
        future: asyncio.Future[Any] = loop.create_future()

        def work() -> None:
            try:
                outcome: tuple[Any, BaseException | None] = (method(*args), None)
            except Exception as exc:  # handed to the loop as the call's outcome
                outcome = (None, exc)
            _post(loop, _resolve, future, outcome, self.threads)

        started.set()
        threading.Thread(target=work, name=f"{self.name}-provider-call", daemon=True).start()
        return await asyncio.shield(future)

    def _finished_late(self, future: asyncio.Future[Any], what: str, late: Callable[[Any], None] | None) -> None:
        self.abandoned.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.warning("adapter %s: %s ended after its timeout with %s: %s", self.name, what, type(exc).__name__, exc)
        else:
            log.warning("adapter %s: %s answered after its timeout", self.name, what)
            if late is not None:
                late(future.result())

    def close(self) -> None:
        """Cancel async calls left running (threads cannot be: they are daemons, gone with the process)."""
        for future in list(self.abandoned):
            future.cancel()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _resolve(future: asyncio.Future[Any], outcome: tuple[Any, BaseException | None], slots: asyncio.Semaphore) -> None:
    slots.release()
    if future.done():
        return
    result, exc = outcome
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: the runner has stopped, nobody waits for this answer
        pass
