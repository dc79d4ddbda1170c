"""The scheduler's side of worker adapters: their reported groups and units, and applying decisions.

Each adapter reports ``AdapterState`` after every reconcile; units being launched (the provider
call has not answered) and units requested or booting count as pending supply, draining and
terminating ones not at all. The scheduler answers each report
with at most one ``ScaleCommand``, so an adapter never has two commands in flight and its next
report already counts the units it launched (pending units are supply). A command with nothing
new is not sent (at most one every ``KEEPALIVE`` seconds, so the adapter knows the scheduler is
there): the report stays usable, and a round runs at once when tasks start to wait, not only
every ``interval``.

A spot interruption notice on a unit's worker (``WorkerInterrupted``) makes that unit draining at
once, as if the policy had chosen it: it stops counting as supply, so the same round launches its
replacement (the decision says why), and its terminate follows when its tasks end or at the notice's
deadline.

Removal is drain-then-terminate. A unit chosen for removal is *draining* at once: its workers get
no new task and hand back the ones they hold unstarted. Its terminate goes out with the first
command after all its workers are idle, or, for a unit still busy, when ``drain_timeout`` has
passed (its running tasks are then retried elsewhere, and the log says so). Idle units, the usual
choice of the policy, are therefore terminated in the same round they were chosen.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

from scaler.protocol import messages as m
from scaler.scaling.model import Decision, Demand, GroupView, PolicyMemory, ScalingConfig, UnitView
from scaler.scaling.policy import decide
from scaler.scheduler.engine import Engine
from scaler.scheduler.workers import WorkerState
from scaler.utility.capabilities import fit_count, parse_capabilities
from scaler.utility.ids import IdMaker

log = logging.getLogger(__name__)
ACTIVE = ("requested", "booting", "running")  # supply; draining and terminating units are not
LIVE = (*ACTIVE, "draining", "terminating", "termination_failed")  # may still exist at the provider
KEEPALIVE = 2.0
HISTORY_SHOWN = 5


@dataclass
class AdapterSession:
    identity: bytes
    name: str
    state: m.AdapterState | None = None
    fresh: bool = False
    last_sent: float = 0.0
    last_connected: list[str] = field(default_factory=list)
    draining: dict[str, float] = field(default_factory=dict)  # unit -> drain deadline (monotonic)
    terminating: set[str] = field(default_factory=set)
    interrupted: dict[str, str] = field(default_factory=dict)  # unit -> why (a spot interruption notice)
    notices: list[str] = field(default_factory=list)  # interrupted units the adapter is not yet told of


class AdapterSessions:
    def __init__(self, engine: Engine, config: ScalingConfig) -> None:
        self.engine = engine
        self.config = config
        self.adapters: dict[bytes, AdapterSession] = {}
        self.memory = PolicyMemory()
        self.history: deque[str] = deque(maxlen=200)
        self.ids = IdMaker("s")
        self.next_round = 0.0
        self.was_waiting = False

    def report(self, identity: bytes, name: str, msg: m.AdapterState) -> None:
        session = self.adapters.get(identity)
        if session is None:
            name = msg.adapter or name
            for old in [s for s in self.adapters.values() if s.name == name]:
                # The same adapter, restarted: a killed one said no Goodbye and would stay until
                # peer_timeout, its units counted beside the new session's (which now lists them).
                log.warning("adapter %s reconnected from a new process; its old session is dropped", name)
                del self.adapters[old.identity]
            session = self.adapters[identity] = AdapterSession(identity, name)
        session.state = msg
        session.fresh = True
        live = {u.unit_id for u in msg.units if u.state in LIVE}
        session.draining = {u: t for u, t in session.draining.items() if u in live}
        session.terminating &= live
        session.interrupted = {u: why for u, why in session.interrupted.items() if u in live}

    def lost(self, identity: bytes) -> None:
        session = self.adapters.pop(identity, None)
        if session is not None:
            log.info("adapter %s left; its workers stay until they exit", session.name)

    def interrupted(self, worker: WorkerState, seconds_left: float) -> None:
        """A spot interruption notice on ``worker``: its unit is draining from now (so it no longer
        counts as supply and the next round replaces it) and is terminated when its tasks end, or at
        the deadline. A worker of no adapter's unit is only drained (by the engine) and logged."""
        where = f" (unit {worker.unit})" if worker.unit else ""
        text = f"spot interruption notice on worker {worker.name}{where}: drained, {seconds_left:.0f}s left"
        self.history.append(f"{time.strftime('%H:%M:%S')} {text}")
        self._mark(worker, seconds_left)

    def _mark(self, worker: WorkerState, seconds_left: float) -> None:
        """Make ``worker``'s unit draining at the adapter that reports it (none may, yet)."""
        if not worker.unit:
            return
        why = f"spot interruption notice on worker {worker.name}"
        for session in self.adapters.values():
            reported = session.state.units if session.state else []
            unit = next((u for u in reported if u.unit_id == worker.unit and u.state in LIVE), None)
            if unit is None:
                continue
            if worker.unit not in session.draining:
                session.draining[worker.unit] = time.monotonic() + seconds_left
                session.notices.append(worker.unit)
            session.interrupted.setdefault(worker.unit, f"{session.name}/{unit.group}: {why}")
            self.next_round = 0.0  # replace it now, not after ``interval``

    def _catch_up(self) -> None:
        """Noticed workers whose unit no adapter reported when the notice came (an adapter that
        reconnected after a scheduler restart, a unit not listed yet) are marked once it is."""
        mono = time.monotonic()
        marked = {unit for session in self.adapters.values() for unit in session.interrupted}
        for worker in self.engine.pool.workers.values():
            if worker.interrupted and worker.unit and worker.unit not in marked:
                self._mark(worker, max(0.0, worker.interrupted - mono))

    def tick(self, now: float) -> None:
        if not any(s.fresh for s in self.adapters.values()):
            return
        self._catch_up()
        waiting = bool(self.engine.queues.non_empty())
        if now < self.next_round and not (waiting and not self.was_waiting):
            return
        self.was_waiting = waiting
        self.next_round = now + self.config.interval
        demand, groups, units = self._views(now)
        decisions, self.memory = decide(demand, groups, units, now, self.config, self.memory, self.budgets())
        for decision in decisions:
            text = f"{time.strftime('%H:%M:%S')} {decision.describe()}"
            self.history.append(text)
            log.info("scaling decision: %s", decision.describe())
        self._apply(decisions)

    def budgets(self) -> dict[str, float]:
        """Adapter -> its ``max_cost_per_hour``, for the adapters that report one."""
        return {
            session.name: session.state.max_cost_per_hour
            for session in self.adapters.values()
            if session.state is not None and session.state.max_cost_per_hour is not None
        }

    def _counted(self, session: AdapterSession, spec: m.GroupSpec) -> int:
        """Units of ``spec`` the budget counts (as the policy does): requested, booting, running (not those
        being drained), and those being launched."""
        state = session.state
        if state is None:
            return 0
        active = [u for u in state.units if u.group == spec.name and u.state in ACTIVE]
        return sum(1 for u in active if u.unit_id not in session.draining) + state.launching.get(spec.name, 0)

    def _views(self, now: float) -> tuple[list[Demand], list[GroupView], list[UnitView]]:
        waiting: dict[str, int] = {key: len(queue) for key, queue in self.engine.queues.non_empty()}
        workers_by_unit: dict[str, list[WorkerState]] = {}
        for worker in self.engine.pool.workers.values():
            per_key: dict[str, int] = {}
            for task in worker.assigned.values():
                per_key[task.caps_key] = per_key.get(task.caps_key, 0) + 1
            for key, count in per_key.items():
                parked = count - fit_count(worker.capabilities, parse_capabilities(key))
                if parked > 0:
                    waiting[key] = waiting.get(key, 0) + parked
            if worker.unit:
                workers_by_unit.setdefault(worker.unit, []).append(worker)
        demand = [Demand(key, count) for key, count in waiting.items() if count > 0]
        demand.extend(self.engine.bundles.demand(self.engine.pool.workers.values()))
        groups: list[GroupView] = []
        units: list[UnitView] = []
        mono = time.monotonic()
        for session in self.adapters.values():
            state = session.state
            if state is None:
                continue
            for spec in state.groups:
                active = [u for u in state.units if u.group == spec.name and u.state in ACTIVE]
                launching = state.launching.get(spec.name, 0)
                pending = sum(1 for u in active if u.unit_id not in workers_by_unit) + launching
                count = self._counted(session, spec)
                interrupted = sum(1 for u in active if u.unit_id in session.interrupted)
                groups.append(
                    GroupView(
                        session.name,
                        spec.name,
                        spec.capabilities,
                        spec.workers_per_unit,
                        spec.min_units,
                        spec.max_units,
                        spec.priority,
                        spec.cost,
                        count,
                        pending,
                        state.failing.get(spec.name, ""),
                        interrupted,
                    )
                )
                for unit in active:
                    members = workers_by_unit.get(unit.unit_id, [])
                    running = sum(len(w.assigned) for w in members)
                    busy = running > 0 or any(w.bundles for w in members)  # a reservation is busy
                    idle = [w.idle_since for w in members if w.idle_since is not None]
                    idle_since = None if busy or len(idle) < len(members) or not idle else now - (mono - max(idle))
                    units.append(
                        UnitView(
                            session.name,
                            spec.name,
                            unit.unit_id,
                            bool(members),
                            busy,
                            idle_since,
                            unit.unit_id in session.draining,
                            running,
                        )
                    )
        return demand, groups, units

    def _apply(self, decisions: list[Decision]) -> None:
        by_adapter = {session.name: session for session in self.adapters.values()}
        commands: dict[bytes, m.ScaleCommand] = {}
        connected = sorted({w.unit for w in self.engine.pool.workers.values() if w.unit})
        for session in self.adapters.values():
            if session.fresh:
                commands[session.identity] = m.ScaleCommand(self.ids.next(), {}, [], list(connected), [])
        for decision in decisions:
            target = by_adapter.get(decision.adapter)
            if target is None or target.identity not in commands:
                continue
            session = target
            command = commands[session.identity]
            if decision.action == "hold":  # the budget cut a launch: in the log and history, nothing to do
                continue
            command.reasons.append(decision.describe())
            if decision.action == "launch":
                command.launch[decision.group] = command.launch.get(decision.group, 0) + decision.count
            else:
                deadline = time.monotonic() + self.config.drain_timeout
                for unit_id in decision.units:
                    if unit_id in session.draining:
                        continue
                    for worker in self.engine.pool.workers.values():
                        if worker.unit == unit_id:
                            self.engine.drain_worker(worker.identity)
                    session.draining[unit_id] = deadline
                    command.drain.append(unit_id)
        mono = time.monotonic()
        for identity, command in commands.items():
            session = self.adapters[identity]
            for unit_id in session.notices:
                command.drain.append(unit_id)
                command.reasons.append(session.interrupted.get(unit_id, "spot interruption notice"))
            session.notices = []
            self._drained(session, command)
            news = command.launch or command.terminate or command.drain or command.connected != session.last_connected
            if not news and mono - session.last_sent < KEEPALIVE:
                continue
            session.fresh, session.last_sent, session.last_connected = False, mono, command.connected
            self.engine.out.send(identity, command)

    def _drained(self, session: AdapterSession, command: m.ScaleCommand) -> None:
        """Add to ``command`` the draining units whose workers are idle or whose deadline passed."""
        mono = time.monotonic()
        for unit_id, deadline in session.draining.items():
            if unit_id in session.terminating:
                continue
            members = [w for w in self.engine.pool.workers.values() if w.unit == unit_id]
            running = sum(len(w.assigned) for w in members)
            if running and mono < deadline:
                continue
            if running:
                limit = "its spot interruption deadline" if unit_id in session.interrupted else "drain_timeout"
                log.warning(
                    "unit %s of adapter %s still runs %d task(s) at %s; terminating it, they will be retried",
                    unit_id,
                    session.name,
                    running,
                    limit if unit_id in session.interrupted else f"{limit}={self.config.drain_timeout:g}s",
                )
                reported = session.state.units if session.state else []
                group = next((u.group for u in reported if u.unit_id == unit_id), "")
                command.reasons.append(f"{session.name}/{group}: drain timeout with {running} task(s) running")
            session.terminating.add(unit_id)
            command.terminate.append(unit_id)

    def status(self) -> list[dict[str, int | float | str]]:
        out: list[dict[str, int | float | str]] = []
        for session in self.adapters.values():
            state = session.state
            if state is None:
                continue
            for spec in state.groups:
                row: dict[str, int | float | str] = {
                    "adapter": session.name,
                    "group": spec.name,
                    "capabilities": spec.capabilities,
                    "min": spec.min_units,
                    "max": spec.max_units,
                    "failing": state.failing.get(spec.name, ""),
                    "launching": state.launching.get(spec.name, 0),
                    "cost_per_hour": spec.cost * self._counted(session, spec),
                    "max_cost_per_hour": "" if state.max_cost_per_hour is None else state.max_cost_per_hour,
                }
                for unit in state.units:
                    if unit.group == spec.name:
                        row[unit.state] = int(row.get(unit.state, 0)) + 1
                out.append(row)
        return out

    def units(self) -> list[dict[str, int | float | str]]:
        """Every reported unit with its state, cause, when it got there and its last moves (for scaler_top)."""
        out: list[dict[str, int | float | str]] = []
        for session in self.adapters.values():
            for unit in session.state.units if session.state else []:
                since = unit.history[-1].at if unit.history else unit.created
                moves = " > ".join(move.state for move in unit.history[-HISTORY_SHOWN:])
                out.append(
                    {
                        "adapter": session.name,
                        "group": unit.group,
                        "unit": unit.unit_id,
                        "state": unit.state,
                        "cause": unit.cause,
                        "since": since,
                        "moves": moves,
                    }
                )
        return out
