"""One conformance suite every provider runs (as fsspec does for filesystems).

Subclass ``ProviderConformance`` in a test module and give it two fixtures: ``provider`` (a
working provider whose workers dial ``scheduler_address``) and ``broken_provider`` (one whose
launch fails at the backend). The suite checks launch/list/terminate against the provider's own
ground truth, idempotent request ids, error classification, orphan reaping by a fresh runner,
and termination of drained units through the runner.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from scaler.adapters.calls import ProviderCalls
from scaler.adapters.errors import ProviderError
from scaler.adapters.provider import Provider, Unit, UnitState, WorkerGroup
from scaler.adapters.runner import AdapterRunner, RunnerConfig

from scaler.protocol import messages as m

GROUP = WorkerGroup("conformance", "cpu=1", workers_per_unit=1, min_units=0, max_units=4)


async def eventually_listed(provider: Provider, unit_ids: set[str], present: bool, timeout: float = 20.0) -> list[Unit]:
    deadline = time.monotonic() + timeout
    while True:
        listed = await provider.list_units()
        ids = {u.unit_id for u in listed}
        if (unit_ids <= ids) if present else not (unit_ids & ids):
            return listed
        if time.monotonic() > deadline:
            raise AssertionError(f"units {sorted(unit_ids)} {'never appeared' if present else 'never went away'}")
        await asyncio.sleep(0.1)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


class ProviderConformance:
    """Tests every provider must pass; subclasses supply the ``provider`` and ``broken_provider`` fixtures."""

    def test_launch_list_terminate(self, provider: Provider) -> None:
        async def body() -> None:
            units = await provider.launch(GROUP, 2, "conf-launch")
            assert len(units) == 2 and all(u.group == GROUP.name for u in units)
            ids = {u.unit_id for u in units}
            listed = await eventually_listed(provider, ids, present=True)
            assert all(u.state in (UnitState.BOOTING, UnitState.RUNNING) for u in listed if u.unit_id in ids)
            await provider.terminate(sorted(ids))
            await eventually_listed(provider, ids, present=False)

        run(body())

    def test_repeated_request_id_never_launches_twice(self, provider: Provider) -> None:
        async def body() -> None:
            first = await provider.launch(GROUP, 1, "conf-idempotent")
            await eventually_listed(provider, {u.unit_id for u in first}, present=True)
            second = await provider.launch(GROUP, 1, "conf-idempotent")
            assert {u.unit_id for u in second} == {u.unit_id for u in first}
            listed = [u for u in await provider.list_units() if u.group == GROUP.name]
            assert len(listed) == 1
            await provider.terminate([u.unit_id for u in listed])

        run(body())

    def test_backend_errors_are_classified(self, broken_provider: Provider) -> None:
        async def body() -> None:
            calls = ProviderCalls(broken_provider, "conformance", timeout=30.0, max_threads=2)
            with pytest.raises(ProviderError) as info:
                await calls.launch(GROUP, 1, "conf-broken", late=lambda units: None)
            assert info.value.__cause__ is not None or type(info.value) is not ProviderError

        run(body())

    def test_a_fresh_runner_reaps_orphans(self, provider: Provider, scheduler_address: str) -> None:
        async def body() -> None:
            units = await provider.launch(GROUP, 1, "conf-orphan")
            ids = {u.unit_id for u in units}
            await eventually_listed(provider, ids, present=True)
            runner = AdapterRunner(provider, RunnerConfig("conformance", scheduler_address, (GROUP,)))
            await runner.reconcile(starting=True)
            await runner.settle()
            await eventually_listed(provider, ids, present=False)
            assert all(runner.table.units[i].state is UnitState.TERMINATED for i in ids)

        run(body())

    def test_runner_terminates_drained_units_and_is_idempotent(
        self, provider: Provider, scheduler_address: str
    ) -> None:
        async def body() -> None:
            runner = AdapterRunner(provider, RunnerConfig("conformance", scheduler_address, (GROUP,)))
            command = m.ScaleCommand("r1", {GROUP.name: 1}, [], [], [f"conformance/{GROUP.name}: test"])
            runner.apply(command)
            runner.apply(command)
            await runner.settle()
            units = [u for u in runner.table.active() if u.group == GROUP.name]
            assert len(units) == 1, "the same request id launches once"
            await eventually_listed(provider, {units[0].unit_id}, present=True)
            runner.apply(m.ScaleCommand("r2", drain=[units[0].unit_id]))
            assert runner.table.units[units[0].unit_id].state is UnitState.DRAINING
            await eventually_listed(provider, {units[0].unit_id}, present=True)
            runner.apply(m.ScaleCommand("r3", {}, [units[0].unit_id], [], []))
            await runner.settle()
            await eventually_listed(provider, {units[0].unit_id}, present=False)
            assert runner.table.units[units[0].unit_id].state is UnitState.TERMINATED

        run(body())

    def test_a_unit_ended_in_the_books_but_still_listed_is_ended_again(
        self, provider: Provider, scheduler_address: str
    ) -> None:
        async def body() -> None:
            config = RunnerConfig("conformance", scheduler_address, (GROUP,), reterminate_after=0.0)
            runner = AdapterRunner(provider, config)
            runner.apply(m.ScaleCommand("r1", {GROUP.name: 1}))
            await runner.settle()
            (unit,) = runner.table.active()
            await eventually_listed(provider, {unit.unit_id}, present=True)
            runner.table.move(unit.unit_id, UnitState.TERMINATED, "books lost track of it (test)")
            await runner.reconcile()
            await runner.settle()
            await eventually_listed(provider, {unit.unit_id}, present=False)

        run(body())
