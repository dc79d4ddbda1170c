"""One conformance suite every provider runs (as fsspec does for filesystems).

Subclass ``ProviderConformance`` in a test module and give it three fixtures: ``provider`` (a
working provider whose workers dial ``scheduler_address``), ``broken_provider`` (one whose
launch fails at the backend) and ``provider_factory`` (a fresh provider of the same kind, adapter
name and state for a given cluster id, as a restarted adapter or another cluster would build it).
The suite checks launch/list/terminate against the provider's own ground truth, idempotent request
ids, error classification, orphan reaping by a fresh runner, termination of drained units through
the runner, that workers really dial back and run a task, that two clusters never see each other's
units, and that a runner that died without stopping is followed by one that adopts or reaps.
A provider that cannot do one of these says so with a class attribute (``dials_back = False``...).
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from scaler.adapters.errors import ProviderError, classify
from scaler.adapters.provider import Provider, Unit, UnitState, WorkerGroup
from scaler.adapters.runner import AdapterRunner, RunnerConfig

from scaler.client.client import Client
from scaler.protocol import messages as m

ProviderFactory = Callable[[str], Provider]
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


def start_scheduler(address: str, timeout: float = 60.0) -> subprocess.Popen[bytes]:
    """A real scheduler bound to ``address``, returned once it listens (and has published its secret)."""
    argv = [sys.executable, "-m", "scaler.scheduler.main", address, "--peer-timeout", "10"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    line = process.stdout.readline().decode() if process.stdout is not None else ""
    if not line.startswith("SCALER_ADDRESS"):
        process.kill()
        raise AssertionError(f"the scheduler at {address} did not start (exit code {process.wait(timeout)})")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


class ProviderConformance:
    """Tests every provider must pass; subclasses supply ``provider``, ``broken_provider`` and ``provider_factory``."""

    dials_back = True  # its workers reach a scheduler on 127.0.0.1 (a real backend may not)
    survives_its_runner = True  # its units outlive the provider object that launched them

    # -- identity, worker launch, restart (one block: keep other cases below) -------------------

    @pytest.fixture
    def cluster_id(self) -> str:
        return f"conf{secrets.token_hex(4)}"  # never another test run's, on a shared host

    @pytest.fixture
    def scheduler(self, scheduler_address: str) -> Iterator[str]:
        process = start_scheduler(scheduler_address)
        yield scheduler_address
        stop(process)

    def test_workers_dial_back_and_run_a_task(self, scheduler: str, provider: Provider) -> None:
        if not self.dials_back:
            pytest.skip(f"{type(self).__name__}: its workers cannot reach a scheduler on this host")

        def a_task() -> int:
            with Client(scheduler) as client:
                return int(client.submit(pow, 2, 10).result(90))

        async def body() -> None:  # one event loop throughout: a provider may boot units in it
            ids = {u.unit_id for u in await provider.launch(GROUP, 1, "conf-dial")}
            try:
                assert await asyncio.to_thread(a_task) == 1024
                listed = await eventually_listed(provider, ids, present=True)
                assert {u.request_id for u in listed if u.unit_id in ids} == {"conf-dial"}
            finally:
                await provider.terminate(sorted(ids))

        run(body())

    def test_another_clusters_units_are_never_listed_or_reaped(
        self, provider_factory: ProviderFactory, cluster_id: str, scheduler_address: str
    ) -> None:
        async def body() -> None:
            mine = provider_factory(cluster_id)
            other = provider_factory(f"{cluster_id}x")  # the same adapter name, an id with mine as its prefix
            ours = {u.unit_id for u in await mine.launch(GROUP, 1, "conf-iso")}
            theirs = {u.unit_id for u in await other.launch(GROUP, 1, "conf-iso")}
            assert not ours & theirs
            await eventually_listed(mine, ours, present=True)
            await eventually_listed(other, theirs, present=True)
            assert not theirs & {u.unit_id for u in await mine.list_units()}
            assert not ours & {u.unit_id for u in await other.list_units()}
            runner = AdapterRunner(mine, RunnerConfig("conformance", scheduler_address, (GROUP,)))
            await runner.reconcile(starting=True)
            await eventually_listed(mine, ours, present=False)
            assert theirs <= {u.unit_id for u in await other.list_units()}, "another cluster's unit was reaped"
            assert not theirs & set(runner.table.units)
            await other.terminate(sorted(theirs))
            await eventually_listed(other, theirs, present=False)

        run(body())

    @pytest.mark.parametrize("policy", ["adopt", "terminate"])
    def test_a_runner_that_died_is_followed_by_one_that_adopts_or_reaps(
        self, provider_factory: ProviderFactory, cluster_id: str, scheduler_address: str, policy: str
    ) -> None:
        if not self.survives_its_runner:
            pytest.skip(f"{type(self).__name__}: its units end with the provider object")

        async def body() -> None:
            dead = AdapterRunner(provider_factory(cluster_id), RunnerConfig("conformance", scheduler_address, (GROUP,)))
            await dead.apply(m.ScaleCommand("conf-k1", {GROUP.name: 2}))
            ids = {u.unit_id for u in dead.table.active()}
            assert len(ids) == 2
            # It dies without a word (no terminate); its successor has a new provider object, as after a restart.
            provider = provider_factory(cluster_id)
            listed = await eventually_listed(provider, ids, present=True)
            assert {u.request_id for u in listed if u.unit_id in ids} == {f"conf-k1/{GROUP.name}"}
            config = RunnerConfig("conformance", scheduler_address, (GROUP,), orphans=policy)
            successor = AdapterRunner(provider, config)
            await successor.reconcile(starting=True)
            if policy == "adopt":
                adopted = {u.unit_id: u for u in successor.table.active()}
                assert set(adopted) == ids and {u.request_id for u in adopted.values()} == {f"conf-k1/{GROUP.name}"}
                await successor.terminate_all("test over")
            await eventually_listed(provider, ids, present=False)
            assert not [u for u in await provider.list_units() if u.group == GROUP.name], "nothing is orphaned"

        run(body())

    # -- launch, list, terminate ------------------------------------------------------------

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
            with pytest.raises(ProviderError) as info, classify("conformance launch"):
                await broken_provider.launch(GROUP, 1, "conf-broken")
            assert info.value.__cause__ is not None or type(info.value) is not ProviderError

        run(body())

    def test_a_fresh_runner_reaps_orphans(self, provider: Provider, scheduler_address: str) -> None:
        async def body() -> None:
            units = await provider.launch(GROUP, 1, "conf-orphan")
            ids = {u.unit_id for u in units}
            await eventually_listed(provider, ids, present=True)
            runner = AdapterRunner(provider, RunnerConfig("conformance", scheduler_address, (GROUP,)))
            await runner.reconcile(starting=True)
            await eventually_listed(provider, ids, present=False)
            assert all(runner.table.units[i].state is UnitState.TERMINATED for i in ids)

        run(body())

    def test_runner_terminates_drained_units_and_is_idempotent(
        self, provider: Provider, scheduler_address: str
    ) -> None:
        async def body() -> None:
            runner = AdapterRunner(provider, RunnerConfig("conformance", scheduler_address, (GROUP,)))
            command = m.ScaleCommand("r1", {GROUP.name: 1}, [], [], [f"conformance/{GROUP.name}: test"])
            await runner.apply(command)
            await runner.apply(command)
            units = [u for u in runner.table.active() if u.group == GROUP.name]
            assert len(units) == 1, "the same request id launches once"
            await eventually_listed(provider, {units[0].unit_id}, present=True)
            await runner.apply(m.ScaleCommand("r2", drain=[units[0].unit_id]))
            assert runner.table.units[units[0].unit_id].state is UnitState.DRAINING
            await eventually_listed(provider, {units[0].unit_id}, present=True)
            await runner.apply(m.ScaleCommand("r3", {}, [units[0].unit_id], [], []))
            await eventually_listed(provider, {units[0].unit_id}, present=False)
            assert runner.table.units[units[0].unit_id].state is UnitState.TERMINATED

        run(body())

    def test_a_unit_ended_in_the_books_but_still_listed_is_ended_again(
        self, provider: Provider, scheduler_address: str
    ) -> None:
        async def body() -> None:
            config = RunnerConfig("conformance", scheduler_address, (GROUP,), reterminate_after=0.0)
            runner = AdapterRunner(provider, config)
            await runner.apply(m.ScaleCommand("r1", {GROUP.name: 1}))
            (unit,) = runner.table.active()
            await eventually_listed(provider, {unit.unit_id}, present=True)
            runner.table.move(unit.unit_id, UnitState.TERMINATED, "books lost track of it (test)")
            await runner.reconcile()
            await eventually_listed(provider, {unit.unit_id}, present=False)

        run(body())
