"""The common adapter runner: everything but the three provider verbs, written once (DESIGN §4).

It registers with the scheduler, reconciles periodically against the provider's ground truth
(``list_units``), reports its groups and units, and carries out the scheduler's ``ScaleCommand``:
launches (idempotent per request id, errors classified, exponential backoff per group reported as
``failing`` so the policy spills to the next group) and terminations (of units the scheduler has
drained). Units booting past ``boot_timeout`` are terminated and so replaced. Units the provider
lists that this runner did not start are orphans: terminated, or adopted, by policy, at start and
on every reconcile. On stop it terminates everything it started. Provider calls run in the
event loop; providers push blocking work to threads.

Sends to the scheduler never wait: a handshake the scheduler refused (wrong or missing secret or
CURVE keys) ends libzmq's connection for good, which the socket monitor reports; the runner logs
what to check and stops with ``exit_code`` 1, as it does when the scheduler refuses it or never
answers within ``death_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
from scaler.adapters.errors import ProviderError, classify
from scaler.adapters.provider import Provider, UnitState, WorkerGroup
from scaler.adapters.units import ACTIVE, UnitTable

from scaler.protocol import messages as m
from scaler.protocol.wire import ProtocolError, encode, split_batch
from scaler.utility.security import CurveKeys, auth_hint
from scaler.utility.sockets import HANDSHAKE_REFUSED, dial, event_name, monitor_event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    name: str
    scheduler: str
    groups: tuple[WorkerGroup, ...]
    reconcile_interval: float = 1.0
    boot_timeout: float = 60.0
    orphans: str = "terminate"  # or "adopt"
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    death_timeout: float = 30.0
    reterminate_after: float = 10.0  # a unit ended this long ago but still listed live is ended again
    curve_keys: Path | None = None


class AdapterRunner:
    def __init__(self, provider: Provider, config: RunnerConfig) -> None:
        self.provider = provider
        self.config = config
        self.groups = {g.name: g for g in config.groups}
        self.table = UnitTable()
        self.requests: set[str] = set()
        self.failures: dict[str, int] = {}
        self.backoff_until: dict[str, float] = {}
        self.failing: dict[str, str] = {}
        self.connected: set[str] = set()
        self.acked = ""
        self.stopping = asyncio.Event()
        self.welcomed = False
        self.exit_code = 0

    # -- lifetime ---------------------------------------------------------------------------

    async def run(self) -> None:
        context = zmq.asyncio.Context()
        keys = CurveKeys(self.config.curve_keys) if self.config.curve_keys else None
        sock: Any = dial(context, "d", self.config.scheduler, keys)
        monitor: Any = sock.get_monitor_socket(HANDSHAKE_REFUSED)
        sock.connect(self.config.scheduler)
        self.sock = sock
        poller = zmq.asyncio.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        try:
            await self.reconcile(starting=True)
            hello = m.Hello("adapter", m.PROTOCOL_VERSION, self.config.name, pid=os.getpid(), host=socket.gethostname())
            await self._send([hello, self._state()])
            last_heard = time.monotonic()
            next_reconcile = time.monotonic() + self.config.reconcile_interval
            while not self.stopping.is_set():
                timeout = max(0.0, next_reconcile - time.monotonic())
                ready = dict(await poller.poll(int(timeout * 1000) + 1))
                if monitor in ready:
                    event = monitor_event(await monitor.recv_multipart())
                    self._fail(self._refused_handshake(event_name(event["event"])))
                    break
                if sock in ready:
                    last_heard = time.monotonic()
                    await self._receive(await sock.recv_multipart(copy=False))
                if time.monotonic() >= next_reconcile:
                    next_reconcile = time.monotonic() + self.config.reconcile_interval
                    await self.reconcile()
                    await self._send([self._state()])
                    if time.monotonic() - last_heard > self.config.death_timeout:
                        if not self.welcomed:
                            hint = auth_hint(self.config.scheduler, self.config.curve_keys is not None)
                            self._fail(
                                f"no answer from scheduler {self.config.scheduler} within "
                                f"{self.config.death_timeout:g}s (is it running and reachable? {hint})"
                            )
                        else:
                            log.error(
                                "adapter %s: no word from the scheduler for %.0fs; stopping",
                                self.config.name,
                                self.config.death_timeout,
                            )
                        break
        finally:
            await self.terminate_all("the adapter is stopping")
            try:
                await self._send([m.Goodbye("adapter stopping")])
            finally:
                sock.disable_monitor()
                monitor.close(0)
                sock.close(500)
                context.term()

    def stop(self) -> None:
        self.stopping.set()

    async def _send(self, msgs: list[Any]) -> None:
        try:
            await self.sock.send_multipart([encode(msgs)], flags=zmq.NOBLOCK)
        except zmq.Again:  # no connection will take it: libzmq gave up on a refused handshake
            self._fail(self._refused_handshake("the connection is closed"))

    def _refused_handshake(self, what: str) -> str:
        address = self.config.scheduler
        hint = auth_hint(address, self.config.curve_keys is not None)
        return f"the handshake with scheduler {address} failed ({what}): {hint}"

    def _fail(self, text: str) -> None:
        """Stop with a non-zero exit code (a supervisor should see that this adapter failed), saying why."""
        if self.exit_code == 0:
            log.error("adapter %s stops: %s", self.config.name, text)
            self.exit_code = 1
        self.stopping.set()

    async def _receive(self, frames: list[Any]) -> None:
        try:
            batch = split_batch(frames)
        except ProtocolError as exc:
            log.warning("adapter %s dropped a malformed message from the scheduler: %s", self.config.name, exc)
            return
        for msg, _ in batch:
            if isinstance(msg, m.ScaleCommand):
                await self.apply(msg)
                await self._send([self._state()])
            elif isinstance(msg, m.Welcome):
                self.welcomed = True
            elif isinstance(msg, m.Refused):
                self._fail(f"scheduler {self.config.scheduler} refused this adapter: {msg.reason}")
            elif isinstance(msg, m.Shutdown):
                log.info("adapter %s: scheduler says %s", self.config.name, msg.reason)
                self.stopping.set()

    def _state(self) -> m.AdapterState:
        now = time.monotonic()
        failing = {g: why for g, why in self.failing.items() if self.backoff_until.get(g, 0.0) > now}
        units = [m.UnitReport(u.unit_id, u.group, u.state.value, u.created, u.cause) for u in self.table.active()]
        return m.AdapterState(self.config.name, list(self.config.groups), units, failing, self.acked)

    # -- commands ---------------------------------------------------------------------------

    async def apply(self, command: m.ScaleCommand) -> None:
        self.connected = set(command.connected)
        for unit in self.table.active():
            if unit.unit_id in self.connected and unit.state in (UnitState.REQUESTED, UnitState.BOOTING):
                self.table.move(unit.unit_id, UnitState.RUNNING, "its workers joined the scheduler")
        for group_name, count in command.launch.items():
            group = self.groups.get(group_name)
            if group is None:
                log.warning("scheduler asked for unknown group %r", group_name)
                continue
            why = self._reason(command, group_name)
            await self.launch(group, count, f"{command.request_id}/{group_name}", why)
        for unit_id in command.drain:
            if unit_id in self.table.units:
                why = self._reason(command, self.table.units[unit_id].group)
                self.table.move(unit_id, UnitState.DRAINING, f"the scheduler drains it: {why}")
        if command.terminate:
            mine = [u for u in command.terminate if u in self.table.units]
            for unit_id in mine:
                why = self._reason(command, self.table.units[unit_id].group)
                self.table.move(unit_id, UnitState.DRAINING, f"the scheduler drains it: {why}")
            await self._terminate(mine, "scale-down: drained")
        self.acked = command.request_id

    def _reason(self, command: m.ScaleCommand, group: str) -> str:
        prefix = f"{self.config.name}/{group}: "
        found = [r[len(prefix) :] for r in command.reasons if r.startswith(prefix)]
        return "; ".join(found) or "scheduler request"

    async def launch(self, group: WorkerGroup, count: int, request_id: str, cause: str) -> None:
        if request_id in self.requests:
            return
        now = time.monotonic()
        if self.backoff_until.get(group.name, 0.0) > now:
            return
        self.requests.add(request_id)
        try:
            with classify(f"launching {count} unit(s) of group {group.name}"):
                units = await self.provider.launch(group, count, request_id)
        except ProviderError as exc:
            failures = self.failures.get(group.name, 0) + 1
            self.failures[group.name] = failures
            delay = min(self.config.backoff_max, self.config.backoff_base * 2 ** (failures - 1))
            self.backoff_until[group.name] = now + delay
            self.failing[group.name] = f"{type(exc).__name__}: {exc}"
            log.warning(
                "adapter %s: %s (%s); group %s backs off %.1fs",
                self.config.name,
                exc,
                type(exc).__name__,
                group.name,
                delay,
            )
            return
        self.failures.pop(group.name, None)
        self.failing.pop(group.name, None)
        for unit in units:
            if unit.unit_id not in self.table.units:
                self.table.add(unit.unit_id, group.name, UnitState.BOOTING, request_id, f"launched: {cause}")

    async def _provider_terminate(self, unit_ids: list[str]) -> bool:
        """The provider's ``terminate``, its errors classified and logged; True if it succeeded."""
        try:
            with classify(f"terminating {len(unit_ids)} unit(s)"):
                await self.provider.terminate(unit_ids)
        except ProviderError as exc:
            log.warning("adapter %s: %s; will retry at the next reconcile", self.config.name, exc)
            return False
        return True

    async def _terminate(self, unit_ids: list[str], cause: str) -> None:
        if not unit_ids or not await self._provider_terminate(unit_ids):
            return
        for unit_id in unit_ids:
            if unit_id in self.table.units:
                self.table.move(unit_id, UnitState.TERMINATED, cause)

    async def _terminate_again(self, unit_ids: list[str]) -> None:
        """Units this runner ended that the provider still lists as live: end them again."""
        name = self.config.name
        log.warning("adapter %s: units %s were ended but are still listed; terminating again", name, unit_ids)
        if await self._provider_terminate(unit_ids):
            for unit_id in unit_ids:
                self.table.units[unit_id].since = time.monotonic()

    async def terminate_all(self, cause: str) -> None:
        await self._terminate([u.unit_id for u in self.table.active()], cause)

    # -- reconcile --------------------------------------------------------------------------

    async def reconcile(self, starting: bool = False) -> None:
        try:
            with classify("listing units"):
                listed = await self.provider.list_units()
        except ProviderError as exc:
            log.warning("adapter %s: %s", self.config.name, exc)
            return
        present = {u.unit_id: u for u in listed if u.state in ACTIVE}
        for tracked in self.table.active():
            if tracked.unit_id not in present and tracked.state is not UnitState.REQUESTED:
                self.table.move(tracked.unit_id, UnitState.TERMINATED, "the provider no longer lists it")
        ended = [
            u.unit_id
            for u in present.values()
            if u.unit_id in self.table.units
            and self.table.units[u.unit_id].state not in ACTIVE
            and time.monotonic() - self.table.units[u.unit_id].since > self.config.reterminate_after
        ]
        if ended:
            await self._terminate_again(ended)
        orphans = [u for u in present.values() if u.unit_id not in self.table.units]
        if orphans:
            where = "at start" if starting else "while running"
            if self.config.orphans == "adopt" and all(u.group in self.groups for u in orphans):
                for orphan in orphans:
                    self.table.add(
                        orphan.unit_id, orphan.group, UnitState.RUNNING, orphan.request_id, f"adopted {where}"
                    )
            else:
                for orphan in orphans:
                    self.table.add(
                        orphan.unit_id, orphan.group, UnitState.DRAINING, orphan.request_id, f"orphan {where}"
                    )
                await self._terminate([u.unit_id for u in orphans], f"orphan found {where}: not started by this runner")
        now = time.monotonic()
        late = [
            u.unit_id
            for u in self.table.active()
            if u.state is UnitState.BOOTING and now - u.since > self.config.boot_timeout
        ]
        if late:
            await self._terminate(late, f"booting for more than {self.config.boot_timeout:g}s")
            for unit_id in late:
                gone = self.table.units.get(unit_id)
                if gone is not None and gone.state is UnitState.TERMINATED:
                    gone.state = UnitState.FAILED
        self.table.forget_ended()
