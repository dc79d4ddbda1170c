"""A stand-in for the EC2 instance metadata service on 127.0.0.1, for spot interruption tests.

It speaks IMDSv2 as EC2 does: ``PUT /latest/api/token`` (with ``X-aws-ec2-metadata-token-ttl-seconds``)
hands out a token, and ``GET /latest/meta-data/spot/instance-action`` without a valid one is a 401.
The notice is 404 until ``interrupt()``; from then on it is served, as JSON, to the tokens issued so
far (each worker asks for its own token, so a worker started later, on "another instance", is not
interrupted). One server can also play many instances' services: a base URL ``URL/<instance>``
serves paths under that prefix, and ``interrupt(instance=...)`` posts a notice to that one only.
Nothing here dials anything; it only listens on loopback.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NOTICE_PATH = "/latest/meta-data/spot/instance-action"


class MetadataService:
    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.interrupted: set[str] = set()
        self.instances: set[str] = set()  # path prefixes (instances) with a notice
        self.notice: bytes = b""
        self.polls = 0
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                _, path = service.split(self.path)
                if path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self._answer(400, b"")
                    return
                with service.lock:
                    token = f"token-{len(service.tokens)}"
                    service.tokens.add(token)
                self._answer(200, token.encode())

            def do_GET(self) -> None:
                token = self.headers.get("X-aws-ec2-metadata-token", "")
                instance, path = service.split(self.path)
                with service.lock:
                    service.polls += 1
                    known = token in service.tokens
                    hit = token in service.interrupted or (instance and instance in service.instances)
                    notice = service.notice if hit else b""
                if not known:
                    self._answer(401, b"")
                elif path != NOTICE_PATH or not notice:
                    self._answer(404, b"")
                else:
                    self._answer(200, notice)

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="metadata", daemon=True)
        self.thread.start()

    @staticmethod
    def split(path: str) -> tuple[str, str]:
        """``/i-123/latest/...`` -> (``i-123``, ``/latest/...``); a path without a prefix -> ("", path)."""
        if path.startswith("/latest/"):
            return "", path
        head, _, rest = path[1:].partition("/")
        return head, f"/{rest}"

    def interrupt(self, seconds: float = 120.0, instance: str = "") -> None:
        """Post a termination notice ``seconds`` from now: to ``instance`` (a path prefix) if given,
        else to every instance (token) known so far."""
        moment = datetime.fromtimestamp(time.time() + seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self.lock:
            self.notice = json.dumps({"action": "terminate", "time": moment}).encode()
            if instance:
                self.instances.add(instance)
            else:
                self.interrupted |= self.tokens

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
