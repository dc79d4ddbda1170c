"""How peers authenticate: CurveZMQ keys, or a per-cluster secret on this host; and the bind-address rule.

Every peer authenticates, loopback included: on a shared host another local user must not be able
to submit work (which would run as the cluster's user) or read objects.

- **Same host, no keys** (a scheduler bound to loopback): the scheduler uses ZMQ's PLAIN mechanism
  with a random per-cluster secret. It writes the secret to ``<secret dir>/<host>-<port>.secret`` (0600, in
  a 0700 directory: ``$XDG_RUNTIME_DIR/scaler``, else ``~/.cache/scaler/secrets``) and removes it when
  it stops. A peer dialing that port finds it there with no step from the user; processes a cluster
  starts get it in ``$SCALER_CLUSTER_SECRET`` (environment, never a command line). PLAIN's check
  happens once per connection, so messages cost nothing more; the secret never leaves loopback.
- **CURVE keys** (required to bind any other interface): see below.
- **--insecure** on another interface: no authentication at all (logged as a warning).

``scaler_keygen DIR`` writes ``DIR/server.key``/``server.key_secret`` (the scheduler's keypair) and
``DIR/client.key``/``client.key_secret`` (shared by clients, workers and adapters). The scheduler
accepts any client whose public key is in ``DIR/authorized/`` (the generated client key is placed
there). Binding to a non-loopback address without keys is refused unless ``insecure`` is set.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
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


SECRET_ENV = "SCALER_CLUSTER_SECRET"
SECRET_ADDRESS_ENV = "SCALER_CLUSTER_SECRET_ADDRESS"  # the scheduler $SCALER_CLUSTER_SECRET is for
PLAIN_USER = b"scaler"
_known_secrets: dict[tuple[str, int], bytes] = {}  # (host, port) -> secret, for clusters this process started


def _loopback_key(address: str) -> tuple[str, int] | None:
    """(host, port) of a loopback scheduler address, host spelled one way; None for any other address."""
    try:
        host, port = parse_tcp(address)
    except ValueError:
        return None
    if not is_loopback(host):
        return None
    return ("127.0.0.1" if host == "localhost" else host.strip("[]")), port


def secret_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return Path(runtime) / "scaler"
    return Path.home() / ".cache" / "scaler" / "secrets"


def secret_path(address: str) -> Path:
    key = _loopback_key(address)
    if key is None:
        raise ValueError(f"{address} is not a loopback address: a cluster secret is only ever used on loopback")
    return secret_dir() / f"{key[0]}-{key[1]}.secret"


def new_secret() -> bytes:
    return os.urandom(24).hex().encode()


def remember_secret(address: str, secret: bytes) -> None:
    """Let this process's peers dial a cluster it started without reading a file."""
    key = _loopback_key(address)
    if key is not None:
        _known_secrets[key] = secret


def forget_secret(address: str, secret: bytes) -> None:
    """The cluster this process started at ``address`` is gone: a later scheduler on the same port (a new
    secret) must not be dialled with its secret."""
    key = _loopback_key(address)
    if key is not None and _known_secrets.get(key) == secret:
        del _known_secrets[key]


def secret_env(address: str, secret: bytes) -> dict[str, str]:
    """The environment that hands ``secret`` to the processes a cluster at ``address`` starts."""
    return {SECRET_ENV: secret.decode(), SECRET_ADDRESS_ENV: address}


def secret_from_env(address: str) -> bytes | None:
    """$SCALER_CLUSTER_SECRET, if it is meant for ``address`` (a loopback one)."""
    value = os.environ.get(SECRET_ENV)
    meant_for = os.environ.get(SECRET_ADDRESS_ENV)
    key = _loopback_key(address)
    if not value or key is None or (meant_for and _loopback_key(meant_for) != key):
        return None
    return value.encode()


def write_secret(address: str, secret: bytes) -> Path:
    """Publish ``secret`` (empty: none needed) for peers of this user on this host: 0600 in a 0700 directory."""
    directory = secret_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    path = secret_path(address)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret + b"\n" + str(os.getpid()).encode())
    os.replace(temporary, path)
    return path


def remove_secret(address: str, secret: bytes) -> None:
    """Remove the published secret of ``address`` if it is still ours (a newer cluster may own it)."""
    try:
        path = secret_path(address)
        if _read_published(path) == (secret, os.getpid()):
            path.unlink()
    except (OSError, ValueError):
        pass


def handed_secret(address: str) -> bytes | None:
    """The secret for ``address`` this process was handed ($SCALER_CLUSTER_SECRET meant for it) or made
    (a cluster it started), not one read from the published file."""
    key = _loopback_key(address)
    if key is None:
        return None
    from_env = secret_from_env(address)
    return from_env if from_env is not None else _known_secrets.get(key)


def find_secret(address: str, wait: float = 0.0) -> bytes | None:
    """The secret for the loopback scheduler at ``address``: $SCALER_CLUSTER_SECRET meant for it, one this
    process knows, or the published file; never any for another address (the secret stays on loopback).

    A scheduler publishes a file for its address in every mode (an empty secret when it needs none)
    with its pid, so a missing file, or one left by a scheduler that is gone, means the scheduler has
    not bound yet: wait up to ``wait`` seconds for a live one's file.
    """
    key = _loopback_key(address)
    if key is None:
        return None
    handed = handed_secret(address)
    if handed is not None:
        return handed
    deadline = time.monotonic() + wait
    while True:
        try:
            secret, pid = _read_published(secret_path(address))
        except OSError:
            return None
        if pid is not None and _running(pid):
            return secret or None
        if time.monotonic() >= deadline:
            return secret or None
        time.sleep(0.05)


def _read_published(path: Path) -> tuple[bytes, int | None]:
    """(secret, publishing scheduler's pid) from a published file; (b"", None) when there is none."""
    try:
        secret, _, pid = path.read_bytes().partition(b"\n")
    except FileNotFoundError:
        return b"", None
    return secret.strip(), int(pid) if pid.strip().isdigit() else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it runs
    return True


def auth_hint(address: str, keyed: bool) -> str:
    """What a peer that got no answer should check about authentication, in one sentence."""
    if keyed:
        return "are these the CURVE keys its scheduler accepts?"
    if find_secret(address) is None:
        return (
            f"a scheduler on loopback requires its cluster secret: none found in ${SECRET_ENV} or "
            f"{secret_dir()}/<host>-<port>.secret (it is readable only by the user who started the scheduler); "
            "one bound to another interface requires CURVE keys"
        )
    source = f"${SECRET_ENV}" if os.environ.get(SECRET_ENV) else f"{secret_dir()}/<host>-<port>.secret"
    return (
        f"check the cluster secret this peer used (from {source}): is it the one the scheduler was started with "
        "(a restarted scheduler may have a new one), or does the scheduler require CURVE keys?"
    )


def secret_changed(address: str, dialed: bytes | None) -> bool:
    """Whether a scheduler (re)started at ``address`` has published another secret than the one a peer
    dialed with: its refused handshake then calls for a new connection, not an exit."""
    return find_secret(address) not in (None, dialed)


def no_answer(address: str, seconds: float, keyed: bool) -> str:
    """Why a client, worker or adapter gives up on a scheduler that never answered: one text for all."""
    hint = auth_hint(address, keyed)
    return f"no answer from scheduler {address} within {seconds:g}s (is it running and reachable? {hint})"


def handshake_failed(address: str, what: str, keyed: bool) -> str:
    """Why a peer whose handshake the scheduler refused stops: one text for all."""
    return f"the handshake with scheduler {address} failed ({what}): {auth_hint(address, keyed)}"


def apply_secret(socket: zmq.Socket, secret: bytes) -> None:  # type: ignore[type-arg]
    socket.plain_username = PLAIN_USER
    socket.plain_password = secret


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
