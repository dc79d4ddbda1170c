"""A peer that got past the hello and then misbehaves: every bad message is counted as rejected,
requests too big to honour are refused by name, and the scheduler keeps serving everyone else."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import msgspec
import zmq

from scaler import Client, LocalCluster
from scaler.protocol import messages as m
from scaler.protocol.wire import encode, split_batch
from scaler.utility.sockets import dial
from tests.conftest import wait_until


def _welcomed(address: str) -> tuple[zmq.Context[Any], zmq.Socket[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    raw = dial(context, "c", address, None)  # authenticated, then hostile
    raw.connect(address)
    raw.send_multipart([encode([m.Hello("client", m.PROTOCOL_VERSION, "hostile")])])
    if not raw.poll(10_000):
        raise AssertionError("no Welcome for a well-formed hello")
    ((welcome, _),) = split_batch(raw.recv_multipart())
    if not isinstance(welcome, m.Welcome):
        raise AssertionError(f"expected Welcome, got {welcome!r}")
    return context, raw


def _replies(raw: zmq.Socket[Any], until: Callable[[list[Any]], bool], timeout: float = 15.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        if raw.poll(100):
            got.extend(msg for msg, _ in split_batch(raw.recv_multipart()))
    return got


def test_a_welcomed_client_cannot_break_or_stall_the_scheduler(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1)
    context, raw = _welcomed(cluster.address)
    rng = random.Random(11)
    try:
        with Client(cluster.address) as observer:
            before = observer.scheduler_status().status["rejected_messages"]
            malformed: list[list[bytes]] = []
            for i in range(200):
                kind = i % 5
                if kind == 0:
                    malformed.append([rng.randbytes(rng.randint(1, 300))])
                elif kind == 1:
                    malformed.append([msgspec.msgpack.encode([["SubmitTask", rng.random(), None]])])
                elif kind == 2:
                    malformed.append([encode([m.PutObject(f"o{i}", 10**9)]), b"one frame"])
                elif kind == 3:
                    malformed.append([encode([m.TaskDone(f"t{i}", "done")])])
                else:
                    malformed.append([encode([m.Hello("client", m.PROTOCOL_VERSION)])])
            start = time.monotonic()
            for frames in malformed:
                raw.send_multipart(frames)
            too_big = [
                m.SubmitTask("big.1", "f", "cpu=1", [], 0, num_returns=10**9),
                m.SubmitTask("self.1", "f", "cpu=1", ["self.1#0"], 0),
                m.SubmitTask("deps.1", "f", "cpu=1", [f"x.{i}" for i in range(200_000)], 0),
            ]
            raw.send_multipart([encode(too_big)])
            unknown = [f"nobody.{i}" for i in range(100_000)]
            raw.send_multipart([encode([m.CancelTasks(unknown, True), m.Release(unknown), m.GetObject("nobody.1")])])
            replies = _replies(raw, lambda got: len(got) >= 4)
            elapsed = time.monotonic() - start

            rejected = {r.task_id: r.reason for r in replies if isinstance(r, m.TaskRejected)}
            assert "num_returns=1000000000" in rejected["big.1"] and "limit" in rejected["big.1"]
            assert "depends on its own result" in rejected["self.1"]
            assert "200000 object refs" in rejected["deps.1"]
            (lost,) = [r for r in replies if isinstance(r, m.ObjectReply)]
            assert not lost.found and "does not exist" in lost.message
            assert elapsed < 10, f"the scheduler took {elapsed:.1f}s over hostile requests"

            count = lambda: observer.scheduler_status().status["rejected_messages"] - before  # noqa: E731
            wait_until(lambda: count() >= len(malformed), 10)
            time.sleep(0.3)
            assert count() == len(malformed), "every malformed message is counted once, nothing else is"
            assert observer.submit(pow, 2, 5).result(15) == 32
            only_pow = lambda: observer.scheduler_status().status["objects"] == 1  # noqa: E731
            wait_until(only_pow, 10, interval=0.2)
            assert observer.scheduler_status().status["tasks"] == 0
    finally:
        raw.close(0)
        context.term()


def test_a_message_over_the_size_limit_drops_its_sender_only(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(n_workers=1, scheduler_args=("--peer-timeout", "5", "--max-message-bytes", str(1 << 20)))
    context, raw = _welcomed(cluster.address)
    try:
        with Client(cluster.address) as client:
            ref = client.put(b"x" * 1000)
            raw.send_multipart([encode([m.PutObject("huge", 1)]), b"\0" * (4 << 20)])
            time.sleep(0.5)
            assert client.submit(len, ref).result(15) == 1000
            assert client.scheduler_status().status["object_bytes"] < 1 << 20, "the oversized object is not stored"
    finally:
        raw.close(0)
        context.term()
