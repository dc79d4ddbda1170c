"""The client API against a real local cluster: submit, map, put, get, refs, errors, waiting."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import time
import traceback
from collections.abc import Callable

import numpy as np
import pytest

from scaler import Client, LocalCluster, ObjectLostError
from tests.conftest import wait_until, wait_workers


def add(a: int, b: int = 0) -> int:
    return a + b


def total(values: object) -> int:
    if isinstance(values, dict):
        return sum(values.values())
    return sum(values)  # type: ignore[call-overload, no-any-return]


class Boom(ValueError):
    pass


def explode(message: str) -> None:
    raise Boom(message)


def array_sum(array: np.ndarray) -> float:
    return float(array.sum())


def double_in_place(array: np.ndarray) -> np.ndarray:
    array *= 2
    return array


def test_submit_get_map(client: Client) -> None:
    assert client.submit(pow, 2, 10).result(10) == 1024
    assert client.get(client.submit(add, 1, b=2), timeout=10) == 3
    assert client.get(client.map(add, range(50), range(50)), timeout=20) == [2 * i for i in range(50)]


def test_lambdas_and_closures_travel_by_value(client: Client) -> None:
    offset = 7
    assert client.submit(lambda x: x + offset, 1).result(10) == 8


def test_put_and_refs_as_arguments_also_nested(client: Client) -> None:
    ref = client.put([1, 2, 3])
    assert client.get(ref) == [1, 2, 3]
    assert client.submit(total, ref).result(10) == 6
    futures = [client.submit(add, i) for i in range(5)]
    assert client.submit(total, futures).result(10) == 10
    assert client.submit(total, {"a": futures[1], "b": futures[4]}).result(10) == 5
    assert client.submit(total, (futures[2], 10)).result(10) == 12


def test_chains_do_not_block_the_client(client: Client) -> None:
    future = client.submit(add, 0, 1)
    for _ in range(20):
        future = client.submit(add, future, 1)
    assert future.result(20) == 21


def test_remote_exception_keeps_type_and_traceback(client: Client) -> None:
    future = client.submit(explode, "kaboom")
    with pytest.raises(Boom, match="kaboom") as info:
        future.result(10)
    text = "".join(traceback.format_exception(info.value))
    assert "explode" in text and "Remote traceback" in text
    assert isinstance(future.exception(), Boom)


def test_error_propagates_to_dependents(client: Client) -> None:
    failed = client.submit(explode, "upstream")
    with pytest.raises(Boom, match="upstream"):
        client.submit(add, failed, 1).result(10)


def test_large_numpy_put_zero_copy_path(client: Client) -> None:
    array = np.arange(4_000_000, dtype=np.float64)
    ref = client.put(array)
    assert client.submit(array_sum, ref).result(20) == float(array.sum())
    back = client.submit(double_in_place, ref).result(20)
    assert np.array_equal(back, array * 2)
    assert np.array_equal(client.get(ref), array), "a task's in-place change must not leak into the stored object"


def test_map_over_the_same_big_ref(client: Client) -> None:
    ref = client.put(np.ones(1_000_000))
    assert client.get(client.map(array_sum, [ref] * 20), timeout=30) == [1_000_000.0] * 20


def test_get_timeout_and_wait_and_as_completed(client: Client) -> None:
    import time

    slow = client.submit(time.sleep, 1.0)
    with pytest.raises(concurrent.futures.TimeoutError):
        client.get(slow, timeout=0.05)
    fast = [client.submit(add, i) for i in range(10)]
    done, not_done = client.wait(fast, timeout=10)
    assert len(done) == 10 and not not_done
    assert sorted(f.result() for f in client.as_completed(fast, timeout=10)) == list(range(10))
    assert slow.result(10) is None


def test_futures_are_awaitable(client: Client) -> None:
    async def main() -> int:
        return int(await client.submit(add, 20, 22))

    assert asyncio.run(main()) == 42


def test_released_object_is_gone(client: Client) -> None:
    ref = client.put("payload")
    object_id = ref.object_id
    del ref
    fetched = client.submit(add, 1, 1)
    fetched.result(10)
    from scaler.client.future import ObjectRef

    borrowed = ObjectRef(object_id, None)
    with pytest.raises(ObjectLostError, match=object_id):
        client.submit(total, [borrowed]).result(10)


def test_bad_capability_request_is_rejected_clearly(client: Client) -> None:
    from scaler.client.client import TaskOptions

    future = client.submit_with(TaskOptions(capabilities="cpu=1"), add, (1,), {})[0]
    assert future.result(10) == 1
    with pytest.raises(ValueError, match="capability"):
        client.options(capabilities="cpu=abc").submit(add, 1)
    with pytest.raises(ValueError, match="num_returns"):
        client.submit_with(TaskOptions(num_returns=-1), add, (1,), {})


def test_unknown_task_options_fail_fast(client: Client) -> None:
    with pytest.raises(TypeError):
        client.options(not_an_option=1)


def test_client_needs_an_address() -> None:
    with pytest.raises(ValueError, match="address"):
        Client()


def three(x: int) -> tuple[int, int, int]:
    return x, x + 1, x + 2


def test_num_returns_gives_one_future_per_value(client: Client) -> None:
    futures = client.options(num_returns=3).submit(three, 10)
    assert [f.result(10) for f in futures] == [10, 11, 12]
    assert client.submit(total, futures[1:]).result(10) == 23
    assert client.options(num_returns=0).submit(three, 1) == []


def blob(n: int) -> bytes:
    return bytes(n)


def slow_value(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


def test_results_of_dropped_futures_are_released(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1)
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        kept = client.submit(blob, 10)
        assert kept.result(10) == bytes(10)

        def objects() -> tuple[int, int]:
            status = client.scheduler_status().status
            return int(status["objects"]), int(status["object_bytes"])

        baseline = objects()
        sizes = [100_000] * 10 + [3_000_000] * 2  # small results are pushed, big ones fetched
        futures = [client.submit(blob, n) for n in sizes]
        assert [len(v) for v in client.get(futures, timeout=30)] == sizes
        count, nbytes = objects()
        assert count >= baseline[0] + len(sizes) and nbytes >= baseline[1] + sum(sizes), "results live in the store"
        del futures
        gc.collect()
        wait_until(lambda: objects() == baseline, 15)
        assert kept.result() == bytes(10)


def test_submit_never_waits_for_a_running_dependency(client: Client) -> None:
    assert client.submit(add, 1, 1).result(10) == 2  # the function is shipped already
    slow = client.submit(slow_value, 3.0, 40)
    wait_until(lambda: client.scheduler_status().status.get("tasks_running", 0) >= 1)
    dependents = []
    for fn, args in [(add, (slow, 2)), (total, ([slow, 2],)), (total, ({"a": slow, "b": 2},))]:
        start = time.monotonic()
        dependents.append(client.submit(fn, *args))
        elapsed = time.monotonic() - start
        assert elapsed < 1.5, f"submit took {elapsed:.2f}s: it must not wait for the 3 s task it depends on"
    assert not slow.done()
    assert client.get(dependents, timeout=20) == [42, 42, 42] and slow.result() == 40


def test_a_request_waiting_for_a_reply_gets_the_lost_connection_at_once(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    from scaler.errors import ConnectionFailedError

    cluster = make_cluster(n_workers=1)
    client = Client(cluster.address)
    try:
        client.sync()
        assert cluster.scheduler is not None
        cluster.scheduler.send_signal(__import__("signal").SIGSTOP)  # the request is sent, never answered
        started = time.monotonic()
        waiter = concurrent.futures.ThreadPoolExecutor(1).submit(client.kv_get, "some key", 60)
        time.sleep(0.5)
        cluster.scheduler.kill()  # ... and then the connection drops
        with pytest.raises(ConnectionFailedError):
            waiter.result(30)
        assert time.monotonic() - started < 20, "not left to the request's own 60 s timeout"
        with pytest.raises(ConnectionFailedError):
            client.scheduler_status()
    finally:
        client.close()
