"""Generator tasks, as Ray 2.60 has them: ``num_returns=N``, ``"streaming"`` and ``"dynamic"``.

A generator function with no ``num_returns`` streams (Ray's default since 2.8), value by value:
``.remote()`` hands an ``ObjectRefGenerator`` whose ``next()`` gives each value's ref as soon as
the value exists, while the generator runs on. In the task process ``expand`` sends each yielded
value at once (``scaler/worker/streaming.py``, through the agent or an actor's host); the scheduler
stores it as an object of its own, ``<task id>#s<i>``, owned by the caller's client, and tells that
client (``scaler/scheduler/streams.py``; small values come along); the client keeps the refs in
order for the generator (``scaler/client/streams.py``). ``ray.wait([gen])`` is ready when the next
ref is (or the stream has ended). The task's own result, the number of values its run yielded,
comes after every value and ends the stream. Async generator methods of an actor stream the same
way from the actor's event loop, and the generator calls of a threaded actor stream side by side.
``"dynamic"`` stays whole, as Ray's dynamic returns are: ``expand`` stores each value as an object
and returns a ``DynamicObjectRefGenerator`` of their refs as the task's one result; the caller gets
that result's ref (``ray.get`` of it gives the generator of refs, as in Ray).

A generator that raises keeps what it yielded, as in Ray: with ``"streaming"`` the refs of the
values it yielded come first (as they came), then the task's ref, whose ``ray.get`` raises the
error (a ``RayTaskError`` that is also an instance of the error's type), then the end. A
streaming task that is cancelled, or whose worker died more often than its retries allow, ends
the same way after the values the scheduler had received before the cancel (it drops later ones)
or the last death: its ref raises ``TaskCancelledError`` or the worker's death. With
``"dynamic"`` the refs of the values come first, then one ref that raises; with
``num_returns=N`` (1 too) the refs of the yielded values hold them and only the remaining refs
raise (all N hold values if it raised after its N-th value). The worker iterates a
``num_returns=N`` generator value by value (``scaler/worker/results.py``); ``expand`` returns a
``Partial`` for ``"dynamic"`` so that the task ends with its error beside its result.

Retries follow Scaler's rule for application errors in every mode: only with ``retry_exceptions``
(and the error among its types, if a list) is a generator that raised re-run from the start, up to
``max_retries`` times; a worker's death re-runs it up to ``max_retries`` times too. A re-run
streaming task yields again from its first value, and, as in Ray 2.60, the caller keeps what
earlier runs delivered: a value whose index was delivered already is dropped (no index comes
twice), the later ones follow, and the error, if any, is the last run's. With ``"dynamic"`` and
``num_returns=N`` the caller sees the last run's values and error. Ray 2.60 (checked) differs with
``retry_exceptions`` there: it never retries a ``num_returns=N`` generator that raised after
yielding (its worker has a TODO to), and after the last retry of a ``"dynamic"`` one the dynamic
ref itself raises instead of giving the values.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from typing import Any

from scaler.client.future import Future
from scaler.client.streams import StreamReader, open_stream
from scaler.compat.ray.refs import ObjectRef, RefStream
from scaler.errors import TaskCancelledError
from scaler.worker import streaming
from scaler.worker.results import Partial, collect

STREAM_MODES = ("dynamic", "streaming")


def resolve_num_returns(num_returns: Any, is_generator: bool) -> Any:
    """Ray 2.60's default when none is given: ``"streaming"`` for a generator function, else 1."""
    if num_returns is None:
        return "streaming" if is_generator else 1
    return num_returns


def mode_of(num_returns: Any, is_generator: bool) -> str:
    """How the task process must treat the function's result: "", "one", "dynamic" or "streaming"."""
    if num_returns in STREAM_MODES:
        return str(num_returns)
    return "one" if is_generator and num_returns == 1 else ""


class DynamicObjectRefGenerator(RefStream):
    """What ``ray.get`` of a ``num_returns="dynamic"`` task's ref gives: its refs, one per value."""

    def __init__(self, refs: list[ObjectRef], name: str = "") -> None:
        self._refs = list(refs)
        self._name = name
        for ref in self._refs:
            ref._name = ref._name or name  # a ref's error names the generator's function, as Ray's does

    def __reduce__(self) -> tuple[Any, tuple[list[ObjectRef], str]]:
        return DynamicObjectRefGenerator, (self._refs, self._name)

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(list(self._refs))

    def __len__(self) -> int:
        return len(self._refs)

    def _probe(self) -> ObjectRef:
        raise TypeError("ray.wait takes the ObjectRef of a dynamic generator task, not its DynamicObjectRefGenerator")


class ObjectRefGenerator(RefStream):
    """What ``.remote()`` of a streaming generator task returns: ``next()`` gives its refs in order,
    each as soon as its value exists (``scaler/client/streams.py``)."""

    def __init__(self, source: ObjectRef) -> None:
        inner = source._inner
        if not isinstance(inner, Future):
            raise TypeError(f"an ObjectRefGenerator reads a task's stream, not {source!r}")
        self._source = source
        self._future: Future = inner  # the task's result: done once the stream has ended
        self._reader: StreamReader = open_stream(inner)
        self._ended = False

    def _next(self, timeout: float | None) -> ObjectRef:
        if self._ended:
            raise StopIteration
        item = self._reader.next(timeout)
        if item is None:  # the end: the task's ref, if it raises (the generator's error, a cancel), then stop
            self._ended = True
            self._reader.close()
            if self._future.done() and self._future.exception() is not None:
                return self._source
            raise StopIteration
        ref = ObjectRef(item.ref, self._source._name, available=True)
        if item.payload is not None:
            pushed: concurrent.futures.Future[Any] = concurrent.futures.Future()
            pushed.set_result(item.payload)  # came with its announcement: ray.get fetches nothing
            ref._arrival = pushed
        return ref

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        return self._next(None)

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        if not self._ended and not self._reader.ready():
            await asyncio.shield(asyncio.wrap_future(self._reader.waiter()))  # a cancel here leaves it be
        try:
            return self._next(None)
        except StopIteration:
            raise StopAsyncIteration from None

    def completed(self) -> ObjectRef:
        """A ref that is ready when the generator task has finished."""
        return self._source

    def next_ready(self) -> bool:
        """Whether ``next()`` gives a ref at once (False once finished, as in Ray)."""
        return not self.is_finished() and self._reader.ready()

    def is_finished(self) -> bool:
        """Whether every ref has been taken (``next()`` raises ``StopIteration``)."""
        if self._ended:
            return True
        return self._reader.at_end() and self._future.exception() is None

    def _probe(self) -> ObjectRef:
        return self._source

    def _ready(self) -> concurrent.futures.Future[Any]:
        if self._ended:
            return self._source.arrival()
        return self._reader.waiter()

    def send(self, value: Any) -> None:
        raise NotImplementedError("`gen.send` is not supported.")

    def throw(self, value: Any) -> None:
        raise NotImplementedError("`gen.throw` is not supported.")

    def close(self) -> None:
        raise NotImplementedError("`gen.close` is not supported.")

    def __del__(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None:
            try:
                reader.close()  # the refs it did not hand out are released
            except Exception:
                pass

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._source.object_id})"


def expand(result: Any, mode: str, name: str) -> Any:
    """In the task process: the task's result for ``mode`` (see ``mode_of``)."""
    if mode == "one":
        return collect(iter(result), 1)
    if mode == "streaming":
        return streaming.stream(result)  # each value goes to the caller as it is yielded
    if mode != "dynamic":
        return result
    from scaler.compat.ray.session import client

    core = client()
    refs = []
    error: BaseException | None = None
    try:
        for value in result:
            refs.append(_owned(core.put(value)))
    except TaskCancelledError:
        raise
    except Exception as exc:
        error = exc
        refs.append(_owned(core.put_error(exc)))
    return Partial([DynamicObjectRefGenerator(refs, name)], error)


def _owned(core_ref: Any) -> ObjectRef:
    core_ref._client = None  # owned by this process's client, kept until it disconnects
    return ObjectRef(core_ref, available=True)
