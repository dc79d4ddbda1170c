"""A task that turns its own process into a dedicated worker: how actors are hosted.

``serve(host_id, make_state, concurrency)`` runs inside a task. It builds the actor instance with
``make_state`` (an async actor's on its event loop), dials the scheduler as a worker whose only
capability is ``actor.<host_id>`` (and its concurrency groups' slots) and runs the tasks routed
there (method calls) in this process, with the instance available through ``current_state()``:
one at a time, in arrival order, for a plain actor; several at once on threads or an event loop
for a threaded or async one (``actor_calls.py``). The calls run off this loop, which keeps
heartbeating, taking calls and cancels, and sends each result when its call ends. It returns when
the scheduler says ``Shutdown`` (the actor was killed). If this process dies, the scheduler fails
or retries in-flight calls, and the hosting task's own retries restart the actor under the same
id, so queued calls carry on.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from scaler.protocol import messages as m
from scaler.protocol.wire import ProtocolError, encode, split_batch
from scaler.utility import shm
from scaler.utility.security import keys_from_env
from scaler.utility.sockets import dial, recv_frames, send_frames
from scaler.worker import runtime
from scaler.worker.actor_calls import CallRunner, Concurrency, group_of
from scaler.worker.execute import Done, Executor

log = logging.getLogger(__name__)
_state: Any = None
_host_id: str | None = None
_host: DedicatedHost | None = None


def current_state() -> Any:
    return _state


def current_host_id() -> str | None:
    return _host_id


def current_concurrency() -> Concurrency | None:
    """How the actor hosted in this process runs its calls (None: no actor here)."""
    return _host.concurrency if _host is not None else None


def on_event_loop() -> bool:
    """True in the event loop thread of the async actor hosted in this process."""
    return _host is not None and _host.runner.on_loop()


class DedicatedHost:
    def __init__(self, host_id: str, address: str, concurrency: Concurrency | None = None) -> None:
        self.host_id = host_id
        self.concurrency = concurrency or Concurrency()
        self.context = zmq.Context()
        self.socket = dial(self.context, "a", address, keys_from_env())
        self.socket.connect(address)
        self.executor = Executor(concurrent=True)
        self.pending: deque[tuple[m.RunTask, list[Any]]] = deque()
        self.fetching: set[str] = set()
        self.alive = True
        self.last_heard = time.monotonic()
        self.results: queue.SimpleQueue[tuple[Any, list[Any]]] = queue.SimpleQueue()  # TaskDone or StreamItem
        self.wake_read, self.wake_write = socket.socketpair()
        self.wake_read.setblocking(False)
        self.wake_write.setblocking(False)
        host = runtime.current()
        self.runner = CallRunner(self.executor, self.concurrency, self._finished, host.caps_key if host else "")
        self.executor.emit = self._queue  # a streaming call's items go up in order with its result

    def _finished(self, task_id: str, outcome: Done) -> None:
        """From a call's thread: its result is ready; the loop sends it."""
        self._queue(*outcome)

    def _queue(self, msg: Any, frames: list[Any]) -> None:
        """From a call's thread: a message for the scheduler (a result, a stream item); the loop sends it."""
        self.results.put((msg, frames))
        try:
            self.wake_write.send(b"x")
        except BlockingIOError:
            pass  # the loop is awake already: the pipe is full of wake-ups
        except OSError:
            pass  # the host has ended (its actor died) while this call still ran: no one to tell

    def send(self, msgs: list[Any], frames: list[Any] | None = None) -> None:
        send_frames(self.socket, [encode(msgs), *(frames or [])])

    def serve(self, death_timeout: float = 30.0) -> None:
        name = f"actor-{self.host_id}@{socket.gethostname()}:{os.getpid()}"
        caps = self.concurrency.capabilities(self.host_id)
        hello = m.Hello("worker", m.PROTOCOL_VERSION, name, caps, os.getpid(), socket.gethostname(), shm.host_domain())
        self.send([hello])
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.wake_read, zmq.POLLIN)
        next_beat = time.monotonic() + 1.0
        try:
            while self.alive:
                ready = dict(poller.poll(max(1, int((next_beat - time.monotonic()) * 1000))))
                if self.socket in ready:
                    self._receive()
                self._send_results()
                self._run_ready()
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + 1.0
                    self.send([m.Heartbeat(len(self.pending) + self.runner.count())])
                    if now - self.last_heard > death_timeout:
                        log.error("actor host %s lost its scheduler", self.host_id)
                        break
        finally:
            self.close(goodbye=True)

    def close(self, goodbye: bool) -> None:
        self.runner.close()
        try:
            if goodbye:
                self.send([m.Goodbye("actor host exiting")])
        finally:
            self.socket.close(500)
            self.context.term()
            self.wake_read.close()
            self.wake_write.close()

    def _send_results(self) -> None:
        try:
            while self.wake_read.recv(4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                msg, out = self.results.get_nowait()
            except queue.Empty:
                return
            if type(msg) is m.TaskDone:
                self.runner.ended(msg.task_id)
            self.send([msg], out)

    def _receive(self) -> None:
        while self.socket.poll(0):
            frames = recv_frames(self.socket)
            self.last_heard = time.monotonic()
            try:
                batch = split_batch(frames)
            except ProtocolError as exc:
                log.warning("actor host dropped a malformed message: %s", exc)
                continue
            for msg, payload in batch:
                self._handle(msg, payload)

    def _handle(self, msg: Any, payload: list[Any]) -> None:
        kind = type(msg)
        if kind is m.RunTask:
            args = self.executor.store(msg, payload)
            self.pending.append((msg, args))
        elif kind is m.ObjectReply:
            self.fetching.discard(msg.object_id)
            if msg.found:
                self.executor.objects[msg.object_id] = (payload, msg.is_error)
            else:
                self._fail_waiting(msg.object_id, msg.message)
        elif kind is m.CancelOnWorker:
            for task_id in msg.task_ids:
                if self.runner.cancel(task_id):
                    continue
                for entry in list(self.pending):
                    if entry[0].task_id == task_id:
                        self.pending.remove(entry)
                        self.send([m.TaskDone(task_id, "cancelled", attempt=entry[0].attempt)])
        elif kind is m.Reclaim:
            self.send([m.Reclaimed([])])
        elif kind is m.ObjectsFreed:
            self.executor.drop(msg.object_ids)
        elif kind is m.Shutdown or kind is m.Refused:
            self.alive = False

    def _fail_waiting(self, object_id: str, why: str) -> None:
        for entry in list(self.pending):
            msg = entry[0]
            if object_id in (msg.func_id, *msg.deps):
                self.pending.remove(entry)
                text = f"argument {object_id} is gone: {why}"
                self.send([m.TaskDone(msg.task_id, "missing", message=text, attempt=msg.attempt)])

    def _run_ready(self) -> None:
        """Start the calls that may start: in order; a plain actor's head call waits for its
        arguments and its turn, while a concurrent actor's later calls may pass a waiting one."""
        in_order = self.concurrency.in_order
        for entry in list(self.pending):
            if not self.alive:
                return
            msg, args = entry
            missing = self.executor.missing(msg)
            if missing:
                wanted = [oid for oid in missing if oid not in self.fetching]
                if wanted:
                    self.fetching.update(wanted)
                    self.send([m.GetObject(oid) for oid in wanted])
                if in_order:
                    return
                continue
            group = group_of(msg.capabilities, self.host_id)
            if not self.runner.has_room(group):
                if in_order:
                    return
                continue
            self.pending.remove(entry)
            self.send([m.TasksStarted([msg.task_id])])
            self.runner.start(msg, args, group)


def serve(host_id: str, make_state: Callable[[], Any], concurrency: Concurrency | None = None) -> None:
    """Host what ``make_state()`` builds as ``actor.<host_id>`` until the scheduler shuts this host down."""
    global _state, _host_id, _host
    address = runtime.scheduler_address()
    if not address:
        raise RuntimeError("a dedicated host can only run inside a Scaler task")
    host = DedicatedHost(host_id, address, concurrency)
    try:
        state = host.runner.build(make_state)
    except BaseException:
        host.close(goodbye=False)
        raise
    _state, _host_id, _host = state, host_id, host
    try:
        host.serve()
    finally:
        _state, _host_id, _host = None, None, None
