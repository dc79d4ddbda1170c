"""Running one task given its RunTask message and frames: shared by task processes and dedicated hosts.

The executor keeps the raw frames of functions and objects it was sent until told to drop them,
unpickles a function once, unpickles arguments afresh for every task (refs resolved as the task
asks), and turns the outcome into a ``TaskDone`` plus result frames; each result's header lists
the refs inside it, which the task's own clients lend to the task before it reports
(``runtime.settle``). An exception carrying ``__scaler_fatal__`` is reported as ``fatal``: the
scheduler never retries it. A task with several results whose generator raised part-way is reported
as ``error``/``fatal`` too, but with one object per result, each a value or the error (see
``scaler/worker/results.py``).

``run`` runs a task in the calling thread; ``run_async`` as a coroutine of an event loop (an async
actor's calls), awaiting what the function returns and reporting ``CancelledError`` as cancelled.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from scaler.errors import TaskCancelledError
from scaler.protocol import messages as m
from scaler.utility import serialization as ser
from scaler.worker import results, runtime

Done = tuple[m.TaskDone, list[Any]]  # a task's report and its result frames


class Executor:
    def __init__(self, on_finally: Callable[[], None] | None = None, concurrent: bool = False) -> None:
        self.objects: dict[str, tuple[list[Any], bool]] = {}
        self.functions: dict[str, Any] = {}
        self.running = False
        self.on_finally = on_finally
        self.concurrent = concurrent  # several tasks at once (an actor's calls): never the process's task
        self.lock = threading.Lock()  # unpickles a function once, whichever thread asks first
        self.emit: Callable[[Any, list[Any]], None] | None = None  # sends a stream item up (streaming.py)

    def store(self, msg: m.RunTask, payload: list[Any]) -> list[Any]:
        """Keep the objects attached to ``msg``; return the argument frames."""
        pos = 0
        for header in msg.objects:
            self.objects[header.object_id] = (payload[pos : pos + header.nbufs], header.is_error)
            pos += header.nbufs
        return payload[pos:]

    def missing(self, msg: m.RunTask) -> list[str]:
        return [oid for oid in (msg.func_id, *msg.deps) if oid not in self.objects]

    def drop(self, object_ids: list[str]) -> None:
        for object_id in object_ids:
            self.objects.pop(object_id, None)
            self.functions.pop(object_id, None)

    def run(
        self, msg: m.RunTask, args_frames: list[Any], context: runtime.TaskContext | None = None
    ) -> tuple[m.TaskDone, list[Any]]:
        """Run the task here and now. With ``context``, it is this thread's current task (one of
        several running at once); without, the process's, as for a task process."""
        previous = runtime.current()
        context = context or runtime.TaskContext(msg.task_id, msg.name, msg.stream_output, msg.capabilities)
        context.attempt, context.emit = msg.attempt, self.emit
        if not self.concurrent:
            runtime.set_current(context)
        try:
            with runtime.running(context):
                try:
                    self.running = True
                    function, args, kwargs = self._load(msg, args_frames)
                    started = time.perf_counter()
                    result = function(*args, **kwargs)
                    if msg.num_returns > 1 and isinstance(result, Iterator):
                        result = results.collect(result, msg.num_returns)
                    duration = time.perf_counter() - started
                    outcome = self._report(msg, result, duration)
                    self.running = False  # from here on, an interrupt (cancel) is too late to count
                    return outcome
                except BaseException as exc:
                    self.running = False
                    return self._failed(msg, exc)
        finally:
            self.running = False
            if not self.concurrent:
                runtime.set_current(previous)
            if self.on_finally is not None:
                self.on_finally()

    async def run_async(self, msg: m.RunTask, args_frames: list[Any], context: runtime.TaskContext) -> Done:
        """Run the task as a coroutine of the running event loop: a function that returns an
        awaitable (an ``async def`` method) has it awaited. ``CancelledError`` means cancelled."""
        import asyncio  # here: only an async actor's process pays for asyncio (and the ssl it imports)

        context.attempt, context.emit = msg.attempt, self.emit
        with runtime.running(context):
            try:
                function, args, kwargs = self._load(msg, args_frames)
                started = time.perf_counter()
                result = function(*args, **kwargs)
                while inspect.isawaitable(result):
                    result = await result
                if msg.num_returns > 1 and isinstance(result, Iterator):
                    result = results.collect(result, msg.num_returns)
                duration = time.perf_counter() - started
                encoded = results.encode(msg.task_id, msg.num_returns, result)  # here: the loop owns the state
                if context.senders:  # waits for a round trip to the scheduler: not on the loop
                    await asyncio.to_thread(runtime.settle, _holds(encoded[0]))
                return self._done(msg, encoded, duration)
            except asyncio.CancelledError:
                return m.TaskDone(msg.task_id, "cancelled", attempt=msg.attempt), []
            except BaseException as exc:
                return self._failed(msg, exc)

    def _load(self, msg: m.RunTask, args_frames: list[Any]) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        function = self._function(msg.func_id)
        with ser.resolve_refs(self._value, msg.resolve_nested):
            args, kwargs = ser.loads(args_frames) if args_frames else ((), {})
        return function, args, kwargs

    def _report(self, msg: m.RunTask, result: Any, duration: float) -> Done:
        """The task's outcome from its result (in the task's context: its clients settle first)."""
        encoded = results.encode(msg.task_id, msg.num_returns, result)
        runtime.settle(_holds(encoded[0]))
        return self._done(msg, encoded, duration)

    @staticmethod
    def _done(msg: m.RunTask, encoded: results.Encoded, duration: float) -> Done:
        headers, out, error = encoded
        status = "done"
        if error is not None:
            status = "fatal" if getattr(error, "__scaler_fatal__", False) else "error"
        return m.TaskDone(msg.task_id, status, headers, attempt=msg.attempt, duration=duration), out

    @staticmethod
    def _failed(msg: m.RunTask, exc: BaseException) -> Done:
        if isinstance(exc, TaskCancelledError):
            return m.TaskDone(msg.task_id, "cancelled", attempt=msg.attempt), []
        status = "fatal" if getattr(exc, "__scaler_fatal__", False) else "error"
        out = ser.dumps_exception(exc)
        return m.TaskDone(msg.task_id, status, [m.ObjHeader(msg.task_id, len(out), True)], attempt=msg.attempt), out

    def _function(self, func_id: str) -> Any:
        function = self.functions.get(func_id)
        if function is None:
            with self.lock:
                function = self.functions.get(func_id)
                if function is None:
                    frames, _ = self.objects[func_id]
                    function = self.functions[func_id] = ser.loads(frames)
        return function

    def _value(self, object_id: str) -> Any:
        entry = self.objects.get(object_id)
        if entry is None:
            raise KeyError(f"object {object_id} was not delivered to this process")
        frames, is_error = entry
        if is_error:
            raise ser.loads_exception(frames)
        return ser.loads(frames)


def _holds(headers: list[m.ObjHeader]) -> list[str]:
    return [object_id for header in headers for object_id in header.holds]
