"""User scripts as users write them: no main guard, functions in __main__, prompt exit."""

from __future__ import annotations

import json
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
    # The workers share this script's file descriptors 1 and 2, so text a task prints reaches the
    # script's stdout whether or not it is streamed. What the client receives it writes with
    # sys.stdout.write / sys.stderr.write, so swapping those for StringIO captures exactly that.
    code = """
import io, json, sys, time
from scaler import Client, LocalCluster

def talk(x):
    print(f"hello from task {x}")
    print(f"to stderr from task {x}", file=sys.stderr)
    return x

def until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)

out, err = io.StringIO(), io.StringIO()
with LocalCluster(n_workers=1) as cluster, Client(cluster.address) as client:
    sys.stdout, sys.stderr = out, err
    try:
        assert client.options(stream_output=True).submit(talk, 7).result(30) == 7
        until(lambda: "task 7" in out.getvalue() and "task 7" in err.getvalue())
        assert client.submit(talk, 8).result(30) == 8
        time.sleep(1.0)  # room for any (wrongly) streamed text of task 8 to arrive
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
print("CAPTURED", json.dumps([out.getvalue(), err.getvalue()]))
"""
    result = run_script(code)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("CAPTURED "))
    streamed_out, streamed_err = json.loads(line[len("CAPTURED ") :])
    assert "hello from task 7" in streamed_out, "a streamed task's stdout must reach the client"
    assert "to stderr from task 7" in streamed_err, "a streamed task's stderr must reach the client's stderr"
    assert "to stderr" not in streamed_out and "hello" not in streamed_err, "each stream keeps its own"
    assert "task 8" not in streamed_out + streamed_err, "a task that did not ask must not stream"
    assert "hello from task 8" in result.stdout, "unstreamed text stays on the worker's own stdout"


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


def test_quickstart_example_runs() -> None:
    """The README's first command runs examples/quickstart.py: it must work as shipped."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=script.parent.parent,
        env=dict(os.environ, SCALER_LOG_LEVEL="WARNING"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("cluster at tcp://127.0.0.1:") and lines[0].endswith("with 2 workers")
    assert "2 ** 10 = 1024" in lines
    assert any(line.startswith("100 column means from one shared 0.8 MB matrix: first ") for line in lines)
    squares = sum(x * x for x in range(40))
    assert f"sum of 40 squares = {squares}" in lines and f"chained sum = {squares}" in lines
    assert "caught: tasks raise their own exceptions, with the remote traceback" in lines
    assert lines[-1].startswith("done in ")
    assert "Traceback" not in result.stderr, result.stderr
    assert time.monotonic() - start < 60
