"""A task that turns its own process into a dedicated one-slot worker: how actors are hosted.

``serve(host_id, state)`` runs inside a task. It dials the scheduler as a worker whose only
capability is ``actor.<host_id>=1`` and runs the tasks routed there (method calls) one at a time,
in arrival order, in this process, with ``state`` (the actor instance) available through
``current_state()``. It returns when the scheduler says ``Shutdown`` (the actor was killed). If
this process dies, the scheduler fails or retries in-flight calls, and the hosting task's own
retries restart the actor under the same id, so queued calls carry on.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from typing import Any

import zmq

from scaler.protocol import messages as m
from scaler.protocol.wire import ProtocolError, encode, split_batch
from scaler.utility import shm
from scaler.utility.capabilities import DEDICATED_PREFIX
from scaler.utility.security import keys_from_env
from scaler.utility.sockets import dial, recv_frames, send_frames
from scaler.worker import runtime
from scaler.worker.execute import Executor

log = logging.getLogger(__name__)
_state: Any = None
_host_id: str | None = None


def current_state() -> Any:
    return _state


def current_host_id() -> str | None:
    return _host_id


class DedicatedHost:
    def __init__(self, host_id: str, address: str) -> None:
        self.host_id = host_id
        self.context = zmq.Context()
        self.socket = dial(self.context, "a", address, keys_from_env())
        self.socket.connect(address)
        self.executor = Executor()
        self.pending: deque[tuple[m.RunTask, list[Any]]] = deque()
        self.fetching: set[str] = set()
        self.alive = True
        self.last_heard = time.monotonic()

    def send(self, msgs: list[Any], frames: list[Any] | None = None) -> None:
        send_frames(self.socket, [encode(msgs), *(frames or [])])

    def serve(self, death_timeout: float = 30.0) -> None:
        name = f"actor-{self.host_id}@{socket.gethostname()}:{os.getpid()}"
        caps = f"{DEDICATED_PREFIX}{self.host_id}=1"
        hello = m.Hello("worker", m.PROTOCOL_VERSION, name, caps, os.getpid(), socket.gethostname(), shm.host_domain())
        self.send([hello])
        next_beat = time.monotonic() + 1.0
        while self.alive:
            if self.socket.poll(max(1, int((next_beat - time.monotonic()) * 1000))):
                self._receive()
            self._run_ready()
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + 1.0
                self.send([m.Heartbeat(len(self.pending))])
                if now - self.last_heard > death_timeout:
                    log.error("actor host %s lost its scheduler", self.host_id)
                    break
        try:
            self.send([m.Goodbye("actor host exiting")])
        finally:
            self.socket.close(500)
            self.context.term()

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
        while self.pending and self.alive:
            msg, args = self.pending[0]
            missing = self.executor.missing(msg)
            if missing:
                wanted = [oid for oid in missing if oid not in self.fetching]
                if wanted:
                    self.fetching.update(wanted)
                    self.send([m.GetObject(oid) for oid in wanted])
                return
            self.pending.popleft()
            self.send([m.TasksStarted([msg.task_id])])
            done, out = self.executor.run(msg, args)
            self.send([done], out)
            if self.socket.poll(0):
                self._receive()


def serve(host_id: str, state: Any) -> None:
    """Host ``state`` as ``actor.<host_id>`` until the scheduler shuts this host down."""
    global _state, _host_id
    address = runtime.scheduler_address()
    if not address:
        raise RuntimeError("a dedicated host can only run inside a Scaler task")
    _state, _host_id = state, host_id
    try:
        DedicatedHost(host_id, address).serve()
    finally:
        _state, _host_id = None, None
