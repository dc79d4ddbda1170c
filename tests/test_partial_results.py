"""Tasks with several results whose generator raised part-way: each result keeps its own outcome."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from scaler import Client, LocalCluster, TaskCancelledError
from tests.conftest import wait_until, wait_workers


class Boom(ValueError):
    pass


def yield_then_raise(values: list[object]) -> Iterator[object]:
    yield from values
    raise Boom(f"after {len(values)}")


def yield_only(values: list[object]) -> Iterator[object]:
    yield from values


def yield_then_raise_large(value: object) -> Iterator[object]:
    yield value
    raise Boom("large " + "x" * (2 << 20))


def add_one(x: int) -> int:
    return x + 1


def counted(directory: str, n: int) -> Iterator[int]:
    """Yields this run's number n times, then raises: the number tells which attempt produced it."""
    run = len(list(Path(directory).iterdir()))
    Path(directory, str(run)).touch()
    for _ in range(n):
        yield run
    raise Boom(f"run {run}")


def pid_then_wait(pid_file: str, seconds: float) -> Iterator[int]:
    yield os.getpid()
    Path(pid_file + ".tmp").write_text(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
    yield 0


def test_values_yielded_before_the_error_are_kept(client: Client) -> None:
    first, second, third = client.options(num_returns=3).submit(yield_then_raise, ["a"])
    assert first.result(10) == "a"
    for future in (second, third):
        with pytest.raises(Boom, match="after 1"):
            future.result(10)
    with pytest.raises(Boom):
        client.get([first, second, third], timeout=10)


def test_an_error_after_the_last_value_leaves_every_result_a_value(client: Client) -> None:
    futures = client.options(num_returns=2).submit(yield_then_raise, [1, 2])
    assert client.get(futures, timeout=10) == [1, 2]


def test_raising_before_any_value_fails_every_result(client: Client) -> None:
    for future in client.options(num_returns=2).submit(yield_then_raise, []):
        with pytest.raises(Boom, match="after 0"):
            future.result(10)


def test_a_generator_that_stops_early_or_runs_long(client: Client) -> None:
    short = client.options(num_returns=3).submit(yield_only, [1, 2])
    assert client.get(short[:2], timeout=10) == [1, 2]
    with pytest.raises(ValueError, match="yielded 2 values, but num_returns=3"):
        short[2].result(10)
    for future in client.options(num_returns=2).submit(yield_only, [1, 2, 3]):
        with pytest.raises(ValueError, match="more than num_returns=2"):
            future.result(10)


def test_large_values_and_errors_are_fetched_from_the_scheduler(client: Client) -> None:
    big = np.arange(1 << 19, dtype=np.float64)  # 4 MiB: over the push budget, so fetched on demand
    first, second, third = client.options(num_returns=3).submit(yield_then_raise, [big, big])
    assert np.array_equal(first.result(20), big) and np.array_equal(second.result(20), big)
    with pytest.raises(Boom):
        third.result(10)
    value, error = client.options(num_returns=2).submit(yield_then_raise_large, 7)
    assert value.result(10) == 7
    with pytest.raises(Boom, match="large xxx"):
        error.result(20)


def test_results_pass_on_to_other_tasks_as_they_are(client: Client) -> None:
    value, error = client.options(num_returns=2).submit(yield_then_raise, [41])
    assert client.submit(add_one, value).result(10) == 42
    with pytest.raises(Boom, match="after 1"):
        client.submit(add_one, error).result(10)


def test_put_error_raises_wherever_it_is_read(client: Client) -> None:
    ref = client.put_error(Boom("stored"))
    with pytest.raises(Boom, match="stored"):
        client.get(ref, timeout=10)
    with pytest.raises(Boom, match="stored"):
        client.submit(add_one, ref).result(10)


def test_partial_results_are_retried_only_with_retry_exceptions(client: Client, tmp_path: Path) -> None:
    once, twice = tmp_path / "once", tmp_path / "retried"
    once.mkdir()
    twice.mkdir()
    value, error = client.options(num_returns=2).submit(counted, str(once), 1)
    assert value.result(10) == 0
    with pytest.raises(Boom, match="run 0"):
        error.result(10)
    assert len(list(once.iterdir())) == 1, "an application error is not retried unless asked"

    value, error = client.options(num_returns=2, retry_exceptions=True, max_retries=2).submit(counted, str(twice), 1)
    assert value.result(20) == 2, "the last attempt's values are the results"
    with pytest.raises(Boom, match="run 2"):
        error.result(10)
    assert len(list(twice.iterdir())) == 3


def test_cancel_interrupts_a_generator_between_its_values(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(n_workers=1, worker_args=("--death-timeout", "10", "--cancel-grace", "60"))
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        futures = client.options(num_returns=2).submit(pid_then_wait, str(tmp_path / "pid"), 120)
        pid = int(wait_until(lambda: (tmp_path / "pid").is_file() and (tmp_path / "pid").read_text()))
        start = time.monotonic()
        client.cancel(futures)
        wait_until(lambda: client.scheduler_status().status["tasks"] == 0, 10)
        elapsed = time.monotonic() - start
        assert elapsed < 20, f"the generator took {elapsed:.1f}s to stop (grace 60s: it was not interrupted)"
        for future in futures:
            with pytest.raises(TaskCancelledError):
                future.result(1)
        assert client.submit(os.getpid).result(15) == pid, "an interrupted generator's process lives on"
        assert client.scheduler_status().status["total_cancelled"] == 1
