"""``scaler_scaling_sim --config X.toml --trace trace.csv``: replay task arrivals through the policy.

The same ``decide`` the scheduler runs is called every ``[scaling].interval`` of simulated time;
launched units become workers after a simulated boot time (``--boot-seconds``, or an adapter's
``options.boot_seconds``); tasks start in arrival order on the first worker with room (the one
matching rule). No provider is touched and no time passes for real, so a group's capabilities are
the configured ones (``cpu=1`` if none: an EC2 group's instance shape is not looked up) and
``workers_per_unit = "auto"`` is one worker. An adapter's ``max_cost_per_hour`` is honoured. The
trace is CSV with columns ``arrival,duration[,capabilities]`` (seconds; capabilities default ``cpu=1``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from scaler.config import AdapterSection, Config, ConfigError, GroupSection, load_config
from scaler.scaling.model import Decision, Demand, GroupView, PolicyMemory, ScalingConfig, UnitView
from scaler.scaling.policy import decide
from scaler.utility.capabilities import Capabilities, canonical, parse_capabilities


@dataclass(frozen=True)
class TraceTask:
    arrival: float
    duration: float
    capabilities: str


@dataclass
class SimWorker:
    unit: str
    capabilities: Capabilities
    free: dict[str, float]
    running: list[tuple[float, TraceTask]] = field(default_factory=list)
    idle_since: float | None = None


@dataclass
class SimUnit:
    unit_id: str
    adapter: str
    group: str
    ready_at: float
    started: float
    workers: list[SimWorker] = field(default_factory=list)
    ended: float | None = None


@dataclass
class SimResult:
    makespan: float
    worker_seconds: float
    peak_workers: int
    reversals: int
    timeline: list[tuple[float, int, int]]
    decisions: list[tuple[float, Decision]]


def read_trace(path: Path) -> list[TraceTask]:
    tasks = []
    with path.open() as f:
        for line_no, row in enumerate(csv.reader(f), 1):
            if not row or row[0].strip().startswith("#") or row[0].strip() == "arrival":
                continue
            try:
                caps = canonical(row[2]) if len(row) > 2 and row[2].strip() else "cpu=1"
                tasks.append(TraceTask(float(row[0]), float(row[1]), caps))
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}:{line_no}: expected arrival,duration[,capabilities]: {exc}") from exc
    return sorted(tasks, key=lambda t: t.arrival)


def simulate(config: Config, trace: list[TraceTask], boot_seconds: float, tick: float = 0.05) -> SimResult:
    scaling = ScalingConfig(**msgspec.structs.asdict(config.scaling))
    specs = [(a, g) for a in config.adapter for g in a.group]
    budgets = {(a.name or a.provider): a.max_cost_per_hour for a in config.adapter if a.max_cost_per_hour is not None}
    boots = {(a.name or a.provider): float(a.options.get("boot_seconds", boot_seconds)) for a in config.adapter}
    pending = list(trace)
    waiting: list[TraceTask] = []
    units: list[SimUnit] = []
    memory = PolicyMemory()
    decisions: list[tuple[float, Decision]] = []
    timeline: list[tuple[float, int, int]] = []
    now, next_round, next_sample, done, last_end, counter = 0.0, 0.0, 0.0, 0, 0.0, 0
    tail = scaling.idle_timeout + scaling.stabilization_window + 2 * scaling.interval + max(boots.values(), default=0)
    while done < len(trace) or now <= last_end + tail:
        while pending and pending[0].arrival <= now:
            waiting.append(pending.pop(0))
        live_workers = [w for u in units if u.ended is None and u.ready_at <= now for w in u.workers]
        for worker in live_workers:
            finished = [(end, t) for end, t in worker.running if end <= now]
            for end, task in finished:
                worker.running.remove((end, task))
                for name, amount in parse_capabilities(task.capabilities).quantities:
                    worker.free[name] = worker.free.get(name, 0.0) + amount
                done += 1
                last_end = max(last_end, end)
            if not worker.running and worker.idle_since is None:
                worker.idle_since = now
        for task in list(waiting):
            request = parse_capabilities(task.capabilities)
            for worker in live_workers:
                if worker.capabilities.serves(request, worker.free):
                    for name, amount in request.quantities:
                        worker.free[name] -= amount
                    worker.running.append((now + task.duration, task))
                    worker.idle_since = None
                    waiting.remove(task)
                    break
        if now >= next_round:
            next_round = now + scaling.interval
            groups, views = _views(specs, units, now)
            demand: dict[str, int] = {}
            for task in waiting:
                demand[task.capabilities] = demand.get(task.capabilities, 0) + 1
            wanted = [Demand(k, v) for k, v in demand.items()]
            made, memory = decide(wanted, groups, views, now, scaling, memory, budgets)
            for decision in made:
                decisions.append((now, decision))
                if decision.action == "launch":
                    _, group = next(
                        (a, g)
                        for a, g in specs
                        if (a.name or a.provider) == decision.adapter and g.name == decision.group
                    )
                    for _ in range(decision.count):
                        counter += 1
                        unit = SimUnit(
                            f"{decision.group}-{counter}",
                            decision.adapter,
                            group.name,
                            now + boots[decision.adapter],
                            now,
                        )
                        caps = parse_capabilities(group.worker_capabilities())
                        unit.workers = [SimWorker(unit.unit_id, caps, caps.as_dict()) for _ in range(group.workers())]
                        units.append(unit)
                elif decision.action == "terminate":
                    for unit in units:
                        if unit.unit_id in decision.units:
                            unit.ended = now
        if now >= next_sample:
            next_sample = now + 1.0
            alive = sum(len(u.workers) for u in units if u.ended is None)
            timeline.append((round(now, 2), alive, len(waiting) + len(pending)))
        now += tick
        if now > 24 * 3600:
            break
    worker_seconds = sum(len(u.workers) * ((u.ended if u.ended is not None else now) - u.started) for u in units)
    peak = max((n for _, n, _ in timeline), default=0)
    first = trace[0].arrival if trace else 0.0
    return SimResult(last_end - first, worker_seconds, peak, _reversals(decisions), timeline, decisions)


def _views(
    specs: list[tuple[AdapterSection, GroupSection]], units: list[SimUnit], now: float
) -> tuple[list[GroupView], list[UnitView]]:
    groups: list[GroupView] = []
    views: list[UnitView] = []
    for adapter, group in specs:
        name = adapter.name or adapter.provider
        mine = [u for u in units if u.adapter == name and u.group == group.name and u.ended is None]
        pending = sum(1 for u in mine if u.ready_at > now)
        groups.append(
            GroupView(
                name,
                group.name,
                group.worker_capabilities(),
                group.workers(),
                group.min_units,
                group.max_units,
                group.priority,
                group.cost,
                len(mine),
                pending,
            )
        )
        for unit in mine:
            connected = unit.ready_at <= now
            busy = any(w.running for w in unit.workers)
            idle = [w.idle_since for w in unit.workers]
            idle_since = None if busy or not connected or None in idle else max(i for i in idle if i is not None)
            views.append(UnitView(name, unit.group, unit.unit_id, connected, busy, idle_since))
    return groups, views


def _reversals(decisions: list[tuple[float, Decision]]) -> int:
    last: dict[str, str] = {}
    count = 0
    for _, decision in decisions:
        if decision.action == "hold":
            continue
        key = f"{decision.adapter}/{decision.group}"
        if key in last and last[key] != decision.action and decision.action == "launch":
            count += 1
        last[key] = decision.action
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scaler_scaling_sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--trace", required=True, type=Path)
    parser.add_argument("--boot-seconds", type=float, default=0.5, help="simulated boot time of a unit")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        trace = read_trace(args.trace)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"scaler_scaling_sim: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    result = simulate(config, trace, args.boot_seconds)
    print("time_s  workers  waiting")
    for t, workers, queued in result.timeline:
        print(f"{t:6.1f}  {workers:7d}  {queued:7d}")
    print("decisions:")
    for t, decision in result.decisions:
        print(f"  t={t:6.1f}s {decision.describe()}")
    print(
        f"makespan_s={result.makespan:.2f} worker_seconds={result.worker_seconds:.1f} "
        f"peak_workers={result.peak_workers} reversals={result.reversals}"
    )


if __name__ == "__main__":
    main()
