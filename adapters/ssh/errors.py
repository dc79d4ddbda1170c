"""SSH's errors as ours: one table the runner reads for anything a host operation lets escape.

Most host failures never escape: the provider catches an unreachable host (``HostDown``), marks
it down and places units on the group's other hosts. What escapes is the launch's verdict once no
host could take a unit: refused credentials or host keys stop the group (fix and restart); no
reachable host with a free slot is capacity, so the group backs off and the policy spills its
demand elsewhere; a missing interpreter or a host-side script failure is configuration.
"""

from __future__ import annotations

import socket

import paramiko
from scaler.adapters.errors import AuthError, CapacityError, ConfigurationError, ErrorTable
from scaler.adapters.ssh.channel import RemoteCommandError

UNREACHABLE = (OSError, EOFError, TimeoutError, socket.timeout, paramiko.SSHException)


class HostDown(CapacityError):
    """A host could not be reached or its session failed; its units count as failed until it answers."""


def _missing_program(exc: BaseException) -> bool:
    return isinstance(exc, RemoteCommandError) and exc.completed.rc in (126, 127)


ERRORS: ErrorTable = (
    ((paramiko.AuthenticationException, paramiko.BadHostKeyException), AuthError),
    (_missing_program, ConfigurationError),
    (RemoteCommandError, ConfigurationError),
    (UNREACHABLE, CapacityError),
)
