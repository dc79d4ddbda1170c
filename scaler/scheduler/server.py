"""The scheduler process: one ROUTER socket, sessions (hello, heartbeats, goodbye), the loop.

The loop drains every ready message, lets the engine place tasks once per turn, and flushes one
batch per peer: batching is what makes per-task cost small. A peer whose connection closed (its
process died, even by SIGKILL) is dropped within a fraction of a second unless it reconnected
(``scaler/scheduler/liveness.py``); silence past ``peer_timeout`` drops it otherwise. Both take
the same path: a lost worker's tasks are re-queued, a lost client's tasks cancelled (its
non-detached actors die with it) and its objects released.
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
from scaler.scheduler.actors import kv_delete, kv_get, kv_put
from scaler.scheduler.adapters import AdapterSessions
from scaler.scheduler.bundles import BundleError
from scaler.scheduler.cancels import cancel_tasks
from scaler.scheduler.config import SchedulerConfig
from scaler.scheduler.engine import Engine
from scaler.scheduler.intake import MAX_ID, Intake, Rejected
from scaler.scheduler.liveness import ConnectionWatch
from scaler.scheduler.outbox import Outbox
from scaler.scheduler.snapshot import engine_status
from scaler.scheduler.workers import WorkerState
from scaler.scheduler.zap import PlainGate
from scaler.utility import shm
from scaler.utility.capabilities import (
    NODE_PREFIX,
    PG_PREFIX,
    Capabilities,
    CapabilityError,
    node_label,
    parse_capabilities,
)
from scaler.utility.net import is_loopback, parse_tcp
from scaler.utility.security import (
    CurveKeys,
    check_bind,
    new_secret,
    remove_secret,
    secret_from_env,
    write_secret,
)
from scaler.utility.sockets import readable, recv_frames

log = logging.getLogger(__name__)
KINDS = ("client", "worker", "adapter", "monitor")
CLIENT_MSGS = (
    m.SubmitTask,
    m.PutObject,
    m.Release,
    m.CancelTasks,
    m.KVPut,
    m.KVGet,
    m.KVDelete,
    m.ReserveBundles,
    m.FreeBundles,
)
WORKER_MSGS = (
    m.TasksStarted,
    m.TaskDone,
    m.StreamItem,
    m.TaskBlocked,
    m.TaskUnblocked,
    m.Reclaimed,
    m.TaskOutput,
    m.WorkerInterrupted,
)


@dataclass(slots=True, eq=False)
class Peer:
    identity: bytes
    kind: str
    name: str
    last_seen: float
    shm_prefix: str = ""  # segments this peer may hand over start with it ("": none)


def _published_as(bound: str) -> str:
    """Where same-host peers look up this scheduler's secret: its own loopback address, the loopback
    address of a wildcard bind (an empty secret: they need none), else nowhere."""
    host, port = parse_tcp(bound)
    if is_loopback(host):
        return bound
    return f"tcp://127.0.0.1:{port}" if host in ("0.0.0.0", "*") else ""


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
        self.gate: PlainGate | None = None
        if config.curve_keys is not None:
            self._setup_curve(CurveKeys(config.curve_keys))
        elif is_loopback(parse_tcp(config.address)[0]):
            self._setup_secret(secret_from_env(config.address) or new_secret())
        self.socket.bind(config.address)
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.published = _published_as(self.address)
        if self.published:  # empty: peers on this host need none (and need not wait for it)
            write_secret(self.published, self.secret or b"")
        self.out = Outbox(self.socket)
        self.watch = ConnectionWatch(self.socket, self.out.remote)
        self.engine = Engine(config, self.out)
        self.intake = Intake(self.engine.store, self.engine.tasks)
        self.joined = 0
        self.tick_errors = 0
        self.adapters = AdapterSessions(self.engine, config.scaling)
        self.peers: dict[bytes, Peer] = {}
        self.domain = shm.host_domain()
        self.shm_prefix = f"scaler-{os.getpid()}-{os.urandom(3).hex()}-" if shm.available() else ""
        shm.enable(self.shm_prefix)
        self.running = True
        self.malformed = 0

    def _setup_curve(self, keys: CurveKeys) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        keys.apply_server(self.socket)
        self.authenticator = ThreadAuthenticator(self.context, log=logging.getLogger("scaler.auth"))
        self.authenticator.start()
        self.authenticator.configure_curve(domain="*", location=str(keys.authorized_dir))

    def _setup_secret(self, secret: bytes) -> None:
        self.secret = secret
        self.socket.plain_server = True
        self.gate = PlainGate(self.context, secret)

    def stop(self, *_: Any) -> None:
        self.running = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.watch.monitor, zmq.POLLIN)
        gate = self.gate.socket if self.gate is not None else None
        if gate is not None:
            poller.register(gate, zmq.POLLIN)
        wake_r, wake_w = os.pipe()  # a stop signal wakes the poll (else it waits out its timeout)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        poller.register(wake_r, zmq.POLLIN)
        log.info("scheduler listening on %s", self.address)
        next_check = time.monotonic() + 0.5
        watch = self.watch
        while self.running:
            due = watch.next_due()
            timeout = max(0.0, min(next_check, due if due is not None else next_check) - time.monotonic())
            ready = dict(poller.poll(int(timeout * 1000) + 1))
            if self.gate is not None and gate in ready:
                self.gate.serve()
            if wake_r in ready:
                os.read(wake_r, 512)
            if watch.monitor in ready:
                watch.drain_monitor(time.monotonic())
            if self.socket in ready:
                self._drain_socket()
            now = time.monotonic()
            if watch.suspects:
                for identity in watch.gone(now):
                    peer = self.peers.get(identity)
                    if peer is not None:
                        self._lost(peer, "connection closed")
            if now >= next_check:
                next_check = now + 0.5
                self._check_timeouts(now)
                self.engine.flush_freed()
                if self.engine.bundles.pending:  # placement groups waiting for capacity are tried again
                    self.engine.dirty = True
            if self.engine.dirty or self.engine.maybe_idle:
                self.engine.schedule()
            if self.adapters.adapters:
                self._tick_adapters(now)
            self.out.flush()
        signal.set_wakeup_fd(-1)
        os.close(wake_r)
        os.close(wake_w)
        self.shutdown("scheduler stopped")

    def _tick_adapters(self, now: float) -> None:
        """One scaling round. Reports are checked on entry, so an error here is a bug: it is logged and
        the round skipped, and the scheduler goes on serving (queued work and stored objects are kept)."""
        try:
            self.adapters.tick(now)
        except Exception:
            self.tick_errors += 1
            if self.tick_errors <= 5 or self.tick_errors % 1000 == 0:
                log.exception("scaling round failed (%d so far); the scheduler keeps serving", self.tick_errors)

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

    def _handle(self, frames: list[Any], now: float) -> None:
        identity = frames[0].bytes
        try:
            batch = split_batch(frames[1:])
        except ProtocolError as exc:
            self._reject(identity, str(exc))
            return
        peer = self.peers.get(identity)
        if peer is not None and self.watch.refresh and identity in self.watch.refresh:
            self.watch.heard(identity, frames[1], now)
        for msg, payload in batch:
            kind = type(msg)
            if peer is None:
                if kind is m.Hello:
                    peer = self._hello(identity, msg, now)
                    if peer is not None:
                        self.watch.joined(identity, frames[1], now)
                elif kind is m.Goodbye:
                    return
                else:
                    self._reject(identity, f"{kind.__name__} before Hello: say Hello first", refuse=True)
                    return
                continue
            peer.last_seen = now
            try:
                nbytes = self.intake.check(peer.shm_prefix, msg, payload)
                self._dispatch(peer, msg, payload, nbytes)
            except (Rejected, BundleError) as exc:
                self._reject(identity, f"{kind.__name__} from {peer.kind} {peer.name}: {exc}")
                if kind is m.SubmitTask and peer.kind == "client" and 0 < len(msg.task_id) <= MAX_ID:
                    self.out.send(identity, m.TaskRejected(msg.task_id, str(exc)))  # its caller is not left waiting
            except Exception:
                self.malformed += 1
                if self.malformed <= 20 or self.malformed % 1000 == 0:
                    log.exception("error handling %s from %s %s; message dropped", kind.__name__, peer.kind, peer.name)

    def _dispatch(self, peer: Peer, msg: Any, payload: list[Any], nbytes: int) -> None:
        kind = type(msg)
        engine = self.engine
        identity = peer.identity
        if peer.kind == "client" and kind in CLIENT_MSGS:
            if kind is m.SubmitTask:
                engine.submit(identity, msg, payload, nbytes)
            elif kind is m.PutObject:
                engine.put(identity, msg, payload, nbytes)
            elif kind is m.Release:
                engine.release(identity, msg.object_ids)
            elif kind is m.KVPut:
                kv_put(engine, identity, msg, payload)
            elif kind is m.KVGet:
                kv_get(engine, identity, msg.key)
            elif kind is m.KVDelete:
                kv_delete(engine, identity, msg.key)
            elif kind is m.ReserveBundles:
                owner = engine.bundles.job_of(engine, identity, msg.parent)
                engine.bundles.reserve(engine, owner, msg, [parse_capabilities(b) for b in msg.bundles])
            elif kind is m.FreeBundles:
                engine.bundles.free(engine, engine.bundles.job_of(engine, identity, msg.parent), msg.pg_id)
            else:
                cancel_tasks(engine, identity, msg.task_ids, msg.force, msg.recursive)
        elif peer.kind == "worker" and kind in WORKER_MSGS:
            if kind is m.TaskDone:
                engine.task_done(identity, msg, payload)
            elif kind is m.TasksStarted:
                engine.started(identity, msg.task_ids)
            elif kind is m.StreamItem:
                engine.streams.item(identity, msg, payload)
            elif kind is m.TaskOutput:
                task = engine.tasks.get(msg.task_id)
                if task is not None:
                    self.out.send(task.client, msg)
            elif kind is m.Reclaimed:
                engine.reclaimed(identity, msg.task_ids)
            elif kind is m.WorkerInterrupted:
                worker = engine.interrupted(identity, msg.seconds_left, msg.action)
                if worker is not None:
                    self.adapters.interrupted(worker, msg.seconds_left)
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
            reply = engine_status(engine)
            reply.status["rejected_messages"] = self.malformed
            reply.adapters = self.adapters.status()
            reply.units = self.adapters.units()
            reply.decisions = list(self.adapters.history)[-50:]
            reply.placement_groups = engine.bundles.info()
            self.out.send(identity, reply)
        elif kind is m.Goodbye:
            self._lost(peer, msg.reason or "said goodbye", said_goodbye=True)
        elif kind is m.Hello:
            self._reject(identity, "second Hello on one session")
        else:
            self._reject(identity, f"{kind.__name__} is not a message a {peer.kind} may send")

    def _hello(self, identity: bytes, msg: m.Hello, now: float) -> Peer | None:
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
            if any(n.startswith(PG_PREFIX) for n, _ in caps.quantities) or any(
                label.startswith(NODE_PREFIX) for label in caps.labels
            ):
                why = f"bad worker capabilities: {PG_PREFIX}* and {NODE_PREFIX}* names are the scheduler's"
                self._reject(identity, why, refuse=True)
                return None
            label = node_label(name)
            if label is not None:  # work placed on this worker by name asks for it
                caps = Capabilities(caps.quantities, caps.labels | {label})
            total = caps.as_dict()
            self.engine.add_worker(
                WorkerState(identity, name, caps, total, {}, pid=msg.pid, host=msg.host, unit=msg.unit)
            )
        elif msg.kind == "client":
            self.engine.add_client(identity, name)
        local = msg.domain == self.domain and bool(self.shm_prefix)
        self.joined += 1
        peer = Peer(identity, msg.kind, name, now, f"{self.shm_prefix}{self.joined:x}-" if local else "")
        self.peers[identity] = peer
        if not local:
            self.out.remote.add(identity)
        welcome = m.Welcome(
            identity.hex(),
            self.config.heartbeat_interval,
            self.config.max_queued_tasks,
            self.config.max_queued_bytes,
            peer.shm_prefix,
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

    def _lost(self, peer: Peer, reason: str, said_goodbye: bool = False) -> None:
        if self.peers.pop(peer.identity, None) is None:
            return
        self.out.remote.discard(peer.identity)
        self.watch.left(peer.identity)
        if peer.kind == "worker":
            self.engine.worker_lost(peer.identity, reason, said_goodbye)
        elif peer.kind == "client":
            self.engine.client_lost(peer.identity, reason, said_goodbye)
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
        self.watch.close()
        self.socket.close(200)
        if self.authenticator is not None:
            self.authenticator.stop()
        if self.gate is not None:
            self.gate.close()
        self.context.term()
        if self.published:
            remove_secret(self.published, self.secret or b"")
        if self.shm_prefix:
            shm.remove_prefix(self.shm_prefix)
