"""One conformance suite every provider runs (as fsspec does for filesystems).

Subclass ``ProviderConformance`` and ``RunnerConformance`` in a test module and give them three
fixtures: ``provider`` (a working provider whose workers dial ``scheduler_address``),
``broken_provider`` (one whose launch fails at the backend) and ``provider_factory`` (a fresh provider
of the same kind, adapter name and state for a given cluster id, as a restarted adapter or another
cluster would build it). ``ProviderConformance`` checks launch/list/terminate against the provider's
own ground truth, idempotent request ids, error classification, orphan reaping by a fresh runner,
termination of drained units through the runner, that workers really dial back and run a task, that
two clusters never see each other's units, and that a runner that died without stopping is followed
by one that adopts or reaps. ``RunnerConformance`` adds the runner's liveness and unit states over the
provider: terminating twice is harmless, a launch slower than the peer timeout loses nothing. A
provider that cannot do one of these says so with a class attribute (``dials_back = False``...), as
fsspec's abstract tests do.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from scaler.adapters.calls import ProviderCalls
from scaler.adapters.errors import ProviderError, classify, table_of
from scaler.adapters.provider import Provider, SyncProvider, Unit, UnitState, WorkerGroup
from scaler.adapters.runner import AdapterRunner, RunnerConfig

from scaler.client.client import Client
from scaler.protocol import messages as m

ProviderFactory = Callable[[str], Provider | SyncProvider]
GROUP = WorkerGroup("conformance", "cpu=1", workers_per_unit=1, min_units=0, max_units=4)


class _Threaded:
    """A ``SyncProvider`` seen through the async contract (each call in a thread), for the suite's own
    direct calls; the runner calls it through its own thread pool."""

    def __init__(self, provider: SyncProvider) -> None:
        self.provider = provider
        self.errors = provider.errors

    async def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        return await asyncio.to_thread(self.provider.launch, group, count, request_id)

    async def terminate(self, unit_ids: list[str]) -> None:
        await asyncio.to_thread(self.provider.terminate, unit_ids)

    async def list_units(self) -> list[Unit]:
        return await asyncio.to_thread(self.provider.list_units)


def aio(provider: Provider | SyncProvider) -> Provider:
    """``provider`` as the async contract, whichever base it implements."""
    return _Threaded(provider) if isinstance(provider, SyncProvider) else provider


async def eventually_listed(
    provider: Provider | SyncProvider, unit_ids: set[str], present: bool, timeout: float = 20.0
) -> list[Unit]:
    deadline = time.monotonic() + timeout
    while True:
        listed = await aio(provider).list_units()
        ids = {u.unit_id for u in listed}
        if (unit_ids <= ids) if present else not (unit_ids & ids):
            return listed
        if time.monotonic() > deadline:
            raise AssertionError(f"units {sorted(unit_ids)} {'never appeared' if present else 'never went away'}")
        await asyncio.sleep(0.1)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def start_scheduler(address: str, peer_timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """A real scheduler bound to ``address``, returned once it listens (and has published its secret)."""
    argv = [sys.executable, "-m", "scaler.scheduler.main", address, "--peer-timeout", str(peer_timeout)]
    argv += ["--heartbeat-interval", str(min(1.0, peer_timeout / 3))]
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    line = process.stdout.readline().decode() if process.stdout is not None else ""
    if not line.startswith("SCALER_ADDRESS"):
        process.kill()
        raise AssertionError(f"the scheduler at {address} did not start (exit code {process.wait(60)})")
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
            ids = {u.unit_id for u in await aio(provider).launch(GROUP, 1, "conf-dial")}
            try:
                assert await asyncio.to_thread(a_task) == 1024
                listed = await eventually_listed(provider, ids, present=True)
                assert {u.request_id for u in listed if u.unit_id in ids} == {"conf-dial"}
            finally:
                await aio(provider).terminate(sorted(ids))

        run(body())

    def test_another_clusters_units_are_never_listed_or_reaped(
        self, provider_factory: ProviderFactory, cluster_id: str, scheduler_address: str
    ) -> None:
        async def body() -> None:
            mine = provider_factory(cluster_id)
            other = provider_factory(f"{cluster_id}x")  # the same adapter name, an id with mine as its prefix
            ours = {u.unit_id for u in await aio(mine).launch(GROUP, 1, "conf-iso")}
            theirs = {u.unit_id for u in await aio(other).launch(GROUP, 1, "conf-iso")}
            assert not ours & theirs
            await eventually_listed(mine, ours, present=True)
            await eventually_listed(other, theirs, present=True)
            assert not theirs & {u.unit_id for u in await aio(mine).list_units()}
            assert not ours & {u.unit_id for u in await aio(other).list_units()}
            runner = AdapterRunner(mine, RunnerConfig("conformance", scheduler_address, (GROUP,)))
            await runner.reconcile(starting=True)
            await eventually_listed(mine, ours, present=False)
            assert theirs <= {u.unit_id for u in await aio(other).list_units()}, "another cluster's unit was reaped"
            assert not theirs & set(runner.table.units)
            await aio(other).terminate(sorted(theirs))
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
            dead.apply(m.ScaleCommand("conf-k1", {GROUP.name: 2}))
            await dead.settle()
            ids = {u.unit_id for u in dead.table.active()}
            assert len(ids) == 2
            # It dies without a word (no terminate); its successor has a new provider object, as after a restart.
            provider = provider_factory(cluster_id)
            listed = await eventually_listed(provider, ids, present=True)
            assert {u.request_id for u in listed if u.unit_id in ids} == {f"conf-k1/{GROUP.name}"}
            config = RunnerConfig("conformance", scheduler_address, (GROUP,), orphans=policy)
            successor = AdapterRunner(provider, config)
            await successor.reconcile(starting=True)
            await successor.settle()
            if policy == "adopt":
                adopted = {u.unit_id: u for u in successor.table.active()}
                assert set(adopted) == ids and {u.request_id for u in adopted.values()} == {f"conf-k1/{GROUP.name}"}
                await successor.terminate_all("test over")
            await eventually_listed(provider, ids, present=False)
            assert not [u for u in await aio(provider).list_units() if u.group == GROUP.name], "nothing is orphaned"

        run(body())

    # -- launch, list, terminate ------------------------------------------------------------

    def test_launch_list_terminate(self, provider: Provider) -> None:
        async def body() -> None:
            units = await aio(provider).launch(GROUP, 2, "conf-launch")
            assert len(units) == 2 and all(u.group == GROUP.name for u in units)
            ids = {u.unit_id for u in units}
            listed = await eventually_listed(provider, ids, present=True)
            assert all(u.state in (UnitState.BOOTING, UnitState.RUNNING) for u in listed if u.unit_id in ids)
            await aio(provider).terminate(sorted(ids))
            await eventually_listed(provider, ids, present=False)

        run(body())

    def test_repeated_request_id_never_launches_twice(self, provider: Provider) -> None:
        async def body() -> None:
            first = await aio(provider).launch(GROUP, 1, "conf-idempotent")
            await eventually_listed(provider, {u.unit_id for u in first}, present=True)
            second = await aio(provider).launch(GROUP, 1, "conf-idempotent")
            assert {u.unit_id for u in second} == {u.unit_id for u in first}
            listed = [u for u in await aio(provider).list_units() if u.group == GROUP.name]
            assert len(listed) == 1
            await aio(provider).terminate([u.unit_id for u in listed])

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
            units = await aio(provider).launch(GROUP, 1, "conf-orphan")
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


# -- runner-level cases: the runner's liveness and unit states over this provider ---------------------


class SlowLaunch:
    """``provider`` whose ``launch`` takes ``seconds`` longer (a slow backend API)."""

    def __init__(self, provider: Provider | SyncProvider, seconds: float) -> None:
        self.provider = aio(provider)
        self.seconds = seconds
        self.errors = table_of(provider)  # the provider's own error table still classifies its errors
        self.launches = 0

    async def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        self.launches += 1
        await asyncio.sleep(self.seconds)
        return await self.provider.launch(group, count, request_id)

    async def terminate(self, unit_ids: list[str]) -> None:
        await self.provider.terminate(unit_ids)

    async def list_units(self) -> list[Unit]:
        return await self.provider.list_units()


class RunnerConformance:
    """Runner-level cases; opt out of what a provider cannot do with class attributes (as fsspec does)."""

    dials_back = True  # as ProviderConformance's: its workers reach a scheduler on 127.0.0.1

    def test_terminating_twice_is_harmless(self, provider: Provider, scheduler_address: str) -> None:
        async def body() -> None:
            runner = AdapterRunner(provider, RunnerConfig("conformance", scheduler_address, (GROUP,)))
            runner.apply(m.ScaleCommand("t1", {GROUP.name: 1}))
            await runner.settle()
            (unit,) = runner.table.active()
            await eventually_listed(provider, {unit.unit_id}, present=True)
            runner.apply(m.ScaleCommand("t2", terminate=[unit.unit_id]))
            runner.apply(m.ScaleCommand("t3", terminate=[unit.unit_id]))
            await runner.settle()
            await aio(provider).terminate([unit.unit_id])
            await eventually_listed(provider, {unit.unit_id}, present=False)
            assert runner.table.units[unit.unit_id].state is UnitState.TERMINATED
            moves = [h.state for h in runner.table.units[unit.unit_id].history]
            assert moves.count(UnitState.TERMINATING) == 1, moves

        run(body())

    def test_a_failing_launch_stops_or_backs_off_its_group_by_its_class(
        self, broken_provider: Provider, scheduler_address: str
    ) -> None:
        async def body() -> None:
            config = RunnerConfig("conformance", scheduler_address, (GROUP,), backoff_base=60.0, backoff_max=60.0)
            counted = SlowLaunch(broken_provider, 0.0)
            runner = AdapterRunner(counted, config)
            for attempt in range(3):
                runner.apply(m.ScaleCommand(f"f{attempt}", {GROUP.name: 1}))
                await runner.settle()
            assert counted.launches == 1, "a failed group is never retried at once, whatever the error"
            assert not runner.table.active() and GROUP.name in runner.health.failing(time.monotonic())
            try:
                await counted.provider.launch(GROUP, 1, "f-classify")
            except Exception as exc:
                kind = type(exc) if isinstance(exc, ProviderError) else classify(counted.errors, exc)
            else:
                raise AssertionError("the broken provider launched")
            stopped = GROUP.name in runner.health.stopped
            assert stopped == (not kind.retryable), f"{kind.__name__}: stopped={stopped}"

        run(body())

    def test_a_launch_slower_than_the_peer_timeout_loses_nothing(
        self, provider: Provider, scheduler_address: str
    ) -> None:
        if not self.dials_back:
            pytest.skip("this provider's workers cannot reach a scheduler on this host")
        from scaler import Client

        scheduler = start_scheduler(scheduler_address, peer_timeout=1.5)
        group = WorkerGroup("slow", "cpu=1", workers_per_unit=1, min_units=1, max_units=1)
        config = RunnerConfig("conformance", scheduler_address, (group,), reconcile_interval=0.3, peer_timeout=1.5)
        runner = AdapterRunner(SlowLaunch(provider, 4.5), config)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(runner.run(),), daemon=True)
        thread.start()
        try:
            with Client(scheduler_address) as client:
                deadline = time.monotonic() + 60
                while int(client.scheduler_status().status["workers"]) < 1:
                    assert time.monotonic() < deadline, "the slow launch never gave a worker"
                    assert thread.is_alive() and runner.exit_code == 0, "the runner stopped"
                    time.sleep(0.2)
                assert client.submit(sum, [1, 2]).result(30) == 3
                rows = client.scheduler_status().adapters
                assert [int(r.get("running", 0)) + int(r.get("booting", 0)) for r in rows] == [1], rows
            assert len(runner.table.active()) == 1 and runner.session is not None and not runner.session.rejoins
        finally:
            loop.call_soon_threadsafe(runner.stop)
            thread.join(60)
            scheduler.terminate()
            scheduler.wait(10)
        assert not thread.is_alive() and runner.exit_code == 0
