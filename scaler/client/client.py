"""``Client``: submit, map, put, get, cancel, wait and as_completed against one scheduler.

Submitting never blocks on the scheduler (only on the client's own backpressure bound): refs and
futures among the arguments, also inside lists, dicts and tuples, become dependencies the
scheduler waits for. Each function is shipped once per client and referred to by id afterwards.
Refs inside a put value (and, through the worker, inside a task's result) are announced with it:
the scheduler keeps their objects while the object holding them is kept.
A client still open when the program ends is closed at exit (``close_all_clients``).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from scaler.client import output
from scaler.client.connection import Connection
from scaler.client.future import REMOTE, Future, ObjectRef, Payload
from scaler.client.round_trips import SYNC_KEY, RoundTrips
from scaler.client.streams import Streams
from scaler.errors import (
    BackpressureError,
    ConnectionFailedError,
    ObjectLostError,
    SchedulerShutdownError,
    TaskRejectedError,
)
from scaler.protocol import messages as m
from scaler.utility import serialization as ser
from scaler.utility import shm
from scaler.utility.capabilities import DEFAULT_TASK_REQUEST, canonical
from scaler.utility.ids import IdMaker
from scaler.utility.security import CurveKeys, keys_from_env, no_answer
from scaler.utility.sockets import SECRET_WAIT
from scaler.worker import runtime

log = logging.getLogger(__name__)
_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


@dataclass(frozen=True)
class ClientConfig:
    connect_timeout: float = 15.0
    heartbeat_interval: float = 1.0
    peer_timeout: float = 30.0
    backpressure_timeout: float | None = None
    curve_keys: str | None = None
    name: str = ""


@dataclass(frozen=True)
class TaskOptions:
    capabilities: str = DEFAULT_TASK_REQUEST
    max_retries: int = 3
    retry_exceptions: bool = False
    timeout: float = 0.0
    stream_output: bool = False
    num_returns: int = 1
    resolve_nested: bool = True
    name: str = ""
    actor_id: str = ""
    detached: bool = False
    placement: str = ""  # a placement group's id: run inside one of its bundles
    bundle: int = -1  # which bundle (-1: any)
    node: str = ""  # run only on the worker of this name


class Client:
    """A connection to a scheduler. ``Client()`` inside a task reaches the task's own scheduler."""

    def __init__(self, address: str | None = None, config: ClientConfig | None = None, **options: Any) -> None:
        self.config = config or ClientConfig()
        self.address = address or runtime.scheduler_address() or os.environ.get("SCALER_ADDRESS") or ""
        if not self.address:
            raise ValueError("Client() needs a scheduler address (tcp://HOST:PORT), or run inside a task")
        defaults = TaskOptions(stream_output=output.stream_by_default())
        self.default_options = replace(defaults, **options) if options else defaults
        self._output_lines: dict[str, bool] = {}
        self._ids = IdMaker("t")
        self._pending: dict[str, list[Future]] = {}
        self._fetches: dict[str, list[concurrent.futures.Future[Any]]] = {}
        self._fetch_lock = threading.Lock()
        self._functions: dict[Any, str] = {}
        self._releases: list[str] = []
        self._cond = threading.Condition()
        self._limits = (1 << 62, 1 << 62)
        self._outstanding_bytes = 0
        self._task_bytes: dict[str, int] = {}
        self._closed = False
        self._failure: str | None = None
        self._welcome: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._shm_prefix = ""
        self._streams = Streams(self)  # streaming tasks' items as they come (client/streams.py)
        self._trips = RoundTrips(lambda msg, frames: self._conn.send(msg, frames))  # KV, sync, status
        keys_dir = self.config.curve_keys
        keys = CurveKeys(__import__("pathlib").Path(keys_dir)) if keys_dir else keys_from_env()
        self._conn = Connection(
            self.address,
            keys,
            self._on_batch,
            self._on_failure,
            self.config.heartbeat_interval,
            self.config.peer_timeout,
            min(SECRET_WAIT, self.config.connect_timeout),
        )
        hello = m.Hello(
            "client",
            m.PROTOCOL_VERSION,
            self.config.name or self._ids.prefix,
            pid=os.getpid(),
            domain=shm.host_domain(),
        )
        self._conn.send(hello)
        try:
            welcome = self._welcome.result(self.config.connect_timeout)
        except concurrent.futures.TimeoutError:
            self._conn.close(linger_ms=0)
            why = no_answer(self.address, self.config.connect_timeout, keys is not None)
            raise ConnectionFailedError(why) from None
        except ConnectionFailedError:
            self._conn.close(linger_ms=0)
            raise
        self._limits = (welcome.max_queued_tasks, welcome.max_queued_bytes)
        self._shm_prefix = welcome.shm_prefix if shm.available() else ""
        _live_clients.add(self)

    # -- submitting -------------------------------------------------------------------------

    def options(self, **options: Any) -> _OptionsView:
        """A view of this client whose ``submit``/``map`` use these task options (merged)."""
        return _OptionsView(self, replace(self.default_options, **options))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """A ``Future``; with ``num_returns`` other than 1, a list of that many futures."""
        return _one_or_list(self.submit_with(self.default_options, fn, args, kwargs), self.default_options)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Future]:
        opts = self.default_options
        return [self.submit_with(opts, fn, args, {})[0] for args in zip(*iterables, strict=False)]

    def submit_with(self, opts: TaskOptions, fn: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> list[Future]:
        self._check_open()
        if not callable(fn):
            raise TypeError(f"submit needs a callable, got {type(fn).__name__}")
        func_id, temporary = self._function_id(fn)
        borrowed: list[str] = []
        deps: list[str] = []
        if args or kwargs:
            with ser.collect_refs() as found:
                frames = ser.dumps((args, kwargs), self._shm_prefix)
            nbytes = shm.payload_nbytes(frames)  # a shared-memory argument counts its real size
            if opts.resolve_nested:
                deps = [object_id for object_id, _ in found]
            else:
                deps = [object_id for object_id, top in found if top]
                borrowed = list(dict.fromkeys(object_id for object_id, top in found if not top))
        else:
            frames, nbytes = [], 0
        self._admit(nbytes)
        task_id = self._ids.next()
        n = opts.num_returns
        if n < 0 or opts.max_retries < 0 or opts.timeout < 0:
            raise ValueError("num_returns, max_retries and timeout must be >= 0")
        ids = [task_id] if n == 1 else [f"{task_id}#{i}" for i in range(n)]
        futures = [Future(self, object_id, task_id) for object_id in ids]
        self._pending[task_id] = futures
        if nbytes:
            self._task_bytes[task_id] = nbytes
        caps = opts.capabilities if opts.capabilities == DEFAULT_TASK_REQUEST else canonical(opts.capabilities)
        name = opts.name or getattr(fn, "__qualname__", "") or type(fn).__name__
        msg = m.SubmitTask(
            task_id,
            func_id,
            caps,
            list(dict.fromkeys(deps)),
            len(frames),
            name,
            n,
            opts.max_retries,
            opts.timeout,
            opts.stream_output,
            opts.resolve_nested,
            opts.retry_exceptions,
            borrowed,
            opts.actor_id,
            opts.detached,
            runtime.current_task_id(),
            opts.placement,
            opts.bundle,
            opts.node,
        )
        self._conn.send(msg, frames)
        runtime.note_sender(self)
        if temporary:
            self._release_later(func_id)
        return futures

    def _function_id(self, fn: Callable[..., Any]) -> tuple[str, bool]:
        try:
            found = self._functions.get(fn)
            hashable = True
        except TypeError:
            found, hashable = None, False
        if found is not None:
            return found, False
        ref = self.put(fn)
        ref._client = None
        if hashable:
            self._functions[fn] = ref.object_id
        return ref.object_id, not hashable

    def _admit(self, nbytes: int) -> None:
        max_tasks, max_bytes = self._limits
        if len(self._pending) < max_tasks and self._outstanding_bytes + nbytes <= max_bytes:
            self._outstanding_bytes += nbytes
            return
        deadline = (
            None if self.config.backpressure_timeout is None else time.monotonic() + self.config.backpressure_timeout
        )
        with self._cond:
            while len(self._pending) >= max_tasks or (
                self._outstanding_bytes + nbytes > max_bytes and self._outstanding_bytes > 0
            ):
                self._check_open()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise BackpressureError(
                        f"{len(self._pending)} tasks / {self._outstanding_bytes} bytes already queued "
                        f"(limits {max_tasks} tasks, {max_bytes} bytes per client)"
                    )
                self._cond.wait(0.1 if left is None else min(left, 0.1))
            self._outstanding_bytes += nbytes

    def put(self, value: Any) -> ObjectRef:
        """Store ``value`` in the scheduler; refs and futures inside it stay alive while it does."""
        self._check_open()
        frames, holds = ser.dumps_holding(value, self._shm_prefix)
        return self._put_frames(frames, holds, False)

    def put_error(self, error: BaseException) -> ObjectRef:
        """Store ``error`` as an object that raises it wherever it is read (``get``, task arguments)."""
        self._check_open()
        return self._put_frames(ser.dumps_exception(error), [], True)

    def _put_frames(self, frames: list[Any], holds: list[str], is_error: bool) -> ObjectRef:
        object_id = self._ids.next()
        self._conn.send(m.PutObject(object_id, len(frames), holds, is_error=is_error), frames)
        runtime.note_sender(self)
        return ObjectRef(object_id, self)

    def _hold_loaded(self, refs: list[ObjectRef]) -> None:
        """``refs`` arrived inside a value this client just loaded: keep their objects while any of
        them lives here, also after the object they came in is released. One put of the refs, which
        holds them, released when the last of them goes. It leaves before this client can release the
        object they came in (whose ref is alive while it loads), so the refs are never unheld."""
        if self._closed or self._failure is not None:
            return
        anchor = self._ids.next()
        frames, holds = ser.dumps_holding(refs, self._shm_prefix)
        self._conn.send(m.PutObject(anchor, len(frames), holds), frames)
        holder = ObjectRef(anchor, self)
        for ref in refs:
            ref._holder = holder

    def _lend(self, task_id: str, object_ids: list[str]) -> None:
        """Keep the objects of ``object_ids`` that this client may hold alive until task ``task_id``
        (running in this process) ends: its result holds them, and this client's refs to them are
        about to go. A put of those refs, lent to the task and released at once (see runtime.settle)."""
        anchor = self._ids.next()
        frames = ser.dumps(None)  # what matters is what it holds; its value is never read
        self._conn.send(m.PutObject(anchor, len(frames), list(dict.fromkeys(object_ids)), task_id), frames)
        self._release_later(anchor)

    # -- getting ----------------------------------------------------------------------------

    def get(self, what: Any, timeout: float | None = None) -> Any:
        if isinstance(what, (list, tuple)):
            deadline = None if timeout is None else time.monotonic() + timeout
            out = []
            for item in what:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                out.append(self.get(item, left))
            return out
        if isinstance(what, Future):
            return what.result(timeout)
        if isinstance(what, ObjectRef):
            return self._fetch_payload(what.object_id, timeout).get()
        raise TypeError(f"get() takes a Future, an ObjectRef or a list of them, not {type(what).__name__}")

    def fetch_async(self, object_id: str) -> concurrent.futures.Future[Any]:
        """A future done when the scheduler has the object: with its ``Payload``, or the exception
        saying why it cannot be had. Never blocks; one request serves every concurrent fetch."""
        waiter: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._fetch_lock:
            if self._failure is not None or self._closed:
                waiter.set_result(ConnectionFailedError(self._failure or "this client is closed"))
                return waiter
            waiters = self._fetches.get(object_id)
            first = waiters is None
            if waiters is None:
                waiters = self._fetches[object_id] = []
            waiters.append(waiter)
        if first:
            self._conn.send(m.GetObject(object_id))
        return waiter

    def _fetch_payload(
        self, object_id: str, timeout: float | None, waiter: concurrent.futures.Future[Any] | None = None
    ) -> Payload:
        """The object's payload, from ``waiter`` (a ``fetch_async`` already made) or a new fetch."""
        waiter = waiter or self.fetch_async(object_id)
        if not waiter.done() and runtime.current() is not None:
            with runtime.blocking():
                concurrent.futures.wait([waiter], timeout)
        try:
            payload = waiter.result(timeout)
        except concurrent.futures.TimeoutError:
            raise concurrent.futures.TimeoutError(f"object {object_id} not available within {timeout}s") from None
        if isinstance(payload, BaseException):
            raise payload
        if not isinstance(payload, Payload):
            raise TypeError(f"unexpected payload for object {object_id}")
        return payload

    def cancel(self, futures: Future | Iterable[Future], force: bool = False, recursive: bool = True) -> None:
        """Cancel tasks and, with ``recursive``, every task they submitted (as Ray does)."""
        items = [futures] if isinstance(futures, Future) else list(futures)
        # A second cancel with force escalates one that was asked to stop but ignored it.
        ids = [f.task_id for f in items if f._set_cancelled() or (force and f.cancelled())]
        self._cancel_ids(ids, force, recursive)

    def _cancel_ids(self, task_ids: list[str], force: bool, recursive: bool = True) -> None:
        if task_ids and not self._closed:
            self._conn.send(m.CancelTasks(task_ids, force, recursive))

    def wait(
        self,
        futures: Iterable[Future],
        timeout: float | None = None,
        return_when: str = concurrent.futures.ALL_COMPLETED,
    ) -> Any:
        items = list(futures)
        if runtime.current() is not None and not all(f.done() for f in items):
            with runtime.blocking():
                return concurrent.futures.wait(items, timeout, return_when)
        return concurrent.futures.wait(items, timeout, return_when)

    def as_completed(self, futures: Iterable[Future], timeout: float | None = None) -> Iterator[Future]:
        for done in concurrent.futures.as_completed(list(futures), timeout):
            if isinstance(done, Future):
                yield done

    def kv_put(self, key: str, value: Any, if_absent: bool = False, timeout: float = 30.0, actor_id: str = "") -> Any:
        """Store ``value`` under ``key`` in the scheduler (until actor ``actor_id``, if given, dies);
        returns the value stored there afterwards."""
        frames = ser.dumps(value)
        return self._named(key, m.KVPut(key, len(frames), if_absent, actor_id), frames, timeout)

    def kv_get(self, key: str, timeout: float = 30.0) -> Any:
        """The value stored under ``key``, or ``None``."""
        return self._named(key, m.KVGet(key), [], timeout)

    def sync(self, timeout: float = 30.0) -> None:
        """Return once the scheduler has handled all this client sent before (one round trip)."""
        self._named(SYNC_KEY, m.KVGet(SYNC_KEY), [], timeout)

    def kv_delete(self, key: str) -> None:
        self._conn.send(m.KVDelete(key))

    def send_control(self, msg: m.ReserveBundles | m.FreeBundles) -> None:
        """Send a control message that has no reply (a placement group's reservation or removal); from
        inside a task, it names that task, whose job the group is then, and returns once the scheduler
        has handled it (the task's end, which goes by its worker, must not overtake it)."""
        self._check_open()
        msg.parent = msg.parent or runtime.current_task_id()
        self._conn.send(msg)
        if msg.parent:
            self.sync()

    def _named(self, key: str, msg: m.KVPut | m.KVGet, frames: list[Any], timeout: float) -> Any:
        self._check_open()
        reply_frames = self._trips.named(key, msg, frames, timeout)
        return None if reply_frames is None else ser.loads(reply_frames)

    def scheduler_status(self, timeout: float = 5.0) -> m.StatusReply:
        self._check_open()
        reply = self._trips.status(timeout)
        return reply

    # -- incoming (I/O thread) --------------------------------------------------------------

    def _on_batch(self, batch: list[tuple[Any, list[Any]]]) -> None:
        released = False
        for msg, payload in batch:
            kind = type(msg)
            if kind is m.TaskResult:
                self._on_result(msg, payload)
                self._streams.ended(msg.task_id)  # after its last item and its future's outcome
                released = True
            elif kind is m.ObjectReply:
                self._on_object(msg, payload)
            elif kind is m.StreamReady:
                self._streams.on_ready(msg, payload)
            elif kind is m.TaskOutput:
                output.write(msg, self._output_lines)
            elif kind is m.TaskRejected:
                self._fail_task(msg.task_id, TaskRejectedError(f"task {msg.task_id} rejected: {msg.reason}"))
                released = True
            elif kind is m.Welcome:
                self._welcome.set_result(msg)
            elif kind is m.KVReply or kind is m.StatusReply:
                self._trips.on_reply(msg, payload)
            elif kind is m.Refused:
                self._on_failure(f"scheduler {self.address} refused this client: {msg.reason}")
            elif kind is m.Shutdown:
                self._on_failure(f"scheduler {self.address} shut down: {msg.reason}", shutdown=True)
        if self._releases:
            ids, self._releases = self._releases, []
            self._conn.send(m.Release(ids))
        if released and len(self._pending) < 64:
            with self._cond:
                self._cond.notify_all()

    def _on_result(self, msg: m.TaskResult, payload: list[Any]) -> None:
        futures = self._pending.pop(msg.task_id, None)
        if futures is None:
            return
        if self._task_bytes:
            self._outstanding_bytes -= self._task_bytes.pop(msg.task_id, 0)
        pos = 0
        pushed: dict[str, tuple[list[Any], bool]] = {}
        for header in msg.objects:
            pushed[header.object_id] = (payload[pos : pos + header.nbufs], header.is_error)
            pos += header.nbufs
        error: BaseException | None = None
        if msg.status != "done":
            frames = next(iter(pushed.values()))[0] if pushed else None
            error = ser.loads_exception(frames) if frames else ObjectLostError(msg.message or msg.status)
        for future in futures:
            if error is not None:
                _settle(future, error=error)
                continue
            entry = pushed.get(future.object_id)
            if entry is None:
                _settle(future, REMOTE)
            elif entry[1]:
                _settle(future, error=ser.loads_exception(entry[0]))
            else:
                _settle(future, Payload(entry[0], self))

    def _on_object(self, msg: m.ObjectReply, payload: list[Any]) -> None:
        with self._fetch_lock:
            waiters = self._fetches.pop(msg.object_id, [])
        if not msg.found:  # with a payload: the error to raise (e.g. OwnerDiedError)
            value: Any = ser.loads_exception(payload) if payload else ObjectLostError(msg.message)
        elif msg.is_error:
            value = ser.loads_exception(payload)
        else:
            value = Payload(payload, self)
        for waiter in waiters:
            waiter.set_result(value)

    def _fail_task(self, task_id: str, error: BaseException) -> None:
        self._outstanding_bytes -= self._task_bytes.pop(task_id, 0)
        for future in self._pending.pop(task_id, []):
            _settle(future, error=error)
        self._streams.ended(task_id)

    def _on_failure(self, reason: str, shutdown: bool = False) -> None:
        if self._failure is not None:
            return
        self._failure = reason
        error = SchedulerShutdownError(reason) if shutdown else ConnectionFailedError(reason)
        if not self._welcome.done():
            self._welcome.set_exception(error)
        self._trips.fail(error)
        for task_id in list(self._pending):
            self._fail_task(task_id, error)
        with self._fetch_lock:
            fetches, self._fetches = self._fetches, {}
        for object_id in list(fetches):
            for waiter in fetches.pop(object_id, []):
                waiter.set_result(error)
        conn = self.__dict__.get("_conn")  # the I/O thread may fail before __init__ stored it
        if conn is not None:
            conn.running = False

    def _release_later(self, object_id: str) -> None:
        if not self._closed:
            self._releases.append(object_id)
            if len(self._releases) >= 1024:
                ids, self._releases = self._releases, []
                self._conn.send(m.Release(ids))

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionFailedError("this client is closed")
        if self._failure is not None:
            raise ConnectionFailedError(self._failure)

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True  # releases stop here: the Goodbye releases everything this client owns
        self._conn.close(last=m.Goodbye("client closed") if self._failure is None else None)
        error = ConnectionFailedError("the client was closed")
        for task_id in list(self._pending):
            self._fail_task(task_id, error)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<scaler.Client {self.address} pending={len(self._pending)}>"


def _settle(future: Future, value: Any = None, error: BaseException | None = None) -> None:
    """Complete ``future`` unless the user's thread cancelled it first (a race we lose quietly)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
    except concurrent.futures.InvalidStateError:
        pass


class _OptionsView:
    def __init__(self, client: Client, opts: TaskOptions) -> None:
        self.client = client
        self.opts = opts

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return _one_or_list(self.client.submit_with(self.opts, fn, args, kwargs), self.opts)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Future]:
        return [self.client.submit_with(self.opts, fn, args, {})[0] for args in zip(*iterables, strict=False)]


def _one_or_list(futures: list[Future], opts: TaskOptions) -> Future | list[Future]:
    return futures[0] if opts.num_returns == 1 else futures


@atexit.register
def close_all_clients() -> None:
    """Close every open client: at exit, and before a ``LocalCluster`` stops at exit (each says
    goodbye while its scheduler still listens, and its I/O thread ends before the process does)."""
    for client in list(_live_clients):
        try:
            client.close()
        except Exception:
            pass
