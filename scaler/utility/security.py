"""CurveZMQ keys: where they live, how each side loads them, and the bind-address rule.

``scaler_keygen DIR`` writes ``DIR/server.key``/``server.key_secret`` (the scheduler's keypair) and
``DIR/client.key``/``client.key_secret`` (shared by clients, workers and adapters). The scheduler
accepts any client whose public key is in ``DIR/authorized/`` (the generated client key is placed
there). Binding to a non-loopback address without keys is refused unless ``insecure`` is set.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from scaler.utility.net import is_loopback, parse_tcp

log = logging.getLogger(__name__)


class SecurityError(RuntimeError):
    """Keys missing or unreadable, or an insecure bind that was not explicitly allowed."""


@dataclass(frozen=True)
class CurveKeys:
    directory: Path

    def _load(self, name: str) -> tuple[bytes, bytes]:
        path = self.directory / f"{name}.key_secret"
        if not path.is_file():
            raise SecurityError(f"CURVE key file {path} not found (create keys with: scaler_keygen {self.directory})")
        try:
            public, secret = zmq.auth.load_certificate(str(path))
        except (OSError, ValueError) as exc:
            raise SecurityError(f"CURVE key file {path} is unreadable: {exc}") from exc
        if secret is None:
            raise SecurityError(f"CURVE key file {path} holds no secret key")
        return public, secret

    def server_public(self) -> bytes:
        path = self.directory / "server.key"
        try:
            public, _ = zmq.auth.load_certificate(str(path))
        except (OSError, ValueError) as exc:
            raise SecurityError(f"CURVE server public key {path} is unreadable: {exc}") from exc
        return public

    def apply_server(self, socket: zmq.Socket) -> None:  # type: ignore[type-arg]
        public, secret = self._load("server")
        socket.curve_secretkey = secret
        socket.curve_publickey = public
        socket.curve_server = True

    def apply_client(self, socket: zmq.Socket) -> None:  # type: ignore[type-arg]
        public, secret = self._load("client")
        socket.curve_secretkey = secret
        socket.curve_publickey = public
        socket.curve_serverkey = self.server_public()

    @property
    def authorized_dir(self) -> Path:
        return self.directory / "authorized"


def keys_from_env() -> CurveKeys | None:
    value = os.environ.get("SCALER_CURVE_KEYS")
    return CurveKeys(Path(value)) if value else None


def check_bind(address: str, keys: CurveKeys | None, insecure: bool) -> None:
    host, _ = parse_tcp(address)
    if keys is None and not insecure and not is_loopback(host):
        raise SecurityError(
            f"refusing to bind {address} without CurveZMQ keys: pass --curve-keys DIR "
            "(create them with scaler_keygen DIR) or --insecure to accept unauthenticated peers"
        )
    if keys is None and insecure and not is_loopback(host):
        log.warning(
            "--insecure: %s is bound without authentication or encryption; any host that reaches it can run code "
            "as this user",
            address,
        )


def generate(directory: Path) -> CurveKeys:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("server", "client"):
        for suffix in (".key", ".key_secret"):
            (directory / f"{name}{suffix}").unlink(missing_ok=True)
        zmq.auth.create_certificates(str(directory), name)
    os.chmod(directory / "server.key_secret", 0o600)
    os.chmod(directory / "client.key_secret", 0o600)
    authorized = directory / "authorized"
    authorized.mkdir(exist_ok=True)
    shutil.copy(directory / "client.key", authorized / "client.key")
    return CurveKeys(directory)
