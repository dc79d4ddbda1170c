"""No peer can stop the scheduler or touch what is not its own (issue 10, parts 1, 2 and 4).

Raw peers of every kind say a well-formed Hello and then send well-typed but hostile values: every
message type, with empty, huge, negative and non-finite numbers, odd capability strings, ids of other
peers' tasks and objects, and forged shared-memory descriptors. The scheduler must drop them (counted
as rejected where it can tell) and keep serving a normal client, whose objects stay intact.
"""

from __future__ import annotations

import math
import time
import typing
from collections.abc import Iterator
from typing import Any

import msgspec
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler import BackpressureError, Client, ClientConfig, LocalCluster, LocalClusterConfig
from scaler.protocol import messages as m
from scaler.protocol.wire import encode, split_batch
from scaler.utility import shm
from scaler.utility.sockets import dial

KINDS = ("client", "worker", "adapter", "monitor", "client@elsewhere")
MESSAGES = sorted(
    (c for c in vars(m).values() if isinstance(c, type) and issubclass(c, m.Msg) and c is not m.Msg),
    key=lambda c: c.__name__,
)


class RawPeer:
    """A peer that authenticated and said a proper Hello, and will now misbehave."""

    def __init__(self, address: str, kind: str) -> None:
        kind, _, host = kind.partition("@")  # kind@elsewhere: a peer on another host (payloads expanded)
        self.context: zmq.Context[Any] = zmq.Context()
        self.socket = dial(self.context, kind[0], address, None)
        self.socket.connect(address)
        domain = f"{host}/boot" if host else shm.host_domain()
        hello = m.Hello(kind, m.PROTOCOL_VERSION, f"hostile-{kind}", "cpu=1", domain=domain)
        self.socket.send_multipart([encode([hello])])
        if not self.socket.poll(10_000):
            raise AssertionError(f"no Welcome for the {kind}'s hello")
        ((welcome, _),) = split_batch(self.socket.recv_multipart())
        if not isinstance(welcome, m.Welcome):
            raise AssertionError(f"expected Welcome, got {welcome!r}")
        self.shm_prefix = welcome.shm_prefix

    def send(self, msg: Any, frames: list[bytes]) -> None:
        self.socket.send_multipart([encode([msg]), *frames])
        while self.socket.poll(0):
            self.socket.recv_multipart()

    def close(self) -> None:
        self.socket.close(0)
        self.context.term()


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    config = LocalClusterConfig(scheduler_args=("--peer-timeout", "30"))
    with LocalCluster(n_workers=1, config=config) as made:
        yield made


def status(client: Client) -> dict[str, Any]:
    return dict(client.scheduler_status().status)


def test_a_forged_descriptor_from_a_peer_on_another_host_is_rejected_and_nothing_stops(cluster: LocalCluster) -> None:
    with Client(cluster.address) as client:
        before = status(client)["rejected_messages"]
        local = RawPeer(cluster.address, "client")
        remote = RawPeer(cluster.address, "client@elsewhere")
        try:
            forged = shm.REF_MAGIC + f"{local.shm_prefix}999-0".encode()
            local.send(m.PutObject("ghost", 1), [forged])
            remote.send(m.GetObject("ghost"), [])
            time.sleep(0.5)
            assert client.submit(pow, 2, 5).result(15) == 32
            assert status(client)["rejected_messages"] >= before + 1
        finally:
            local.close()
            remote.close()


def test_an_adapter_reporting_a_bad_capability_is_rejected_while_a_task_waits(cluster: LocalCluster) -> None:
    with Client(cluster.address) as client:
        waiting = client.options(capabilities="cpu=1,never_served").submit(pow, 2, 2)
        adapter = RawPeer(cluster.address, "adapter")
        try:
            before = status(client)["rejected_messages"]
            group = m.GroupSpec("g", "cpu=1,bad label!", 1, 0, 4)
            adapter.send(m.AdapterState("hostile", [group], []), [])
            bad_bounds = m.GroupSpec("h", "cpu=1,never_served", 1, 5, 1)
            adapter.send(m.AdapterState("hostile", [bad_bounds], []), [])
            time.sleep(1.5)
            assert status(client)["rejected_messages"] == before + 2
            assert client.submit(pow, 3, 3).result(15) == 27
        finally:
            adapter.close()
            waiting.cancel()


def test_another_clients_object_is_never_overwritten_read_through_a_descriptor_or_unlinked(
    cluster: LocalCluster,
) -> None:
    with Client(cluster.address) as owner:
        array = np.arange(1 << 20, dtype=np.int64)
        ref = owner.put(array)
        segments = [name for name in _segments() if name.startswith(owner._shm_prefix)]
        assert segments, "the owner's put went to shared memory"
        thief = RawPeer(cluster.address, "client")
        try:
            before = status(owner)["rejected_messages"]
            thief.send(m.PutObject(ref.object_id, 1), [b"\x80\x05N."])  # pickle of None
            stolen = shm.REF_MAGIC + segments[0].encode()
            thief.send(m.PutObject("theirs", 1), [stolen])
            thief.send(m.Release(["theirs", ref.object_id]), [])
            time.sleep(0.5)
            assert status(owner)["rejected_messages"] == before + 2
            assert np.array_equal(owner.submit(np.copy, ref).result(15), array)
            assert segments[0] in _segments(), "a forged descriptor plus Release unlinked the owner's segment"
        finally:
            thief.close()


def _segments() -> list[str]:
    import os

    return os.listdir(shm.SHM_DIR) if shm.available() else []


def test_queued_bytes_count_shared_memory_arguments_at_their_real_size() -> None:
    config = LocalClusterConfig(scheduler_args=("--max-queued-bytes", str(20 << 20)))
    with LocalCluster(n_workers=1, config=config) as made:
        client = Client(made.address, ClientConfig(backpressure_timeout=1.0))
        try:
            blocker = client.submit(time.sleep, 30)
            arrays = []
            with pytest.raises(BackpressureError):
                for _ in range(20):
                    arrays.append(client.submit(np.sum, np.ones(1 << 20, dtype=np.float64)))  # 8 MiB each
            assert len(arrays) <= 3, f"{len(arrays)} tasks of 8 MiB were queued under a 20 MiB limit"
            blocker.cancel()
            ref = client.put(np.ones(4 << 20, dtype=np.uint8))
            assert status(client)["object_bytes"] >= 4 << 20, "an object in shared memory counts its size"
            del ref
        finally:
            client.close()


# -- property: hostile values of every message type from every kind of peer -------------------------

NUMBERS = st.one_of(st.sampled_from([0, -1, 1, 2**31, -(2**31), 2**63 - 1, -(2**63)]), st.integers(-(10**6), 10**6))
FLOATS = st.one_of(st.sampled_from([0.0, -1.0, math.inf, -math.inf, math.nan, 1e308]), st.floats(-1e6, 1e6))


def _strings(known: list[str]) -> st.SearchStrategy[str]:
    odd = ["", "cpu=1,bad label!", "cpu=-1", "gpu=inf", "=", ",,", "a" * 300, "\x00", "#", "actor.x=1", "cpu=1e309"]
    return st.one_of(st.sampled_from(known), st.sampled_from(odd), st.text(max_size=12))


def _for(tp: Any, known: list[str]) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    if tp is str:
        return _strings(known)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return NUMBERS
    if tp is float:
        return FLOATS
    if tp is type(None):
        return st.none()
    if origin is list:
        return st.lists(_for(typing.get_args(tp)[0], known), max_size=4)
    if origin is dict:
        key, value = typing.get_args(tp)
        return st.dictionaries(_for(key, known), _for(value, known), max_size=3)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return st.one_of(*(_for(arg, known) for arg in typing.get_args(tp)))
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _message(tp, known)
    raise TypeError(f"no strategy for {tp!r}")


def _message(cls: type, known: list[str]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{name: _for(hints[name], known) for name in cls.__struct_fields__})  # type: ignore[attr-defined]


def _frames(prefixes: list[str], segments: list[str]) -> st.SearchStrategy[list[bytes]]:
    names = [f"{p}{n}" for p in prefixes for n in ("0-0", "99-7")] + segments + ["scaler-1-x-", "../etc/passwd"]
    forged = st.sampled_from(names).map(lambda name: shm.REF_MAGIC + name.encode())
    plain = st.sampled_from([b"", b"\x80\x05N.", b"\x00" * 64, b"garbage"])
    return st.lists(st.one_of(forged, plain), max_size=3)


def test_hostile_values_of_every_message_from_every_peer_kind_never_stop_the_scheduler(cluster: LocalCluster) -> None:
    with Client(cluster.address) as client:
        victim = client.put(np.arange(1 << 18, dtype=np.int64))
        waiting = client.options(capabilities="cpu=1,never_served").submit(pow, 1, 1)  # scaling rounds run
        known = [victim.object_id, waiting.object_id, client._ids.prefix, "ghost", "0123456789abcdef"]
        segments = [name for name in _segments() if name.startswith(client._shm_prefix)]
        peers = {kind: RawPeer(cluster.address, kind) for kind in KINDS}
        prefixes = [peer.shm_prefix for peer in peers.values() if peer.shm_prefix]
        started = time.monotonic()

        @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(
            kind=st.sampled_from(KINDS),
            msg=st.sampled_from(MESSAGES).flatmap(lambda cls: _message(cls, known)),
            frames=_frames(prefixes, segments),
            honest_count=st.booleans(),
        )
        def hostile(kind: str, msg: Any, frames: list[bytes], honest_count: bool) -> None:
            if honest_count and "nbufs" in msg.__struct_fields__:
                msg = msgspec.structs.replace(msg, nbufs=len(frames))  # past the wire check, into the engine
            peers[kind].send(msg, frames)

        try:
            hostile()
            assert time.monotonic() - started < 60
            assert cluster.scheduler is not None and cluster.scheduler.poll() is None, "the scheduler died"
            assert client.submit(pow, 2, 10).result(30) == 1024, "the scheduler still serves a normal client"
            assert np.array_equal(client.get(victim, timeout=30), np.arange(1 << 18, dtype=np.int64))
            assert status(client)["rejected_messages"] > 0
        finally:
            waiting.cancel()
            for peer in peers.values():
                peer.close()


def test_one_id_does_not_reveal_the_next(cluster: LocalCluster) -> None:
    with Client(cluster.address) as owner:
        first, second = owner.put("first"), owner.put("second")
        prefix, _, rest = first.object_id.rpartition(".")
        counter = int(rest.split("-")[0], 16)
        guesses = [f"{prefix}.{counter + 1:x}", f"{prefix}.{counter + 1:x}-{rest.split('-')[-1]}"]
        assert second.object_id not in guesses
        thief = RawPeer(cluster.address, "client")
        try:
            for guess in guesses:
                thief.socket.send_multipart([encode([m.GetObject(guess)])])
                assert thief.socket.poll(10_000)
                ((reply, _),) = split_batch(thief.socket.recv_multipart())
                assert isinstance(reply, m.ObjectReply) and not reply.found
            assert owner.get(second, timeout=10) == "second"
        finally:
            thief.close()


def test_a_named_entry_is_never_overwritten_by_another_client(cluster: LocalCluster) -> None:
    with Client(cluster.address) as first, Client(cluster.address) as second:
        assert first.kv_put("ray-actor/tests/shared", "first's") == "first's"
        assert second.kv_put("ray-actor/tests/shared", "second's") == "first's", "another client overwrote it"
        assert first.kv_put("ray-actor/tests/shared", "first's again") == "first's again", "its writer may"
        assert second.kv_get("ray-actor/tests/shared") == "first's again"


def test_a_named_entry_is_deleted_only_by_its_writer_while_it_lives(cluster: LocalCluster) -> None:
    with Client(cluster.address) as first:
        first.kv_put("ray-actor/tests/mine", "first's")
        with Client(cluster.address) as second:
            second.kv_delete("ray-actor/tests/mine")
            assert second.kv_put("ray-actor/tests/mine", "second's") == "first's", "deleted, then taken over"
        first.kv_delete("ray-actor/tests/mine")
        assert first.kv_get("ray-actor/tests/mine") is None


def test_capabilities_that_add_up_to_infinity_are_rejected_and_nothing_stops(cluster: LocalCluster) -> None:
    with Client(cluster.address) as client:
        hostile = RawPeer(cluster.address, "client")
        try:
            before = status(client)["rejected_messages"]
            hostile.send(m.PutObject("fn-1", 1), [b"\x80\x05N."])
            hostile.send(m.SubmitTask("t-1", "fn-1", "cpu=1e308,cpu=1e308", [], 0), [])
            time.sleep(0.5)
            assert status(client)["rejected_messages"] == before + 1
            assert client.submit(pow, 2, 3).result(15) == 8
            assert cluster.scheduler is not None and cluster.scheduler.poll() is None
        finally:
            hostile.close()
