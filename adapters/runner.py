"""The common adapter runner: everything but the three provider verbs, written once (DESIGN §4).

Before anything else it asks a provider that has the optional ``groups(configured)`` hook
(``SizesGroups``) for its groups as it sizes them (EC2: capabilities from the instance type), once;
those are the groups it reports (with its budget, ``max_cost_per_hour``) and launches. Then it
registers with the scheduler, reconciles periodically against the provider's ground truth
(``list_units``), reports its groups and units, and carries out the scheduler's ``ScaleCommand``:
launches (idempotent per request id, errors classified per the provider's table, each group's
health in ``scaler.adapters.health``) and terminations (of units the scheduler has drained).
Units booting past ``boot_timeout`` are terminated (failed) and so replaced. Units the provider
lists that this runner did not start are orphans: terminated, or adopted, by policy, at start and
on every reconcile; units carrying the request id of a launch whose call has not answered are
this runner's own, tracked, not reaped.

Liveness. Provider calls run as supervised tasks (``scaler.adapters.calls``), each with
``call_timeout``, never inside the message handler: the loop heartbeats and reports on its own
schedule while they run, and a launch in flight is reported (``launching``) so the scheduler
counts it as supply. When the scheduler restarts or drops this adapter, the runner says Hello again
and re-reports its units (``scaler.adapters.session``); it terminates its units only after
``death_timeout`` without a word from any scheduler, saying so, so a cloud never keeps paying for
a dead cluster. A handshake refused before the first Welcome (wrong secret or keys), a refused
Hello, or no scheduler ever answering within ``death_timeout`` stops it with ``exit_code`` 1. On
stop (SIGTERM, the scheduler's ``Shutdown``), it waits for the calls in flight, then terminates
everything it started.
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

import msgspec
from scaler.adapters.calls import ProviderCalls, Supervisor
from scaler.adapters.errors import PartialLaunchError, ProviderBug, ProviderError
from scaler.adapters.health import GroupHealth
from scaler.adapters.provider import Provider, SizesGroups, SyncProvider, Unit, UnitState, WorkerGroup
from scaler.adapters.session import SchedulerSession
from scaler.adapters.units import ACTIVE, SUPPLY, UnitTable

from scaler.config.schema import DEFAULT_WORKER_CAPABILITIES
from scaler.protocol import messages as m
from scaler.utility.security import no_answer

log = logging.getLogger(__name__)
U = UnitState
KEEP_REQUESTS = 1000


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
    call_timeout: float = 60.0  # each provider call (launch, terminate, list_units)
    max_threads: int = 4  # a SyncProvider's calls at once
    peer_timeout: float = 10.0  # this long without a word from the scheduler: say Hello again
    max_cost_per_hour: float | None = None  # the budget reported to the scheduler (None: none)


class AdapterRunner:
    def __init__(self, provider: Provider | SyncProvider, config: RunnerConfig) -> None:
        self.provider = provider
        self.config = config
        self.sized = tuple(_defaulted(g) for g in config.groups)  # what is reported: as the provider sized them
        self.groups = {g.name: g for g in self.sized}
        self.table = UnitTable()
        self.calls = ProviderCalls(provider, config.name, config.call_timeout, config.max_threads)
        self.tasks = Supervisor(config.name)
        self.health = GroupHealth(config.name, config.backoff_base, config.backoff_max)
        self.requests: dict[str, str] = {}  # request id -> group, launched or in flight
        self.launching: dict[str, tuple[str, int]] = {}  # request id -> (group, count), call not yet answered
        self.ending: dict[str, UnitState] = {}  # unit -> where its terminate call leads (terminated or failed)
        self.reconciling: asyncio.Task[Any] | None = None
        self.connected: set[str] = set()
        self.acked = ""
        self.stopping = asyncio.Event()
        self.session: SchedulerSession | None = None
        self.exit_code = 0

    # -- lifetime ---------------------------------------------------------------------------

    async def run(self) -> None:
        config = self.config
        session = self.session = SchedulerSession(config.name, config.scheduler, config.curve_keys, self._hello)
        why_end = "the adapter is stopping"
        if not await self.size_groups():
            self.calls.close()
            return
        try:
            await session.dial()
            await self.reconcile(starting=True)
            session.send([self._state()])
            next_beat = next_reconcile = time.monotonic()
            while not self.stopping.is_set():
                wait = max(0.0, min(next_beat, next_reconcile) - time.monotonic())
                for msg in await session.receive(wait):
                    self._handle(msg)
                if session.failure is not None:
                    self._fail(session.failure)
                    break
                now = time.monotonic()
                quiet = session.silent(now)
                if quiet > config.peer_timeout and now - session.last_dial > config.peer_timeout:
                    session.dropped = session.dropped or f"no word from it for {quiet:.0f}s"
                if session.ever_welcomed and await session.rejoin():
                    session.send([self._state()])
                if quiet > config.death_timeout:
                    why_end = self._gone(quiet)
                    break
                if now >= next_beat:
                    next_beat = now + session.heartbeat_interval
                    session.send([m.Heartbeat()])
                if now >= next_reconcile:
                    next_reconcile = now + config.reconcile_interval
                    if self.reconciling is None or self.reconciling.done():
                        self.reconciling = self.tasks.spawn(self.reconcile(), "reconcile")
                    else:
                        self._report()
        finally:
            try:
                await self.terminate_all(why_end)
                session.send([m.Goodbye("adapter stopping")])
            finally:
                self.tasks.cancel()
                self.calls.close()
                session.close()

    def stop(self) -> None:
        self.stopping.set()

    async def size_groups(self) -> bool:
        """Ask a provider that has the optional ``groups(configured)`` hook for its groups as it sizes them
        (EC2: capabilities from the instance type), once, before the first report; False if the adapter
        must stop. A retryable failure (throttling, a timeout) is retried with the runner's back-off."""
        if not isinstance(self.provider, SizesGroups):
            return True
        delay = self.config.backoff_base
        while not self.stopping.is_set():
            try:
                sized = await self.calls.groups(self.config.groups)
            except ProviderError as exc:
                if not exc.retryable or isinstance(exc, ProviderBug):
                    self._fail(f"cannot size its groups: {exc}")
                    return False
                log.warning("adapter %s: sizing its groups: %s; retrying in %gs", self.config.name, exc, delay)
                try:
                    await asyncio.wait_for(self.stopping.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                delay = min(2 * delay, self.config.backoff_max)
                continue
            if [g.name for g in sized] != [g.name for g in self.config.groups]:
                names = [g.name for g in sized]
                self._fail(f"its provider's groups() returned groups {names}, not the configured ones")
                return False
            self.sized = tuple(_defaulted(g) for g in sized)
            self.groups = {g.name: g for g in self.sized}
            for group in self.sized:
                log.info("adapter %s: group %s: workers with %s", self.config.name, group.name, group.capabilities)
            return True
        return False

    def _hello(self) -> m.Hello:
        return m.Hello("adapter", m.PROTOCOL_VERSION, self.config.name, pid=os.getpid(), host=socket.gethostname())

    def _gone(self, quiet: float) -> str:
        address, timeout = self.config.scheduler, self.config.death_timeout
        if self.session is None or not self.session.ever_welcomed:
            self._fail(no_answer(address, timeout, self.config.curve_keys is not None))
            return "no scheduler ever answered"
        live = len(self.table.active())
        why = f"no scheduler at {address} for {quiet:.0f}s (death_timeout={timeout:g}s)"
        log.error(
            "adapter %s: %s; terminating its %d unit(s) so none runs (and costs) for a dead cluster, and stopping",
            self.config.name,
            why,
            live,
        )
        return why

    def _fail(self, text: str) -> None:
        """Stop with a non-zero exit code (a supervisor should see that this adapter failed), saying why."""
        if self.exit_code == 0:
            log.error("adapter %s stops: %s", self.config.name, text)
            self.exit_code = 1
        self.stopping.set()

    def _handle(self, msg: Any) -> None:
        if isinstance(msg, m.ScaleCommand):
            self.apply(msg)
        elif isinstance(msg, m.Shutdown):
            log.info("adapter %s: scheduler says %s", self.config.name, msg.reason)
            self.stopping.set()

    def _report(self) -> None:
        if self.session is not None:
            self.session.send([self._state()])

    def _state(self) -> m.AdapterState:
        units = [
            m.UnitReport(
                u.unit_id,
                u.group,
                u.state.value,
                u.created,
                u.cause,
                [m.UnitMove(h.state.value, h.cause, h.at) for h in u.history],
            )
            for u in self.table.active()
        ]
        launching: dict[str, int] = {}
        for request_id, (group, count) in self.launching.items():
            # units of this request already listed (and so in the books) are not counted twice
            listed = sum(1 for u in self.table.active() if u.request_id == request_id)
            launching[group] = launching.get(group, 0) + max(0, count - listed)
        failing = self.health.failing(time.monotonic())
        budget = self.config.max_cost_per_hour
        return m.AdapterState(self.config.name, list(self.sized), units, failing, self.acked, launching, budget)

    async def settle(self) -> None:
        """Wait until no provider call is in flight (tests, and the stop sequence)."""
        await self.tasks.settle()

    # -- commands ---------------------------------------------------------------------------

    def apply(self, command: m.ScaleCommand) -> None:
        self.connected = set(command.connected)
        for unit in self.table.active():
            if unit.unit_id in self.connected and unit.state in (U.REQUESTED, U.BOOTING):
                self.table.move(unit.unit_id, U.RUNNING, "its workers joined the scheduler")
        for group_name, count in command.launch.items():
            group = self.groups.get(group_name)
            if group is None:
                log.warning("scheduler asked for unknown group %r", group_name)
                continue
            why = self._reason(command, group_name)
            self.launch(group, count, f"{command.request_id}/{group_name}", why)
        for unit_id in command.drain:
            self._drain(unit_id, command)
        mine = [u for u in command.terminate if u in self.table.units]
        for unit_id in mine:
            self._drain(unit_id, command)
        self.terminate(mine, "scale-down: drained")
        self.acked = command.request_id
        self._report()

    def _drain(self, unit_id: str, command: m.ScaleCommand) -> None:
        if self.table.can_move(unit_id, U.DRAINING):
            why = self._reason(command, self.table.units[unit_id].group)
            self.table.move(unit_id, U.DRAINING, f"the scheduler drains it: {why}")

    def _reason(self, command: m.ScaleCommand, group: str) -> str:
        prefix = f"{self.config.name}/{group}: "
        found = [r[len(prefix) :] for r in command.reasons if r.startswith(prefix)]
        return "; ".join(found) or "scheduler request"

    def launch(self, group: WorkerGroup, count: int, request_id: str, cause: str) -> None:
        if request_id in self.requests or not self.health.can_launch(group.name, time.monotonic()):
            return
        self.requests[request_id] = group.name
        if len(self.requests) > KEEP_REQUESTS:
            for old in [r for r in self.requests if r not in self.launching][: len(self.requests) - KEEP_REQUESTS]:
                del self.requests[old]
        self.launching[request_id] = (group.name, count)
        self.tasks.spawn(self._launch(group, count, request_id, cause), f"launch {request_id}")

    async def _launch(self, group: WorkerGroup, count: int, request_id: str, cause: str) -> None:
        def late(units: list[Unit]) -> None:
            self._track(units, group.name, request_id, f"launched (the call answered late): {cause}")

        try:
            units = await self.calls.launch(group, count, request_id, late)
        except PartialLaunchError as exc:
            self._track(exc.units, group.name, request_id, f"launched (partly): {cause}")
            self.health.failed(group.name, exc, time.monotonic())
        except ProviderError as exc:
            self.health.failed(group.name, exc, time.monotonic())
        else:
            self.health.succeeded(group.name)
            self._track(units, group.name, request_id, f"launched: {cause}")
        finally:
            self.launching.pop(request_id, None)
            self._report()

    def _track(self, units: list[Unit], group: str, request_id: str, cause: str) -> None:
        for unit in units:
            if unit.unit_id not in self.table.units:
                self.table.add(unit.unit_id, group, U.BOOTING, request_id, cause)

    def terminate(self, unit_ids: list[str], cause: str, final: UnitState = U.TERMINATED) -> None:
        """Move ``unit_ids`` to terminating and end them with one provider call; ``final`` once it returns."""
        chosen = [u for u in unit_ids if self.table.can_move(u, U.TERMINATING)]
        if not chosen:
            return
        for unit_id in chosen:
            self.table.move(unit_id, U.TERMINATING, cause)
            self.ending[unit_id] = final
        self.tasks.spawn(self._terminate(chosen, cause), f"terminate {len(chosen)} unit(s)")

    async def _terminate(self, unit_ids: list[str], cause: str) -> None:
        try:
            await self.calls.terminate(unit_ids)
        except ProviderError as exc:
            log.warning("adapter %s: %s; will retry at the next reconcile", self.config.name, exc)
            for unit_id in self._still_terminating(unit_ids):
                self.table.move(
                    unit_id, U.TERMINATION_FAILED, f"{cause}; terminate failed: {type(exc).__name__}: {exc}"
                )
        else:
            for unit_id in self._still_terminating(unit_ids):
                self.table.move(unit_id, self.ending.get(unit_id, U.TERMINATED), cause)
        for unit_id in unit_ids:
            unit = self.table.units.get(unit_id)
            if unit is None or unit.state is not U.TERMINATING:
                self.ending.pop(unit_id, None)
        self._report()

    def _still_terminating(self, unit_ids: list[str]) -> list[str]:
        return [u for u in unit_ids if u in self.table.units and self.table.units[u].state is U.TERMINATING]

    async def terminate_all(self, cause: str) -> None:
        """Wait for the calls in flight (launches may still add units), then end every unit, and wait."""
        await self.tasks.settle()
        self.terminate([u.unit_id for u in self.table.active()], cause)
        await self.tasks.settle()

    # -- reconcile --------------------------------------------------------------------------

    async def reconcile(self, starting: bool = False) -> None:
        began = time.monotonic()
        try:
            listed = await self.calls.list_units()
        except ProviderError as exc:
            log.warning("adapter %s: %s", self.config.name, exc)
            self._report()
            return
        self._reconcile(listed, began, starting)
        self._report()

    def _reconcile(self, listed: list[Unit], began: float, starting: bool) -> None:
        table = self.table
        present = {u.unit_id: u for u in listed if u.state in ACTIVE}
        failed = {u.unit_id: u for u in listed if u.state is U.FAILED}
        for tracked in table.active():
            if tracked.unit_id not in present and tracked.added < began and tracked.state is not U.REQUESTED:
                final = self.ending.pop(tracked.unit_id, U.TERMINATED)
                if tracked.unit_id in failed and final is U.TERMINATED:  # it ended on its own: say why
                    reason = failed[tracked.unit_id].details.get("reason", "no reason given")
                    table.move(tracked.unit_id, U.FAILED, f"the provider lists it failed: {reason}")
                    continue
                table.move(tracked.unit_id, final, "the provider no longer lists it")
        now = time.monotonic()
        ended = [
            unit_id
            for unit_id in present
            if unit_id in table.units
            and table.units[unit_id].state not in ACTIVE
            and now - table.units[unit_id].since > self.config.reterminate_after
        ]
        if ended:
            log.warning(
                "adapter %s: units %s were ended but are still listed; terminating again", self.config.name, ended
            )
            self.tasks.spawn(self._terminate_again(ended), "terminate again")
        retry = [u.unit_id for u in table.active() if u.state is U.TERMINATION_FAILED]
        for unit_id in retry:
            self.terminate([unit_id], f"retry: {table.units[unit_id].cause}", self.ending.get(unit_id, U.TERMINATED))
        self._take_unknown([u for u in present.values() if u.unit_id not in table.units], starting)
        late = [u.unit_id for u in table.active() if u.state is U.BOOTING and now - u.since > self.config.boot_timeout]
        self.terminate(late, f"booting for more than {self.config.boot_timeout:g}s", U.FAILED)
        table.forget_ended()

    def _take_unknown(self, unknown: list[Unit], starting: bool) -> None:
        """Units the books do not have: a launch's not yet answered (tracked), or orphans (reaped or adopted)."""
        where = "at start" if starting else "while running"
        orphans = []
        for unit in unknown:
            state = unit.state if unit.state in SUPPLY else U.BOOTING
            if unit.request_id and unit.request_id in self.requests:
                cause = f"listed with request {unit.request_id}, whose launch call has not answered"
                self.table.add(unit.unit_id, unit.group, state, unit.request_id, cause)
            else:
                orphans.append(unit)
        if not orphans:
            return
        if self.config.orphans == "adopt" and all(u.group in self.groups for u in orphans):
            for orphan in orphans:
                self.table.add(orphan.unit_id, orphan.group, U.RUNNING, orphan.request_id, f"adopted {where}")
            return
        for orphan in orphans:
            state = orphan.state if orphan.state in SUPPLY else U.BOOTING
            self.table.add(orphan.unit_id, orphan.group, state, orphan.request_id, f"orphan found {where}")
        self.terminate([u.unit_id for u in orphans], f"orphan found {where}: not started by this runner")

    async def _terminate_again(self, unit_ids: list[str]) -> None:
        try:
            await self.calls.terminate(unit_ids)
        except ProviderError as exc:
            log.warning("adapter %s: %s; will retry at the next reconcile", self.config.name, exc)
            return
        for unit_id in unit_ids:
            if unit_id in self.table.units:
                self.table.units[unit_id].since = time.monotonic()


def _defaulted(group: WorkerGroup) -> WorkerGroup:
    """``group`` with ``cpu=1`` for capabilities left empty (the provider did not size it)."""
    return group if group.capabilities else msgspec.structs.replace(group, capabilities=DEFAULT_WORKER_CAPABILITIES)
