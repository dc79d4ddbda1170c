from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.protocol import messages as m
from scaler.protocol.wire import ProtocolError, encode, split_batch


def test_round_trip_with_payload_frames() -> None:
    msgs = [m.PutObject("o1", 2), m.Heartbeat(3), m.SubmitTask("t1", "f1", "cpu=1", ["o1"], 1)]
    out = split_batch([encode(msgs), b"a", b"b", b"args"])
    assert [type(x) for x, _ in out] == [m.PutObject, m.Heartbeat, m.SubmitTask]
    assert out[0][1] == [b"a", b"b"] and out[1][1] == [] and out[2][1] == [b"args"]


def test_stream_items_carry_their_frames() -> None:
    item = m.StreamItem("t1", 3, 2, attempt=1, holds=["o1"])
    ready = m.StreamReady("t1", 3, "t1#s3", 1)
    out = split_batch([encode([item, ready, m.StreamReady("t1", 4, "t1#s4")]), b"a", b"b", b"c"])
    assert [x for x, _ in out] == [item, ready, m.StreamReady("t1", 4, "t1#s4")]
    assert [frames for _, frames in out] == [[b"a", b"b"], [b"c"], []]


def test_frame_count_mismatch_is_refused() -> None:
    with pytest.raises(ProtocolError, match="announces 2 payload frames"):
        split_batch([encode([m.PutObject("o1", 2)]), b"only one"])
    with pytest.raises(ProtocolError, match="not announced"):
        split_batch([encode([m.Heartbeat()]), b"stray"])


def test_wrong_types_and_garbage_are_refused() -> None:
    with pytest.raises(ProtocolError):
        split_batch([msgspec.msgpack.encode([["SubmitTask", 5, 6]])])
    with pytest.raises(ProtocolError):
        split_batch([b"\xff\x00garbage"])
    with pytest.raises(ProtocolError):
        split_batch([])


def test_negative_counts_are_refused() -> None:
    run = m.RunTask("t", "f", "cpu=1", [], [m.ObjHeader("x", -3)], 3)
    with pytest.raises(ProtocolError, match="negative"):
        split_batch([encode([run]), b"1", b"2", b"3"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_random_bytes_never_crash_the_decoder(frames: list[bytes]) -> None:
    try:
        split_batch(frames)
    except ProtocolError:
        pass
