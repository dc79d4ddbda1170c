"""Command-line values checked by the deployment file's Structs, with errors that name the flag.

A flag and a file key share one rule (``scaler.config.schema``); only the way the error names the
place differs: ``--peer-timeout: Expected `float` > 0.0`` for a flag, the file and key path for a file.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)

_PATH = re.compile(r" - at `(\$[^`]*)`$")


class FlagError(ValueError):
    """A command-line value out of bounds; the message names the flag (``key``: its Struct field)."""

    def __init__(self, key: str, why: str) -> None:
        self.key = key
        self.why = why
        super().__init__(f"--{key.replace('_', '-')}: {why}" if key else why)


def where_and_why(exc: msgspec.ValidationError) -> tuple[str, str]:
    """The key path (``$.scheduler.peer_timeout``, or "" when the whole value is wrong) and the reason."""
    text = str(exc)
    found = _PATH.search(text)
    return (found.group(1), text[: found.start()]) if found else ("", text)


def timing_problem(heartbeat_interval: float, peer_timeout: float) -> str:
    """Why these two cannot work together ("" if they can): a live peer must beat before it is dropped."""
    if peer_timeout <= 2 * heartbeat_interval:
        return (
            f"peer_timeout ({peer_timeout:g}s) must exceed twice heartbeat_interval ({heartbeat_interval:g}s), "
            "or live peers are dropped between two heartbeats"
        )
    return ""


def check_flags(values: dict[str, Any], schema: type[S]) -> S:
    """``values`` (flag names with underscores) decoded into ``schema``, or ``FlagError`` naming the flag."""
    try:
        return msgspec.convert(values, schema)
    except msgspec.ValidationError as exc:
        path, why = where_and_why(exc)
        raise FlagError(path[2:] if path.startswith("$.") else "", why) from exc
