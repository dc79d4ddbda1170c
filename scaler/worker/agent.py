"""The worker agent: takes tasks from the scheduler and runs them in its task processes.

It holds the tasks the scheduler assigned (a few more than it can run at once, to hide the round
trip), starts each in arrival order when its quantities are free, kills processes for cancel,
timeout and memory limits, replaces crashed ones, and exits when the scheduler is gone.
``TasksStarted`` is sent lazily (with the next batch going up, or within 50 ms) and not at all
for tasks that finished first: an extra scheduler wake-up per task costs latency on small hosts.

Liveness. Sends to the scheduler never block: a handshake the scheduler refused (wrong or missing
secret or CURVE keys) ends libzmq's connection for good, which the socket monitor reports; the
worker logs what to check and exits non-zero at once. One that never heard from its scheduler
exits non-zero after ``death_timeout`` (a supervisor should see that it failed); one that did exits
0 after that long without a word. A worker the scheduler dropped (it was frozen past the peer
timeout, or the scheduler restarted) is told so by a ``Refused``: every task it held is the
scheduler's again (re-queued or failed there), so it kills the processes still running them, drops
the rest, dials again under a new identity and says hello; so does one whose handshake was
refused after a new cluster secret was published for its port (a scheduler restarted there). Time
it spent frozen does not count as the scheduler's silence.

Staging. A task that waits for capacity is sent ahead to a task process busy with a task of the
same capabilities, at most one per process, if that running task is short: its function's last
runs here took under ``STAGE_BEHIND`` seconds, and so far it has run less than that. The process
starts it the moment its current task ends, without waiting for the agent to wake (a process
wake-up costs 0.2-0.4 ms on a small VM, paid twice per task otherwise). A staged task is still the
agent's: its capacity is counted only when it starts (when the process reports the task before it
done). The agent takes it back with ``Unstage`` plus SIGUSR2 on a cancel, or when the running task
has gone on past ``STAGE_PATIENCE`` (a staged task cannot be stolen by an idle peer, so it must
not wait long). If the running task blocks on subtasks, the process hands every staged task back
before the agent acknowledges the block, so a subtask can never wait behind its own parent.

Spot interruptions. With ``instance_metadata`` set, a thread watches for the notice EC2 posts two
minutes before it reclaims a spot instance (``scaler/worker/interruption.py``). Once it is seen the
agent tells the scheduler (``WorkerInterrupted``: it is drained and its unit replaced), starts no
task it has not reported as started, hands every other one back (``Reclaimed``, unasked, as an
unstaged task is), lets running tasks go on, and exits ``leave_before`` seconds before the
deadline: the scheduler then retries what was still running, as for any lost worker.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections import deque
from typing import Any

import msgspec
import zmq

from scaler.protocol import messages as m
from scaler.protocol.wire import ProtocolError, encode, split_batch
from scaler.utility import shm
from scaler.utility.capabilities import Capabilities, parse_capabilities
from scaler.utility.security import CurveKeys, no_answer
from scaler.worker.children import Child, ChildPool, LocalTask
from scaler.worker.config import WorkerConfig
from scaler.worker.interruption import InterruptionWatcher, Notice
from scaler.worker.object_cache import ObjectCache
from scaler.worker.pipe import PipeClosed
from scaler.worker.upstream import Upstream

log = logging.getLogger(__name__)
STAGE_BEHIND = 0.1
STAGE_PATIENCE = 0.5  # a task staged behind one running longer than this is taken back
FROZEN_AFTER = 1.0  # a loop turn this late means the agent did not run (SIGSTOP, a suspended host)


class WorkerAgent:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.capabilities: Capabilities = parse_capabilities(config.capabilities)
        self.free = self.capabilities.as_dict()
        self.name = config.name or f"{socket.gethostname()}:{os.getpid()}"
        self.context = zmq.Context()
        self.keys = CurveKeys(config.curve_keys) if config.curve_keys is not None else None
        self.poller = zmq.Poller()
        self.link = Upstream(self.context, config.scheduler, self.keys, self.poller)
        env = {"SCALER_CURVE_KEYS": str(config.curve_keys)} if config.curve_keys else {}
        env["SCALER_WORKER_NAME"] = self.name  # a task's node, as ray.get_runtime_context() names it
        self.pool = ChildPool(config.scheduler, env)
        self.by_fd: dict[int, Child] = {}
        self.backlog: deque[LocalTask] = deque()
        self.running: dict[str, Child] = {}
        self.cache = ObjectCache(config.cache_bytes, config.process_cache_bytes)
        self.fetching: dict[str, list[LocalTask]] = {}
        self.up_msgs: list[Any] = []
        self.up_frames: list[Any] = []
        self.down: dict[bytes, tuple[list[Any], list[Any]]] = {}
        self._forget_later: list[Child] = []
        self.started_ids: dict[str, None] = {}
        self.last_heard = time.monotonic()
        self.welcome: m.Welcome | None = None
        self.joined = False  # welcomed at least once
        self.dropped: str | None = None  # the scheduler no longer knows this session: why
        self.exit_code = 0
        self.alive = True
        self.slots = max(1, int(self.free.get("cpu", 1)))
        self.durations: dict[str, float] = {}  # function id -> recent run time (a decaying max)
        self.watcher: InterruptionWatcher | None = None
        if config.instance_metadata:
            self.watcher = InterruptionWatcher(config.instance_metadata, config.metadata_interval)
        self.notice: Notice | None = None  # a spot interruption notice seen: this host goes at its deadline

    # -- plumbing ---------------------------------------------------------------------------

    def up(self, msg: Any, frames: list[Any] | None = None) -> None:
        self.up_msgs.append(msg)
        if frames:
            self.up_frames.extend(frames)

    def down_send(self, child: Child, msg: Any, frames: list[Any] | None = None) -> None:
        entry = self.down.setdefault(child.identity, ([], []))
        entry[0].append(msg)
        if frames:
            entry[1].extend(frames)

    def flush(self, force_started: bool = False) -> None:
        """Send what this turn produced: task processes first (they are waiting), then the scheduler."""
        if self.started_ids and (self.up_msgs or force_started):
            self.up_msgs.insert(0, m.TasksStarted(list(self.started_ids)))
            self.started_ids.clear()
        if self.down:
            for identity, (msgs, frames) in self.down.items():
                child = self.pool.children.get(identity)
                if child is None:
                    continue
                try:
                    if not child.writer.send([encode(msgs), *frames]) and not child.write_waits:
                        child.write_waits = True
                        self.poller.modify(child.sock.fileno(), zmq.POLLIN | zmq.POLLOUT)
                except OSError as exc:
                    _unreachable(child, exc)
            self.down = {}
        if self.up_msgs:
            if not self.link.send([encode(self.up_msgs), *self.up_frames]):
                self._handshake_refused("the connection is closed")
            self.up_msgs, self.up_frames = [], []

    def _spawn(self) -> Child:
        child = self.pool.spawn()
        fd = child.sock.fileno()
        self.by_fd[fd] = child
        self.poller.register(fd, zmq.POLLIN)
        return child

    def _forget(self, child: Child) -> None:
        """Stop watching a task process, after handling what it sent last (a result sent just
        before it died is kept, and a crash is blamed on the task that was really running)."""
        fd = child.sock.fileno()
        if fd in self.by_fd:
            self._read_child(fd)
        if fd >= 0 and self.by_fd.get(fd) is child:
            del self.by_fd[fd]
            self.poller.unregister(fd)
        self.pool.forget(child)

    # -- main loop --------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until told to stop or the scheduler is gone; the process's exit code."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.up(self._hello())
        self.flush()
        for _ in range(self.slots):
            self._spawn()
        if self.watcher is not None:
            self.watcher.start()
        next_tick = next_beat = last_turn = time.monotonic()
        log.info("worker %s (%s) connecting to %s", self.name, self.capabilities.key, self.config.scheduler)
        try:
            while self.alive:
                ready = self.poller.poll(max(1, int((next_tick - time.monotonic()) * 1000) + 1))
                for what, events in ready:
                    if what is self.link.sock:
                        self._drain_upstream()
                        continue
                    if what is self.link.monitor:
                        self._check_monitor()
                        continue
                    if events & zmq.POLLOUT:
                        self._write_child(what)
                    if events & zmq.POLLIN:
                        self._read_child(what)
                if self.dropped is not None:
                    self._rejoin()
                now = time.monotonic()
                if now - last_turn > FROZEN_AFTER:
                    self.last_heard += now - last_turn  # frozen: the scheduler was not silent meanwhile
                last_turn = now
                if now >= next_tick:
                    next_tick = now + 0.05
                    self._tick(now)
                    if self.started_ids:
                        self.flush(force_started=True)
                    if now >= next_beat:
                        next_beat = now + self.config.heartbeat_interval
                        self.up(m.Heartbeat(len(self.running)))
                self._start_tasks()
                self.flush()
        finally:
            self._close()
        return self.exit_code

    def _hello(self) -> m.Hello:
        return m.Hello(
            "worker",
            m.PROTOCOL_VERSION,
            self.name,
            self.capabilities.key,
            os.getpid(),
            socket.gethostname(),
            shm.host_domain(),
            self.config.unit_id,
        )

    def _stop(self, *_: Any) -> None:
        self.alive = False

    def _fail(self, text: str) -> None:
        """Exit non-zero (a supervisor should restart or report this worker), saying why."""
        if self.alive:
            log.error("worker exits: %s", text)
            self.exit_code = 1
            self.alive = False

    def _handshake_refused(self, what: str) -> None:
        why = self.link.refusal(what)
        if why is None:  # a scheduler (re)started on this port has published a new secret since this dial
            self.dropped = f"it refused the handshake ({what}) with the old cluster secret; a new one is published"
        else:
            self._fail(why)

    def _check_monitor(self) -> None:
        for what in self.link.refusals():
            self._handshake_refused(what)

    def _rejoin(self) -> None:
        """The scheduler dropped this worker: start a new session, holding no task of the old one."""
        reason, self.dropped = self.dropped, None
        abandoned = self._abandon_tasks()
        log.warning(
            "scheduler %s no longer knows this worker (%s); %d tasks it held are the scheduler's again; "
            "saying hello again",
            self.config.scheduler,
            reason,
            abandoned,
        )
        self.link.hang_up(0)
        self.link.dial()
        self.welcome = None
        self.up(self._hello())
        if self.notice is not None:  # the new session is as short-lived as the old one
            self.up(m.WorkerInterrupted(max(0.0, self.notice.deadline - time.monotonic()), self.notice.action))
        self.flush()

    def _abandon_tasks(self) -> int:
        """Forget every task of a dropped session (the scheduler re-queued or failed them all): kill
        the processes running or holding one, drop those waiting here. How many there were."""
        ids = {task.msg.task_id for task in self.backlog}
        ids.update(task.msg.task_id for waiting in self.fetching.values() for task in waiting)
        for child in list(self.pool.children.values()):
            task, staged = child.task, child.staged
            if task is None and staged is None:
                continue
            child.staged = None
            if staged is not None:
                ids.add(staged.msg.task_id)
            if task is not None:
                ids.add(task.msg.task_id)
                self._release(child, task)
            child.doomed = True
            self.pool.kill(child)
            self.down.pop(child.identity, None)
        self.backlog.clear()
        self.fetching.clear()
        self.started_ids.clear()
        self.up_msgs, self.up_frames = [], []
        return len(ids)

    def _drain_upstream(self) -> None:
        for _ in range(10_000):
            frames = self.link.receive() if self.dropped is None else None
            if frames is None:
                return
            self._handle_batch(frames, b"", self._from_scheduler, "the scheduler")

    def _write_child(self, fd: int) -> None:
        child = self.by_fd.get(fd)
        if child is None:
            return
        try:
            done = child.writer.flush()
        except OSError as exc:
            _unreachable(child, exc)
            done = True
        if done:
            child.write_waits = False
            self.poller.modify(fd, zmq.POLLIN)

    def _read_child(self, fd: int) -> None:
        child = self.by_fd.get(fd)
        if child is None:
            return
        try:
            messages = child.reader.read()
        except (OSError, PipeClosed) as exc:
            if child.process.poll() is None and not child.doomed:  # one this agent killed just closes
                log.warning("task process pid %d: its pipe failed (%s); stopping it", child.pid, exc)
            del self.by_fd[fd]
            self.poller.unregister(fd)
            self._forget_later.append(child)
            return
        for frames in messages:
            self._handle_batch(frames, child.identity, self._from_child, f"task process pid {child.pid}")

    def _handle_batch(self, frames: list[Any], source: bytes, handle: Any, who: str) -> None:
        try:
            batch = split_batch(frames)
        except ProtocolError as exc:
            log.warning("dropped a malformed message from %s: %s", who, exc)
            return
        for msg, payload in batch:
            try:
                handle(source, msg, payload)
            except Exception:
                log.exception("error handling %s from %s; message dropped", type(msg).__name__, who)

    def _from_scheduler(self, _: bytes, msg: Any, payload: list[Any]) -> None:
        if self.dropped is not None:
            return  # the rest of a session the scheduler has ended
        self.last_heard = time.monotonic()
        kind = type(msg)
        if kind is m.RunTask:
            self._accept(msg, payload)
        elif kind is m.CancelOnWorker:
            for task_id in msg.task_ids:
                self._cancel(task_id, msg.force)
        elif kind is m.Reclaim:
            self._reclaim(msg.count)
        elif kind is m.ObjectsFreed:
            self._freed(msg.object_ids)
        elif kind is m.ObjectReply:
            self._object_arrived(msg, payload)
        elif kind is m.Welcome:
            self.welcome = msg
            self.joined = True
            for child in self.pool.children.values():
                if child.ready:
                    self.down_send(child, msg)
            log.info("worker %s registered with %s", self.name, self.config.scheduler)
        elif kind is m.Shutdown:
            log.info("scheduler shut down (%s); worker exits", msg.reason)
            self.alive = False
        elif kind is m.Refused:
            if self.welcome is not None:  # only "say Hello first" comes after a Welcome
                self.dropped = msg.reason
            else:
                self._fail(f"scheduler {self.config.scheduler} refused this worker: {msg.reason}")

    # -- tasks ------------------------------------------------------------------------------

    def _accept(self, msg: m.RunTask, payload: list[Any]) -> None:
        pos = 0
        for header in msg.objects:
            self.cache.put(header.object_id, payload[pos : pos + header.nbufs], header.is_error)
            pos += header.nbufs
        task = LocalTask(msg, payload[pos:], parse_capabilities(msg.capabilities), [msg.func_id, *msg.deps])
        missing = [oid for oid in task.needs if oid not in self.cache]
        if not missing:
            self.backlog.append(task)
            return
        for object_id in missing:
            waiting = self.fetching.get(object_id)
            if waiting is None:
                self.fetching[object_id] = [task]
                self.up(m.GetObject(object_id))
            else:
                waiting.append(task)

    def _object_arrived(self, msg: m.ObjectReply, payload: list[Any]) -> None:
        tasks = self.fetching.pop(msg.object_id, [])
        if msg.found:
            self.cache.put(msg.object_id, payload, msg.is_error)
        for task in tasks:
            if not msg.found:
                text = f"argument {msg.object_id} is gone: {msg.message}"
                self.up(m.TaskDone(task.msg.task_id, "missing", message=text, attempt=task.msg.attempt))
            elif self.cache.has_all(task.needs) and task not in self.backlog:
                self.backlog.append(task)

    def _freed(self, object_ids: list[str]) -> None:
        for child, gone in self.cache.drop(object_ids, self.pool.children.values()).items():
            self.down_send(child, m.ObjectsFreed(gone))

    def _fits(self, request: Capabilities) -> bool:
        free = self.free
        for name, amount in request.quantities:
            if free.get(name, 0.0) + 1e-9 < amount:
                return False
        return True

    def _commit(self, request: Capabilities, sign: float) -> None:
        for name, amount in request.quantities:
            self.free[name] = self.free.get(name, 0.0) - sign * amount

    def _start_tasks(self) -> None:
        if not self.backlog:
            return
        if self.notice is not None:
            self._hand_back()
        stageable: list[Child] | None = None
        for task in list(self.backlog):
            if self._fits(task.request):
                child = self.pool.idle()
                if child is not None:
                    self.backlog.remove(task)
                    self._run_on(child, task)
                    continue
                if self.pool.starting() == 0:
                    self._spawn()
                continue
            if not self.cache.has_all(task.needs):
                continue
            if stageable is None:
                stageable = [c for c in self.running.values() if self._can_stage_behind(c)]
            for child in stageable:
                current = child.task
                if current is not None and current.msg.capabilities == task.msg.capabilities:
                    stageable.remove(child)
                    self.backlog.remove(task)
                    self._send_task(child, task, [*task.needs, *current.needs])
                    child.staged = task
                    break
            if not stageable:
                return

    def _run_on(self, child: Child, task: LocalTask) -> None:
        if not self.cache.has_all(task.needs):
            self._accept(task.msg, task.args)
            return
        self._begin(child, task)
        self._send_task(child, task, task.needs)

    def _can_stage_behind(self, child: Child) -> bool:
        task = child.task
        if child.staged is not None or child.doomed or task is None or task.blocked or task.cancel:
            return False
        recent = self.durations.get(task.msg.func_id, STAGE_BEHIND)
        return recent < STAGE_BEHIND and time.monotonic() - task.started < STAGE_BEHIND

    def _begin(self, child: Child, task: LocalTask) -> None:
        """``task`` starts now in ``child``: its capacity is taken and its clocks start."""
        msg = task.msg
        self._commit(task.request, 1.0)
        now = time.monotonic()
        task.started = now
        task.deadline = now + msg.timeout if msg.timeout > 0 else 0.0
        child.task = task
        self.running[msg.task_id] = child
        self.started_ids[msg.task_id] = None

    def _promote(self, child: Child) -> None:
        """The process's current task ended, so its staged task (if any) has started."""
        task, child.staged = child.staged, None
        if task is None:
            return
        self._begin(child, task)
        if task.cancel == "force":
            self._kill(child)
        elif task.cancel:
            self._interrupt(child, task)

    def _interrupt(self, child: Child, task: LocalTask) -> None:
        """SIGUSR1 for ``task``. The process may already have moved on to its staged task: a
        ``cancelled`` result that nobody asked for, after this, means the signal hit that one."""
        child.interrupted_for = task.msg.task_id
        self.pool.interrupt(child)
        task.kill_at = time.monotonic() + self.config.cancel_grace

    def _unstaged(self, child: Child, task_ids: list[str]) -> None:
        """The process handed these staged tasks back unstarted.

        One that cannot start here now goes back to the scheduler (an unasked ``Reclaimed``), so
        an idle peer can take it; one already reported as started stays here."""
        returned: list[str] = []
        for task_id in task_ids:
            task = None
            reported = False
            if child.staged is not None and child.staged.msg.task_id == task_id:
                task, child.staged = child.staged, None
            elif child.task is not None and child.task.msg.task_id == task_id:
                task = child.task
                reported = task_id not in self.started_ids
                self._release(child, task)
                self._promote(child)
            if task is None:
                continue
            if task.cancel:
                self.up(m.TaskDone(task_id, "cancelled", attempt=task.msg.attempt))
            elif reported or self._fits(task.request):
                task.cancel, task.kill_at, task.unstaging = "", 0.0, False
                task.reported = task.reported or reported
                self.backlog.appendleft(task)
            else:
                returned.append(task_id)
        if returned:
            self.up(m.Reclaimed(returned))

    def _kill(self, child: Child) -> None:
        """SIGKILL a task process; a task staged in it is taken back first (it never started)."""
        child.doomed = True
        if child.staged is not None:
            self._unstaged(child, [child.staged.msg.task_id])
        self.pool.kill(child)

    def _unstage(self, child: Child) -> None:
        staged = child.staged
        if staged is not None and not staged.unstaging:
            staged.unstaging = True
            self.down_send(child, m.Unstage([staged.msg.task_id]))
            self.flush()
            self.pool.poke(child)

    def _send_task(self, child: Child, task: LocalTask, keep: list[str]) -> None:
        msg = task.msg
        headers, frames, drop = self.cache.for_process(child, task.needs, keep)
        if drop:
            self.down_send(child, m.ObjectsFreed(drop))
        frames.extend(task.args)
        self.down_send(child, msgspec.structs.replace(msg, objects=headers, nbufs=len(task.args)), frames)

    def _from_child(self, identity: bytes, msg: Any, payload: list[Any]) -> None:
        child = self.pool.children.get(identity)
        if child is None:
            return
        kind = type(msg)
        if kind is m.TaskDone:
            task = child.task
            if task is None or task.msg.task_id != msg.task_id:
                return
            self._release(child, task)
            self._promote(child)
            target = child.interrupted_for
            if target != msg.task_id:
                child.interrupted_for = ""
            if msg.status == "cancelled" and not task.cancel and target not in ("", msg.task_id):
                log.info("task %s was hit by a cancel meant for %s; it runs again", msg.task_id, target)
                task.kill_at, task.reported = 0.0, True
                self.backlog.appendleft(task)
                return
            func_id = task.msg.func_id
            self.durations[func_id] = max(msg.duration, 0.5 * self.durations.get(func_id, 0.0))
            if task.cancel:
                msg = m.TaskDone(msg.task_id, "cancelled", attempt=task.msg.attempt)
                payload = []
            self.up(msg, payload)
        elif kind is m.TaskBlocked or kind is m.TaskUnblocked:
            task = child.task
            if task is not None and task.msg.task_id == msg.task_id and task.blocked != (kind is m.TaskBlocked):
                task.blocked = kind is m.TaskBlocked
                self._commit(task.request, -1.0 if task.blocked else 1.0)
                self.up(msg)
            if kind is m.TaskBlocked:
                self.down_send(child, m.BlockAck())
        elif kind is m.Unstaged:
            self._unstaged(child, msg.task_ids)
        elif kind is m.StreamItem:  # forwarded while its task runs here (scaler/worker/streaming.py)
            if child.task is not None and child.task.msg.task_id == msg.task_id and not child.task.cancel:
                self.up(msg, payload)
        elif kind is m.TaskOutput:
            self.up(msg)
        elif kind is m.Hello:
            child.ready = True
            child.idle_since = time.monotonic()
            if self.welcome is not None:
                self.down_send(child, self.welcome)

    def _release(self, child: Child, task: LocalTask) -> None:
        child.task = None
        child.idle_since = time.monotonic()
        self.running.pop(task.msg.task_id, None)
        self.started_ids.pop(task.msg.task_id, None)
        if not task.blocked:
            self._commit(task.request, -1.0)

    def _cancel(self, task_id: str, force: bool) -> None:
        for task in self.backlog:
            if task.msg.task_id == task_id:
                self.backlog.remove(task)
                self.up(m.TaskDone(task_id, "cancelled", attempt=task.msg.attempt))
                return
        for waiting in self.fetching.values():
            for task in waiting:
                if task.msg.task_id == task_id:
                    waiting.remove(task)
                    self.up(m.TaskDone(task_id, "cancelled", attempt=task.msg.attempt))
                    return
        for busy in self.running.values():
            staged = busy.staged
            if staged is not None and staged.msg.task_id == task_id:
                staged.cancel = "force" if force else "interrupt"
                self._unstage(busy)
                return
        child = self.running.get(task_id)
        if child is None or child.task is None:
            return
        child.task.cancel = "force" if force else "interrupt"
        if force:
            self._kill(child)
        else:
            self._interrupt(child, child.task)

    def _reclaim(self, count: int) -> None:
        returned: list[str] = []
        for task in reversed(self.backlog):
            if len(returned) >= count:
                break
            if not task.reported:
                returned.append(task.msg.task_id)
        if returned:
            gone = set(returned)
            self.backlog = deque(t for t in self.backlog if t.msg.task_id not in gone)
        self.up(m.Reclaimed(returned))

    def _hand_back(self) -> None:
        """Under an interruption notice: every task not yet reported as started goes back unasked."""
        returned = [task for task in self.backlog if not task.reported]
        if returned:
            self.backlog = deque(task for task in self.backlog if task.reported)
            self.up(m.Reclaimed([task.msg.task_id for task in returned]))

    def _interrupted(self, notice: Notice, now: float) -> None:
        """The host goes at ``notice.deadline``: say so, hand back what has not started, stop taking."""
        self.notice = notice
        log.warning(
            "spot interruption notice (%s in %.0fs): taking no new task, handing back %d unstarted, "
            "%d running may finish; exiting %gs before the deadline",
            notice.action,
            notice.seconds_left,
            sum(1 for task in self.backlog if not task.reported),
            len(self.running),
            self.config.leave_before,
        )
        self.up(m.WorkerInterrupted(max(0.0, notice.deadline - now), notice.action))
        for child in list(self.running.values()):
            self._unstage(child)
        self._hand_back()

    # -- timers -----------------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        if self.notice is None and self.watcher is not None and self.watcher.notice is not None:
            self._interrupted(self.watcher.notice, now)
        if self.notice is not None and now >= self.notice.deadline - self.config.leave_before and self.alive:
            log.warning("the interruption deadline is near; worker exits with %d task(s) running", len(self.running))
            self.alive = False
        for child in self._forget_later:
            if child.process.poll() is None:
                self._kill(child)
        self._forget_later = []
        for child, how in self.pool.reap(self._forget):
            self._unstaged(child, [child.staged.msg.task_id] if child.staged is not None else [])
            task = child.task
            if task is not None:
                self._release(child, task)
                status = {"force": "cancelled", "interrupt": "cancelled"}.get(task.cancel, "crashed")
                if task.cancel.startswith("limit:"):
                    status = task.cancel[6:]
                self.up(m.TaskDone(task.msg.task_id, status, message=how, attempt=task.msg.attempt))
            if child.ready:
                label = f" while running task {task.msg.task_id} ({task.msg.name})" if task is not None else ""
                # One this agent killed for a cancel, or with no task left in it, ended as intended.
                intended = child.doomed and (task is None or task.cancel in ("force", "interrupt"))
                log.log(logging.INFO if intended else logging.WARNING, "%s%s", how, label)
        limit = self.config.task_memory_limit_mb
        for child in list(self.running.values()):
            task = child.task
            if task is None:
                continue
            if child.staged is not None and now - task.started > STAGE_PATIENCE:
                self._unstage(child)
            if task.kill_at and now >= task.kill_at:
                self._kill(child)
            elif task.deadline and now >= task.deadline and not task.cancel:
                task.cancel = "limit:timeout"
                self._kill(child)
            elif limit > 0 and not task.cancel and self.pool.rss_mb(child) > limit:
                task.cancel = "limit:memory"
                self._kill(child)
        ready = [c for c in self.pool.children.values() if c.task is None]
        if len(self.pool.children) < self.slots and self.pool.starting() == 0:
            self._spawn()
        elif len(self.pool.children) > self.slots:
            for child in ready[: len(self.pool.children) - self.slots]:
                if child.ready and now - child.idle_since > self.config.idle_process_ttl:
                    self.down_send(child, m.Shutdown("idle"))
                    self.flush()
                    self._forget(child)
        if now - self.last_heard > self.config.death_timeout:
            address, timeout = self.config.scheduler, self.config.death_timeout
            if not self.joined:
                self._fail(no_answer(address, timeout, self.keys is not None))
            else:
                log.error("no word from scheduler %s for %.0fs; worker exits", address, timeout)
                self.alive = False

    def _close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        idle = [child for child in self.pool.children.values() if child.task is None and child.ready]
        for child in idle:  # they end on their own, so their tasks' clients close: what others hold stays
            self.down_send(child, m.Shutdown("worker exiting"))
        try:
            self.up(m.Goodbye("worker exiting"))
            self.flush()
        except zmq.ZMQError:
            pass
        deadline = time.monotonic() + 1.0
        for child in idle:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.pool.stop_all()
        self.link.hang_up(500)
        self.context.term()


def _unreachable(child: Child, exc: OSError) -> None:
    """A write to a task process failed. A closed pipe means the process has ended or is ending: its
    end is reported once, by the reaper (a warning only if nobody meant it to end), not here too."""
    closed = isinstance(exc, (BrokenPipeError, ConnectionResetError))
    log.log(logging.DEBUG if closed else logging.WARNING, "could not reach task process pid %d: %s", child.pid, exc)
