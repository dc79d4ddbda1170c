"""One reused, time-limited paramiko session per host: the ``Remote`` the SSH provider's parts use.

Blocking by nature (paramiko): only ever called from the runner's provider threads. A session is
opened on first use, reused while its transport is alive, and closed and opened again once older
than ``max_connection_age``; any failure on it closes it, so the next call dials afresh. Host keys are
checked against ``known_hosts``: an unknown key is refused (``UnknownHostKeyError``) unless the
options say ``accept-new``, which records it; a changed key is always refused (paramiko's
``BadHostKeyException``). Commands, uploads and connects all have deadlines.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import threading
import time
from pathlib import Path
from typing import Any

import paramiko
from scaler.adapters.errors import AuthError
from scaler.adapters.ssh.channel import Completed
from scaler.adapters.ssh.spec import HostSettings, SshOptions


class UnknownHostKeyError(AuthError):
    """The host's key is in no known_hosts file and the options do not accept new keys."""


class _Refuse(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    def __init__(self, host: HostSettings, known_hosts: str) -> None:
        self.host, self.known_hosts = host, known_hosts

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        raise UnknownHostKeyError(
            f"host {self.host.name} ({hostname}) offered a {key.get_name()} key that is not in {self.known_hosts}: "
            f"add it (ssh-keyscan -p {self.host.port} {self.host.address} >> {self.known_hosts}, after checking it) "
            "or set unknown_hosts = 'accept-new' in the ssh options"
        )


class _AcceptNew(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.known_hosts.open("a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


class HostConnection:
    """A ``Remote`` (``scaler.adapters.ssh.channel``) over SSH to one host of the inventory."""

    def __init__(self, host: HostSettings, options: SshOptions) -> None:
        self.host, self.options = host, options
        self.name = host.name
        self._client: paramiko.SSHClient | None = None
        self._opened = 0.0
        self._home = ""
        self._lock = threading.Lock()
        self._users: dict[int, int] = {}  # calls running on each session (by id of its client)
        self._retired: dict[int, paramiko.SSHClient] = {}  # too old, closed when their last call ends

    def transport(self) -> paramiko.Transport:
        """The live session's transport, dialling when there is none or it is too old."""
        return self._acquire(use=False)[1]

    def _acquire(self, use: bool = True) -> tuple[paramiko.SSHClient, paramiko.Transport]:
        """The session (dialled when there is none, or when it is older than ``max_connection_age``), counted
        as in use until ``_release`` when ``use``. A session too old is retired, not closed under calls still
        running on it: it closes when its last call ends."""
        with self._lock:
            client = self._client
            transport = client.get_transport() if client is not None else None
            age = time.monotonic() - self._opened
            if client is None or transport is None or not transport.is_active():
                self._close_locked()
            elif age >= self.options.max_connection_age:
                self._retire_locked(client)
            else:
                if use:
                    self._users[id(client)] = self._users.get(id(client), 0) + 1
                return client, transport
            client = self._connect()
            self._client, self._opened = client, time.monotonic()
            found = client.get_transport()
            if found is None:
                raise paramiko.SSHException(f"host {self.name}: no transport after connecting")
            found.set_keepalive(15)
            if use:
                self._users[id(client)] = self._users.get(id(client), 0) + 1
            return client, found

    def _release(self, client: paramiko.SSHClient) -> None:
        with self._lock:
            left = self._users.get(id(client), 1) - 1
            if left > 0:
                self._users[id(client)] = left
                return
            self._users.pop(id(client), None)
            if self._retired.pop(id(client), None) is not None:
                client.close()

    def _retire_locked(self, client: paramiko.SSHClient) -> None:
        self._client = None
        if self._users.get(id(client), 0) > 0:
            self._retired[id(client)] = client
        else:
            client.close()

    def _connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        known = Path(os.path.expanduser(self.options.known_hosts))
        if known.exists():
            client.load_host_keys(str(known))
        if self.options.unknown_hosts == "accept-new":
            client.set_missing_host_key_policy(_AcceptNew(known))
        else:
            client.set_missing_host_key_policy(_Refuse(self.host, str(known)))
        timeout = self.options.connect_timeout
        key_file = os.path.expanduser(self.host.key_file) if self.host.key_file else None
        try:
            client.connect(
                self.host.address,
                port=self.host.port,
                username=self.host.user,
                key_filename=key_file,
                look_for_keys=key_file is None,
                allow_agent=key_file is None,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
            )
        except BaseException:
            client.close()
            raise
        return client

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._client is not None:
            self._client.close()
            self._users.pop(id(self._client), None)
            self._client = None

    def run(self, command: str, stdin: bytes = b"", timeout: float = 0.0) -> Completed:
        limit = timeout or self.options.command_timeout
        client, transport = self._acquire()
        try:
            return self._run(transport, command, stdin, limit)
        except BaseException:
            self._broken(client)
            raise
        finally:
            self._release(client)

    def _broken(self, client: paramiko.SSHClient) -> None:
        """A failed call: the session is not used again (calls still on it finish or fail on their own)."""
        with self._lock:
            if self._client is client:
                self._retire_locked(client)

    def _run(self, transport: paramiko.Transport, command: str, stdin: bytes, limit: float) -> Completed:
        channel = transport.open_session(timeout=self.options.connect_timeout)
        deadline = time.monotonic() + limit
        out, err = bytearray(), bytearray()
        # paramiko waits for the answer to an exec request without a timeout: a wedged server would hold
        # this thread forever, so the channel is closed under it when the command's time is up
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            with contextlib.suppress(Exception):  # a session already gone: nothing left to unblock
                channel.close()

        watchdog = threading.Timer(limit, expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            channel.settimeout(limit)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            while True:
                busy = False
                if channel.recv_ready():
                    out += channel.recv(65536)
                    busy = True
                if channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                    busy = True
                if not busy and channel.exit_status_ready() and not channel.recv_ready():
                    if not channel.recv_stderr_ready():
                        break
                if time.monotonic() > deadline or expired.is_set():
                    raise TimeoutError(f"host {self.name}: command did not finish within {limit:g}s")
                if not busy:
                    time.sleep(0.005)
            return Completed(channel.recv_exit_status(), bytes(out), bytes(err))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if expired.is_set():
                raise TimeoutError(f"host {self.name}: command did not finish within {limit:g}s") from exc
            raise
        finally:
            watchdog.cancel()
            channel.close()

    @property
    def home(self) -> str:
        """The login user's home directory on the host (asked once per connection object)."""
        if not self._home:
            found = self.run('printf %s "$HOME"', timeout=self.options.connect_timeout * 2)
            self._home = found.stdout.decode().strip() or "/tmp"
        return self._home

    def expand(self, path: str) -> str:
        if path == "~" or path.startswith("~/"):
            return self.home + path[1:]
        return path

    def put(self, path: str, data: bytes, mode: int = 0o600) -> None:
        target = self.expand(path)
        client, transport = self._acquire()
        try:
            sftp = paramiko.SFTPClient.from_transport(transport)
            if sftp is None:
                raise paramiko.SSHException(f"host {self.name}: the SFTP subsystem is not available")
            try:
                sftp.get_channel().settimeout(self.options.command_timeout)
                self._makedirs(sftp, posixpath.dirname(target))
                temporary = f"{target}.part"
                with sftp.open(temporary, "wb") as f:
                    sftp.chmod(temporary, mode)
                    f.write(data)
                sftp.posix_rename(temporary, target)
            finally:
                sftp.close()
        except BaseException:
            self._broken(client)
            raise
        finally:
            self._release(client)

    @staticmethod
    def _makedirs(sftp: paramiko.SFTPClient, directory: str) -> None:
        missing = []
        while directory and directory != "/":
            try:
                sftp.stat(directory)
                break
            except FileNotFoundError:
                missing.append(directory)
                directory = posixpath.dirname(directory)
        for path in reversed(missing):
            sftp.mkdir(path, mode=0o700)
