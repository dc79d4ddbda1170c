"""Placement groups in the scheduler, through real processes: bundles reserved all or nothing, tasks
inside their bundle, nothing else on a reservation, groups placed again when a worker dies, removed
with their client, and hostile reservations refused."""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable

import pytest

from scaler import Client, LocalCluster
from scaler.errors import TaskCancelledError, TaskRejectedError
from scaler.protocol import messages as m
from tests.conftest import wait_until, wait_workers


def where() -> str:
    return os.environ.get("SCALER_WORKER_NAME", "")


def slow_where(seconds: float) -> str:
    time.sleep(seconds)
    return where()


def span(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def reserve(client: Client, bundles: list[str], strategy: str, detached: bool = False) -> str:
    pg_id = secrets.token_hex(16)
    client.send_control(m.ReserveBundles(pg_id, bundles, strategy, detached=detached))
    return pg_id


def group(client: Client, pg_id: str) -> m.PlacementGroupInfo | None:
    return next((g for g in client.scheduler_status().placement_groups if g.pg_id == pg_id), None)


def state(client: Client, pg_id: str) -> str:
    found = group(client, pg_id)
    return found.state if found is not None else "GONE"


def inside(client: Client, pg_id: str, bundle: int = -1, capabilities: str = "cpu=1") -> Client:
    return client.options(placement=pg_id, bundle=bundle, capabilities=capabilities)  # type: ignore[return-value]


def worker_names(client: Client) -> list[str]:
    return sorted(str(w["name"]) for w in client.scheduler_status().workers)


def test_strict_spread_reserves_one_bundle_per_worker_and_tasks_run_in_their_bundle(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=2, capabilities="cpu=2")
    with Client(cluster.address) as client:
        wait_workers(client, 2)
        pg_id = reserve(client, ["cpu=1", "cpu=1"], "STRICT_SPREAD")
        wait_until(lambda: state(client, pg_id) == "CREATED", 20)
        info = group(client, pg_id)
        assert info is not None and len(set(info.workers)) == 2 and all(info.workers)
        for index in (0, 1):
            ran = inside(client, pg_id, index).submit(where).result(20)
            assert ran == info.workers[index]


def test_a_group_that_cannot_fit_whole_holds_nothing_and_its_tasks_wait(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=2, capabilities="cpu=1")
    with Client(cluster.address) as client:
        wait_workers(client, 2)
        pg_id = reserve(client, ["cpu=1", "cpu=1", "cpu=1"], "STRICT_SPREAD")
        waiting = inside(client, pg_id).submit(where)
        time.sleep(1.0)
        assert state(client, pg_id) == "PENDING"
        assert not waiting.done()
        committed = [w["committed"] for w in client.scheduler_status().workers]
        assert committed == ["", ""], "a pending group reserves nothing (all or nothing)"
        first, second = client.get([client.submit(span, 1.0) for _ in range(2)], timeout=30)
        assert first[0] < second[1] and second[0] < first[1], "both cpus stay free for other work"
        cluster.add_worker("cpu=1")
        wait_until(lambda: state(client, pg_id) == "CREATED", 20)
        assert waiting.result(20)


def test_a_reservation_is_kept_from_other_work(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=2, capabilities="cpu=2")
    with Client(cluster.address) as client:
        wait_workers(client, 2)
        pg_id = reserve(client, ["cpu=2"], "STRICT_PACK")
        wait_until(lambda: state(client, pg_id) == "CREATED", 20)
        info = group(client, pg_id)
        assert info is not None
        held = info.workers[0]
        others = client.get([client.submit(slow_where, 0.05) for _ in range(12)], timeout=30)
        assert held not in others, "no task outside the group runs on its reservation"
        assert set(client.get([inside(client, pg_id).submit(where) for _ in range(4)], timeout=20)) == {held}


def test_strict_pack_needs_one_worker_and_pack_spills(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=2, capabilities="cpu=2")
    with Client(cluster.address) as client:
        wait_workers(client, 2)
        loose = reserve(client, ["cpu=1", "cpu=1", "cpu=1"], "PACK")
        wait_until(lambda: state(client, loose) == "CREATED", 20)
        strict = reserve(client, ["cpu=1", "cpu=1"], "STRICT_PACK")
        time.sleep(0.5)
        info = group(client, loose)
        assert info is not None and len(set(info.workers)) == 2, "PACK spills over when one worker cannot hold it"
        assert state(client, strict) == "PENDING"
        client.send_control(m.FreeBundles(loose))
        wait_until(lambda: state(client, strict) == "CREATED", 20)
        strict_info = group(client, strict)
        assert strict_info is not None and len(set(strict_info.workers)) == 1


def test_a_request_no_bundle_holds_is_rejected_with_the_reason(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, capabilities="cpu=2")
    with Client(cluster.address) as client:
        pg_id = reserve(client, ["cpu=1"], "PACK")
        with pytest.raises(TaskRejectedError, match="does not fit"):
            inside(client, pg_id, capabilities="cpu=2").submit(where).result(20)
        with pytest.raises(TaskRejectedError, match="no bundle 3"):
            inside(client, pg_id, bundle=3).submit(where).result(20)
        with pytest.raises(TaskRejectedError, match="does not exist"):
            inside(client, secrets.token_hex(16)).submit(where).result(20)


def test_removing_a_group_cancels_its_tasks_and_frees_the_workers(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, capabilities="cpu=1")
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        pg_id = reserve(client, ["cpu=1"], "PACK")
        running = inside(client, pg_id).submit(slow_where, 60.0)
        queued = inside(client, pg_id).submit(where)
        wait_until(lambda: client.scheduler_status().status.get("tasks_running", 0) == 1, 20)
        client.send_control(m.FreeBundles(pg_id))
        for future in (running, queued):
            with pytest.raises(TaskCancelledError):
                future.result(20)
        assert state(client, pg_id) == "GONE"
        assert client.submit(where).result(20), "the worker's cpu is free again"


def test_a_group_ends_with_its_client_unless_detached(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, capabilities="cpu=2")
    with Client(cluster.address) as owner:
        mine = reserve(owner, ["cpu=1"], "PACK")
        kept = reserve(owner, ["cpu=1"], "PACK", detached=True)
        wait_until(lambda: state(owner, kept) == "CREATED" and state(owner, mine) == "CREATED", 20)
    with Client(cluster.address) as other:
        wait_until(lambda: state(other, mine) == "GONE", 20)
        assert state(other, kept) == "CREATED"
        assert inside(other, kept).submit(where).result(20)
        other.send_control(m.FreeBundles(kept))  # a detached group whose maker is gone: anyone may remove it
        wait_until(lambda: state(other, kept) == "GONE", 20)


def test_a_lost_workers_bundles_are_placed_again(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=2, capabilities="cpu=1")
    with Client(cluster.address) as client:
        wait_workers(client, 2)
        pg_id = reserve(client, ["cpu=1"], "PACK")
        wait_until(lambda: state(client, pg_id) == "CREATED", 20)
        info = group(client, pg_id)
        assert info is not None
        pids = {str(w["name"]): int(w["pid"]) for w in client.scheduler_status().workers}
        os.kill(pids[info.workers[0]], signal.SIGKILL)
        wait_until(lambda: (g := group(client, pg_id)) is not None and g.workers[0] not in ("", info.workers[0]), 30)
        assert state(client, pg_id) == "CREATED"
        assert inside(client, pg_id).submit(where).result(20) != info.workers[0]


def test_hostile_reservations_are_refused_and_the_scheduler_serves_on(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=1, capabilities="cpu=2")
    with Client(cluster.address) as client:
        good = secrets.token_hex(16)
        bad = [
            m.ReserveBundles("not-hex!", ["cpu=1"]),
            m.ReserveBundles(secrets.token_hex(16), []),
            m.ReserveBundles(secrets.token_hex(16), ["cpu=0"]),
            m.ReserveBundles(secrets.token_hex(16), ["cpu=1,bad label!"]),
            m.ReserveBundles(secrets.token_hex(16), ["cpu=1"], "EVERYWHERE"),
            m.ReserveBundles(good, ["cpu=1"]),
            m.ReserveBundles(good, ["cpu=1"]),  # the same id twice
            m.FreeBundles(""),
        ]
        for msg in bad:
            client.send_control(msg)
        client.sync()
        before = client.scheduler_status().status["rejected_messages"]
        assert before == 7
        assert [g.pg_id for g in client.scheduler_status().placement_groups] == [good]
        with pytest.raises(TaskRejectedError, match="placement groups' own"):
            client.options(capabilities=f"pg.{good}.cpu=1").submit(where).result(20)  # type: ignore[attr-defined]
        assert client.submit(pow, 2, 5).result(20) == 32


def test_a_worker_may_not_claim_the_schedulers_own_names(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, capabilities="cpu=1")
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        pg_id = reserve(client, ["cpu=1"], "PACK")
        target = worker_names(client)[0]
        impostors = [cluster.add_worker(f"cpu=1,pg.{pg_id}.slot=9"), cluster.add_worker(f"cpu=1,node:{target}")]
        for impostor in impostors:
            assert impostor.wait(30) != 0, "a worker refused by the scheduler exits non-zero"
        assert worker_names(client) == [target]


def test_work_pinned_to_a_node_runs_there_and_waits_for_it(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=2, capabilities="cpu=1")
    with Client(cluster.address) as client:
        wait_workers(client, 2)
        for name in worker_names(client):
            pinned = client.options(node=name)  # type: ignore[attr-defined]
            assert {f.result(20) for f in [pinned.submit(where) for _ in range(6)]} == {name}
        with pytest.raises(TaskRejectedError):
            client.options(node="bad name!").submit(where).result(5)  # type: ignore[attr-defined]


def timed(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_nothing_is_prefetched_onto_a_split_worker(make_cluster: Callable[..., LocalCluster]) -> None:
    """A worker starts what fits its own, whole capacity: a short task parked on it would run beyond
    its bundle, or on the bundle's reservation from outside the group."""
    cluster = make_cluster(n_workers=1, capabilities="cpu=4")
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        pg_id = reserve(client, ["cpu=1"], "PACK")
        wait_until(lambda: state(client, pg_id) == "CREATED", 20)
        for _ in range(2):  # measured short: its tasks would be prefetched
            client.submit(timed, 0.3).result(20)
        spans = client.get([inside(client, pg_id).submit(timed, 0.3) for _ in range(6)], timeout=30)
        assert most_at_once(spans) == 1, "a bundle of cpu=1 runs one cpu=1 task at a time"
        outside = client.options(capabilities="cpu=1")  # type: ignore[attr-defined]
        spans = client.get([outside.submit(timed, 0.3) for _ in range(9)], timeout=30)
        assert most_at_once(spans) == 3, "work outside the group keeps off its reservation"


def test_a_removed_groups_killed_tasks_leave_no_count_behind(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, capabilities="cpu=2")
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        pg_id = reserve(client, ["cpu=1"], "PACK")
        running = inside(client, pg_id).submit(slow_where, 60.0)
        wait_until(lambda: client.scheduler_status().status.get("tasks_running", 0) == 1, 20)
        client.send_control(m.FreeBundles(pg_id))
        with pytest.raises(TaskCancelledError):
            running.result(20)
        wait_until(lambda: client.scheduler_status().workers[0]["assigned"] == 0, 20)
        worker = client.scheduler_status().workers[0]
        assert (worker["capabilities"], worker["committed"]) == ("cpu=2", "")


def test_a_bundle_may_not_ask_for_another_groups_reservation(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, capabilities="cpu=2")
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        victim = reserve(client, ["cpu=1"], "PACK")
        wait_until(lambda: state(client, victim) == "CREATED", 20)
        before = client.scheduler_status().status["rejected_messages"]
        thief = reserve(client, [f"pg.{victim}.cpu=1"], "PACK")
        also = reserve(client, ["slot=1"], "PACK")  # the scheduler's own name for a bundle's task slots
        client.sync()
        assert client.scheduler_status().status["rejected_messages"] == before + 2
        assert (state(client, thief), state(client, also)) == ("GONE", "GONE")
        assert inside(client, victim).submit(where).result(20), "the victim's reservation is whole"


def test_groups_that_cannot_fit_cost_a_scheduling_pass_next_to_nothing() -> None:
    """Each scheduling pass tries the pending groups again: one that surely does not fit is passed over
    without planning its bundles worker by worker (100 groups of 1,000 bundles took seconds a pass)."""
    from scaler.scheduler.config import SchedulerConfig
    from scaler.scheduler.engine import Engine
    from scaler.scheduler.outbox import Outbox
    from scaler.scheduler.workers import WorkerState
    from scaler.utility.capabilities import parse_capabilities

    engine = Engine(SchedulerConfig(), Outbox(None))  # type: ignore[arg-type]  # never flushed here
    engine.add_client(b"c", "c")
    for i in range(20):
        caps = parse_capabilities("cpu=8")
        engine.add_worker(WorkerState(f"w{i}".encode(), f"w{i}", caps, caps.as_dict(), {}))
    for bundles in (["cpu=1"] * 999 + ["cpu=100"], ["cpu=1"] * 1000, ["cpu=1,gpu_host"] * 1000):
        for _ in range(30):
            msg = m.ReserveBundles(secrets.token_hex(16), bundles, "PACK")
            engine.bundles.reserve(engine, b"c", msg, [parse_capabilities(b) for b in bundles])
    engine.schedule()
    started = time.perf_counter()
    for _ in range(10):
        engine.dirty = True
        engine.schedule()
    assert time.perf_counter() - started < 0.5
    assert len(engine.bundles.pending) == 90
    fits = secrets.token_hex(16)
    engine.bundles.reserve(
        engine, b"c", m.ReserveBundles(fits, ["cpu=8"] * 20, "STRICT_SPREAD"), [parse_capabilities("cpu=8")] * 20
    )
    engine.schedule()
    assert engine.bundles.groups[fits].state == "CREATED", "a group that fits is still placed"


def test_a_group_is_its_jobs_whoever_of_the_job_sends_it(make_cluster: Callable[..., LocalCluster]) -> None:
    """Sent from inside a task, a reservation is the job's (the client that submitted the task) and
    the job's tasks may remove it; another job may not."""
    cluster = make_cluster(n_workers=1, capabilities="cpu=2")
    with Client(cluster.address) as owner, Client(cluster.address) as stranger:
        mine = reserve(owner, ["cpu=1"], "PACK")
        wait_until(lambda: state(owner, mine) == "CREATED", 20)
        stranger.send_control(m.FreeBundles(mine))
        stranger.sync()
        assert state(owner, mine) == "CREATED", "another job's client may not remove it"
        assert owner.submit(free_from_a_task, cluster.address, mine).result(30)
        wait_until(lambda: state(owner, mine) == "GONE", 20)
        made = owner.submit(reserve_from_a_task, cluster.address).result(30)
        time.sleep(1.0)  # the task's own connection may come and go: the group is its job's
        assert state(owner, made) == "CREATED"


def free_from_a_task(address: str, pg_id: str) -> bool:
    with Client(address) as inner:
        inner.send_control(m.FreeBundles(pg_id))
        inner.sync()
    return True


def reserve_from_a_task(address: str) -> str:
    with Client(address) as inner:
        pg_id = reserve(inner, ["cpu=1"], "PACK")
        inner.sync()
    return pg_id


def test_bundles_whose_sum_is_not_a_number_are_refused(make_cluster: Callable[..., LocalCluster]) -> None:
    """Each bundle finite, their sum not: a pending STRICT_PACK group is one unit of their sum for the
    scaling policy, which could not read ``cpu=inf`` and failed every scaling round."""
    cluster = make_cluster(n_workers=1, capabilities="cpu=1")
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        before = client.scheduler_status().status["rejected_messages"]
        huge = reserve(client, ["cpu=1.7e308", "cpu=1.7e308"], "STRICT_PACK")
        client.sync()
        assert client.scheduler_status().status["rejected_messages"] == before + 1
        assert state(client, huge) == "GONE"


def test_a_job_holds_at_most_max_groups(make_cluster: Callable[..., LocalCluster]) -> None:
    from scaler.scheduler.bundles import MAX_GROUPS

    cluster = make_cluster(n_workers=1, capabilities="cpu=1")
    with Client(cluster.address) as client:
        for _ in range(MAX_GROUPS + 1):
            reserve(client, ["never=1"], "PACK")
        client.sync()
        status = client.scheduler_status()
        assert len(status.placement_groups) == MAX_GROUPS
        assert status.status["rejected_messages"] == 1
        assert client.submit(pow, 2, 3).result(20) == 8
