"""Where a task's streamed output goes in the program that submitted it: its stdout or stderr, tagged.

A task that streams its output (``stream_output=True``; Ray programs by default, as ``log_to_driver``
does in Ray) has each line written here prefixed with ``(task <id>)``, so interleaved lines of many
tasks can be told apart, as Ray prefixes ``(pid=...)``. ``SCALER_STREAM_OUTPUT=1`` (set by
``Cluster(forward_logs=True)`` and ``scaler run`` for their block or program) makes every task of
the clients made under it stream by default.
"""

from __future__ import annotations

import os
import sys

from scaler.protocol import messages as m

STREAM_ENV = "SCALER_STREAM_OUTPUT"


def stream_by_default() -> bool:
    return os.environ.get(STREAM_ENV, "") == "1"


def write(msg: m.TaskOutput, at_line_start: dict[str, bool]) -> None:
    """Writes ``msg.text`` with each new line tagged; ``at_line_start`` remembers, per (task, stream), whether
    the last text written ended a line, so a line that comes in pieces is tagged once."""
    stream = sys.stderr if msg.stream == "stderr" else sys.stdout
    key = f"{msg.task_id}/{msg.stream}"
    tag = f"(task {msg.task_id}) "
    pieces = []
    for line in msg.text.splitlines(keepends=True):
        pieces.append(tag + line if at_line_start.get(key, True) else line)
        at_line_start[key] = line.endswith("\n")
    stream.write("".join(pieces))
    stream.flush()
