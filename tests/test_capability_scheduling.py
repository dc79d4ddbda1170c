"""Per-capability queues: quantities are consumed, labels matched, nothing blocks the head."""

from __future__ import annotations

import time
from collections.abc import Callable

from scaler import Client, LocalCluster
from tests.conftest import wait_until, wait_workers


def span(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_task_for_a_missing_capability_waits_while_others_flow(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, capabilities="cpu=1")
    with Client(cluster.address) as client:
        gpu_task = client.options(capabilities="cpu=1,gpu=1").submit(pow, 2, 8)
        cpu_tasks = [client.submit(pow, 2, i) for i in range(30)]
        assert client.get(cpu_tasks, timeout=20) == [2**i for i in range(30)]
        assert not gpu_task.done()
        assert client.scheduler_status().status["queue[cpu=1,gpu=1]"] == 1
        cluster.add_worker("cpu=1,gpu=1")
        assert gpu_task.result(20) == 256


def test_quantities_are_consumed_while_running(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, capabilities="cpu=2")
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        small = [client.submit(span, 1.0) for _ in range(2)]
        a, b = client.get(small, timeout=20)
        assert overlaps(a, b), "a cpu=2 worker runs two 1-cpu tasks at once"
        big = [client.options(capabilities="cpu=2").submit(span, 0.5) for _ in range(2)]
        a, b = client.get(big, timeout=20)
        assert not overlaps(a, b), "two 2-cpu tasks on a cpu=2 worker run one after the other"


def test_labels_route_tasks(make_cluster: Callable[..., LocalCluster]) -> None:
    import os

    cluster = make_cluster(n_workers=1, capabilities="cpu=1")
    cluster.add_worker("cpu=1,linux")
    with Client(cluster.address) as client:
        wait_workers(client, 2)
        pids = client.get(
            [client.options(capabilities="cpu=1,linux").submit(os.getppid) for _ in range(10)], timeout=20
        )
        labelled = cluster.workers[-1].pid
        assert set(pids) == {labelled}


def test_idle_worker_reclaims_prefetched_tasks(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=2)
    with Client(cluster.address) as client:
        wait_workers(client, 2)
        long = client.submit(span, 6.0)
        wait_until(lambda: client.scheduler_status().status.get("tasks_running", 0) >= 1)
        short = [client.submit(span, 0.2) for _ in range(12)]
        ends = [end for _, end in client.get(short, timeout=30)]
        assert max(ends) < long.result(30)[1], "short tasks must not wait behind the long one"


def test_fair_across_clients(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1)
    with Client(cluster.address) as first, Client(cluster.address) as second:
        wait_workers(first, 1)
        blocker = first.submit(time.sleep, 1.0)
        wait_until(lambda: first.scheduler_status().status.get("tasks_running", 0) >= 1)
        flood = [first.submit(span, 0.05) for _ in range(40)]
        time.sleep(0.3)
        late = second.submit(span, 0.05)
        late_start = late.result(30)[0]
        starts = sorted(s for s, _ in first.get(flood, timeout=30))
        assert sum(1 for s in starts if s < late_start) < 30, "the second client must not wait for the whole flood"
        blocker.result(10)


def test_worker_heartbeats_report_how_many_tasks_they_run(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, capabilities="cpu=3")
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        sleepers = [client.submit(time.sleep, 4) for _ in range(2)]
        load = lambda: client.scheduler_status().workers[0]["load"]  # noqa: E731
        wait_until(lambda: load() == 2, 10, interval=0.2)
        client.get(sleepers, timeout=30)
        wait_until(lambda: load() == 0, 10, interval=0.2)
