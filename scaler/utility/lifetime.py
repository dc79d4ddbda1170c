"""Tie a helper process's life to its parent: it dies when the process that started it dies."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int | None, signum: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``signum`` (SIGKILL by default) when our parent exits; exit now if it already has.

    Only for processes started by a Scaler parent (``expected_parent`` given): a scheduler or
    worker started by hand from a shell must outlive that shell. A scheduler asks for SIGTERM, so
    that it still removes its shared-memory segments when the program that started it was killed.
    """
    if expected_parent is None:
        return
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != expected_parent:
        os._exit(1)


def parent_from_env(name: str = "SCALER_PARENT_PID") -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None
