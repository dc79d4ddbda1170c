"""Shared-memory segments never outlive their scheduler: a killed scheduler's are swept by the next one
to start, a live one's are never touched, and a LocalCluster whose program was SIGKILLed removes its own."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from scaler import Client, ClientConfig
from scaler.utility import shm
from scaler.utility.net import free_port

# alone: every scheduler that starts sweeps the segments of schedulers that are gone, so another test's
# scheduler starting meanwhile would do the sweep these tests expect their own scheduler to report
pytestmark = [pytest.mark.skipif(not shm.available(), reason="no writable /dev/shm"), pytest.mark.alone]


def segments(pid: int) -> list[str]:
    return glob.glob(f"{shm.SHM_DIR}/scaler-{pid}-*")


def start_scheduler() -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable, "-m", "scaler.scheduler.main", f"tcp://127.0.0.1:{free_port()}", "--log-level", "INFO"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("SCALER_ADDRESS"), line
    return process, line.split()[1]


def put_large(address: str) -> Client:
    client = Client(address, ClientConfig(connect_timeout=10))
    client.put(np.ones(4 << 20, dtype=np.uint8))
    return client


def wait_for(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_a_killed_schedulers_segments_are_swept_by_the_next_and_a_live_ones_are_kept() -> None:
    killed, killed_address = start_scheduler()
    live, live_address = start_scheduler()
    clients = [put_large(killed_address), put_large(live_address)]
    try:
        assert wait_for(lambda: segments(killed.pid) and segments(live.pid), 10), "puts did not go to /dev/shm"
        killed.kill()
        killed.wait(10)
        assert segments(killed.pid), "SIGKILL left the segments in place (what the sweep must clean)"
        newcomer, _ = start_scheduler()
        try:
            assert segments(killed.pid) == []
            assert segments(live.pid), "a live scheduler's segments were swept"
        finally:
            newcomer.terminate()
            _, err = newcomer.communicate(timeout=15)
        assert "removed 1 shared-memory segments (4.0 MiB) left by schedulers that are gone" in err, err
    finally:
        for client in clients:
            client.close()
        live.terminate()
        live.wait(15)
        killed.kill()
    assert segments(live.pid) == [], "a scheduler stopping normally removes its own segments"


PROGRAM = textwrap.dedent("""
    import sys, time
    import numpy as np
    from scaler import Client, LocalCluster
    cluster = LocalCluster(n_workers=1)
    client = Client(cluster.address)
    ref = client.put(np.ones(16 << 20, dtype=np.uint8))
    print(cluster.scheduler.pid, flush=True)
    time.sleep(120)
""")


def test_sigkill_of_a_local_clusters_program_leaves_no_segment() -> None:
    program = subprocess.Popen([sys.executable, "-c", PROGRAM], stdout=subprocess.PIPE, text=True)
    try:
        assert program.stdout is not None
        scheduler_pid = int(program.stdout.readline())
        assert wait_for(lambda: segments(scheduler_pid), 10), "the put did not go to /dev/shm"
        os.kill(program.pid, signal.SIGKILL)
        program.wait(10)
        assert wait_for(lambda: not segments(scheduler_pid), 15), segments(scheduler_pid)
    finally:
        program.kill()
        program.wait(10)
