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
