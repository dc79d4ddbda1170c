"""The scheduler's task engine: dependencies, queues, placement, retries, cancel, results.

It holds no socket: every handler takes a peer identity and a decoded message, and writes its
replies to an ``Outbox`` that the server flushes once per loop turn (one batch per peer).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from scaler.protocol import messages as m
from scaler.scheduler.actors import Actors, actor_died, crashed_call_error
from scaler.scheduler.bundles import BundleError, Bundles
from scaler.scheduler.config import SchedulerConfig
from scaler.scheduler.departed import withdraw_work
from scaler.scheduler.dispatch import drain_worker, schedule
from scaler.scheduler.errors_payload import error_frames
from scaler.scheduler.holds import Holds
from scaler.scheduler.objects import ObjectStore
from scaler.scheduler.outbox import Outbox
from scaler.scheduler.owners import DeadOwners
from scaler.scheduler.queues import CapabilityQueues
from scaler.scheduler.streams import Streams, is_item
from scaler.scheduler.tasks import TERMINAL, Task, TaskState, producer_of
from scaler.scheduler.workers import WorkerPool, WorkerState
from scaler.utility import shm
from scaler.utility.capabilities import NODE_PREFIX, PG_PREFIX, Capabilities, CapabilityError, parse_capabilities

log = logging.getLogger(__name__)
S = TaskState
MAX_NUM_RETURNS = 10_000
MAX_REFS_PER_TASK = 100_000


@dataclass(slots=True, eq=False)
class ClientState:
    identity: bytes
    name: str
    tasks: set[str] = field(default_factory=set)
    queued_bytes: int = 0


class Engine:
    def __init__(self, config: SchedulerConfig, outbox: Outbox) -> None:
        self.config = config
        self.out = outbox
        self.tasks: dict[str, Task] = {}
        self.queues = CapabilityQueues()
        self.store = ObjectStore()
        self.pool = WorkerPool(config.prefetch)
        self.clients: dict[bytes, ClientState] = {}
        self.waiting: defaultdict[str, list[Task]] = defaultdict(list)
        self.get_waiters: defaultdict[str, list[bytes]] = defaultdict(list)
        self.dirty = False
        self.maybe_idle = False
        self.counts = {"done": 0, "failed": 0, "cancelled": 0, "retried": 0, "rejected": 0}
        self.actors = Actors()
        self.bundles = Bundles()
        self.borrowers: defaultdict[str, list[Task]] = defaultdict(list)
        self.durations: dict[str, float] = {}
        self.holds = Holds(self.store, self.tasks, self.borrowers)
        self.dead_owners = DeadOwners()
        self.streams = Streams(self)  # streaming generator tasks' items (scheduler/streams.py)

    # -- clients ----------------------------------------------------------------------------

    def add_client(self, identity: bytes, name: str) -> None:
        self.clients[identity] = ClientState(identity, name)

    def client_lost(self, identity: bytes, reason: str, said_goodbye: bool = False) -> None:
        """End a client's session: its tasks are cancelled (detached ones live on). A client that
        closed is the normal end of a program (INFO): its objects are released, and those that
        other objects hold stay. One that vanished without closing died (WARNING): its objects go."""
        state = self.clients.pop(identity, None)
        if state is None:
            return
        task_ids = list(state.tasks)
        cancelled = withdraw_work(self, state, f"its owner, client {state.name}, left ({reason})")
        self.bundles.client_lost(self, identity)
        freed = self.store.release_owner(identity) if said_goodbye else self.store.lose_owner(identity)
        self.dead_owners.remember([*task_ids, *freed], f"client {state.name}")
        level, how = (logging.INFO, "left") if said_goodbye else (logging.WARNING, "vanished without closing")
        text = "client %s %s (%s): %d tasks cancelled, %d objects released"
        log.log(level, text, state.name, how, reason, cancelled, len(freed))

    def submit(self, client: bytes, msg: m.SubmitTask, frames: list[Any], nbytes: int | None = None) -> None:
        """``nbytes``: what ``frames`` hold, shared-memory arguments at their real size (counted at intake)."""
        state = self.clients[client]
        if nbytes is None:
            nbytes = shm.payload_nbytes(frames)
        reason = self._refuse_reason(state, msg, nbytes)
        if reason is None:
            try:
                request = parse_capabilities(msg.capabilities)
                if msg.placement or PG_PREFIX in msg.capabilities:
                    request = self.bundles.request_for(msg.placement, msg.bundle, request)
                if msg.node:
                    request = Capabilities(request.quantities, request.labels | {f"{NODE_PREFIX}{msg.node}"})
            except CapabilityError as exc:
                reason = f"bad capability request: {exc}"
            except BundleError as exc:
                reason = str(exc)
        if reason is not None:
            self.counts["rejected"] += 1
            self.out.send(client, m.TaskRejected(msg.task_id, reason))
            return
        task = Task(
            msg.task_id,
            client,
            msg.func_id,
            request.key,
            request,
            msg.deps,
            frames,
            msg.name,
            msg.num_returns,
            msg.max_retries,
            msg.timeout,
            msg.stream_output,
            msg.resolve_nested,
            msg.retry_exceptions,
            nbytes,
        )
        self.tasks[task.task_id] = task
        state.tasks.add(task.task_id)
        state.queued_bytes += nbytes
        task.detached = msg.detached
        if msg.placement:
            task.placement, task.run_caps = msg.placement, msg.capabilities
        if msg.parent:
            self._adopt(msg.parent, task.task_id)
        if msg.actor_id:
            self.actors.hosted(task, msg.actor_id)
        dead = self.actors.called(task)
        if dead is not None:
            self.fail(task, "ActorDiedError", f"{task.label}: actor {task.calls_actor} is dead ({dead})")
            return
        for dep in (msg.func_id, *msg.deps):
            if task.state in TERMINAL:
                break
            self._need(task, dep)
        for object_id in msg.borrowed:
            self._borrow(task, object_id)
        if task.state is S.WAITING:
            if task.calls_actor and self.actors.order.must_wait(task):
                self._calls_ready(task)
            elif task.missing == 0:
                self._enqueue(task)

    def _calls_ready(self, call: Task) -> None:
        for ready in self.actors.order.ready(call):
            self._enqueue(ready)

    def _refuse_reason(self, state: ClientState, msg: m.SubmitTask, nbytes: int) -> str | None:
        if msg.task_id in self.tasks:
            return f"duplicate task id {msg.task_id}"
        limit = self.config.max_queued_tasks
        if len(state.tasks) >= limit:
            return f"client has {len(state.tasks)} unfinished tasks (limit max_queued_tasks={limit})"
        if state.queued_bytes + nbytes > self.config.max_queued_bytes:
            return f"client's queued arguments exceed max_queued_bytes={self.config.max_queued_bytes}"
        if msg.num_returns < 0 or msg.max_retries < 0 or msg.timeout < 0:
            return "num_returns, max_retries and timeout must be >= 0"
        if msg.num_returns > MAX_NUM_RETURNS:
            return f"num_returns={msg.num_returns} is over the limit of {MAX_NUM_RETURNS}"
        if len(msg.deps) + len(msg.borrowed) > MAX_REFS_PER_TASK:
            return f"{len(msg.deps) + len(msg.borrowed)} object refs in the arguments (limit {MAX_REFS_PER_TASK})"
        if any(producer_of(dep) == msg.task_id for dep in (msg.func_id, *msg.deps, *msg.borrowed)):
            return f"task {msg.task_id} depends on its own result"
        return None

    def _need(self, task: Task, dep: str) -> None:
        obj = self.store.get(dep)
        if obj is not None:
            if obj.is_error and dep != task.func_id:
                self._finish(task, S.FAILED, obj.frames, m.TaskResult(task.task_id, "failed"))
                return
            self.store.pin(dep)
            task.pinned.append(dep)
            return
        producer = self.tasks.get(producer_of(dep))
        if producer is not None and producer.state not in TERMINAL:
            self.waiting[dep].append(task)
            task.missing += 1
            return
        kind, text = self.dead_owners.why_missing(dep)
        self.fail(task, kind, f"{task.label}: argument {text}")

    def _borrow(self, task: Task, object_id: str) -> None:
        """Keep a ref nested in the arguments alive while the task lives (it is not waited for)."""
        if task.state in TERMINAL:
            return
        if object_id in self.store:
            self.store.pin(object_id)
            task.pinned.append(object_id)
            return
        producer = self.tasks.get(producer_of(object_id))
        if producer is not None and producer.state not in TERMINAL:
            self.borrowers[object_id].append(task)

    def _enqueue(self, task: Task, front: bool = False) -> None:
        task.move(S.QUEUED)
        self.queues.push(task, front)
        self.dirty = True

    def put(self, client: bytes, msg: m.PutObject, frames: list[Any], nbytes: int | None = None) -> None:
        obj = self.store.add(msg.object_id, frames, msg.is_error, client, nbytes)
        self.holds.by_client(obj, msg.holds, client)
        self._object_ready(msg.object_id)
        lent_to = self.tasks.get(msg.lent_to) if msg.lent_to else None
        if lent_to is not None:
            self._borrow(lent_to, msg.object_id)

    def release(self, client: bytes, object_ids: list[str]) -> None:
        for object_id in object_ids:
            task = self.tasks.get(producer_of(object_id))
            if task is not None and task.client == client and not is_item(object_id):
                task.released = True
            obj = self.store.get(object_id)
            if obj is not None and obj.owner == client:
                self.store.release(object_id)

    def get_object(self, peer: bytes, object_id: str) -> None:
        obj = self.store.get(object_id)
        if obj is not None:
            reply = m.ObjectReply(object_id, True, len(obj.frames), obj.is_error)
            self.out.send(peer, reply, obj.frames)
            return
        producer = self.tasks.get(producer_of(object_id))
        if producer is not None and producer.state not in TERMINAL:
            self.get_waiters[object_id].append(peer)
            return
        kind, message = self.dead_owners.why_missing(object_id)
        frames = error_frames(kind, message)
        self.out.send(peer, m.ObjectReply(object_id, False, len(frames), True, message), frames)

    def _adopt(self, parent_id: str, child_id: str) -> None:
        parent = self.tasks.get(parent_id)
        if parent is None or parent.state in TERMINAL:
            return
        children = parent.children
        children.append(child_id)
        if len(children) >= 1024 and len(children) & (len(children) - 1) == 0:
            children[:] = [c for c in children if c in self.tasks]

    def _finish_cancelled(self, task: Task) -> None:
        reason = self.actors.dead.get(task.calls_actor) if task.calls_actor else None
        if reason is not None:
            self.fail(task, "ActorDiedError", f"{task.label}: actor {task.calls_actor} died: {reason}")
            return
        frames = error_frames("TaskCancelledError", f"{task.label} was cancelled")
        self._finish(task, S.CANCELLED, frames, m.TaskResult(task.task_id, "cancelled"))

    # -- workers ----------------------------------------------------------------------------

    def add_worker(self, worker: WorkerState) -> None:
        self.actors.joined(worker)
        self.bundles.news()
        self.pool.add(worker)
        self.dirty = True
        self.maybe_idle = True

    def worker_lost(self, identity: bytes, reason: str, said_goodbye: bool = False) -> None:
        """Drop a worker; its unfinished tasks are re-queued or, past their retries, failed. Logged
        at INFO when the worker said goodbye (or was told to go: draining) and took no work with
        it; a WARNING when it vanished or its tasks had to be re-queued or failed."""
        worker = self.pool.remove(identity)
        if worker is None:
            return
        self.bundles.worker_lost(worker)
        requeued = failed = 0
        possibly_running = self._possibly_running(worker)
        for task in list(worker.assigned.values()):
            was_running = task.state is S.RUNNING or task in possibly_running
            self.pool.unassign(worker, task)
            if task.cancel_requested:
                self._finish_cancelled(task)
            elif was_running:
                if self._crashed(task, f"worker {worker.name} was lost ({reason})", "WorkerLostError", worker):
                    requeued += 1
                else:
                    failed += 1
            else:
                self._requeue(task)
                requeued += 1
        self.store.forget_worker(identity)
        self.dirty = True
        self.maybe_idle = True
        if (said_goodbye or worker.draining) and not (requeued or failed):
            log.info("worker %s left (%s)", worker.name, reason)
        else:
            log.warning("worker %s lost (%s): %d tasks re-queued, %d failed", worker.name, reason, requeued, failed)

    @staticmethod
    def _possibly_running(worker: WorkerState) -> set[Task]:
        """Assigned tasks the worker may have started but not yet reported (it starts them in order)."""
        free = dict(worker.total)
        for task in worker.assigned.values():
            if task.state is S.RUNNING and not task.blocked:
                for name, amount in task.request.quantities:
                    free[name] = free.get(name, 0.0) - amount
        found: set[Task] = set()
        for task in worker.assigned.values():
            if task.state is not S.ASSIGNED:
                continue
            if all(free.get(name, 0.0) + 1e-9 >= amount for name, amount in task.request.quantities):
                found.add(task)
                for name, amount in task.request.quantities:
                    free[name] = free.get(name, 0.0) - amount
        return found

    def _requeue(self, task: Task) -> None:
        task.move(S.QUEUED)
        self.queues.push(task, front=True)
        self.dirty = True

    def _crashed(
        self, task: Task, why: str, kind: str = "WorkerCrashedError", worker: WorkerState | None = None
    ) -> bool:
        """Count a worker death against ``task``; re-queue it (True) or fail it past max_retries with ``kind``."""
        task.attempts += 1
        if task.attempts <= task.max_retries:
            self.counts["retried"] += 1
            log.info("%s: %s; retry %d of %d", task.label, why, task.attempts, task.max_retries)
            self._requeue(task)
            return True
        if task.calls_actor:
            self.fail(task, *crashed_call_error(self, task, why, worker))
            return False
        text = (
            f"{task.label} failed: the worker process running it died {task.attempts} times "
            f"(max_retries={task.max_retries}); last: {why}"
        )
        self.fail(task, kind, text)
        return False

    def started(self, identity: bytes, task_ids: list[str]) -> None:
        worker = self.pool.workers.get(identity)
        if worker is None:
            return
        for task_id in task_ids:
            task = worker.assigned.get(task_id)
            if task is not None and task.state is S.ASSIGNED:
                self.pool.started(worker, task)
                task.move(S.RUNNING)

    def blocked(self, identity: bytes, task_id: str, is_blocked: bool) -> None:
        worker = self.pool.workers.get(identity)
        task = worker.assigned.get(task_id) if worker is not None else None
        if worker is None or task is None or task.blocked == is_blocked:
            return
        task.blocked = is_blocked
        worker.commit(task.request, -1.0 if is_blocked else 1.0)
        self.dirty = True

    def reclaimed(self, identity: bytes, task_ids: list[str]) -> None:
        worker = self.pool.workers.get(identity)
        if worker is None:
            return
        worker.reclaim_pending = False
        for task_id in reversed(task_ids):
            task = worker.assigned.get(task_id)
            if task is not None and task.state is S.ASSIGNED:
                self.pool.unassign(worker, task)
                if task.cancel_requested:
                    self._finish_cancelled(task)
                else:
                    self._requeue(task)

    def task_done(self, identity: bytes, msg: m.TaskDone, frames: list[Any]) -> None:
        worker = self.pool.workers.get(identity)
        task = self.tasks.get(msg.task_id)
        if worker is None or task is None or task.worker != identity or msg.attempt != task.attempts:
            log.debug("ignoring a stale result for %s from %r", msg.task_id, identity)
            return
        self.pool.unassign(worker, task)
        worker.completed += 1
        if not worker.assigned:
            self.maybe_idle = True
        self.dirty = True
        if task.cancel_requested:
            self._finish_cancelled(task)
            return
        status = msg.status
        if msg.duration > 0:
            old = self.durations.get(task.func_id)
            self.durations[task.func_id] = msg.duration if old is None else 0.8 * old + 0.2 * msg.duration
        if status == "done":
            self._finish_done(task, msg, frames)
        elif status == "error" or status == "fatal":
            if status == "error" and task.retry_exceptions and task.attempts < task.max_retries:
                task.attempts += 1
                self._requeue(task)
            elif any(not header.is_error for header in msg.objects):  # partial: see scaler/worker/results.py
                self._finish_done(task, msg, frames)
            else:
                self._finish(task, S.FAILED, frames, m.TaskResult(task.task_id, "failed"))
        elif status == "crashed":
            self._crashed(task, msg.message or f"worker {worker.name} lost its task process")
        elif status == "cancelled":
            self._finish_cancelled(task)
        else:
            kinds = {"timeout": "TaskTimeoutError", "memory": "MemoryLimitError", "missing": "ObjectLostError"}
            self.fail(task, kinds.get(status, "ScalerError"), f"{task.label}: {msg.message or status}")

    def _finish_done(self, task: Task, msg: m.TaskDone, frames: list[Any]) -> None:
        if len(msg.objects) != max(task.num_returns, 1) and task.num_returns != 0:
            text = f"{task.label}: worker returned {len(msg.objects)} objects, expected {task.num_returns}"
            self.fail(task, "ScalerError", text)
            return
        task.move(S.DONE if msg.status == "done" else S.FAILED)
        pos = 0
        pushed: list[m.ObjHeader] = []
        push_frames: list[Any] = []
        budget = self.config.push_result_bytes
        expected = task.result_ids()
        for header, object_id in zip(msg.objects, expected, strict=False):
            obj_frames = frames[pos : pos + header.nbufs]
            pos += header.nbufs
            self._store_result(task, object_id, obj_frames, header.is_error, header.holds)
            size = sum(len(f) for f in obj_frames)
            if size <= budget:
                budget -= size
                pushed.append(m.ObjHeader(object_id, header.nbufs, header.is_error))
                push_frames.extend(obj_frames)
        self._close(task, m.TaskResult(task.task_id, "done", pushed), push_frames)

    def fail(self, task: Task, kind: str, text: str) -> None:
        """End ``task`` as failed with a ``kind`` error (a class of ``scaler.errors``) saying ``text``."""
        self._finish(task, S.FAILED, error_frames(kind, text), m.TaskResult(task.task_id, "failed"))

    def _finish(self, task: Task, state: TaskState, frames: list[Any], result: m.TaskResult) -> None:
        task.move(state)
        ids = task.result_ids() or [task.task_id]
        for object_id in ids:
            self._store_result(task, object_id, frames, True)
        size = sum(len(f) for f in frames)
        push = size <= self.config.push_result_bytes
        result.objects = [m.ObjHeader(ids[0], len(frames), True)] if push else []
        self._close(task, result, frames if push else [])

    def _store_result(
        self, task: Task, object_id: str, frames: list[Any], is_error: bool, holds: list[str] | None = None
    ) -> None:
        wanted = (
            not task.released
            or object_id in self.waiting
            or object_id in self.get_waiters
            or object_id in self.borrowers
            or object_id in self.store.holders
        )
        if not wanted:
            if len(frames) == 1 and not is_error:
                shm.release(frames)
            return
        obj = self.store.add(object_id, frames, is_error, task.client)
        if holds:
            self.holds.by_task(obj, holds, task)
        if task.released:
            obj.pins += 1
            obj.released = True
        self._object_ready(object_id)
        if task.released:
            self.store.unpin(object_id)

    def _close(self, task: Task, result: m.TaskResult, frames: list[Any]) -> None:
        self.counts[task.state.value] = self.counts.get(task.state.value, 0) + 1
        for dep in task.pinned:
            self.store.unpin(dep)
        task.pinned = []
        if len(task.frames) == 1:
            shm.release(task.frames)
        task.frames = []
        self.tasks.pop(task.task_id, None)
        self.streams.ended(task.task_id)
        ended = self.actors.host_ended(task)
        if ended is not None:
            actor_died(self, task.actor_id, ended)
        if task.calls_actor and (task.client, task.calls_actor) in self.actors.order.lines:
            self._calls_ready(task)  # a call that ended waiting lets the caller's next ones go
        state = self.clients.get(task.client)
        if state is not None:
            state.tasks.discard(task.task_id)
            state.queued_bytes -= task.nbytes
            if not task.released:
                self.out.send(task.client, result, frames)

    def _object_ready(self, object_id: str) -> None:
        obj = self.store.get(object_id)
        if obj is None:
            return
        for borrower in self.borrowers.pop(object_id, ()):
            if borrower.state not in TERMINAL:
                self.store.pin(object_id)
                borrower.pinned.append(object_id)
        for peer in self.get_waiters.pop(object_id, ()):
            self.out.send(peer, m.ObjectReply(object_id, True, len(obj.frames), obj.is_error), obj.frames)
        for task in self.waiting.pop(object_id, ()):
            if task.state is not S.WAITING:
                continue
            if obj.is_error and object_id != task.func_id:
                for dep in (task.func_id, *task.deps):
                    waiters = self.waiting.get(dep)
                    if waiters and task in waiters:
                        waiters.remove(task)
                self._finish(task, S.FAILED, obj.frames, m.TaskResult(task.task_id, "failed"))
                continue
            self.store.pin(object_id)
            task.pinned.append(object_id)
            task.missing -= 1
            if task.missing == 0:
                if task.calls_actor:
                    self._calls_ready(task)
                else:
                    self._enqueue(task)

    # -- placement --------------------------------------------------------------------------

    def schedule(self) -> None:
        """Hand queued tasks to workers that can take them now (``scheduler/dispatch.py``)."""
        schedule(self)

    def interrupted(self, identity: bytes, seconds_left: float, action: str) -> WorkerState | None:
        """A worker's host goes in ``seconds_left`` (a spot interruption notice): it is drained at once;
        its running tasks may finish, and are retried elsewhere if it goes first. The worker, if known."""
        worker = self.pool.workers.get(identity)
        if worker is None:
            return None
        worker.interrupted = time.monotonic() + seconds_left
        log.warning(
            "spot interruption notice on worker %s (%s in %.0fs): drained, %d task(s) running may finish",
            worker.name,
            action,
            seconds_left,
            len(worker.assigned) - worker.unstarted,
        )
        drain_worker(self, identity)
        return worker

    def drain_worker(self, identity: bytes) -> None:
        """Stop feeding a worker and take back the tasks it holds unstarted (it is about to go)."""
        drain_worker(self, identity)

    def flush_freed(self) -> None:
        freed = self.store.freed_on_workers
        if not freed:
            return
        for identity, ids in freed.items():
            worker = self.pool.workers.get(identity)
            if worker is not None:
                worker.known_objects.difference_update(ids)
                self.out.send(identity, m.ObjectsFreed(ids))
        freed.clear()
