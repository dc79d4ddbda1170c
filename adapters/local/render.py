"""The local rendering of a ``WorkerLaunch``: worker processes on this host.

The one place a worker process is started, for the local provider and for ``LocalCluster`` alike.
Credentials reach the process through its environment, never its command line; the process dies
with the one that started it (``SCALER_PARENT_PID``, a parent-death signal in the worker).
"""

from __future__ import annotations

import os
import subprocess
import sys

from scaler.adapters.launch import WorkerLaunch


def environment(launch: WorkerLaunch) -> dict[str, str]:
    """This process's environment, then the launch's, then its credentials."""
    env = dict(os.environ)
    env.update(launch.environment)
    env.update(launch.credentials.local_environment())
    env["SCALER_PARENT_PID"] = str(os.getpid())
    return env


def start_worker(
    launch: WorkerLaunch, index: int = 0, python: str = "", new_session: bool = False
) -> subprocess.Popen[bytes]:
    """Start worker ``index`` of ``launch`` (``new_session``: not in this process's group, so a
    terminal's Ctrl-C reaches the adapter, which then stops its units itself)."""
    return subprocess.Popen(
        launch.argv(index, python or sys.executable),
        env=environment(launch),
        stdin=subprocess.DEVNULL,
        start_new_session=new_session,
    )
