"""``scaler_init``: OpenGRIS Scaler's way into the Ray API, on a running scheduler or a shaped local cluster.

Each case is a user's script in a fresh interpreter (the Ray API's session is process-wide); the
examples that use it are run by tests/test_ray_compat.py on every path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from scaler import Client, LocalCluster
from tests.conftest import wait_until
from tests.test_ray_compat import loopback_only, need_ray, run_watched

MARKER = "scaler_init_test_cluster"  # a quantity only the test's own cluster has


def run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "SCALER_ADDRESS": "", "RAY_ADDRESS": "", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=full_env
    )
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def running_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(n_workers=1, capabilities=f"cpu=2,{MARKER}=1") as cluster:
        with Client(cluster.address) as client:  # its worker has joined before any script asks for resources
            wait_until(lambda: client.scheduler_status().status["workers"] == 1, timeout=60)
        yield cluster


ON_THE_GIVEN_SCHEDULER = f"""
import os, sys
import psutil
from scaler.compat import ray
from scaler.compat.ray import scaler_init
from scaler.compat.ray import session

context = scaler_init({{address}})
assert session.session().cluster is None, "a local cluster was started"
assert not psutil.Process().children(recursive=True), psutil.Process().children(recursive=True)
assert ray.is_initialized()
assert ray.init().address_info["address"] == context.address_info["address"]  # a bare init joins
resources = ray.cluster_resources()
assert resources.get("{MARKER}") == 1.0 and resources["CPU"] == 2, resources

@ray.remote(resources={{{{"{MARKER}": 1}}}})
def where():
    return os.getppid()

print("WORKER", ray.get(where.remote(), timeout=60))
ray.shutdown()
"""


def test_an_address_uses_that_scheduler_and_starts_no_cluster(running_cluster: LocalCluster) -> None:
    worker_pids = {process.pid for process in running_cluster.workers}
    result = run(ON_THE_GIVEN_SCHEDULER.format(address="address=sys.argv[1]"), running_cluster.address)
    assert int(result.stdout.split("WORKER")[1].split()[0]) in worker_pids, result.stdout


def test_scaler_address_takes_the_local_clusters_place(running_cluster: LocalCluster) -> None:
    """As for ray.init: ``python -m scaler.compat.ray --address`` sets SCALER_ADDRESS, and a
    program's ``scaler_init(n_workers=...)`` then runs on that scheduler."""
    code = ON_THE_GIVEN_SCHEDULER.format(address="n_workers=3")
    result = run(code, env={"SCALER_ADDRESS": running_cluster.address})
    assert "WORKER" in result.stdout


def test_n_workers_and_options_shape_the_local_cluster() -> None:
    code = """
import os
from scaler.compat import ray
from scaler.compat.ray import scaler_init

scaler_init(n_workers=3)
assert len(ray.nodes()) == 3, ray.nodes()  # all joined when scaler_init returns
assert ray.cluster_resources() == {"CPU": 3.0}, ray.cluster_resources()
@ray.remote
def pid():
    import time
    time.sleep(0.3)
    return os.getppid()
assert len(set(ray.get([pid.remote() for _ in range(6)]))) == 3  # one task at a time per worker
ray.shutdown()

scaler_init(n_workers=1, capabilities={"cpu": 2, "gpu": 1}, heartbeat_interval=0.5, peer_timeout=5,
            death_timeout=10, cancel_grace=1, max_queued_tasks=1000, log_level="error")
assert ray.cluster_resources() == {"CPU": 2.0, "GPU": 1.0}, ray.cluster_resources()
assert ray.get(ray.remote(num_gpus=1)(lambda: "gpu").remote(), timeout=60) == "gpu"
ray.shutdown()

scaler_init(capabilities="cpu=1,linux")
assert len(ray.nodes()) == (os.cpu_count() or 1)  # the default: one worker per CPU core
assert ray.cluster_resources()["linux"] == os.cpu_count()
ray.shutdown()
print("SHAPED OK")
"""
    assert "SHAPED OK" in run(code).stdout


def test_a_second_initialization_raises() -> None:
    code = """
from scaler.compat import ray
from scaler.compat.ray import scaler_init

def refused(call, *words):
    try:
        call()
    except RuntimeError as exc:
        assert all(word in str(exc) for word in words), str(exc)
    else:
        raise SystemExit(f"{call} must raise RuntimeError")

scaler_init(n_workers=1)
refused(lambda: scaler_init(n_workers=1), "scaler_init()", "already", "ray.shutdown()")
refused(lambda: ray.init(num_cpus=2), "num_cpus", "scaler_init()")
ray.shutdown()

ray.init(num_cpus=1)
refused(lambda: scaler_init(), "scaler_init()", "already")
refused(lambda: ray.init(), "ray.init twice")  # after ray.init, Ray's own rule stands
ray.shutdown()

@ray.remote
def one():
    return 1
assert ray.get(one.remote()) == 1  # the first Ray call initializes ...
refused(lambda: scaler_init(n_workers=1), "scaler_init()")  # ... so scaler_init comes too late
ray.shutdown()
print("REFUSED OK")
"""
    assert "REFUSED OK" in run(code).stdout


def test_unknown_and_bad_options_raise_clearly() -> None:
    code = """
import psutil
from scaler.compat.ray import scaler_init

def refused(kind, words, **options):
    try:
        scaler_init(**options)
    except kind as exc:
        assert type(exc) is kind and all(word in str(exc) for word in words), (type(exc), str(exc))
    else:
        raise SystemExit(f"scaler_init({options}) must raise {kind.__name__}")

refused(TypeError, ["unknown options: object_storage_address, workers", "n_workers"],
        n_workers=2, workers=2, object_storage_address="tcp://127.0.0.1:1")
refused(ValueError, ["n_workers=0"], n_workers=0)
refused(ValueError, ["n_workers=2.5"], n_workers=2.5)
refused(ValueError, ["peer_timeout=-1"], peer_timeout=-1)
refused(ValueError, ["heartbeat_interval", "peer_timeout"], heartbeat_interval=5, peer_timeout=2)
refused(ValueError, ["log_level='LOUD'"], log_level="LOUD")
refused(ValueError, ["capabilities="], capabilities="cpu=many")
refused(ValueError, ["tcp://HOST:PORT"], address="ray://head:10001")
refused(ValueError, ["n_workers", "with an address"], address="tcp://127.0.0.1:1", n_workers=2)
assert not psutil.Process().children(recursive=True), "a refused scaler_init must start nothing"
print("OPTIONS OK")
"""
    assert "OPTIONS OK" in run(code).stdout


def test_patched_ray_takes_scaler_init_from_the_compat_module() -> None:
    """``import ray`` (the installed Ray, patched) and ``from scaler.compat.ray import scaler_init``."""
    need_ray()
    code = """
import ray
from scaler.compat.ray import scaler_init
scaler_init(n_workers=2)
assert getattr(ray, "__scaler_patched__", False) and not hasattr(ray, "scaler_init")
assert len(ray.nodes()) == 2
assert ray.get(ray.remote(lambda: 7).remote(), timeout=60) == 7
print("PATCHED OK")
"""
    result = run_watched(loopback_only([sys.executable, "-c", code]), dict(os.environ, SCALER_ADDRESS=""))
    assert result.returncode == 0 and "PATCHED OK" in result.stdout, result.stderr[-4000:]
