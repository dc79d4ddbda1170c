"""A task process: runs one task at a time for its agent, which may kill it at any moment.

Forked from its agent (``scaler/worker/forked.py``), or started as a fresh interpreter
(``python -m scaler.worker.task_process FD NAME``); FD is its end of a socketpair with the agent.
Its stdout/stderr are forwarded to the client for tasks that ask; SIGUSR1 interrupts the running
task (cancel).

The agent may *stage* a task behind the running one (see ``scaler/worker/agent.py``): this process
reads everything the agent sent before it starts its next task, so it goes from one task to the
next without waiting for the agent, and an ``Unstage`` sent meanwhile still takes a staged task
back. When the running task blocks on subtasks, this process hands back every staged task it has
or is sent until the agent acknowledges the block: a staged task could be the very subtask the
blocked one waits for. When the running task turns out long, the agent sends ``Unstage`` and then
SIGUSR2, on which this process reads its messages in the middle of the task (deferred while the
main thread is itself reading or writing the socketpair, so no message is ever cut in half).
"""

from __future__ import annotations

import io
import os
import select
import signal
import socket
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from scaler.errors import TaskCancelledError
from scaler.protocol import messages as m
from scaler.protocol.wire import encode, split_batch
from scaler.utility import shm
from scaler.utility.lifetime import die_with_parent, parent_from_env
from scaler.worker import runtime
from scaler.worker.execute import Executor
from scaler.worker.pipe import PipeClosed, recv_frames, send_frames


class TaskProcess:
    def __init__(self, fd: int) -> None:
        self.socket = socket.socket(fileno=fd)
        self.socket.setblocking(True)
        self.lock = threading.RLock()
        self.read_lock = threading.RLock()
        self.main_thread = threading.get_ident()
        self.main_io = 0  # > 0 while the main thread reads or writes the socketpair
        self.in_task = False
        self.poke_deferred = False
        self.executor = Executor(on_finally=_flush_streams)
        self.executor.emit = lambda msg, frames: self.send([msg], frames)  # a stream item, at once
        self.inbox: deque[tuple[Any, list[Any]]] = deque()
        self.queue: deque[tuple[m.RunTask, list[Any]]] = deque()
        self.stopping = False
        self.interrupt_deferred = False

    @contextmanager
    def _io(self) -> Iterator[None]:
        """Marks the main thread's socket I/O, during which signal handlers only take note."""
        main = threading.get_ident() == self.main_thread
        if main:
            self.main_io += 1
        try:
            yield
        finally:
            if main:
                self.main_io -= 1
                if not self.main_io:
                    if self.poke_deferred:
                        self.poke_deferred = False
                        self._poke()
                    if self.interrupt_deferred:
                        self.interrupt_deferred = False
                        self._interrupt()

    def send(self, msgs: list[Any], frames: list[Any] | None = None) -> None:
        with self._io(), self.lock:
            send_frames(self.socket, [encode(msgs), *(frames or [])])

    def notify_blocked(self, task_id: str, blocked: bool) -> None:
        if not blocked:
            self.send([m.TaskUnblocked(task_id)])
            return
        with self._io(), self.read_lock:
            self.send([m.TaskBlocked(task_id)])
            returned = [msg.task_id for msg, _ in self.queue]
            self.queue.clear()
            acked = False
            try:
                while not acked:
                    try:
                        frames = recv_frames(self.socket)
                    except PipeClosed:
                        os._exit(0)
                    for msg, payload in split_batch(frames):
                        if type(msg) is m.BlockAck:
                            acked = True
                        elif type(msg) is m.RunTask:
                            self.executor.store(msg, payload)
                            returned.append(msg.task_id)
                        else:
                            self._handle(msg, payload)
            finally:
                if returned:
                    self.send([m.Unstaged(returned)])

    def _read(self, block: bool) -> bool:
        """Handle, in order, all that the agent has sent (waiting for the first if ``block``)."""
        while True:
            with self._io(), self.read_lock:
                if not block and not select.select([self.socket], [], [], 0)[0]:
                    return True
                try:
                    frames = recv_frames(self.socket)
                except PipeClosed:
                    return False
            for msg, payload in split_batch(frames):
                self._handle(msg, payload)
            block = False

    def _handle(self, msg: Any, payload: list[Any]) -> None:
        kind = type(msg)
        if kind is m.RunTask:
            self.queue.append((msg, self.executor.store(msg, payload)))
        elif kind is m.Unstage:
            gone = set(msg.task_ids)
            found = [task.task_id for task, _ in self.queue if task.task_id in gone]
            if found:
                self.queue = deque(entry for entry in self.queue if entry[0].task_id not in gone)
                self.send([m.Unstaged(found)])
        elif kind is m.ObjectsFreed:
            self.executor.drop(msg.object_ids)
        elif kind is m.Welcome:
            shm.enable(msg.shm_prefix)
        elif kind is m.Shutdown:
            self.stopping = True

    def serve(self) -> None:
        runtime.install(os.environ.get("SCALER_SCHEDULER_ADDRESS", ""), self.notify_blocked)
        signal.signal(signal.SIGUSR1, self._interrupt)
        signal.signal(signal.SIGUSR2, self._poke)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.stdout = _Forward(sys.stdout, "stdout", self)
        sys.stderr = _Forward(sys.stderr, "stderr", self)
        self.send([m.Hello("process", m.PROTOCOL_VERSION, pid=os.getpid())])
        while not self.stopping:
            if not self._read(block=not self.queue) or self.stopping:
                return
            if self.queue:
                msg, args = self.queue.popleft()
                self.in_task = True
                try:
                    done, out = self.executor.run(msg, args)
                finally:
                    self.in_task = False
                self.send([done], out)

    def _poke(self, *_: Any) -> None:
        """SIGUSR2: read the agent's messages now, in the middle of a task (an ``Unstage``)."""
        if not self.in_task:
            return
        if self.main_io:
            self.poke_deferred = True
            return
        with self._io():
            if not self._read(block=False):
                os._exit(0)

    def _interrupt(self, *_: Any) -> None:
        if self.main_io:
            self.interrupt_deferred = True
        elif self.executor.running:
            self.executor.running = False
            raise TaskCancelledError("the task was cancelled")


class _Forward(io.TextIOBase):
    """Writes to the real stream and, when the task asked for it, to the client through the agent."""

    def __init__(self, real: Any, name: str, process: TaskProcess) -> None:
        self.real = real
        self.stream_name = name
        self.process = process
        self.buffer_text: list[str] = []

    def write(self, text: str) -> int:
        context = runtime.current()
        if context is not None and context.stream_output:
            self.buffer_text.append(text)
            if "\n" in text:
                self.flush()
            return len(text)
        self.real.write(text)
        return len(text)

    def flush(self) -> None:
        context = runtime.current()
        if self.buffer_text:
            text = "".join(self.buffer_text)
            self.buffer_text.clear()
            task_id = context.task_id if context is not None else ""
            self.process.send([m.TaskOutput(task_id, self.stream_name, text)])
        self.real.flush()

    def fileno(self) -> int:
        return int(self.real.fileno())


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def serve_fd(fd: int) -> None:
    """Be a task process on socketpair end ``fd`` until the agent says stop or goes away."""
    die_with_parent(parent_from_env())
    from scaler.compat.ray_finder import install_finder

    install_finder()
    sys.path.insert(0, os.getcwd())
    TaskProcess(fd).serve()
    client_module = sys.modules.get("scaler.client.client")
    if client_module is not None:  # a normal end: the tasks' own clients close, so what they own and
        client_module.close_all_clients()  # others hold stays (a killed process's objects go with it)


def main() -> None:
    try:
        serve_fd(int(sys.argv[1]))
    except KeyboardInterrupt:
        pass
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
