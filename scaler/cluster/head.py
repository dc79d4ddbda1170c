"""A cluster whose scheduler runs on another host (the deployment's ``[head]``), reached through SSH.

When the workers cannot reach the caller's machine (a laptop and EC2 instances), ``Cluster`` runs
``scaler_cluster --config`` on a head host they can reach, over SSH, and forwards a port on the
caller's loopback to the head's scheduler, so ``cluster.address`` (``tcp://127.0.0.1:<port>``) works
in the caller's code unchanged. The command runs in the SSH session on a terminal: if the session
drops because the caller was killed, the terminal hangs up and ``scaler_cluster`` ends its units
(it takes SIGHUP as SIGTERM). A head scheduler on the head's loopback authenticates with its
per-cluster secret, which is read on the head over the session and handed to this process's
clients for the forwarded address only; one with CURVE keys needs the caller's ``SCALER_CURVE_KEYS``.
The check that no unit remains runs on the head too, with the head's credentials.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import socket
import threading
import time
from typing import Any

import msgspec

from scaler.config.schema import Config, HeadSection
from scaler.config.write import dumps

STARTED = re.compile(rb"scaler cluster at (tcp://\S+)")


def _connection(head: HeadSection) -> Any:
    try:
        from scaler.adapters.ssh.connection import HostConnection
        from scaler.adapters.ssh.spec import SshHost, SshOptions
    except ImportError as exc:
        raise ImportError(
            f"a [head] is reached over SSH, which needs paramiko: pip install 'scaler[ssh]' ({exc})"
        ) from exc
    host = SshHost(address=head.address, port=head.port, user=head.user, key_file=head.key_file, group="head")
    options = SshOptions(
        hosts={"head": host},
        known_hosts=head.known_hosts,
        unknown_hosts=head.unknown_hosts,
        python=head.python,
        connect_timeout=head.connect_timeout,
        max_connection_age=7 * 24 * 3600.0,
    )
    return HostConnection(options.host("head"), options)


class RemoteHead:
    def __init__(self, config: Config, log_level: str) -> None:
        if config.head is None:
            raise ValueError("RemoteHead needs a deployment with a [head]")
        self.head = config.head
        self.deployment = msgspec.structs.replace(config, head=None)  # what runs on the head
        self.log_level = log_level
        self.link = _connection(self.head)
        self.directory = f"~/.scaler/clusters/{config.cluster_id}"
        self.channel: Any = None
        self.pid = 0
        self.remote_address = ""
        self.output = bytearray()
        self._listener: socket.socket | None = None

    def python(self) -> str:
        return shlex.quote(self.head.python)

    def start(self, timeout: float) -> str:
        """Starts the cluster on the head; returns the scheduler's address there."""
        path = f"{self.directory}/deployment.toml"
        self.link.put(path, dumps(self.deployment).encode(), 0o600)
        command = (
            f"echo SCALER_HEAD_PID $$; exec {self.python()} -m scaler.cluster.main "
            f"--config {shlex.quote(self.link.expand(path))} --log-level {shlex.quote(self.log_level)}"
        )
        self.channel = self.link.transport().open_session(timeout=self.head.connect_timeout)
        self.channel.get_pty(width=400)
        self.channel.exec_command(command)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.channel.recv_ready():
                self.output += self.channel.recv(65536)
                if self.pid == 0 and (found := re.search(rb"SCALER_HEAD_PID (\d+)", self.output)):
                    self.pid = int(found.group(1))
                if started := STARTED.search(self.output):
                    self.remote_address = started.group(1).decode()
                    threading.Thread(target=self._drain, daemon=True, name="head-output").start()
                    return self.remote_address
            elif self.channel.exit_status_ready():
                break
            else:
                time.sleep(0.05)
        raise RuntimeError(f"the cluster on head {self.head.address} did not start: {self.tail()}")

    def tail(self) -> str:
        return self.output.decode(errors="replace").strip()[-1500:] or "(no output)"

    def _drain(self) -> None:
        with contextlib.suppress(Exception):  # the session ended: so did its output
            while self.channel is not None and not self.channel.closed:
                data = self.channel.recv(65536)
                if not data:
                    return
                self.output = (self.output + data)[-65536:]

    def forward(self) -> str:
        """A port on this host's loopback joined to the head's scheduler; returns its address."""
        from scaler.adapters.ssh.tunnel import pump

        target = self.remote_address.partition("://")[2]
        host, _, port = target.rpartition(":")
        host = "127.0.0.1" if host in ("0.0.0.0", "*") else host
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listener = listener

        def accept() -> None:
            while True:
                try:
                    client, origin = listener.accept()
                except OSError:
                    return
                try:
                    channel = self.link.transport().open_channel("direct-tcpip", (host, int(port)), origin)
                except Exception:
                    client.close()
                    continue
                threading.Thread(target=self._join, args=(pump, channel, client), daemon=True).start()

        threading.Thread(target=accept, daemon=True, name="head-forward").start()
        return f"tcp://127.0.0.1:{listener.getsockname()[1]}"

    @staticmethod
    def _join(pump: Any, channel: Any, client: socket.socket) -> None:
        try:
            pump(channel, client)
        finally:
            client.close()
            with contextlib.suppress(Exception):
                channel.close()

    def secret(self) -> bytes | None:
        """The head scheduler's per-cluster secret (a loopback one), read on the head; None for CURVE."""
        script = (
            "import sys; from scaler.utility.security import find_secret; "
            "s = find_secret(sys.argv[1], wait=10.0); sys.stdout.write(s.decode() if s else '')"
        )
        done = self.link.run(f"{self.python()} -c {shlex.quote(script)} {shlex.quote(self.remote_address)}")
        value = done.stdout.decode().strip()
        return value.encode() if done.rc == 0 and value else None

    def stop(self, timeout: float) -> list[str]:
        """Stops the head's cluster (its adapters end their units) and returns the unit ids its providers
        still list after ``timeout``, checked on the head."""
        deadline = time.monotonic() + timeout
        try:
            if self.pid:
                self.link.run(f"kill -TERM {self.pid} 2>/dev/null; true")
                while time.monotonic() < deadline:
                    if self.link.run(f"kill -0 {self.pid} 2>/dev/null").rc != 0:
                        break
                    time.sleep(0.5)
            if not self.remote_address:
                return []
            left = max(1.0, deadline - time.monotonic())
            path = shlex.quote(self.link.expand(f"{self.directory}/deployment.toml"))
            check = (
                f"{self.python()} -m scaler.cluster.deployment --config {path} "
                f"--address {shlex.quote(self.remote_address)} --timeout {left:.0f}"
            )
            done = self.link.run(check, timeout=left + 60)
            return (
                [str(u) for u in json.loads(done.stdout or b"[]")]
                if done.rc == 0
                else [f"(check failed: {done.stderr!r})"]
            )
        finally:
            self.close()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        try:
            self.link.run(f"rm -rf {shlex.quote(self.link.expand(self.directory))}")
        except Exception:
            pass
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        self.link.close()
