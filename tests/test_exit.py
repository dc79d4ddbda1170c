"""Programs that simply end: silently, promptly, and with nothing of their cluster left running.

A Ray script without ``ray.shutdown()`` and a core script that never closes its ``Client`` or
``LocalCluster`` leave the cleanup to the interpreter's exit; a finished Ray example leaves it to
``ray.shutdown()``. Either way, stderr stays empty: a normal end of a program or a cluster is not
a warning (the scheduler logs at its default level, WARNING, as a user sees it). Each script runs
several times, since what failed was a race at interpreter exit.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, cast

import psutil
import pytest

from scaler.protocol import messages as m
from scaler.scheduler.config import SchedulerConfig
from scaler.scheduler.engine import Engine
from scaler.scheduler.outbox import Outbox
from scaler.scheduler.workers import WorkerState
from scaler.utility.capabilities import parse_capabilities
from tests.test_ray_compat import ROOT, loopback_only, need_ray, run_watched

RUNS = 5
EXIT_WITHIN = 3.0  # seconds from the script's last statement to the end of its process
BLOCK_RAY = "import sys; sys.modules['ray'] = None\n"  # never the installed Ray outside a netns
# Counted by the script itself: the processes of its cluster, found by the address they were given.
COUNT_PROCESSES = """
import psutil
def cluster_processes(address):
    found = 0
    for process in psutil.process_iter(["cmdline"]):
        if address in " ".join(process.info["cmdline"] or ()):
            found += 1
    return found
"""

SHIM_SCRIPT = (
    BLOCK_RAY
    + COUNT_PROCESSES
    + """
import time
from scaler.compat import ray

context = ray.init(num_cpus=2)
address = context.address_info["address"]

@ray.remote
def inc(x):
    return x + 1

@ray.remote
class Counter:
    def __init__(self):
        self.n = 0
    def add(self, k):
        self.n += k
        return self.n

counter = Counter.remote()
assert ray.get([inc.remote(i) for i in range(20)]) == list(range(1, 21))
assert ray.get(counter.add.remote(5)) == 5
pending = inc.remote(41)  # submitted, never fetched
print("ADDRESS", address, cluster_processes(address), flush=True)
print("END", time.time(), flush=True)
"""
)

CORE_SCRIPT = (
    COUNT_PROCESSES
    + """
import time
from scaler import Client, LocalCluster

def square(x):
    return x * x

cluster = LocalCluster(n_workers=2)
client = Client(cluster.address)
assert sum(client.get(client.map(square, range(20)))) == 2470
ref = client.put(list(range(1000)))
print("ADDRESS", cluster.address, cluster_processes(cluster.address), flush=True)
print("END", time.time(), flush=True)
"""
)

RAY_PROGRAM = (
    COUNT_PROCESSES
    + """
import time
import ray

address = ray.init().address_info["address"]

@ray.remote
def inc(x):
    return x + 1

assert ray.get(inc.remote(1)) == 2
print("ADDRESS", address, cluster_processes(address), flush=True)
print("END", time.time(), flush=True)
"""
)


def default_env() -> dict[str, str]:
    """This environment as a user's shell has it: default log levels, no scheduler address."""
    env = dict(os.environ)
    for name in ("SCALER_LOG_LEVEL", "SCALER_ADDRESS", "RAY_ADDRESS"):
        env.pop(name, None)
    return env


def leftovers(address: str) -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if address in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{process.pid}: {cmdline}")
    return found


def check_quiet_exit(argv: list[str], min_processes: int, runs: int = RUNS) -> None:
    for run in range(runs):
        result = run_watched(argv, default_env(), timeout=120)
        ended = time.time()
        where = f"run {run}: rc={result.returncode}\nstdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-4000:]}"
        assert result.returncode == 0, where
        assert result.stderr == "", where
        fields = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
        address, processes = fields["ADDRESS"].split()
        assert int(processes) >= min_processes, f"the script saw only {processes} cluster processes"
        assert ended - float(fields["END"]) < EXIT_WITHIN, f"exit took {ended - float(fields['END']):.1f}s; {where}"
        assert not leftovers(address), f"processes outlived the script: {leftovers(address)}"


@pytest.mark.timeout(600)
def test_ray_script_without_shutdown_exits_silently() -> None:
    check_quiet_exit([sys.executable, "-c", SHIM_SCRIPT], min_processes=3)  # scheduler, worker, its tasks


@pytest.mark.timeout(600)
def test_core_script_that_never_closes_exits_silently() -> None:
    check_quiet_exit([sys.executable, "-c", CORE_SCRIPT], min_processes=3)  # scheduler, two workers


@pytest.mark.timeout(600)
def test_ray_program_run_by_the_launcher_exits_silently(tmp_path: Path) -> None:
    program = tmp_path / "no_shutdown.py"
    program.write_text(RAY_PROGRAM)
    code = BLOCK_RAY + "import runpy; sys.argv = ['scaler.compat.ray', *sys.argv[1:]]\n"
    code += "runpy.run_module('scaler.compat.ray', run_name='__main__')"
    check_quiet_exit([sys.executable, "-c", code, str(program)], min_processes=2)


@pytest.mark.timeout(300)
def test_patched_ray_script_without_shutdown_exits_silently() -> None:
    """The installed Ray, patched (in a loopback-only network namespace, as every real-Ray test)."""
    need_ray()
    code = "import ray\nimport scaler.compat.ray\n" + RAY_PROGRAM
    check_quiet_exit(loopback_only([sys.executable, "-c", code]), min_processes=2, runs=3)


@pytest.mark.timeout(300)
def test_a_finished_example_ends_without_warnings() -> None:
    """``examples/ray/map_reduce.py`` (an actor, cancelled with its driver) prints its answer only."""
    example = ROOT / "examples" / "ray" / "map_reduce.py"
    code = BLOCK_RAY + "import runpy; sys.argv = ['scaler.compat.ray', *sys.argv[1:]]\n"
    code += "runpy.run_module('scaler.compat.ray', run_name='__main__')"
    for _ in range(3):
        result = run_watched([sys.executable, "-c", code, str(example)], default_env())
        assert result.returncode == 0, result.stderr[-4000:]
        assert "most common:" in result.stdout
        warnings = [line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
        assert not warnings, result.stderr[-4000:]


# -- what the scheduler calls a warning -----------------------------------------------------


def _engine() -> Engine:
    return Engine(SchedulerConfig(), Outbox(cast(Any, None)))


def _worker(engine: Engine, identity: bytes, caps: str = "cpu=1") -> None:
    parsed = parse_capabilities(caps)
    engine.add_worker(WorkerState(identity, identity.decode(), parsed, parsed.as_dict(), {}))


def _submit(engine: Engine, client: bytes, task_id: str) -> None:
    func_id = f"{task_id}-fn"
    engine.put(client, m.PutObject(func_id, 1), [b"fn"])
    engine.submit(client, m.SubmitTask(task_id, func_id, "cpu=1", [], 0, "f"), [])


def _levels(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "scaler.scheduler.engine"]


def test_a_goodbye_is_info_and_a_vanishing_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scaler.scheduler.engine")
    engine = _engine()
    engine.add_client(b"c1", "closes")
    engine.add_client(b"c2", "vanishes")
    _submit(engine, b"c1", "t1")
    _submit(engine, b"c2", "t2")
    for identity in (b"w1", b"w2", b"w3"):
        _worker(engine, identity)
    engine.client_lost(b"c1", "client closed", said_goodbye=True)
    engine.client_lost(b"c2", "silent for more than 30s")
    engine.worker_lost(b"w1", "worker exiting", said_goodbye=True)
    engine.worker_lost(b"w2", "connection closed")
    engine.pool.set_draining(b"w3", True)  # the scheduler told it to go: its end is expected
    engine.worker_lost(b"w3", "connection closed")
    levels = _levels(caplog)
    info, warning = logging.INFO, logging.WARNING
    assert [level for level, _ in levels] == [info, warning, info, warning, info]
    assert "closes left (client closed): 1 tasks cancelled" in levels[0][1]
    assert "vanishes vanished without closing" in levels[1][1]


def test_a_worker_leaving_with_its_work_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scaler.scheduler.engine")
    engine = _engine()
    engine.add_client(b"c", "client")
    _worker(engine, b"w")
    _submit(engine, b"c", "t1")
    engine.schedule()
    assert engine.tasks["t1"].worker == b"w"
    engine.worker_lost(b"w", "worker exiting", said_goodbye=True)
    level, text = _levels(caplog)[-1]
    assert level == logging.WARNING and "worker w lost (worker exiting): 1 tasks re-queued" in text
