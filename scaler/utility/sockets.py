"""The one way a peer dials the scheduler: a DEALER with its own identity, no HWM, CURVE if keyed."""

from __future__ import annotations

import zmq

from scaler.utility.ids import random_id
from scaler.utility.security import CurveKeys


def dial(context: zmq.Context, kind: str, address: str, keys: CurveKeys | None, linger_ms: int = 1000) -> zmq.Socket:  # type: ignore[type-arg]
    socket: zmq.Socket = context.socket(zmq.DEALER)  # type: ignore[type-arg]
    socket.setsockopt(zmq.IDENTITY, random_id(kind).encode())
    for option in (zmq.SNDHWM, zmq.RCVHWM):
        socket.setsockopt(option, 0)
    socket.setsockopt(zmq.LINGER, linger_ms)
    if keys is not None:
        keys.apply_client(socket)
    return socket
