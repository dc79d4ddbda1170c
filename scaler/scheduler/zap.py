"""The scheduler's answer to ZMQ's authentication requests (ZAP) for the per-cluster secret.

A ROUTER with ``plain_server`` asks a ZAP handler, over ``inproc://zeromq.zap.01``, whether each new
connection's PLAIN user and password may in. pyzmq's ``ThreadAuthenticator`` would answer from a
thread of its own, costing the scheduler about 11 MiB of imports for what is a compare of two byte
strings once per connection. Here the scheduler's loop answers instead: the socket is polled with
the others, and a handshake waits at most one loop turn.
"""

from __future__ import annotations

from typing import Any

import zmq

from scaler.utility.security import PLAIN_USER
from scaler.utility.sockets import readable

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class PlainGate:
    def __init__(self, context: zmq.Context[Any], secret: bytes) -> None:
        self.secret = secret
        self.socket: zmq.Socket[Any] = context.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(ZAP_ENDPOINT)
        self.refused = 0

    def serve(self) -> None:
        """Answer every pending request: 200 for the cluster's user and secret, 400 otherwise."""
        from hmac import compare_digest

        while readable(self.socket):
            frames = self.socket.recv_multipart()
            request_id = frames[1] if len(frames) > 1 else b""
            mechanism, credentials = (frames[5], frames[6:]) if len(frames) >= 6 else (b"", [])
            allowed = (
                frames[0] == b"1.0"
                and mechanism == b"PLAIN"
                and len(credentials) == 2
                and credentials[0] == PLAIN_USER
                and compare_digest(credentials[1], self.secret)
            )
            if not allowed:
                self.refused += 1
            status, text = (b"200", b"OK") if allowed else (b"400", b"wrong cluster secret")
            self.socket.send_multipart([b"1.0", request_id, status, text, b"", b""])

    def close(self) -> None:
        self.socket.close(0)
