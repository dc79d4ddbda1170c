"""Unchanged Ray programs through ``python -m scaler.compat.ray``: patch, shim and address paths.

The patch path needs the ``ray`` wheel (a test extra; ``SCALER_REQUIRE_RAY=1`` makes its absence a
failure, not a skip). Anything that imports real Ray runs in a loopback-only network namespace, or
not at all, and a watcher fails the test if a Ray daemon appears while it runs.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from scaler.utility.net import free_port

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted((ROOT / "tests" / "ray_programs").glob("*.py"))
EXAMPLES = sorted((ROOT / "examples" / "ray").glob("*.py"))
HAVE_RAY = importlib.util.find_spec("ray") is not None
REQUIRE_RAY = os.environ.get("SCALER_REQUIRE_RAY") == "1"
RAY_DAEMONS = ("gcs_server", "raylet", "plasma_store", "dashboard.py", "ray::")
ADDRESS_WORKERS = 2
WORKER_CAPABILITIES = "cpu=2,memory=2147483648"


def need_ray() -> None:
    if not HAVE_RAY:
        message = "the ray wheel is not installed (pip install -e '.[test]' installs it)"
        if REQUIRE_RAY:
            pytest.fail(f"SCALER_REQUIRE_RAY=1 but {message}")
        pytest.skip(message)


@functools.cache
def _loopback_prefix() -> tuple[str, ...] | None:
    if not (shutil.which("unshare") and shutil.which("ip")):
        return None
    unshare = ("unshare", "--net") if os.geteuid() == 0 else ("unshare", "--net", "--map-root-user")
    prefix = (*unshare, "sh", "-c", 'ip link set lo up && exec "$@"', "sh")
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
    return prefix if probe.returncode == 0 else None


def loopback_only(argv: list[str]) -> list[str]:
    """``argv`` in a fresh network namespace with only loopback up; never real Ray with a network."""
    prefix = _loopback_prefix()
    if prefix is None:
        message = (
            "REFUSING to import the installed Ray outside a loopback-only network namespace: "
            "`unshare --net` (util-linux) and `ip` (iproute2) must work here"
        )
        if REQUIRE_RAY:
            pytest.fail(message)
        pytest.skip(message)
    return [*prefix, *argv]


def _is_ray_daemon(process: psutil.Process) -> str:
    try:
        text = " ".join(process.cmdline()) + " " + process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""
    return text.strip()[:160] if any(name in text for name in RAY_DAEMONS) and "pytest" not in text else ""


def ray_daemons() -> list[str]:
    return [text for text in map(_is_ray_daemon, psutil.process_iter()) if text]


def _netns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


class DaemonWatch:
    """While a program runs, polls for Ray daemons it started: below it, or in its network namespace."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.found: list[str] = []
        self.own_netns = _netns(os.getpid())
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DaemonWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)

    def _run(self) -> None:
        while True:
            try:
                self._scan()
            except psutil.Error:
                pass
            if self.stop.wait(0.2):
                return

    def _scan(self) -> None:
        suspects = []
        try:
            root = psutil.Process(self.process.pid)
            suspects = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
        netns = _netns(self.process.pid)
        if netns and netns != self.own_netns:
            suspects += [p for p in psutil.process_iter() if _netns(p.pid) == netns]
        for process in suspects:
            text = _is_ray_daemon(process)
            if text and text not in self.found:
                self.found.append(text)


def run_program(path: Path, *extra: str, block_ray: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SCALER_LOG_LEVEL="ERROR", RAY_USAGE_STATS_ENABLED="0")
    if block_ray:
        code = "import sys, runpy; sys.modules['ray'] = None; sys.argv = ['scaler.compat.ray', *sys.argv[1:]]; "
        code += "runpy.run_module('scaler.compat.ray', run_name='__main__')"
        argv = [sys.executable, "-c", code, *extra, str(path)]
    else:
        argv = loopback_only([sys.executable, "-m", "scaler.compat.ray", *extra, str(path)])
    return run_watched(argv, env)


def run_watched(
    argv: list[str], env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to the end, failing if a Ray daemon appears meanwhile."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    with DaemonWatch(process) as watch:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"{argv[-1]} did not finish within {timeout:g}s:\n{out[-3000:]}\n{err[-5000:]}")
    assert not watch.found, f"Ray daemons appeared while {argv[-1]} ran: {watch.found}"
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def check(result: subprocess.CompletedProcess[str], name: str) -> None:
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"


def _wait_for_nodes(address: str, count: int) -> None:
    code = (
        "import sys, time\nfrom scaler.compat import ray\nray.init(address=sys.argv[1])\n"
        "deadline = time.monotonic() + 60\n"
        "while len(ray.nodes()) < int(sys.argv[2]) and time.monotonic() < deadline:\n    time.sleep(0.05)\n"
        "print(len(ray.nodes()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, address, str(count)], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == [str(count)], f"ray.nodes() never reached {count}: {result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def scheduler_address() -> Iterator[str]:
    address = f"tcp://127.0.0.1:{free_port()}"
    # These workers run outside any network namespace and the drivers here use the shim: so must their
    # tasks (``import ray`` in a task would otherwise load the installed Ray, patched, as the patch path does).
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING", SCALER_RAY_SHIM="1")
    processes = [subprocess.Popen([sys.executable, "-m", "scaler.scheduler.main", address], env=env)]
    for _ in range(ADDRESS_WORKERS):
        argv = [sys.executable, "-m", "scaler.worker.main", address, "-c", WORKER_CAPABILITIES]
        processes.append(subprocess.Popen(argv, env=env))
    try:
        _wait_for_nodes(address, ADDRESS_WORKERS)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(10)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_shim_path_without_ray_installed(program: Path) -> None:
    result = run_program(program, block_ray=True)
    check(result, program.stem)
    assert f"PASSED {program.stem}" in result.stdout


@pytest.mark.timeout(300)
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_patch_path_with_ray_installed(program: Path) -> None:
    need_ray()
    result = run_program(program)
    check(result, program.stem)
    assert f"PASSED {program.stem}" in result.stdout
    assert "Started a local Ray instance" not in result.stderr + result.stdout


@pytest.mark.timeout(300)
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_address_path_against_a_running_scheduler(program: Path, scheduler_address: str) -> None:
    result = run_program(program, "--address", scheduler_address, block_ray=True)
    check(result, program.stem)
    assert f"PASSED {program.stem}" in result.stdout


@pytest.mark.timeout(300)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_run_unchanged(example: Path) -> None:
    check(run_program(example, block_ray=not HAVE_RAY), example.stem)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_run_against_a_running_scheduler(example: Path, scheduler_address: str) -> None:
    check(run_program(example, "--address", scheduler_address, block_ray=True), example.stem)


def test_no_ray_daemon_ever_appears() -> None:
    assert not ray_daemons(), f"Ray daemons are running: {ray_daemons()}"


def test_patch_works_in_either_import_order() -> None:
    need_ray()
    code = (
        "import {first}; import {second}; import ray; "
        "print(getattr(ray, '__scaler_patched__', False), ray.init.__module__)"
    )
    for first, second in (("ray", "scaler.compat.ray"), ("scaler.compat.ray", "ray")):
        result = run_watched(loopback_only([sys.executable, "-c", code.format(first=first, second=second)]))
        assert result.stdout.split() == ["True", "scaler.compat.ray.session"], result.stderr[-2000:]


UNSUPPORTED = """
def refused(call, api):
    try:
        call()
    except NotImplementedError as exc:
        assert api in str(exc) and "not supported" in str(exc), (api, str(exc))
    else:
        raise SystemExit(f"{api} must raise NotImplementedError")

refused(lambda: ray.util.placement_group([{"CPU": 1}], topology_strategy={"a": "PACK"}), "topology_strategy")
assert ray.util.get_current_placement_group() is None
refused(lambda: ray.util.list_named_actors(), "ray.util.list_named_actors")
refused(lambda: ray.get_gpu_ids(), "ray.get_gpu_ids")
refused(lambda: ray.timeline(), "ray.timeline")
refused(lambda: ray.remote(square).bind(1).experimental_compile(), "ray.dag.DAGNode.experimental_compile")
try:
    ray.actor.exit_actor()
    raise SystemExit("exit_actor outside an actor must fail")
except TypeError as exc:
    assert "non-actor" in str(exc)
assert ray.util.get_node_ip_address()
print("REFUSED OK")
"""


def test_shim_refuses_unsupported_apis_by_name() -> None:
    code = (
        "from scaler.compat import ray\ndef square(x):\n    return x * x\n"
        + UNSUPPORTED
        + """
refused(lambda: ray.data.range(3), "ray.data")
refused(lambda: ray.util.inspect_serializability(1), "ray.util.inspect_serializability")
assert not hasattr(ray, "data") and getattr(ray, "workflow", None) is None
print("SHIM OK")
"""
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_no_ray_env()
    )
    assert result.returncode == 0 and "REFUSED OK" in result.stdout and "SHIM OK" in result.stdout, result.stderr


def test_patch_refuses_unsupported_apis_by_name() -> None:
    need_ray()
    code = (
        "import ray\nimport ray.util\nimport ray.actor\nimport scaler.compat.ray\n"
        "from ray.util.placement_group import placement_group\n"
        "def square(x):\n    return x * x\n"
        + UNSUPPORTED
        + """
refused(lambda: placement_group([{"CPU": 1}], _soft_target_node_id="ab" * 28), "_soft_target_node_id")
refused(lambda: ray.client("ray://nowhere:10001"), "ray.client")
refused(lambda: ray.java_function("C", "f"), "ray.java_function")
print("PATCH OK")
"""
    )
    result = run_watched(loopback_only([sys.executable, "-c", code]))
    assert result.returncode == 0 and "REFUSED OK" in result.stdout and "PATCH OK" in result.stdout, result.stderr


def _no_ray_env() -> dict[str, str]:
    return dict(os.environ, RAY_ADDRESS="", SCALER_ADDRESS="")


def test_init_sizes_the_local_cluster_and_connects_by_address() -> None:
    code = """
from scaler.compat import ray
ray.init(num_cpus=3, num_gpus=1, resources={"special": 2})
res = ray.cluster_resources()
assert res["CPU"] == 3 and res["GPU"] == 1 and res["special"] == 2, res
@ray.remote(num_gpus=1, resources={"special": 1})
def f():
    return "ran"
assert ray.get(f.remote(), timeout=30) == "ran"
assert len(ray.nodes()) == 1
ray.shutdown()
assert not ray.is_initialized()
try:
    ray.init(address="ray://somewhere:10001")
except NotImplementedError as exc:
    print("REFUSED", exc)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REFUSED" in result.stdout and "tcp://" in result.stdout


def test_first_remote_call_initializes_like_ray() -> None:
    code = """
from scaler.compat import ray
assert not ray.is_initialized()
@ray.remote
def f(x):
    return x + 1
assert ray.get(f.remote(1)) == 2
assert ray.is_initialized()
print("AUTO-INIT OK")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "AUTO-INIT OK" in result.stdout, result.stderr[-3000:]
