"""Outgoing messages gathered per peer during one loop turn and sent as one batch each."""

from __future__ import annotations

import logging
from typing import Any

import zmq

from scaler.protocol.wire import encode
from scaler.utility import shm
from scaler.utility.sockets import send_frames

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, socket: zmq.Socket) -> None:  # type: ignore[type-arg]
        self._socket = socket
        self._pending: dict[bytes, tuple[list[Any], list[Any]]] = {}
        self.remote: set[bytes] = set()

    def send(self, identity: bytes, msg: Any, frames: list[Any] | None = None) -> None:
        entry = self._pending.get(identity)
        if entry is None:
            entry = self._pending[identity] = ([], [])
        entry[0].append(msg)
        if frames:
            entry[1].extend(frames)

    def flush(self) -> None:
        if not self._pending:
            return
        pending = self._pending
        self._pending = {}
        socket = self._socket
        for identity, (msgs, frames) in pending.items():
            if frames and identity in self.remote:
                try:
                    frames = shm.expand(frames)
                except (OSError, ValueError) as exc:  # a segment its writer unlinked after handing it over
                    log.error("dropped a batch of %d messages to peer %s: %s", len(msgs), identity.hex(), exc)
                    continue
            try:
                send_frames(socket, [identity, encode(msgs), *frames])
            except zmq.ZMQError:
                pass
