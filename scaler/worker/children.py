"""The agent's task processes: start them (forked, see ``forked.py``), watch them, kill them.

Each child dials the agent's private IPC socket with its own identity. The agent keeps at least
one child per slot warm; more are started when tasks block on subtasks and lend their capacity.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from scaler.worker.forked import ForkedProcess, fork_task_process
from scaler.worker.pipe import FrameReader, FrameWriter

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LocalTask:
    msg: Any
    args: list[Any]
    request: Any
    needs: list[str]
    started: float = 0.0
    deadline: float = 0.0
    kill_at: float = 0.0
    cancel: str = ""
    blocked: bool = False
    unstaging: bool = False
    reported: bool = False  # the scheduler was told it started: never hand it back by Reclaim


@dataclass(eq=False)
class Child:
    identity: bytes
    process: subprocess.Popen[bytes] | ForkedProcess
    sock: socket.socket
    reader: FrameReader
    writer: FrameWriter
    write_waits: bool = False  # the writer holds bytes; the agent polls the socket for POLLOUT
    interrupted_for: str = ""  # the task the last SIGUSR1 was meant for
    ready: bool = False
    task: LocalTask | None = None
    staged: LocalTask | None = None  # sent already; starts the moment ``task`` ends
    doomed: bool = False  # killed by the agent: takes no task, its staged one was taken back
    known: dict[str, int] = field(default_factory=dict)
    known_bytes: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    ps: psutil.Process | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


class ChildPool:
    def __init__(self, scheduler: str, env_extra: dict[str, str]) -> None:
        self.scheduler = scheduler
        self.env_extra = env_extra
        self.children: dict[bytes, Child] = {}
        self.counter = 0

    def spawn(self) -> Child:
        self.counter += 1
        identity = f"p{self.counter}".encode()
        env = dict(os.environ)
        env.update(self.env_extra)
        env["SCALER_PARENT_PID"] = str(os.getpid())
        env["SCALER_SCHEDULER_ADDRESS"] = self.scheduler
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        process: subprocess.Popen[bytes] | ForkedProcess
        try:
            if os.environ.get("SCALER_SPAWN_TASK_PROCESSES") == "1":
                process = subprocess.Popen(
                    [sys.executable, "-m", "scaler.worker.task_process", str(theirs.fileno()), identity.decode()],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    pass_fds=(theirs.fileno(),),
                )
            else:
                added = {k: v for k, v in env.items() if os.environ.get(k) != v}
                process = fork_task_process(theirs.fileno(), added)
        finally:
            theirs.close()
        ours.setblocking(False)
        child = Child(identity, process, ours, FrameReader(ours), FrameWriter(ours))
        self.children[identity] = child
        return child

    def forget(self, child: Child) -> None:
        self.children.pop(child.identity, None)
        try:
            child.sock.close()
        except OSError:
            pass

    def idle(self) -> Child | None:
        for child in self.children.values():
            if child.ready and child.task is None and not child.doomed:
                return child
        return None

    def starting(self) -> int:
        return sum(1 for c in self.children.values() if not c.ready)

    def reap(self, forget: Callable[[Child], None]) -> list[tuple[Child, str]]:
        """Children that have exited since the last call, with how they ended."""
        dead: list[tuple[Child, str]] = []
        for child in list(self.children.values()):
            code = child.process.poll()
            if code is None:
                continue
            forget(child)
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            dead.append((child, f"task process pid {child.pid} ended with {how}"))
        return dead

    def kill(self, child: Child) -> None:
        self._signal(child, signal.SIGKILL)

    def poke(self, child: Child) -> None:
        """SIGUSR2: read your messages now, even mid-task (see task_process.py)."""
        self._signal(child, signal.SIGUSR2)

    def interrupt(self, child: Child) -> None:
        self._signal(child, signal.SIGUSR1)

    @staticmethod
    def _signal(child: Child, signum: int) -> None:
        try:
            child.process.send_signal(signum)
        except ProcessLookupError:
            pass

    def rss_mb(self, child: Child) -> float:
        try:
            if child.ps is None:
                child.ps = psutil.Process(child.pid)
            return float(child.ps.memory_info().rss) / (1 << 20)
        except psutil.Error:
            return 0.0

    def stop_all(self) -> None:
        for child in self.children.values():
            self.kill(child)
            child.sock.close()
        deadline = time.monotonic() + 2.0
        for child in self.children.values():
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("task process pid %d did not exit", child.pid)
        self.children.clear()
