"""Quickstart: a local cluster, a few tasks, an object shared by many tasks, and an error.

python examples/quickstart.py
"""

import time

import numpy as np

from scaler import Client, LocalCluster


def column_means(matrix: np.ndarray, column: int) -> float:
    return float(matrix[:, column].mean())


def slow_square(x: int) -> int:
    time.sleep(0.05)
    return x * x


def fails() -> None:
    raise ValueError("tasks raise their own exceptions, with the remote traceback")


start = time.perf_counter()
with LocalCluster(n_workers=2) as cluster, Client(cluster.address) as client:
    print(f"cluster at {cluster.address} with {cluster.n_workers} workers")

    future = client.submit(pow, 2, 10)
    print("2 ** 10 =", future.result())

    matrix = np.random.default_rng(0).normal(size=(1000, 100))
    ref = client.put(matrix)  # stored once, read by every task below
    means = client.get(client.map(column_means, [ref] * 100, range(100)))
    print(f"100 column means from one shared 0.8 MB matrix: first {means[0]:.4f}")

    squares = client.map(slow_square, range(40))
    print("sum of 40 squares =", sum(client.get(squares, timeout=30)))

    chained = client.submit(sum, squares)  # futures as arguments: resolved on the worker
    print("chained sum =", chained.result())

    try:
        client.submit(fails).result()
    except ValueError as exc:
        print("caught:", exc)

print(f"done in {time.perf_counter() - start:.2f}s")
