"""Workers behind a firewall: their connection to the scheduler carried back through the adapter's SSH session.

A host that cannot reach the scheduler's address still accepts the adapter's SSH connection. With
``tunnel = true`` the adapter asks that host's sshd for a remote port forward: the host listens on
its own loopback (``127.0.0.1:<tunnel_port>``, never a public address), and each connection a worker
makes there arrives here as an SSH channel that this module joins to the scheduler's address. Workers
on that host dial ``tcp://127.0.0.1:<tunnel_port>``; CURVE runs end to end through the tunnel.

The forward lives as long as the session: ``ensure`` is called before each use of the host and
re-asks for the forward when the session was dialled again (workers' ZeroMQ sockets reconnect by
themselves meanwhile). The host's sshd must allow it (``AllowTcpForwarding``, on by default).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from typing import Any

import paramiko

log = logging.getLogger(__name__)
CHUNK = 65536


class ReverseTunnel:
    def __init__(self, host: str, listen_port: int, target: tuple[str, int]) -> None:
        self.host, self.listen_port, self.target = host, listen_port, target
        self._transport: paramiko.Transport | None = None
        self._lock = threading.Lock()

    def ensure(self, transport: paramiko.Transport) -> int:
        """The forward on ``transport`` (asked for once per session); returns the port the host listens on."""
        with self._lock:
            if transport.is_active() and self._transport is transport:
                return self.listen_port
            bound = int(transport.request_port_forward("127.0.0.1", self.listen_port, handler=self._accept))
            if self.listen_port and bound != self.listen_port:
                raise paramiko.SSHException(f"host {self.host}: forwarded port {bound}, not {self.listen_port}")
            self.listen_port = bound
            self._transport = transport
            return bound

    def _accept(self, channel: paramiko.Channel, origin: Any, server: Any) -> None:
        threading.Thread(target=self._join, args=(channel,), daemon=True, name=f"tunnel-{self.host}").start()

    def _join(self, channel: paramiko.Channel) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError as exc:
            log.warning("tunnel from host %s: cannot reach the scheduler at %s:%s: %s", self.host, *self.target, exc)
            channel.close()
            return
        upstream.settimeout(None)
        try:
            pump(channel, upstream)
        finally:
            upstream.close()
            channel.close()


def pump(channel: paramiko.Channel, upstream: socket.socket) -> None:
    """Copies bytes both ways between an SSH channel and a socket until either side closes (or breaks)."""
    try:
        _copy(channel, upstream)
    except (OSError, EOFError, paramiko.SSHException):
        return  # the session or the scheduler went away: the worker's socket reconnects by itself


def _copy(channel: paramiko.Channel, upstream: socket.socket) -> None:
    while True:
        readable, _, _ = select.select([channel, upstream], [], [], 30)
        if channel in readable:
            data = channel.recv(CHUNK)
            if not data:
                return
            upstream.sendall(data)
        if upstream in readable:
            data = upstream.recv(CHUNK)
            if not data:
                return
            channel.sendall(data)
        transport = channel.get_transport()
        if channel.closed or transport is None or not transport.is_active():
            return
