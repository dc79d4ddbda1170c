"""``ray.ObjectRef`` and the calls that take refs: ``get``, ``put``, ``wait``, ``cancel``.

A ref wraps a core ``Future`` (a task's result) or a core ``ObjectRef`` (``put``, or a ref that
arrived inside a task's arguments). Pickled, a ref stays a ref (Ray semantics for refs nested in
arguments); ``.remote`` marks top-level ref arguments so that the worker passes their values.
Errors from Scaler are raised as the ``ray.exceptions`` types Ray programs catch.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Generator, Iterator, Sequence
from typing import Any

from scaler import errors as core_errors
from scaler.client.future import Future
from scaler.client.future import ObjectRef as CoreRef
from scaler.compat.ray import exceptions as rx
from scaler.compat.ray.session import client
from scaler.utility import serialization as ser
from scaler.utility.serialization import RemoteTraceback
from scaler.worker import runtime


class ObjectRef:
    __slots__ = ("__weakref__", "_inner", "_name")

    def __init__(self, inner: Future | CoreRef, name: str = "") -> None:
        self._inner = inner
        self._name = name

    @property
    def object_id(self) -> str:
        return self._inner.object_id

    def hex(self) -> str:
        return self._inner.object_id

    def binary(self) -> bytes:
        return self._inner.object_id.encode()

    def task_id(self) -> str:
        inner = self._inner
        return inner.task_id if isinstance(inner, Future) else inner.object_id

    def future(self) -> concurrent.futures.Future[Any]:
        """A concurrent.futures.Future of this ref's value."""
        out: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def settle(_: Any = None) -> None:
            try:
                out.set_result(get(self))
            except BaseException as exc:
                out.set_exception(exc)

        inner = self._inner
        if isinstance(inner, Future):
            inner.add_done_callback(settle)
        else:
            settle()
        return out

    def __await__(self) -> Generator[Any, None, Any]:
        import asyncio

        return asyncio.wrap_future(self.future()).__await__()

    def done(self) -> bool:
        inner = self._inner
        return inner.done() if isinstance(inner, Future) else True

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        ser.note_ref(self._inner.object_id)
        return _rebuild, (self._inner.object_id,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._inner.object_id == self._inner.object_id

    def __hash__(self) -> int:
        return hash(self._inner.object_id)

    def __repr__(self) -> str:
        return f"ObjectRef({self._inner.object_id})"


def _rebuild(object_id: str) -> Any:
    value = ser.load_ref(object_id, False)
    return ObjectRef(value) if isinstance(value, CoreRef) else value


class ObjectRefGenerator:
    """The refs of a ``num_returns="dynamic"``/``"streaming"`` task, one per yielded value."""

    def __init__(self, source: ObjectRef) -> None:
        self._source = source
        self._refs: list[ObjectRef] | None = None

    def _load(self) -> list[ObjectRef]:
        if self._refs is None:
            ids = get(self._source)
            self._refs = [ObjectRef(CoreRef(object_id, None)) for object_id in ids]
        return self._refs

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._load())

    def __next__(self) -> ObjectRef:
        raise TypeError("iterate an ObjectRefGenerator with for/iter()")

    def __len__(self) -> int:
        return len(self._load())

    def completed(self) -> ObjectRef:
        return self._source


# Scaler's errors and the ray.exceptions type each becomes; first match wins (ScalerError last).
_RAY_ERRORS: tuple[tuple[type[BaseException], type[rx.RayError]], ...] = (
    (core_errors.TaskCancelledError, rx.TaskCancelledError),
    (core_errors.ActorDiedError, rx.ActorDiedError),
    (core_errors.WorkerCrashedError, rx.WorkerCrashedError),
    (core_errors.ObjectLostError, rx.ObjectLostError),
    (core_errors.MemoryLimitError, rx.OutOfMemoryError),
    (core_errors.ScalerError, rx.RaySystemError),
)


def translate(exc: BaseException, name: str) -> BaseException:
    """A Scaler or task exception as the ray.exceptions type a Ray program expects."""
    if isinstance(exc, rx.RayError):
        return exc
    for core_type, ray_type in _RAY_ERRORS:
        if isinstance(exc, core_type):
            return ray_type(str(exc))
    cause = exc.__cause__
    text = cause.text if isinstance(cause, RemoteTraceback) else ""
    return rx.RayTaskError(name, text, exc).as_instanceof_cause()


def _get_one(ref: Any, timeout: float | None) -> Any:
    if not isinstance(ref, ObjectRef):
        if isinstance(ref, (Future, CoreRef)):
            ref = ObjectRef(ref)
        else:
            raise TypeError(f"ray.get takes ObjectRefs, got {type(ref).__name__}")
    inner = ref._inner
    try:
        if isinstance(inner, Future):
            return inner.result(timeout)
        return client()._fetch_payload(inner.object_id, timeout).get()
    except concurrent.futures.TimeoutError:
        raise rx.GetTimeoutError(f"ray.get timed out after {timeout}s waiting for {ref!r}") from None
    except concurrent.futures.CancelledError as exc:
        raise rx.TaskCancelledError(str(exc) or f"{ref!r} was cancelled") from None
    except BaseException as exc:
        name = getattr(inner, "_ray_name", "") or ref._name or ref.task_id()
        raise translate(exc, name) from None


def get(object_refs: Any, *, timeout: float | None = None) -> Any:
    if isinstance(object_refs, ObjectRefGenerator):
        object_refs = list(object_refs)
    if isinstance(object_refs, ObjectRef | Future | CoreRef):
        return _get_one(object_refs, timeout)
    if not isinstance(object_refs, list | tuple):
        raise ValueError(f"'object_refs' must either be an ObjectRef or a list of ObjectRefs, not {type(object_refs)}")
    deadline = None if timeout is None else time.monotonic() + timeout
    values = []
    for ref in object_refs:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        values.append(_get_one(ref, left))
    return values


def put(value: Any, **kwargs: Any) -> ObjectRef:
    if kwargs:
        raise NotImplementedError(f"ray.put({', '.join(kwargs)}=...) is not supported by Scaler")
    if isinstance(value, ObjectRef):
        raise TypeError("Calling 'put' on an ray.ObjectRef is not allowed.")
    return ObjectRef(client().put(value))


def wait(
    ray_waitables: Sequence[ObjectRef], *, num_returns: int = 1, timeout: float | None = None, fetch_local: bool = True
) -> tuple[list[ObjectRef], list[ObjectRef]]:
    refs = list(ray_waitables)
    if any(not isinstance(r, ObjectRef) for r in refs):
        raise TypeError("wait() expected a list of ray.ObjectRef")
    if len(set(refs)) != len(refs):
        raise ValueError("Wait requires a list of unique object refs.")
    if num_returns <= 0 or num_returns > len(refs):
        raise ValueError("Invalid number of objects to return: num_returns must be in 1..len(object_refs)")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ready = [r for r in refs if r.done()]
        if len(ready) >= num_returns:
            break
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        pending = [r._inner for r in refs if isinstance(r._inner, Future) and not r._inner.done()]
        if runtime.current() is not None:
            with runtime.blocking():
                concurrent.futures.wait(pending, left, concurrent.futures.FIRST_COMPLETED)
        else:
            concurrent.futures.wait(pending, left, concurrent.futures.FIRST_COMPLETED)
    chosen = set(ready[:num_returns])
    return [r for r in refs if r in chosen], [r for r in refs if r not in chosen]


def cancel(ray_waitable: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    if not isinstance(ray_waitable, ObjectRef):
        raise TypeError(f"ray.cancel() only supported for ObjectRefs, got {type(ray_waitable).__name__}")
    inner = ray_waitable._inner
    if isinstance(inner, Future):
        inner.cancel(force=force)
