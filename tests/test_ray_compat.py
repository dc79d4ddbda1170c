"""Unchanged Ray programs through ``python -m scaler.compat.ray``: patch, shim and address paths.

The patch path needs the ``ray`` wheel (a test extra). Anything that imports real Ray runs in a
loopback-only network namespace when this machine allows one, and no test may leave a Ray daemon.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from scaler.utility.net import free_port

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted((ROOT / "tests" / "ray_programs").glob("*.py"))
EXAMPLES = sorted((ROOT / "examples" / "ray").glob("*.py"))
HAVE_RAY = importlib.util.find_spec("ray") is not None
RAY_DAEMONS = ("gcs_server", "raylet", "plasma_store", "dashboard.py", "ray::")


def loopback_only(argv: list[str]) -> list[str]:
    """Wrap a command in a fresh network namespace with only loopback up, when allowed here."""
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip"):
        return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]
    return argv


def ray_daemons() -> list[str]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        text = " ".join(process.info["cmdline"] or []) + " " + (process.info["name"] or "")
        if any(name in text for name in RAY_DAEMONS) and "pytest" not in text:
            found.append(text.strip()[:120])
    return found


def run_program(path: Path, *extra: str, block_ray: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SCALER_LOG_LEVEL="ERROR", RAY_USAGE_STATS_ENABLED="0")
    if block_ray:
        code = "import sys, runpy; sys.modules['ray'] = None; sys.argv = ['scaler.compat.ray', *sys.argv[1:]]; "
        code += "runpy.run_module('scaler.compat.ray', run_name='__main__')"
        argv = [sys.executable, "-c", code, *extra, str(path)]
    else:
        argv = loopback_only([sys.executable, "-m", "scaler.compat.ray", *extra, str(path)])
    return subprocess.run(argv, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)


def check(result: subprocess.CompletedProcess[str], name: str) -> None:
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"


@pytest.fixture(scope="module")
def scheduler_address() -> Iterator[str]:
    address = f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    scheduler = subprocess.Popen([sys.executable, "-m", "scaler.scheduler.main", address], env=env)
    worker = subprocess.Popen([sys.executable, "-m", "scaler.worker.main", address, "-c", "cpu=2"], env=env)
    yield address
    for process in (worker, scheduler):
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_shim_path_without_ray_installed(program: Path) -> None:
    result = run_program(program, block_ray=True)
    check(result, program.stem)
    assert f"PASSED {program.stem}" in result.stdout


@pytest.mark.skipif(not HAVE_RAY, reason="the ray wheel is not installed (pip install -e '.[test]' installs it)")
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_patch_path_with_ray_installed(program: Path) -> None:
    result = run_program(program)
    check(result, program.stem)
    assert f"PASSED {program.stem}" in result.stdout
    assert "Started a local Ray instance" not in result.stderr + result.stdout
    assert not ray_daemons()


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_address_path_against_a_running_scheduler(program: Path, scheduler_address: str) -> None:
    result = run_program(program, "--address", scheduler_address, block_ray=True)
    check(result, program.stem)
    assert f"PASSED {program.stem}" in result.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_run_unchanged(example: Path) -> None:
    check(run_program(example, block_ray=not HAVE_RAY), example.stem)


def test_no_ray_daemon_ever_appears() -> None:
    assert not ray_daemons(), f"Ray daemons are running: {ray_daemons()}"


@pytest.mark.skipif(not HAVE_RAY, reason="the ray wheel is not installed")
def test_patch_works_in_either_import_order() -> None:
    code = (
        "import {first}; import {second}; import ray; "
        "print(getattr(ray, '__scaler_patched__', False), ray.init.__module__)"
    )
    for first, second in (("ray", "scaler.compat.ray"), ("scaler.compat.ray", "ray")):
        result = subprocess.run(
            loopback_only([sys.executable, "-c", code.format(first=first, second=second)]),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.stdout.split() == ["True", "scaler.compat.ray.session"], result.stderr[-2000:]


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
