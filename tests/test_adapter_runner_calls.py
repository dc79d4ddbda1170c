"""The runner's provider calls and unit states: error tables, partial and late launches, blocking SDKs,
and the one table of legal unit moves (with a short history per unit)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
from scaler.adapters.errors import CapacityError, PartialLaunchError, ThrottledError
from scaler.adapters.provider import SyncProvider, Unit, UnitState, WorkerGroup
from scaler.adapters.runner import AdapterRunner, RunnerConfig
from scaler.adapters.testing import start_scheduler
from scaler.adapters.units import HISTORY, TRANSITIONS, IllegalUnitTransition, UnitTable

from scaler import Client
from scaler.protocol import messages as m
from scaler.utility.net import free_port

U = UnitState
GROUP = WorkerGroup("cpu", "cpu=1", workers_per_unit=1, min_units=0, max_units=8)


class Ledger:
    """An in-memory backend: units are listed (tagged with their request id) as soon as they are made."""

    errors = ((ConnectionResetError, ThrottledError),)

    def __init__(
        self, launch_seconds: float = 0.0, partial: int | None = None, broken: Exception | None = None
    ) -> None:
        self.units: dict[str, Unit] = {}
        self.launch_seconds = launch_seconds
        self.partial = partial
        self.broken = broken
        self.terminate_failures = 0
        self.launch_calls = 0

    async def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        self.launch_calls += 1
        if self.broken is not None:
            raise self.broken
        made = [
            Unit(f"{request_id}.{i}", group.name, U.BOOTING, time.time(), request_id)
            for i in range(count if self.partial is None else self.partial)
        ]
        self.units.update((u.unit_id, u) for u in made)
        await asyncio.sleep(self.launch_seconds)
        if self.partial is not None:
            raise PartialLaunchError(made, CapacityError(f"no room for {count - self.partial} more"))
        return made

    async def terminate(self, unit_ids: list[str]) -> None:
        if self.terminate_failures > 0:
            self.terminate_failures -= 1
            raise ConnectionResetError("the backend hung up")
        for unit_id in unit_ids:
            self.units.pop(unit_id, None)

    async def list_units(self) -> list[Unit]:
        return list(self.units.values())


def runner_for(provider: Any, **config: Any) -> AdapterRunner:
    return AdapterRunner(provider, RunnerConfig("calls", "tcp://127.0.0.1:1", (GROUP,), **config))


def launch(runner: AdapterRunner, request: str, count: int) -> None:
    runner.apply(m.ScaleCommand(request, {GROUP.name: count}))


def test_unit_moves_follow_the_one_table_and_keep_a_short_history() -> None:
    assert set(TRANSITIONS) == set(UnitState) and all(t <= set(UnitState) for t in TRANSITIONS.values())
    table = UnitTable()
    table.add("u", "cpu", U.RUNNING, "r", "launched")
    with pytest.raises(IllegalUnitTransition):
        table.move("u", U.TERMINATION_FAILED, "a terminate that never started cannot fail")
    for state in (U.DRAINING, U.TERMINATING, U.TERMINATION_FAILED, U.TERMINATING, U.TERMINATED):
        assert table.move("u", state, f"to {state.value}")
    with pytest.raises(IllegalUnitTransition):
        table.move("u", U.RUNNING, "nothing comes back from terminated")
    assert [h.state for h in table.units["u"].history] == [
        U.RUNNING,
        U.DRAINING,
        U.TERMINATING,
        U.TERMINATION_FAILED,
        U.TERMINATING,
        U.TERMINATED,
    ]
    table.add("v", "cpu", U.BOOTING, "r", "launched")
    for i in range(3 * HISTORY):
        table.move("v", U.TERMINATING if i % 2 == 0 else U.TERMINATION_FAILED, f"try {i}")
    assert len(table.units["v"].history) == HISTORY and table.units["v"].history[-1].cause == f"try {3 * HISTORY - 1}"


def test_a_failing_terminate_is_recorded_then_retried() -> None:
    async def body() -> None:
        ledger = Ledger()
        runner = runner_for(ledger)
        launch(runner, "r1", 1)
        await runner.settle()
        (unit,) = runner.table.active()
        ledger.terminate_failures = 1
        runner.apply(m.ScaleCommand("r2", terminate=[unit.unit_id]))
        await runner.settle()
        assert unit.state is U.TERMINATION_FAILED and "ThrottledError" in unit.cause, unit.cause
        report = runner._state().units[0]
        assert report.state == "termination_failed" and [h.state for h in report.history][-2:] == [
            "terminating",
            "termination_failed",
        ]
        await runner.reconcile()
        await runner.settle()
        assert unit.state is U.TERMINATED and not ledger.units
        assert [h.state for h in unit.history] == [
            U.BOOTING,
            U.DRAINING,
            *[U.TERMINATING, U.TERMINATION_FAILED],
            U.TERMINATING,
            U.TERMINATED,
        ]

    asyncio.run(body())


def test_an_unknown_exception_is_a_bug_logged_with_its_traceback_and_shown(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        ledger = Ledger(broken=KeyError("zone-a"))
        runner = runner_for(ledger, backoff_base=0.01, backoff_max=30.0)
        with caplog.at_level(logging.WARNING):
            launch(runner, "r1", 1)
            await runner.settle()
            launch(runner, "r2", 1)
            await runner.settle()
        assert ledger.launch_calls == 1, "backing off at backoff_max, not retried at once"
        failing = runner._state().failing["cpu"]
        assert failing.startswith("bug: ProviderBug") and "KeyError" in failing, failing
        (record,) = [r for r in caplog.records if "no error table knows" in r.getMessage()]
        assert record.exc_info is not None and "KeyError" in caplog.text and "Traceback" in caplog.text

    asyncio.run(body())


def test_a_partial_launch_keeps_the_units_it_got_and_backs_off() -> None:
    async def body() -> None:
        ledger = Ledger(partial=3)
        runner = runner_for(ledger, backoff_base=30.0)
        launch(runner, "r1", 5)
        await runner.settle()
        assert sorted(u.unit_id for u in runner.table.active()) == [f"r1/cpu.{i}" for i in range(3)]
        assert "CapacityError after 3 unit(s)" in runner._state().failing["cpu"]
        await runner.reconcile()
        await runner.settle()
        assert len(ledger.units) == 3 and all(u.state is U.BOOTING for u in runner.table.active())
        launch(runner, "r2", 2)
        await runner.settle()
        assert ledger.launch_calls == 1, "the group backs off"

    asyncio.run(body())


def test_a_launch_past_its_timeout_stays_in_flight_and_its_listed_units_are_kept() -> None:
    async def body() -> None:
        ledger = Ledger(launch_seconds=2.0)
        runner = runner_for(ledger, call_timeout=0.3)
        launch(runner, "r1", 2)
        assert runner._state().launching == {"cpu": 2}, "a launch in flight is pending supply"
        await runner.settle()
        assert "CallTimeoutError" in runner._state().failing["cpu"] and runner._state().launching == {}
        await runner.reconcile()
        await runner.settle()
        units = runner.table.active()
        assert len(units) == 2 and all(u.state is U.BOOTING for u in units), "tracked, not reaped"
        assert all("has not answered" in u.cause for u in units)
        await asyncio.sleep(2.0 * 3)  # the call answers late: the same two units, nothing more
        assert len(runner.table.active()) == 2 and len(ledger.units) == 2

    asyncio.run(body())


class BlockingSdk(SyncProvider):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = self.running = self.most = 0
        self.lock = threading.Lock()

    def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        return []

    def terminate(self, unit_ids: list[str]) -> None:
        time.sleep(0.01)

    def list_units(self) -> list[Unit]:
        time.sleep(0.01)
        return []


def status_rows(address: str) -> list[dict[str, int | float | str]]:
    with Client(address) as client:
        return client.scheduler_status().adapters


def test_a_blocking_sync_provider_never_blocks_the_loop_and_its_calls_time_out() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    scheduler = start_scheduler(address, peer_timeout=1.5)
    sdk = BlockingSdk(seconds=4.0)
    group = WorkerGroup("cpu", "cpu=1", min_units=1, max_units=1)
    config = RunnerConfig("sync", address, (group,), call_timeout=0.5, max_threads=2, peer_timeout=1.5)
    runner = AdapterRunner(sdk, config)

    failing: set[str] = set()

    async def body() -> tuple[float, list[dict[str, int | float | str]]]:
        task = asyncio.create_task(runner.run())
        longest, last = 0.0, time.monotonic()
        until = last + 6.0
        while time.monotonic() < until:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            longest, last = max(longest, now - last), now
            failing.update(runner._state().failing.values())
        rows = await asyncio.to_thread(status_rows, address)
        runner.stop()
        await task
        return longest, rows

    try:
        longest, rows = asyncio.run(body())
    finally:
        scheduler.terminate()
        scheduler.wait(10)
    assert longest < 0.5, f"the loop stalled {longest:.2f}s while {sdk.seconds:g}s calls blocked their threads"
    assert [r["adapter"] for r in rows] == ["sync"], "never dropped as silent (peer_timeout 1.5s)"
    assert any("CallTimeoutError" in f and "call_timeout" in f for f in failing), failing
    assert sdk.calls >= 1 and sdk.most <= config.max_threads, "at most max_threads at once, abandoned ones included"
    assert runner.exit_code == 0 and runner.session is not None and runner.session.rejoins == 0


def test_units_of_a_launch_in_flight_that_are_already_listed_are_not_counted_twice() -> None:
    async def body() -> None:
        ledger = Ledger(launch_seconds=2.0)
        runner = runner_for(ledger, call_timeout=30.0)
        launch(runner, "r1", 3)
        await asyncio.sleep(0.1)
        await runner.reconcile()
        assert len(runner.table.active()) == 3, "listed before the call answered: in the books"
        state = runner._state()
        assert state.launching.get("cpu", 0) == 0 and len(state.units) == 3, "3 units of supply, not 6"
        await runner.settle()

    asyncio.run(body())
