"""User scripts as users write them: no main guard, functions in __main__, prompt exit."""

from __future__ import annotations

import time

from tests.conftest import run_script

NO_GUARD = """
import os, sys
from scaler import Client, LocalCluster
print("SCRIPT-RAN", os.getpid(), flush=True)

def square(x):
    return x * x

class Acc:
    def __init__(self, k): self.k = k
    def __call__(self, x): return x + self.k

cluster = LocalCluster(n_workers=2)
client = Client(cluster.address)
print("RESULT", sum(client.get(client.map(square, range(100)))), client.submit(Acc(5), 1).result())
"""


def test_script_without_main_guard_runs_once_and_exits_promptly() -> None:
    start = time.monotonic()
    result = run_script(NO_GUARD, timeout=60)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("SCRIPT-RAN") == 1, "children must not re-run the user's script"
    assert "RESULT 328350 6" in result.stdout
    assert elapsed < 15


def test_stream_output_reaches_the_client() -> None:
    code = """
import sys
from scaler import Client, LocalCluster

def talk(x):
    print(f"hello from task {x}")
    print("to stderr", file=sys.stderr)
    return x

with LocalCluster(n_workers=1) as cluster, Client(cluster.address) as client:
    assert client.options(stream_output=True).submit(talk, 7).result() == 7
    client.submit(talk, 8).result()
"""
    result = run_script(code)
    assert result.returncode == 0, result.stderr
    assert "hello from task 7" in result.stdout
    assert "to stderr" in result.stderr


def test_scaler_cluster_command_serves_until_interrupted() -> None:
    import signal
    import subprocess
    import sys

    from scaler import Client
    from scaler.utility.net import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "scaler.cluster.main", address, "--workers", "2", "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and address in process.stdout.readline()
        with Client(address) as client:
            assert client.submit(pow, 5, 2).result(30) == 25
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
    finally:
        process.kill()
