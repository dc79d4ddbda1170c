"""A task process: runs one task at a time for its agent, which may kill it at any moment.

Started as a fresh interpreter (``python -m scaler.worker.task_process FD NAME``), never by
forking the agent; FD is its end of a socketpair with the agent. It keeps the raw frames of
functions and objects the agent sent it until told to drop them, unpickles functions once, and
unpickles arguments afresh for every task.
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
from scaler.utility import serialization as ser
from scaler.utility import shm
from scaler.utility.lifetime import die_with_parent, parent_from_env
from scaler.worker import runtime
from scaler.worker.pipe import PipeClosed, recv_frames, send_frames


class TaskProcess:
    def __init__(self, fd: int) -> None:
        self.socket = socket.socket(fileno=fd)
        self.socket.setblocking(True)
        self.lock = threading.Lock()
        self.objects: dict[str, tuple[list[Any], bool]] = {}
        self.functions: dict[str, Any] = {}
        self.running = False

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
                    for object_id in msg.object_ids:
                        self.objects.pop(object_id, None)
                        self.functions.pop(object_id, None)
                elif type(msg) is m.Welcome:
                    shm.enable(msg.shm_prefix)
                elif type(msg) is m.Shutdown:
                    return

    def _interrupt(self, *_: Any) -> None:
        if self.running:
            self.running = False
            raise TaskCancelledError("the task was cancelled")

    def run(self, msg: m.RunTask, payload: list[Any]) -> None:
        pos = 0
        for header in msg.objects:
            self.objects[header.object_id] = (payload[pos : pos + header.nbufs], header.is_error)
            pos += header.nbufs
        args_frames = payload[pos:]
        runtime.set_current(runtime.TaskContext(msg.task_id, msg.name, msg.stream_output))
        status = "done"
        headers: list[m.ObjHeader] = []
        out: list[Any] = []
        try:
            self.running = True
            function = self._function(msg.func_id)
            with ser.resolve_refs(self._value, msg.resolve_nested):
                args, kwargs = ser.loads(args_frames) if args_frames else ((), {})
            result = function(*args, **kwargs)
            self.running = False
            headers, out = self._results(msg, result)
        except TaskCancelledError:
            status = "cancelled"
        except BaseException as exc:
            self.running = False
            if isinstance(exc, TaskCancelledError):
                status = "cancelled"
            else:
                status = "error"
                out = ser.dumps_exception(exc)
                headers = [m.ObjHeader(msg.task_id, len(out), True)]
        finally:
            self.running = False
            runtime.set_current(None)
            _flush_streams()
        self.send([m.TaskDone(msg.task_id, status, headers, attempt=msg.attempt)], out)

    def _function(self, func_id: str) -> Any:
        function = self.functions.get(func_id)
        if function is None:
            frames, _ = self.objects[func_id]
            function = self.functions[func_id] = ser.loads(frames)
        return function

    def _value(self, object_id: str) -> Any:
        entry = self.objects.get(object_id)
        if entry is None:
            raise KeyError(f"object {object_id} was not delivered to this task process")
        frames, is_error = entry
        if is_error:
            raise ser.loads_exception(frames)
        return ser.loads(frames)

    def _results(self, msg: m.RunTask, result: Any) -> tuple[list[m.ObjHeader], list[Any]]:
        n = msg.num_returns
        if n == 1:
            frames = ser.dumps(result)
            return [m.ObjHeader(msg.task_id, len(frames))], frames
        values = [] if n == 0 else list(result)
        if len(values) != n:
            raise ValueError(f"task declared num_returns={n} but returned {len(values)} values")
        headers: list[m.ObjHeader] = []
        out: list[Any] = []
        for i, value in enumerate(values):
            frames = ser.dumps(value)
            headers.append(m.ObjHeader(f"{msg.task_id}#{i}", len(frames)))
            out.extend(frames)
        return headers, out


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
    sys.path.insert(0, os.getcwd())
    try:
        TaskProcess(fd).serve()
    except KeyboardInterrupt:
        pass
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
