"""``ray.ObjectRef`` and the calls that take refs: ``get``, ``put``, ``wait``, ``cancel``.

A ref wraps a core ``Future`` (a task's result) or a core ``ObjectRef`` (``put``, or a ref that
arrived inside a task's arguments or results). Pickled, a ref stays a ref (Ray semantics for refs
nested in arguments); ``.remote`` marks top-level ref arguments so that the worker passes their
values. A ref of the second kind is ready once the scheduler has its object: ``wait`` asks for it
through the client's object-fetch path (the scheduler answers when the object exists) and keeps the
fetched value for ``get``. Errors from Scaler are raised as the ``ray.exceptions`` types Ray
programs catch.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Generator, Sequence
from typing import Any

from scaler.client.future import Future
from scaler.client.future import ObjectRef as CoreRef
from scaler.compat.ray import exceptions as rx
from scaler.compat.ray.actor_concurrency import warn_blocking_get
from scaler.compat.ray.session import client
from scaler.utility import serialization as ser
from scaler.utility.serialization import RemoteTraceback
from scaler.worker import runtime

_AVAILABLE: concurrent.futures.Future[Any] = concurrent.futures.Future()
_AVAILABLE.set_result(None)  # the arrival of a ref known to exist (put here): nothing was fetched


class ObjectRef:
    __slots__ = ("__weakref__", "_arrival", "_inner", "_name")

    def __init__(self, inner: Future | CoreRef, name: str = "", available: bool = False) -> None:
        self._inner = inner
        self._name = name
        self._arrival: concurrent.futures.Future[Any] | None = _AVAILABLE if available else None

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

    def arrival(self) -> concurrent.futures.Future[Any]:
        """A future done once this object exists in the scheduler (for a task result: the task's future)."""
        inner = self._inner
        if isinstance(inner, Future):
            return inner
        if self._arrival is None:
            self._arrival = client().fetch_async(inner.object_id)
        return self._arrival

    def future(self) -> concurrent.futures.Future[Any]:
        """A concurrent.futures.Future of this ref's value."""
        out: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def settle() -> None:
            try:
                out.set_result(get(self))
            except BaseException as exc:
                out.set_exception(exc)

        # Callbacks run on the client's I/O thread, which must not wait for a fetch itself.
        self.arrival().add_done_callback(lambda _: threading.Thread(target=settle, daemon=True).start())
        return out

    def __await__(self) -> Generator[Any, None, Any]:
        import asyncio

        return asyncio.wrap_future(self.future()).__await__()

    def done(self) -> bool:
        return self.arrival().done()

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


class RefStream:
    """Base of the generator types: ``ray.get`` returns them as they are, ``ray.wait`` takes them."""

    def _probe(self) -> ObjectRef:
        raise NotImplementedError

    def _ready(self) -> concurrent.futures.Future[Any]:
        """A future done once ``ray.wait`` counts this as ready."""
        return self._probe().arrival()


def translate(exc: BaseException, name: str, object_id: str = "") -> BaseException:
    """A Scaler or task exception as the ray.exceptions type a Ray program expects."""
    if isinstance(exc, rx.RayError):
        return exc
    error = rx.from_scaler(exc, object_id)
    if error is not None:
        return error
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
        fetch = ref._arrival if ref._arrival is not _AVAILABLE else None
        return client()._fetch_payload(inner.object_id, timeout, fetch).get()
    except concurrent.futures.TimeoutError:
        raise rx.GetTimeoutError(f"ray.get timed out after {timeout}s waiting for {ref!r}") from None
    except concurrent.futures.CancelledError as exc:
        cancelled = rx.from_scaler(exc) or rx.TaskCancelledError(error_message=str(exc) or f"{ref!r} was cancelled")
        raise cancelled from None
    except BaseException as exc:
        name = getattr(inner, "_ray_name", "") or ref._name or ref.task_id()
        raise translate(exc, name, inner.object_id) from None


def get(object_refs: Any, *, timeout: float | None = None) -> Any:
    warn_blocking_get()
    if isinstance(object_refs, RefStream):
        return object_refs
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
    return ObjectRef(client().put(value), available=True)


def _probe(waitable: Any) -> concurrent.futures.Future[Any]:
    return waitable._ready() if isinstance(waitable, RefStream) else waitable.arrival()


def wait(
    ray_waitables: Sequence[Any], *, num_returns: int = 1, timeout: float | None = None, fetch_local: bool = True
) -> tuple[list[Any], list[Any]]:
    """Ray's ``wait``: the first ``num_returns`` ready refs/generators in input order, and the rest."""
    if isinstance(ray_waitables, ObjectRef | RefStream):
        raise TypeError(f"wait() expected a list of ray.ObjectRef or ray.ObjectRefGenerator, got {ray_waitables!r}")
    refs = list(ray_waitables)
    if any(not isinstance(r, ObjectRef | RefStream) for r in refs):
        raise TypeError("wait() expected a list of ray.ObjectRef or ray.ObjectRefGenerator")
    if timeout is not None and timeout < 0:
        raise ValueError(f"The 'timeout' argument must be nonnegative. Received {timeout}")
    if not refs:
        return [], []
    if len(set(refs)) != len(refs):
        raise ValueError("Wait requires a list of unique ray_waitables.")
    if num_returns <= 0 or num_returns > len(refs):
        raise ValueError("Invalid number of objects to return: num_returns must be in 1..len(ray_waitables)")
    probes = {id(r): _probe(r) for r in refs}
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ready = [r for r in refs if probes[id(r)].done()]
        left = None if deadline is None else deadline - time.monotonic()
        if len(ready) >= num_returns or (left is not None and left <= 0):
            break
        pending = [p for p in probes.values() if not p.done()]
        if runtime.current() is not None:
            with runtime.blocking():
                concurrent.futures.wait(pending, left, concurrent.futures.FIRST_COMPLETED)
        else:
            concurrent.futures.wait(pending, left, concurrent.futures.FIRST_COMPLETED)
    chosen = {id(r) for r in ready[:num_returns]}
    return [r for r in refs if id(r) in chosen], [r for r in refs if id(r) not in chosen]


def cancel(ray_waitable: Any, *, force: bool = False, recursive: bool = True) -> None:
    if isinstance(ray_waitable, RefStream):
        ray_waitable = ray_waitable._probe()
    if not isinstance(ray_waitable, ObjectRef):
        raise TypeError(f"ray.cancel() only supported for ObjectRefs, got {type(ray_waitable).__name__}")
    inner = ray_waitable._inner
    if force and getattr(inner, "_ray_actor_call", False):
        raise ValueError("ray.cancel(force=True) would kill the whole actor: cancel an actor call without force")
    if isinstance(inner, Future):
        inner.cancel(force=force, recursive=recursive)
