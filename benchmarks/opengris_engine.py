"""The OpenGRIS Scaler 2.9 engine for ``peer_run.py`` (imported only inside its own venv)."""

from __future__ import annotations

import socket
from typing import Any

import psutil


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OpenGrisEngine:
    def __init__(self) -> None:
        from scaler import Client, SchedulerClusterCombo

        address = f"tcp://127.0.0.1:{_free_port()}"
        self.cluster = SchedulerClusterCombo(n_workers=2, address=address, logging_level="WARNING")
        self.client = Client(address=address)

    def submit(self, fn: Any, *args: Any) -> Any:
        return self.client.submit(fn, *args)

    def gather(self, handles: list[Any]) -> list[Any]:
        return [h.result() for h in handles]

    def get(self, handle: Any) -> Any:
        return handle.result()

    def put(self, value: Any) -> Any:
        return self.client.send_object(value)

    def pids(self) -> list[int]:
        return [p.pid for p in psutil.Process().children(recursive=True)]

    def close(self) -> None:
        self.client.disconnect()
        self.cluster.shutdown()
