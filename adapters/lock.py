"""One adapter process per cluster id and adapter name: an exclusive lock in the state directory.

Two adapters of one cluster with one name would each see the other's units as orphans and reap them
(each killing the other's workers, no task ever finishing). The lock is ``fcntl.flock`` on
``<state_dir>/<cluster>.<adapter>.lock``, held for the process's life and released by the kernel
when it dies, even by SIGKILL; the file also records the holder (pid, host, since when) so the
second process's refusal names the first.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from scaler.adapters.identity import Identity


class AdapterLockedError(RuntimeError):
    """Another live process already runs this cluster's adapter of this name."""


@dataclass(frozen=True)
class AdapterLock:
    path: Path
    fd: int

    def release(self) -> None:
        os.close(self.fd)


def lock_path(state_dir: Path, identity: Identity) -> Path:
    return state_dir / f"{identity.cluster_id}.{identity.adapter}.lock"


def acquire(state_dir: Path, identity: Identity) -> AdapterLock:
    """Hold the adapter's lock, or raise ``AdapterLockedError`` naming the process that holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(state_dir, identity)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise AdapterLockedError(
            f"adapter {identity.adapter!r} of cluster {identity.cluster_id!r} is already running ({holder}; "
            f"lock {path}): stop it first, or give this deployment its own cluster_id"
        ) from None
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return AdapterLock(path, fd)


def _holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(record["since"])))
        return f"pid {int(record['pid'])} on host {record['host']} since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet recorded itself"
