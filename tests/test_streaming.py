"""Streaming generator tasks on real processes: each value reaches the client as it is yielded.

The protocol path (``StreamItem`` from the worker, ``StreamReady`` to the client) below the Ray
layer: items arrive before the task ends; a worker may send items only for a task assigned to it
(anything else is refused and the scheduler goes on); a task process or a worker that dies
mid-stream leaves the items it produced readable, then the error, or, retried, the later items
without repeating an index already delivered; a cancel ends the stream after what arrived.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import zmq

from scaler import Client, LocalCluster, TaskCancelledError
from scaler.client.streams import Item, StreamReader, open_stream
from scaler.errors import WorkerCrashedError
from scaler.protocol import messages as m
from scaler.protocol.wire import encode, split_batch
from scaler.utility import serialization as ser
from scaler.utility.sockets import dial
from scaler.worker.streaming import stream
from tests.conftest import run_script, wait_until, wait_workers

GATE_SECONDS = 60.0


def _wait_for(path: str) -> None:
    deadline = time.monotonic() + GATE_SECONDS
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


def _gated_values(gate: str, before: int, after: int) -> Iterator[tuple[int, int]]:
    """(pid, index): ``before`` values, then a wait for ``gate``, then ``after`` more."""
    pid = os.getpid()
    for i in range(before):
        yield pid, i
    _wait_for(gate)
    for i in range(before, before + after):
        yield pid, i


def gated(gate: str, before: int, after: int) -> int:
    return stream(_gated_values(gate, before, after))


def big_values(n: int) -> int:
    return stream(b"x" * (2 << 20) for _ in range(n))


def _value(client: Client, item: Item | None) -> Any:
    assert item is not None, "the stream ended early"
    return item.payload.get() if item.payload is not None else client.get(item.ref, timeout=30)


def _items(client: Client, reader: StreamReader, count: int) -> list[Any]:
    return [_value(client, reader.next(30)) for _ in range(count)]


def test_items_arrive_before_the_task_ends(make_cluster: Callable[..., LocalCluster], tmp_path: Path) -> None:
    cluster = make_cluster(n_workers=1)
    gate = str(tmp_path / "gate")
    with Client(cluster.address) as client:
        future = client.submit(gated, gate, 2, 1)
        reader = open_stream(future)
        (pid, first), (_, second) = _items(client, reader, 2)
        assert (first, second) == (0, 1)
        assert not future.done() and not os.path.exists(gate), "the items came while the generator waits"
        Path(gate).touch()
        assert _items(client, reader, 1) == [(pid, 2)]
        assert reader.next(30) is None
        assert future.result(30) == 3
        # Values too large to push come by ref and are fetched from the scheduler.
        future = client.submit(big_values, 2)
        reader = open_stream(future)
        items = [reader.next(30), reader.next(30)]
        assert all(item is not None and item.payload is None for item in items)
        assert [len(_value(client, item)) for item in items] == [2 << 20, 2 << 20]
        assert reader.next(30) is None and future.result(30) == 2


def _fake_worker(address: str) -> tuple[zmq.Context[Any], zmq.Socket[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    raw = dial(context, "w", address, None)
    raw.connect(address)
    raw.send_multipart([encode([m.Hello("worker", m.PROTOCOL_VERSION, "forger", "forged=1")])])
    if not raw.poll(10_000):
        raise AssertionError("no Welcome for the fake worker")
    ((welcome, _),) = split_batch(raw.recv_multipart())
    assert isinstance(welcome, m.Welcome), welcome
    return context, raw


def test_items_for_a_task_that_is_not_the_workers_are_refused(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(n_workers=1)
    gate = str(tmp_path / "gate")
    with Client(cluster.address) as client:
        before = client.scheduler_status().status["rejected_messages"]
        future = client.submit(gated, gate, 1, 1)
        reader = open_stream(future)
        (pid, index) = _items(client, reader, 1)[0]
        assert index == 0
        context, raw = _fake_worker(cluster.address)  # joins now: it never heartbeats
        try:
            forged = ser.dumps("forged")
            for msg in (
                m.StreamItem(future.task_id, 1, len(forged)),  # the task runs on the real worker
                m.StreamItem(future.task_id, 1, len(forged), attempt=5),
                m.StreamItem("nobody.1", 0, len(forged)),  # no such task
            ):
                raw.send_multipart([encode([msg]), *forged])
            raw.send_multipart([encode([m.StreamItem(future.task_id, -1, 0)])])  # a bad index
            wait_until(lambda: client.scheduler_status().status["rejected_messages"] >= before + 4)
        finally:
            raw.close(0)
            context.term()
        Path(gate).touch()
        assert _items(client, reader, 1) == [(pid, 1)], "the forged items never reached the stream"
        assert reader.next(30) is None and future.result(30) == 2
        assert client.submit(gated, gate, 0, 1).result(30) == 1, "the scheduler serves on"


def test_a_task_process_killed_mid_stream_leaves_its_items_then_the_error(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(n_workers=1)
    with Client(cluster.address) as client:
        future = client.options(max_retries=0).submit(gated, str(tmp_path / "never"), 2, 1)
        reader = open_stream(future)
        items = _items(client, reader, 2)
        pid = items[0][0]
        os.kill(pid, signal.SIGKILL)
        assert reader.next(30) is None
        with pytest.raises(WorkerCrashedError):
            future.result(30)
        assert [item[1] for item in items] == [0, 1]


def test_a_retried_stream_keeps_what_was_delivered_and_repeats_no_index(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(n_workers=2)
    gate = str(tmp_path / "gate")
    with Client(cluster.address) as client:
        wait_workers(client, 2)
        future = client.options(max_retries=1).submit(gated, gate, 2, 2)
        reader = open_stream(future)
        delivered = _items(client, reader, 2)
        first_pid = delivered[0][0]
        agent = psutil.Process(first_pid).parent()
        assert agent is not None
        agent.kill()  # the whole worker dies mid-stream; its task process goes with it
        wait_until(lambda: not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == "zombie")
        Path(gate).touch()
        rest = _items(client, reader, 2)
        assert reader.next(30) is None
        assert future.result(30) == 4  # the last run yielded four values; two of them were dropped
        assert [index for _, index in delivered + rest] == [0, 1, 2, 3], "no index twice, none missing"
        assert {pid for pid, _ in delivered} == {first_pid}
        assert {pid for pid, _ in rest} != {first_pid}, "the later items are the retry's"


def test_a_cancel_ends_the_stream_after_what_arrived(make_cluster: Callable[..., LocalCluster], tmp_path: Path) -> None:
    cluster = make_cluster(n_workers=1)
    with Client(cluster.address) as client:
        future = client.submit(gated, str(tmp_path / "never"), 1, 1)
        reader = open_stream(future)
        assert [index for _, index in _items(client, reader, 1)] == [0]
        future.cancel()
        assert reader.next(30) is None
        with pytest.raises(TaskCancelledError):
            future.result(30)
        wait_until(lambda: client.scheduler_status().status["tasks"] == 0)
        assert client.submit(gated, str(tmp_path), 0, 1).result(30) == 1, "the worker is free again"


CANCEL_SCRIPT = """
import time
from scaler.compat import ray

ray.init(num_cpus=1)


@ray.remote
def forever():
    yield "first"
    while True:
        time.sleep(0.05)


stream = forever.remote()
first = next(stream)
assert ray.get(first) == "first"
ray.cancel(stream)
last = next(stream)
try:
    ray.get(last)
    raise SystemExit("the ref after a cancel must raise")
except ray.exceptions.TaskCancelledError:
    pass
try:
    next(stream)
    raise SystemExit("the stream must end after the cancel")
except StopIteration:
    pass
assert ray.get(first) == "first", "what arrived before the cancel stays readable"
print("CANCEL OK")
"""


def test_ray_cancel_ends_a_stream_with_task_cancelled_error() -> None:
    result = run_script(CANCEL_SCRIPT, timeout=120)
    assert result.returncode == 0 and "CANCEL OK" in result.stdout, result.stdout[-2000:] + result.stderr[-3000:]


def test_many_items_come_in_order(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1)
    with Client(cluster.address) as client:
        future = client.submit(stream, range(3000))
        reader = open_stream(future)
        assert _items(client, reader, 3000) == list(range(3000))
        assert reader.next(30) is None and future.result(30) == 3000


def test_a_dropped_reader_lets_its_items_go(make_cluster: Callable[..., LocalCluster], tmp_path: Path) -> None:
    cluster = make_cluster(n_workers=1)
    gate = tmp_path / "gate"
    with Client(cluster.address) as client:
        assert client.submit(gated, str(tmp_path), 0, 1).result(30) == 1  # the function is stored now
        baseline = wait_until(lambda: client.scheduler_status().status["objects"] or -1)
        future = client.submit(gated, str(gate), 2, 3)
        reader = open_stream(future)
        assert [index for _, index in _items(client, reader, 1)] == [0]
        reader.close()  # one item announced but not handed out, three to come: all released
        del reader
        gate.touch()
        assert future.result(30) == 5
        del future
        wait_until(lambda: client.scheduler_status().status["objects"] == baseline)
