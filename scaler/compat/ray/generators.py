"""Generator tasks, as Ray 2.60 has them: ``num_returns=N``, ``"streaming"`` and ``"dynamic"``.

A generator function with no ``num_returns`` streams (Ray's default since 2.8). In the task
process, ``expand`` runs the generator and stores each yielded value as an object of its own, then
returns a ``DynamicObjectRefGenerator`` of their refs as the task's one result. ``"dynamic"`` hands
the caller that result's ref (``ray.get`` of it gives the generator of refs, as in Ray);
``"streaming"`` hands an ``ObjectRefGenerator`` whose ``next()`` gives the refs one by one. Refs
become available when the whole generator has run, not value by value.

A generator that raises keeps what it yielded, as in Ray: with ``"dynamic"`` or ``"streaming"``
the refs of the values it yielded come first, then one ref whose ``ray.get`` raises the error (a
``RayTaskError`` that is also an instance of the error's type), then the end; with
``num_returns=N`` (1 too) the refs of the yielded values hold them and only the remaining refs
raise (all N hold values if it raised after its N-th value). The worker iterates a
``num_returns=N`` generator value by value (``scaler/worker/results.py``); ``expand`` returns a
``Partial`` for the other modes so that the task ends with its error beside its result.

Retries follow Scaler's rule for application errors in every mode: only with ``retry_exceptions``
(and the error among its types, if a list) is a generator that raised re-run from the start, up to
``max_retries`` times; the caller then sees the last attempt's values and error. Ray 2.60 (checked)
differs with ``retry_exceptions``: it never retries a ``num_returns=N`` generator that raised after
yielding (its worker has a TODO to), after the last retry of a ``"dynamic"`` one the dynamic ref
itself raises instead of giving the values, and a ``"streaming"`` caller keeps the values of the
first attempt that yielded them (the same values, for a generator that yields the same each run).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from scaler.compat.ray.refs import ObjectRef, RefStream, get
from scaler.errors import TaskCancelledError
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
    """What ``.remote()`` of a streaming generator task returns: ``next()`` gives its refs in order."""

    def __init__(self, source: ObjectRef) -> None:
        self._source = source
        self._refs: deque[ObjectRef] | None = None

    def _load(self) -> deque[ObjectRef]:
        if self._refs is None:
            try:
                produced = get(self._source)
            except Exception:
                self._refs = deque([self._source])
            else:
                self._refs = deque(produced if isinstance(produced, DynamicObjectRefGenerator) else [self._source])
        return self._refs

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        refs = self._load()
        if not refs:
            raise StopIteration
        return refs.popleft()

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        if self._refs is None:
            try:
                await self._source
            except Exception:
                pass
        try:
            return next(self)
        except StopIteration:
            raise StopAsyncIteration from None

    def completed(self) -> ObjectRef:
        """A ref that is ready when the generator task has finished."""
        return self._source

    def next_ready(self) -> bool:
        return self._source.done() and bool(self._load())

    def is_finished(self) -> bool:
        return self._source.done() and not self._load()

    def _probe(self) -> ObjectRef:
        return self._source

    def send(self, value: Any) -> None:
        raise NotImplementedError("`gen.send` is not supported.")

    def throw(self, value: Any) -> None:
        raise NotImplementedError("`gen.throw` is not supported.")

    def close(self) -> None:
        raise NotImplementedError("`gen.close` is not supported.")

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._source.object_id})"


def expand(result: Any, mode: str, name: str) -> Any:
    """In the task process: the task's result for ``mode`` (see ``mode_of``)."""
    if mode == "one":
        return collect(iter(result), 1)
    if mode not in STREAM_MODES:
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
