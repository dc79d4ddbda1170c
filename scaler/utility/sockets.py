"""The one way a peer dials the scheduler (a DEALER with its own identity, no HWM, CURVE if keyed, else
the cluster's secret when this host has one: ``scaler.utility.security``),
and multipart send/receive for the hot paths.

``send_frames``/``recv_frames`` do what pyzmq's ``send_multipart``/``recv_multipart`` do with
``copy=False``, calling the backend socket directly with integer flags: pyzmq's wrappers combine
``IntFlag`` enums on every frame, which costs more than the send itself for small messages.
"""

from __future__ import annotations

import struct
from typing import Any

import zmq
from zmq.backend import Socket as _BackendSocket

from scaler.utility.ids import random_id
from scaler.utility.security import CurveKeys, apply_secret, find_secret

SECRET_WAIT = 5.0  # a scheduler started a moment ago may not have published its secret yet


def monitor_event(frames: list[bytes]) -> dict[str, Any]:
    """A socket-monitor message as ``{"event": zmq.Event, "value": int}``, as pyzmq's parser gives it,
    without importing ``zmq.utils.monitor`` (it pulls in asyncio and ssl: ~6 MiB in every process)."""
    event, value = struct.unpack("=Hi", bytes(frames[0])[:6])
    try:
        return {"event": zmq.Event(event), "value": value}
    except ValueError:
        return {"event": event, "value": value}


def recv_monitor_event(monitor: zmq.Socket, flags: int = 0) -> dict[str, Any]:  # type: ignore[type-arg]
    return monitor_event(monitor.recv_multipart(flags))


def dial(
    context: zmq.Context,  # type: ignore[type-arg]
    kind: str,
    address: str,
    keys: CurveKeys | None,
    linger_ms: int = 1000,
    secret_wait: float = SECRET_WAIT,
) -> zmq.Socket:  # type: ignore[type-arg]
    socket: zmq.Socket = context.socket(zmq.DEALER)  # type: ignore[type-arg]
    socket.setsockopt(zmq.IDENTITY, random_id(kind).encode())
    for option in (zmq.SNDHWM, zmq.RCVHWM):
        socket.setsockopt(option, 0)
    socket.setsockopt(zmq.LINGER, linger_ms)
    if keys is not None:
        keys.apply_client(socket)
    else:
        secret = find_secret(address, wait=secret_wait)
        if secret is not None:
            apply_secret(socket, secret)
    return socket


# libzmq gives up on a connection whose handshake failed on authentication or on the protocol (a
# security mismatch): no reconnect, and a DEALER's blocking send then waits for ever. A connection
# that dropped mid-handshake (EVENT_HANDSHAKE_FAILED_NO_DETAIL) is retried.
HANDSHAKE_REFUSED = int(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)


def event_name(event: Any) -> str:
    """A monitor event's name (``EVENT_HANDSHAKE_FAILED_AUTH``) for a log line."""
    try:
        return str(zmq.Event(int(event)).name)
    except ValueError:
        return str(event)


_send = _BackendSocket.send
_recv = _BackendSocket.recv
_get = _BackendSocket.get
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_MORE = int(zmq.SNDMORE)
_NOBLOCK = int(zmq.NOBLOCK)


def send_frames(socket: zmq.Socket, frames: list[Any], noblock: bool = False) -> None:  # type: ignore[type-arg]
    """Send ``frames`` as one message, zero-copy; ``noblock`` raises ``zmq.Again`` instead of waiting."""
    flags = _NOBLOCK if noblock else 0
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        _send(socket, frame, flags | _MORE if i < last else flags, copy=False)


def recv_frames(socket: zmq.Socket, noblock: bool = False) -> list[zmq.Frame]:  # type: ignore[type-arg]
    """The next whole message as frames; ``noblock`` raises ``zmq.Again`` if none is waiting."""
    flags = _NOBLOCK if noblock else 0
    frame = _recv(socket, flags, copy=False)
    frames = [frame]
    while frame.more:
        frame = _recv(socket, flags, copy=False)
        frames.append(frame)
    return frames


def readable(socket: zmq.Socket) -> bool:  # type: ignore[type-arg]
    """A whole message is waiting (``EVENTS`` has ``POLLIN``); also clears the socket's ``FD`` signal."""
    events: int = _get(socket, _EVENTS)  # type: ignore[assignment]
    return bool(events & _POLLIN)
