"""Tasks that submit tasks: ``Client()`` inside a task, capacity lent while a task waits."""

from __future__ import annotations

from collections.abc import Callable

from scaler import Client, LocalCluster


def fib(n: int) -> int:
    if n < 2:
        return n
    client = Client()
    left, right = client.submit(fib, n - 1), client.submit(fib, n - 2)
    return int(left.result() + right.result())


def fan_out(n: int) -> int:
    client = Client()
    return sum(client.get(client.map(pow, range(n), [2] * n)))


def test_recursion_does_not_deadlock_a_one_slot_cluster(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1)
    with Client(cluster.address) as client:
        assert client.submit(fib, 6).result(120) == 8
        assert client.submit(fan_out, 20).result(60) == sum(i * i for i in range(20))


def spawn_sleepers(depth: int, seconds: float) -> float:
    """Submits one sleeper per level below it and waits for them all."""
    client = Client()
    below = [client.submit(spawn_sleepers, depth - 1, seconds)] if depth > 1 else []
    import time

    time.sleep(seconds if depth == 1 else 0)
    return float(sum(f.result() for f in below)) + depth


def test_cancel_reaches_the_tasks_a_task_submitted_unless_told_not_to(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    import time

    from tests.conftest import wait_until

    cluster = make_cluster(n_workers=3)
    with Client(cluster.address) as client:
        tasks = lambda: client.scheduler_status().status["tasks"]  # noqa: E731
        parent = client.submit(spawn_sleepers, 3, 60)
        wait_until(lambda: tasks() == 3, 30)
        parent.cancel()
        wait_until(lambda: tasks() == 0, 15)

        parent = client.submit(spawn_sleepers, 2, 4)
        wait_until(lambda: tasks() == 2, 30)
        client.cancel(parent, recursive=False)
        time.sleep(1.5)
        assert tasks() == 1, "the child of a task cancelled with recursive=False runs on"
        wait_until(lambda: tasks() == 0, 20)
