"""Task processes forked from their agent, and a ``Popen``-like handle on them.

A fresh interpreter costs about 150 ms of CPU; a fork of the agent costs a few. That matters when
twenty units start at once on a small host, and whenever a crashed or blocked task needs a new
process. The agent never imports user code, so the fork starts clean. The fork happens in the
agent's own thread while zmq's I/O threads exist: the child never touches zmq, closes every
inherited descriptor but its end of the socketpair and stdio, and resets the agent's signal
handlers before it serves. Set ``SCALER_SPAWN_TASK_PROCESSES=1`` to start fresh interpreters instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
import warnings


class ForkedProcess:
    """The subset of ``subprocess.Popen`` the agent uses, for a child made by ``os.fork``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"task process {self.pid}", timeout or 0.0)
            time.sleep(0.01)
        return code

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def fork_task_process(fd: int, env: dict[str, str]) -> ForkedProcess:
    """Fork a task process serving the socketpair end ``fd``, with ``env`` added to its environment."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        return ForkedProcess(pid)
    code = 0
    try:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        os.closerange(3, fd)
        os.closerange(fd + 1, max(fd + 1, os.sysconf("SC_OPEN_MAX")))
        os.environ.update(env)
        from scaler.worker.task_process import serve_fd

        serve_fd(fd)
    except BaseException:
        traceback.print_exc(file=sys.stderr)
        code = 1
    finally:
        os._exit(code)
