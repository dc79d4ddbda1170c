"""What the SSH provider's parts need of a host: run a command, place a file (DESIGN §4, SSH).

``Remote`` is the small surface the bootstrap, the unit records and the tunnel use, so each is
written against a protocol and not against paramiko; ``scaler.adapters.ssh.connection`` implements
it over one reused paramiko session per host. A command is a shell line run by the login shell of the
host's user; ``stdin`` is written and closed before its output is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Completed:
    rc: int
    stdout: bytes
    stderr: bytes


class RemoteCommandError(RuntimeError):
    """A command on a host exited non-zero; says which host, which command, and its stderr."""

    def __init__(self, host: str, what: str, completed: Completed) -> None:
        tail = completed.stderr.decode(errors="replace").strip()[-2000:]
        super().__init__(f"host {host}: {what} exited {completed.rc}: {tail or '(no stderr)'}")
        self.host, self.completed = host, completed


class Remote(Protocol):
    name: str  # the host's name in the inventory, for messages

    def run(self, command: str, stdin: bytes = b"", timeout: float = 60.0) -> Completed: ...

    def put(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write ``data`` to ``path`` (``~/`` allowed) with ``mode``, making missing parent directories 0700."""
        ...
