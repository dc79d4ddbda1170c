"""A task process: runs one task at a time for its agent, which may kill it at any moment.

Started as a fresh interpreter (``python -m scaler.worker.task_process FD NAME``), never by
forking the agent; FD is its end of a socketpair with the agent. Its stdout/stderr are forwarded
to the client for tasks that ask; SIGUSR1 interrupts the running task (cancel).
"""

from __future__ import annotations

import io
import os
import signal
import socket
import sys
import threading
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
        self.lock = threading.Lock()
        self.executor = Executor(on_finally=_flush_streams)

    def send(self, msgs: list[Any], frames: list[Any] | None = None) -> None:
        with self.lock:
            send_frames(self.socket, [encode(msgs), *(frames or [])])

    def notify_blocked(self, task_id: str, blocked: bool) -> None:
        self.send([m.TaskBlocked(task_id) if blocked else m.TaskUnblocked(task_id)])

    def serve(self) -> None:
        runtime.install(os.environ.get("SCALER_SCHEDULER_ADDRESS", ""), self.notify_blocked)
        signal.signal(signal.SIGUSR1, self._interrupt)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.stdout = _Forward(sys.stdout, "stdout", self)
        sys.stderr = _Forward(sys.stderr, "stderr", self)
        self.send([m.Hello("process", m.PROTOCOL_VERSION, pid=os.getpid())])
        while True:
            try:
                frames = recv_frames(self.socket)
            except PipeClosed:
                return
            for msg, payload in split_batch(frames):
                if type(msg) is m.RunTask:
                    self.run(msg, payload)
                elif type(msg) is m.ObjectsFreed:
                    self.executor.drop(msg.object_ids)
                elif type(msg) is m.Welcome:
                    shm.enable(msg.shm_prefix)
                elif type(msg) is m.Shutdown:
                    return

    def _interrupt(self, *_: Any) -> None:
        if self.executor.running:
            self.executor.running = False
            raise TaskCancelledError("the task was cancelled")

    def run(self, msg: m.RunTask, payload: list[Any]) -> None:
        args = self.executor.store(msg, payload)
        done, out = self.executor.run(msg, args)
        self.send([done], out)


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


def main() -> None:
    fd = int(sys.argv[1])
    die_with_parent(parent_from_env())
    from scaler.compat.ray_finder import install_finder

    install_finder()
    sys.path.insert(0, os.getcwd())
    try:
        TaskProcess(fd).serve()
    except KeyboardInterrupt:
        pass
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
