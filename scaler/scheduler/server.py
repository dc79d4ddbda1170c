"""The scheduler process: one ROUTER socket, sessions (hello, heartbeats, goodbye), the loop.

The loop drains every ready message, lets the engine place tasks once per turn, and flushes one
batch per peer: batching is what makes per-task cost small. A disconnect seen by the socket
monitor ends a peer's session at once; silence past ``peer_timeout`` ends it otherwise.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import zmq

from scaler.protocol import messages as m
from scaler.protocol.wire import ProtocolError, split_batch
from scaler.scheduler.adapters import AdapterSessions
from scaler.scheduler.config import SchedulerConfig
from scaler.scheduler.engine import Engine
from scaler.scheduler.outbox import Outbox
from scaler.scheduler.workers import WorkerState
from scaler.utility import shm
from scaler.utility.capabilities import CapabilityError, parse_capabilities
from scaler.utility.net import is_loopback, parse_tcp
from scaler.utility.security import (
    PLAIN_USER,
    SECRET_ENV,
    CurveKeys,
    check_bind,
    new_secret,
    remove_secret,
    write_secret,
)
from scaler.utility.sockets import readable, recv_frames

log = logging.getLogger(__name__)
SRCFD = getattr(zmq, "SRCFD", 2)
KINDS = ("client", "worker", "adapter", "monitor")
CLIENT_MSGS = (m.SubmitTask, m.PutObject, m.Release, m.CancelTasks, m.KVPut, m.KVGet, m.KVDelete)
WORKER_MSGS = (m.TasksStarted, m.TaskDone, m.TaskBlocked, m.TaskUnblocked, m.Reclaimed, m.TaskOutput)
DROPPED_ON_DISCONNECT = ("worker", "client")


@dataclass(slots=True, eq=False)
class Peer:
    identity: bytes
    kind: str
    name: str
    last_seen: float
    fd: int
    registered_turn: int


class SchedulerServer:
    def __init__(self, config: SchedulerConfig) -> None:
        check_bind(config.address, CurveKeys(config.curve_keys) if config.curve_keys else None, config.insecure)
        self.config = config
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.SNDHWM, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.socket.setsockopt(zmq.MAXMSGSIZE, config.max_message_bytes)
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.authenticator: Any = None
        self.secret: bytes | None = None
        if config.curve_keys is not None:
            self._setup_curve(CurveKeys(config.curve_keys))
        elif is_loopback(parse_tcp(config.address)[0]):
            self._setup_secret(os.environ.get(SECRET_ENV, "").encode() or new_secret())
        self.socket.bind(config.address)
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.port = parse_tcp(self.address)[1]
        if self.secret is not None:
            write_secret(self.port, self.secret)
        self.monitor = self.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.out = Outbox(self.socket)
        self.engine = Engine(config, self.out)
        self.adapters = AdapterSessions(self.engine, config.scaling)
        self.peers: dict[bytes, Peer] = {}
        self.domain = shm.host_domain()
        self.shm_prefix = f"scaler-{os.getpid()}-{os.urandom(3).hex()}-" if shm.available() else ""
        shm.enable(self.shm_prefix)
        self.by_fd: dict[int, bytes] = {}
        self.turn = 0
        self.running = True
        self.malformed = 0

    def _setup_curve(self, keys: CurveKeys) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        keys.apply_server(self.socket)
        self.authenticator = ThreadAuthenticator(self.context, log=logging.getLogger("scaler.auth"))
        self.authenticator.start()
        self.authenticator.configure_curve(domain="*", location=str(keys.authorized_dir))

    def _setup_secret(self, secret: bytes) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        self.secret = secret
        self.socket.plain_server = True
        self.authenticator = ThreadAuthenticator(self.context, log=logging.getLogger("scaler.auth"))
        self.authenticator.start()
        self.authenticator.configure_plain(domain="*", passwords={PLAIN_USER.decode(): secret.decode()})

    def stop(self, *_: Any) -> None:
        self.running = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        log.info("scheduler listening on %s", self.address)
        next_check = time.monotonic() + 0.5
        while self.running:
            self.turn += 1
            timeout = max(0.0, next_check - time.monotonic())
            ready = dict(poller.poll(int(timeout * 1000) + 1))
            if self.monitor in ready:
                self._drain_monitor()
            if self.socket in ready:
                self._drain_socket()
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 0.5
                self._check_timeouts(now)
                self.engine.flush_freed()
            if self.engine.dirty or self.engine.maybe_idle:
                self.engine.schedule()
            if self.adapters.adapters:
                self.adapters.tick(now)
            self.out.flush()
        self.shutdown("scheduler stopped")

    def _drain_socket(self) -> None:
        socket = self.socket
        now = time.monotonic()
        for i in range(100_000):
            if not readable(socket):
                return
            try:
                frames = recv_frames(socket, noblock=True)
            except zmq.Again:
                return
            self._handle(frames, now)
            if self.engine.dirty and i % 512 == 511:
                self.engine.schedule()

    def _drain_monitor(self) -> None:
        from zmq.utils.monitor import recv_monitor_message

        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            identity = self.by_fd.pop(int(event.get("value", -1)), None)
            peer = self.peers.get(identity) if identity is not None else None
            # A peer that said hello in the previous turn may own a reused fd whose stale
            # disconnect event is only now visible; it is left to the heartbeat timeout.
            # Workers and clients are dropped on this hint: a worker's tasks are re-queued at once,
            # and a client's work stops before it starts (its end of the session fails at the same
            # drop, so neither side carries on). An adapter is dropped on Goodbye or silence.
            if peer is not None and peer.kind in DROPPED_ON_DISCONNECT and peer.registered_turn < self.turn - 1:
                self._lost(peer, "connection closed")

    def _handle(self, frames: list[Any], now: float) -> None:
        identity = frames[0].bytes
        try:
            batch = split_batch(frames[1:])
        except ProtocolError as exc:
            self._reject(identity, str(exc))
            return
        peer = self.peers.get(identity)
        for msg, payload in batch:
            kind = type(msg)
            if peer is None:
                if kind is m.Hello:
                    peer = self._hello(identity, msg, frames[1], now)
                elif kind is m.Goodbye:
                    return
                else:
                    self._reject(identity, f"{kind.__name__} before Hello: say Hello first", refuse=True)
                    return
                continue
            peer.last_seen = now
            try:
                self._dispatch(peer, msg, payload)
            except Exception:
                self.malformed += 1
                log.exception("error handling %s from %s %s; message dropped", kind.__name__, peer.kind, peer.name)

    def _dispatch(self, peer: Peer, msg: Any, payload: list[Any]) -> None:
        kind = type(msg)
        engine = self.engine
        identity = peer.identity
        if peer.kind == "client" and kind in CLIENT_MSGS:
            if kind is m.SubmitTask:
                engine.submit(identity, msg, payload)
            elif kind is m.PutObject:
                engine.put(identity, msg, payload)
            elif kind is m.Release:
                engine.release(identity, msg.object_ids)
            elif kind is m.KVPut:
                engine.kv_put(identity, msg, payload)
            elif kind is m.KVGet:
                engine.kv_get(identity, msg.key)
            elif kind is m.KVDelete:
                engine.kv_delete(msg.key)
            else:
                engine.cancel(identity, msg.task_ids, msg.force, msg.recursive)
        elif peer.kind == "worker" and kind in WORKER_MSGS:
            if kind is m.TaskDone:
                engine.task_done(identity, msg, payload)
            elif kind is m.TasksStarted:
                engine.started(identity, msg.task_ids)
            elif kind is m.TaskOutput:
                task = engine.tasks.get(msg.task_id)
                if task is not None:
                    self.out.send(task.client, msg)
            elif kind is m.Reclaimed:
                engine.reclaimed(identity, msg.task_ids)
            else:
                engine.blocked(identity, msg.task_id, kind is m.TaskBlocked)
        elif kind is m.AdapterState and peer.kind == "adapter":
            self.adapters.report(identity, peer.name, msg)
        elif kind is m.GetObject:
            engine.get_object(identity, msg.object_id)
        elif kind is m.Heartbeat:
            if peer.kind == "worker":
                worker = engine.pool.workers.get(identity)
                if worker is not None:
                    worker.load = msg.load
            self.out.send(identity, m.HeartbeatAck())
        elif kind is m.StatusRequest:
            reply = engine.status()
            reply.status["rejected_messages"] = self.malformed
            reply.adapters = self.adapters.status()
            reply.decisions = list(self.adapters.history)[-50:]
            self.out.send(identity, reply)
        elif kind is m.Goodbye:
            self._lost(peer, msg.reason or "said goodbye")
        elif kind is m.Hello:
            self._reject(identity, "second Hello on one session")
        else:
            self._reject(identity, f"{kind.__name__} is not a message a {peer.kind} may send")

    def _hello(self, identity: bytes, msg: m.Hello, first: Any, now: float) -> Peer | None:
        if msg.version != m.PROTOCOL_VERSION:
            reason = (
                f"protocol version {msg.version} is not supported: this scheduler speaks version {m.PROTOCOL_VERSION}"
            )
            self._reject(identity, reason, refuse=True)
            return None
        if msg.kind not in KINDS:
            self._reject(identity, f"unknown peer kind {msg.kind!r} (expected one of {', '.join(KINDS)})", refuse=True)
            return None
        name = msg.name or identity.hex()
        if msg.kind == "worker":
            try:
                caps = parse_capabilities(msg.capabilities)
            except CapabilityError as exc:
                self._reject(identity, f"bad worker capabilities: {exc}", refuse=True)
                return None
            total = caps.as_dict()
            self.engine.add_worker(
                WorkerState(identity, name, caps, total, {}, pid=msg.pid, host=msg.host, unit=msg.unit)
            )
        elif msg.kind == "client":
            self.engine.add_client(identity, name)
        try:
            fd = int(first.get(SRCFD))
        except (zmq.ZMQError, TypeError, ValueError):
            fd = -1
        peer = Peer(identity, msg.kind, name, now, fd, self.turn)
        self.peers[identity] = peer
        if fd >= 0:
            self.by_fd[fd] = identity
        local = msg.domain == self.domain
        if not local:
            self.out.remote.add(identity)
        welcome = m.Welcome(
            identity.hex(),
            self.config.heartbeat_interval,
            self.config.max_queued_tasks,
            self.config.max_queued_bytes,
            self.shm_prefix if local else "",
        )
        self.out.send(identity, welcome)
        log.info("%s %s joined (pid %d on %s) %s", msg.kind, name, msg.pid, msg.host or "?", msg.capabilities)
        return peer

    def _reject(self, identity: bytes, reason: str, refuse: bool = False) -> None:
        self.malformed += 1
        if self.malformed <= 20 or self.malformed % 1000 == 0:
            log.warning(
                "rejected a message from peer %s: %s (%d rejected so far)", identity.hex(), reason, self.malformed
            )
        if refuse:
            self.out.send(identity, m.Refused(reason))

    def _lost(self, peer: Peer, reason: str) -> None:
        if self.peers.pop(peer.identity, None) is None:
            return
        self.out.remote.discard(peer.identity)
        if peer.fd >= 0 and self.by_fd.get(peer.fd) == peer.identity:
            del self.by_fd[peer.fd]
        if peer.kind == "worker":
            self.engine.worker_lost(peer.identity, reason)
        elif peer.kind == "client":
            self.engine.client_lost(peer.identity, reason)
        elif peer.kind == "adapter":
            self.adapters.lost(peer.identity)
        else:
            log.info("%s %s left (%s)", peer.kind, peer.name, reason)

    def _check_timeouts(self, now: float) -> None:
        limit = now - self.config.peer_timeout
        for peer in [p for p in self.peers.values() if p.last_seen < limit]:
            self._lost(peer, f"silent for more than {self.config.peer_timeout:g}s")

    def shutdown(self, reason: str) -> None:
        for identity in list(self.peers):
            self.out.send(identity, m.Shutdown(reason))
        self.out.flush()
        log.info("scheduler shut down: %s", reason)
        time.sleep(0.05)
        self.monitor.close(0)
        self.socket.close(200)
        if self.authenticator is not None:
            self.authenticator.stop()
        self.context.term()
        if self.secret is not None:
            remove_secret(self.port, self.secret)
        if self.shm_prefix:
            shm.remove_prefix(self.shm_prefix)
