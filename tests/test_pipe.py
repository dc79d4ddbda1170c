"""The agent/task-process framing over a real socketpair: partial reads, big frames, EOF."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from scaler.worker.pipe import FrameReader, PipeClosed, recv_frames, send_frames


def drain(reader: FrameReader, want: int) -> list[list[bytes]]:
    out: list[list[bytes]] = []
    while len(out) < want:
        out.extend([bytes(f) for f in msg] for msg in reader.read())
    return out


def test_messages_of_all_sizes_survive_nonblocking_reassembly() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    reader = FrameReader(ours)
    messages = [[b"header", b""], [os.urandom(3 << 20), b"x"], [b"a"] * 100, [], [os.urandom(70_000)]]

    def writer() -> None:
        for frames in messages:
            send_frames(theirs, frames)

    thread = threading.Thread(target=writer)
    thread.start()
    got = []
    while len(got) < len(messages):
        try:
            got.extend([bytes(f) for f in msg] for msg in reader.read())
        except BlockingIOError:
            pass
    thread.join()
    assert got == [list(m) for m in messages]
    theirs.close()
    with pytest.raises(PipeClosed):
        for _ in range(100):
            reader.read()


def test_blocking_side_reads_what_the_agent_sends() -> None:
    ours, theirs = socket.socketpair()
    payload = [b"h", memoryview(os.urandom(1 << 20))]
    thread = threading.Thread(target=send_frames, args=(ours, payload))
    thread.start()
    got = recv_frames(theirs)
    thread.join()
    assert [bytes(f) for f in got] == [bytes(f) for f in payload]
    ours.close()
    with pytest.raises(PipeClosed):
        recv_frames(theirs)
