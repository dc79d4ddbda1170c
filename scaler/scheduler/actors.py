"""Actors as the scheduler sees them: which task hosts each actor, which actors are dead and why, what
an actor's death does to the calls waiting for it and to its dedicated worker, and the table of named
values (a named actor's handle, for one) that the KV messages read and write.

An actor is a long-running *host task* (``SubmitTask.actor_id``) whose process starts a dedicated
worker with the quantity ``actor.<id>``; a call is a task asking for that quantity. The engine calls in
here when a host task is submitted, ends or crashes, and when a call is submitted; everything about
actors' lives is kept here rather than in the engine.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from scaler.protocol import messages as m
from scaler.scheduler.names import Names
from scaler.scheduler.tasks import Task, TaskState
from scaler.scheduler.workers import WorkerState
from scaler.utility.capabilities import DEDICATED_PREFIX

if TYPE_CHECKING:
    from scaler.scheduler.engine import Engine

S = TaskState


class CallOrder:
    """A caller's calls to one actor are queued in the order they were made, as Ray runs them: a call
    whose arguments are not ready yet holds back the caller's later calls to that actor. Calls go in
    a line only while one of them waits, so the common case costs one dict lookup."""

    def __init__(self) -> None:
        self.lines: dict[tuple[bytes, str], deque[Task]] = {}

    def must_wait(self, call: Task) -> bool:
        """Put ``call`` (just submitted) in its line if it waits for arguments or earlier calls wait."""
        key = (call.client, call.calls_actor)
        line = self.lines.get(key)
        if line is None and call.missing == 0:
            return False
        if line is None:
            line = self.lines[key] = deque()
        line.append(call)
        return True

    def ready(self, call: Task) -> list[Task]:
        """``call`` has its arguments (or ended): the calls of its line that may be queued now, in order."""
        key = (call.client, call.calls_actor)
        line = self.lines.get(key)
        released: list[Task] = []
        while line:
            head = line[0]
            if head.state is S.WAITING and head.missing > 0:
                break
            line.popleft()
            if head.state is S.WAITING:
                released.append(head)
        if line is not None and not line:
            del self.lines[key]
        return released


class Actors:
    """The actor tables: live hosts, the dead (with why), the named values, and the order of calls."""

    def __init__(self) -> None:
        self.hosts: dict[str, Task] = {}
        self.dead: dict[str, str] = {}
        self.names = Names()
        self.order = CallOrder()

    def hosted(self, task: Task, actor_id: str) -> None:
        """``task`` hosts ``actor_id`` (a new actor, or a restart under the same id)."""
        task.actor_id = actor_id
        self.hosts[actor_id] = task
        self.dead.pop(actor_id, None)

    def called(self, task: Task) -> str | None:
        """Note which actor ``task`` calls (if any); why that actor is dead, or None."""
        for name, _ in task.request.quantities:
            if name.startswith(DEDICATED_PREFIX):
                task.calls_actor = name[len(DEDICATED_PREFIX) :]
                return self.dead.get(task.calls_actor)
        return None

    def joined(self, worker: WorkerState) -> None:
        """An actor's dedicated worker joined: remember which run of its host task it belongs to."""
        for name in worker.total:
            host = self.hosts.get(name[len(DEDICATED_PREFIX) :]) if name.startswith(DEDICATED_PREFIX) else None
            if host is not None:
                worker.host_attempts = host.attempts

    def restarting(self, actor_id: str, worker: WorkerState | None) -> bool:
        """The actor restarts after the death of ``worker``'s process (counted already, or restarts left)."""
        host = self.hosts.get(actor_id)
        if host is None or host.cancel_requested or actor_id in self.dead:
            return False
        counted = worker is not None and 0 <= worker.host_attempts < host.attempts
        return counted or host.attempts < host.max_retries

    def host_ended(self, task: Task) -> str | None:
        """``task`` ended; if it hosted a live actor, why that actor is now dead."""
        if not task.actor_id or self.hosts.get(task.actor_id) is not task:
            return None
        del self.hosts[task.actor_id]
        if task.state is S.CANCELLED:
            return "it was killed"
        if task.state is S.DONE:
            return "its host task ended"
        return "its creation failed or its process died more often than max_restarts"


def actor_died(engine: Engine, actor_id: str, reason: str) -> None:
    """Fail the calls waiting for a dead actor and stop its dedicated worker (idempotent)."""
    actors = engine.actors
    if actor_id in actors.dead:
        return
    actors.dead[actor_id] = reason
    actors.names.actor_died(actor_id)  # its name is free again
    doomed = [t for t in engine.tasks.values() if t.calls_actor == actor_id and t.state in (S.WAITING, S.QUEUED)]
    for task in doomed:
        if task.state is S.QUEUED:
            engine.queues.remove(task)
        text = f"{task.label}: actor {actor_id} died: {reason}"
        engine.fail(task, "ActorDiedError", text)
    for worker in list(engine.pool.workers.values()):
        if worker.capabilities.as_dict().get(f"{DEDICATED_PREFIX}{actor_id}"):
            engine.pool.set_draining(worker.identity, True)
            for task in worker.assigned.values():
                if task.worker is not None and task.state in (S.ASSIGNED, S.RUNNING):
                    task.cancel_requested = True
            engine.out.send(worker.identity, m.Shutdown(f"actor {actor_id} died: {reason}"))


def crashed_call_error(engine: Engine, task: Task, why: str, worker: WorkerState | None) -> tuple[str, str]:
    """The error kind and text for an actor call whose actor's process died while running it."""
    restarting = engine.actors.restarting(task.calls_actor, worker)
    text = f"{task.label}: actor {task.calls_actor} died while running it ({why})"
    text += "; it is restarting" if restarting else ""
    return ("ActorUnavailableError" if restarting else "ActorDiedError"), text


def kv_put(engine: Engine, peer: bytes, msg: m.KVPut, frames: list[Any]) -> None:
    stored = engine.actors.names.put(peer, msg.key, frames, msg.if_absent, msg.actor_id)
    engine.out.send(peer, m.KVReply(msg.key, True, len(stored)), stored)


def kv_get(engine: Engine, peer: bytes, key: str) -> None:
    stored = engine.actors.names.get(key)
    if stored is None:
        engine.out.send(peer, m.KVReply(key, False))
    else:
        engine.out.send(peer, m.KVReply(key, True, len(stored)), stored)


def kv_delete(engine: Engine, peer: bytes, key: str) -> None:
    engine.actors.names.delete(peer, key, engine.clients)
