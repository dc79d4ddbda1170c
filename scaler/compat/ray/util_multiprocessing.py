"""``ray.util.multiprocessing``: the standard library's ``Pool`` API, running its work as Scaler tasks.

A pool of ``processes`` is a bound on how many of its tasks are in flight at once (default: the
cluster's CPUs), not a set of dedicated processes: each task runs a chunk of calls in whichever
task process a worker gives it. The ``initializer`` runs once in every process before the first
chunk of its pool there. ``maxtasksperchild`` cannot be honoured by shared processes, so it is
refused. Async calls are driven by a thread of their own, which also runs the callbacks.
"""

from __future__ import annotations

import collections
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import JoinableQueue, TimeoutError
from typing import Any

from scaler.compat.ray.refs import ObjectRef, cancel, get, wait
from scaler.compat.ray.remote_function import RemoteFunction
from scaler.compat.ray.unsupported import module_getattr

__getattr__ = module_getattr("ray.util.multiprocessing")

Call = tuple[tuple[Any, ...], dict[str, Any]]
_initialized: set[str] = set()  # in a task process: the pools whose initializer has run here


def _run_chunk(
    pool_id: str,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
    func: Callable[..., Any],
    calls: list[Call],
) -> list[Any]:
    if initializer is not None and pool_id not in _initialized:
        initializer(*initargs)
        _initialized.add(pool_id)
    return [func(*args, **kwargs) for args, kwargs in calls]


_RUN_CHUNK = RemoteFunction(_run_chunk, {})


class IMapIterator:
    """The results of one ``imap``/``imap_unordered``/``map`` call, with at most ``processes`` chunks in flight."""

    def __init__(self, pool: Pool, func: Callable[..., Any], chunks: Iterator[list[Call]], ordered: bool) -> None:
        self._pool = pool
        self._func = func
        self._chunks = chunks
        self._ordered = ordered
        self._pending: list[ObjectRef] = []
        self._values: collections.deque[Any] = collections.deque()
        pool._iterators.append(self)

    def __iter__(self) -> IMapIterator:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        """The next result; ``multiprocessing.TimeoutError`` if none arrives within ``timeout`` seconds."""
        while not self._values:
            self._top_up()
            if not self._pending:
                if self in self._pool._iterators:
                    self._pool._iterators.remove(self)
                raise StopIteration
            ready, _ = wait(self._pending[:1] if self._ordered else self._pending, num_returns=1, timeout=timeout)
            if not ready:
                raise TimeoutError
            self._pending.remove(ready[0])
            self._values.extend(get(ready[0]))
        return self._values.popleft()

    def _top_up(self) -> None:
        while len(self._pending) < self._pool._processes:
            chunk = next(self._chunks, None)
            if chunk is None:
                return
            self._pending.append(self._pool._submit(self._func, chunk))

    def cancel(self) -> None:
        for ref in self._pending:
            cancel(ref, force=True)


class AsyncResult:
    """The result of an ``*_async`` call, computed by a thread that then runs the callbacks."""

    def __init__(
        self,
        produce: Callable[[], Any],
        callback: Callable[[Any], None] | None,
        error_callback: Callable[[BaseException], None] | None,
    ) -> None:
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(produce, callback, error_callback), daemon=True, name="ray-pool-async"
        )
        self._thread.start()

    def _run(
        self,
        produce: Callable[[], Any],
        callback: Callable[[Any], None] | None,
        error_callback: Callable[[BaseException], None] | None,
    ) -> None:
        try:
            self._value = produce()
        except BaseException as exc:
            self._error = exc
            if error_callback is not None:
                error_callback(exc)
        else:
            if callback is not None:
                callback(self._value)
        finally:
            self._done.set()

    def ready(self) -> bool:
        return self._done.is_set()

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error is None

    def wait(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def get(self, timeout: float | None = None) -> Any:
        if not self._done.wait(timeout):
            raise TimeoutError
        if self._error is not None:
            raise self._error
        return self._value


class Pool:
    """``multiprocessing.Pool``'s API over Scaler tasks."""

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] | None = None,
        maxtasksperchild: int | None = None,
        context: Any = None,  # accepted as Ray does: there are no local processes to start
        ray_address: str | None = None,
        ray_remote_args: dict[str, Any] | None = None,
    ) -> None:
        from scaler.compat.ray.resources import cluster_resources
        from scaler.compat.ray.session import init, is_initialized

        if maxtasksperchild is not None:
            raise NotImplementedError(
                "ray.util.multiprocessing.Pool(maxtasksperchild=...) is not supported by Scaler: "
                "the pool's tasks run in shared worker processes"
            )
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if ray_address is not None and not is_initialized():
            init(address=ray_address)
        if processes is None:
            processes = int(cluster_resources().get("CPU", 0)) or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        self._processes = processes
        self._id = uuid.uuid4().hex
        self._initializer = initializer
        self._initargs = tuple(initargs or ())
        self._remote = _RUN_CHUNK.options(**ray_remote_args) if ray_remote_args else _RUN_CHUNK
        self._state = "running"
        self._iterators: list[IMapIterator] = []
        self._async: list[AsyncResult] = []

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *_: object) -> None:
        self.terminate()

    def _check_running(self) -> None:
        if self._state != "running":
            raise ValueError("Pool not running")

    def _submit(self, func: Callable[..., Any], chunk: list[Call]) -> ObjectRef:
        ref: ObjectRef = self._remote.remote(self._id, self._initializer, self._initargs, func, chunk)
        return ref

    def _chunksize(self, items: list[Any], chunksize: int | None) -> int:
        if chunksize is None:
            chunksize, extra = divmod(len(items), self._processes * 4)
            chunksize += 1 if extra else 0
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize}")
        return chunksize

    def _iterate(
        self, func: Callable[..., Any], items: Iterable[Any], chunksize: int, star: bool, ordered: bool
    ) -> IMapIterator:
        self._check_running()

        def chunks() -> Iterator[list[Call]]:
            chunk: list[Call] = []
            for item in items:
                chunk.append((tuple(item) if star else (item,), {}))
                if len(chunk) >= chunksize:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

        return IMapIterator(self, func, chunks(), ordered)

    def _async_call(
        self,
        produce: Callable[[], Any],
        callback: Callable[[Any], None] | None,
        error_callback: Callable[[BaseException], None] | None,
    ) -> AsyncResult:
        self._check_running()
        result = AsyncResult(produce, callback, error_callback)
        self._async.append(result)
        return result

    def apply(
        self, func: Callable[..., Any], args: tuple[Any, ...] | None = None, kwargs: dict[str, Any] | None = None
    ) -> Any:
        return self.apply_async(func, args, kwargs).get()

    def apply_async(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        callback: Callable[[Any], None] | None = None,
        error_callback: Callable[[BaseException], None] | None = None,
    ) -> AsyncResult:
        self._check_running()
        results = IMapIterator(self, func, iter([[(tuple(args or ()), dict(kwargs or {}))]]), True)
        return self._async_call(lambda: next(results), callback, error_callback)

    def map(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None = None) -> list[Any]:
        items = list(iterable)
        return list(self._iterate(func, items, self._chunksize(items, chunksize), False, True))

    def map_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[Any], None] | None = None,
        error_callback: Callable[[BaseException], None] | None = None,
    ) -> AsyncResult:
        items = list(iterable)
        results = self._iterate(func, items, self._chunksize(items, chunksize), False, True)
        return self._async_call(lambda: list(results), callback, error_callback)

    def starmap(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None = None) -> list[Any]:
        items = list(iterable)
        return list(self._iterate(func, items, self._chunksize(items, chunksize), True, True))

    def starmap_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        callback: Callable[[Any], None] | None = None,
        error_callback: Callable[[BaseException], None] | None = None,
        chunksize: int | None = None,
    ) -> AsyncResult:
        items = list(iterable)
        results = self._iterate(func, items, self._chunksize(items, chunksize), True, True)
        return self._async_call(lambda: list(results), callback, error_callback)

    def imap(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None = 1) -> IMapIterator:
        return self._iterate(func, iterable, chunksize or 1, False, True)

    def imap_unordered(
        self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None = 1
    ) -> IMapIterator:
        return self._iterate(func, iterable, chunksize or 1, False, False)

    def close(self) -> None:
        """No more work may be given; what was given still runs."""
        if self._state == "running":
            self._state = "closed"

    def terminate(self) -> None:
        """Stop at once: the pool's tasks still in flight are cancelled."""
        self._state = "terminated"
        for results in self._iterators:
            results.cancel()

    def join(self) -> None:
        """Wait for the async work given before ``close`` or ``terminate``."""
        if self._state == "running":
            raise ValueError("Pool is still running")
        for result in self._async:
            result.wait()


__all__ = ["JoinableQueue", "Pool", "TimeoutError"]  # the first and last are the standard library's, as in Ray
