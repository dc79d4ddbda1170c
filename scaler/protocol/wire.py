"""Encoding and validating batches of control messages plus their payload frames.

A batch is ``[header, *payloads]``; the header decodes to ``list[AnyMsg]`` and each message that
announces payloads (``nbufs`` / ``objects``) owns the next frames in order. ``split_batch`` checks
that the announced frame counts match exactly, so a forged or truncated batch is refused whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from scaler.protocol.messages import (
    AnyMsg,
    KVPut,
    KVReply,
    ObjectReply,
    PutObject,
    RunTask,
    StreamItem,
    StreamReady,
    SubmitTask,
    TaskDone,
    TaskResult,
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[AnyMsg])

MAX_FRAMES_PER_MESSAGE = 1 << 16


class ProtocolError(ValueError):
    """A batch that does not follow the wire format; the text says why."""


def encode(messages: Sequence[Any]) -> bytes:
    return _encoder.encode(messages)


def payload_count(msg: Any) -> int:
    """How many payload frames follow ``msg`` in its batch."""
    kind = type(msg)
    if kind in (SubmitTask, PutObject, ObjectReply, KVPut, KVReply, StreamItem, StreamReady):
        count: int = msg.nbufs
        return count
    if kind is RunTask:
        count = int(msg.nbufs)
        for header in msg.objects:
            count += header.nbufs
        return count
    if kind is TaskDone or kind is TaskResult:
        total: int = 0
        for header in msg.objects:
            total += header.nbufs
        return total
    return 0


def split_batch(frames: Sequence[Any]) -> list[tuple[Any, list[Any]]]:
    """Decode ``[header, *payloads]`` into ``[(message, its payload frames)]`` or raise ProtocolError."""
    if not frames:
        raise ProtocolError("empty message")
    header = frames[0]
    try:
        messages = _decoder.decode(header.buffer if hasattr(header, "buffer") else header)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtocolError(f"undecodable header: {exc}") from exc
    out: list[tuple[Any, list[Any]]] = []
    pos = 1
    total = len(frames)
    for msg in messages:
        n = payload_count(msg)
        if n < 0 or n > MAX_FRAMES_PER_MESSAGE or pos + n > total:
            raise ProtocolError(f"{type(msg).__name__} announces {n} payload frames but only {total - pos} remain")
        if n < 0 or any(getattr(o, "nbufs", 0) < 0 for o in getattr(msg, "objects", ())):
            raise ProtocolError(f"{type(msg).__name__} announces a negative frame count")
        out.append((msg, list(frames[pos : pos + n]) if n else []))
        pos += n
    if pos != total:
        raise ProtocolError(f"{total - pos} payload frames not announced by any message")
    return out
