"""SSH bootstrap against a real "host": this machine, through a test Remote that runs each command with bash
in a fresh process (its own $HOME) and writes files for real. The host interpreter is Debian's
/usr/bin/python3, which has no scaler; the bundle is offline, so the host installs from the sent wheels only."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from scaler.adapters.errors import ConfigurationError
from scaler.adapters.ssh.bootstrap import MARKER, Bundle, bundle, ensure, source_digest
from scaler.adapters.ssh.channel import Completed, RemoteCommandError

HOST_PYTHON = "/usr/bin/python3"
pytestmark = pytest.mark.skipif(not os.access(HOST_PYTHON, os.X_OK), reason=f"{HOST_PYTHON} is missing")


class LocalHost:
    """A ``Remote`` that is this machine: ``bash -c`` per command (as a login shell runs an SSH command),
    ``put`` as real files; it keeps the commands it ran."""

    def __init__(self, name: str, home: Path) -> None:
        self.name, self.home = name, home
        home.mkdir(parents=True, exist_ok=True)
        drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
        self.environment = {key: value for key, value in os.environ.items() if key not in drop} | {"HOME": str(home)}
        self.commands: list[str] = []
        self.results: list[Completed] = []

    def run(self, command: str, stdin: bytes = b"", timeout: float = 60.0) -> Completed:
        self.commands.append(command)
        done = subprocess.run(
            ["bash", "-c", command],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            env=self.environment,
            cwd=self.home,
        )
        self.results.append(Completed(done.returncode, done.stdout, done.stderr))
        return self.results[-1]

    def put(self, path: str, data: bytes, mode: int = 0o600) -> None:
        target = self.home / path[2:] if path.startswith("~/") else Path(path)
        missing = [parent for parent in target.parents if not parent.exists()]
        for parent in reversed(missing):
            parent.mkdir(mode=0o700)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)


def host_import(python: str, host: LocalHost) -> str:
    """Where the host's venv imports scaler from, after importing the worker's entry module."""
    code = "import scaler.worker.main, scaler; print(scaler.__file__)"
    done = subprocess.run([python, "-c", code], capture_output=True, env=host.environment, cwd=host.home, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


@pytest.fixture(scope="module")
def offline_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return bundle(tmp_path_factory.mktemp("wheels"), offline=True)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, offline_bundle: Bundle) -> tuple[LocalHost, str]:
    """A bare host bootstrapped once: (host, the venv's python)."""
    host = LocalHost("bare-1", tmp_path_factory.mktemp("host"))
    return host, ensure(host, "~/.scaler/venv", HOST_PYTHON, offline_bundle)


def test_a_bare_host_gets_a_venv_that_runs_workers(installed: tuple[LocalHost, str], offline_bundle: Bundle) -> None:
    host, python = installed
    venv = host.home / ".scaler" / "venv"
    assert python == f"{venv}/bin/python"
    assert host_import(python, host).startswith(str(venv / "lib"))
    assert (venv / MARKER).read_text() == offline_bundle.build_id
    assert sorted(path.name for path in venv.parent.iterdir()) == ["venv", "venv.lock"]  # staging dir removed


def test_a_second_ensure_runs_one_command(installed: tuple[LocalHost, str], offline_bundle: Bundle) -> None:
    host, python = installed
    before = len(host.commands)
    started = time.monotonic()
    assert ensure(host, "~/.scaler/venv", HOST_PYTHON, offline_bundle) == python
    assert len(host.commands) == before + 1
    assert time.monotonic() - started < 2.0


def test_another_build_is_reinstalled(installed: tuple[LocalHost, str], offline_bundle: Bundle) -> None:
    host, python = installed
    site = Path(host_import(python, host)).parent
    (site / "worker" / "main.py").write_text("raise SystemExit('a broken build')\n")
    other = Bundle(offline_bundle.wheels, "another-build", offline=True)  # same version, another build
    assert ensure(host, "~/.scaler/venv", HOST_PYTHON, other) == python
    host_import(python, host)  # works again: scaler was replaced, not found "already satisfied"
    assert (host.home / ".scaler" / "venv" / MARKER).read_text() == "another-build"
    ensure(host, "~/.scaler/venv", HOST_PYTHON, offline_bundle)  # back, for the other tests
    assert (host.home / ".scaler" / "venv" / MARKER).read_text() == offline_bundle.build_id


def test_a_missing_interpreter_names_the_host(tmp_path: Path, offline_bundle: Bundle) -> None:
    host = LocalHost("bare-2", tmp_path / "home")
    with pytest.raises(ConfigurationError, match=r"host bare-2: no-such-python3 not found; set python="):
        ensure(host, "~/venv", "no-such-python3", offline_bundle)
    assert len(host.commands) == 1
    assert not (tmp_path / "home" / "venv").exists()


def test_a_failing_step_names_the_host_and_the_step(tmp_path: Path, offline_bundle: Bundle) -> None:
    python = tmp_path / "python3"  # a Python whose venv module is missing, as on Debian without python3-venv
    python.write_text(
        f'#!/bin/sh\n[ "$1" = -m ] && {{ echo "No module named venv" >&2; exit 1; }}\nexec {HOST_PYTHON} "$@"\n'
    )
    python.chmod(0o755)
    host = LocalHost("bare-3", tmp_path / "home")
    with pytest.raises(RemoteCommandError, match=r"host bare-3: creating the venv exited 11: No module named venv"):
        ensure(host, "~/venv", str(python), offline_bundle)
    assert sorted(path.name for path in host.home.iterdir()) == ["venv.lock"]  # staging dir removed


def test_two_adapters_at_once_install_once(tmp_path: Path, offline_bundle: Bundle) -> None:
    """Both return a working venv; the lock makes the second wait, then find the build installed."""
    venv = str(tmp_path / "odd dir's" / "venv")  # a path that needs quoting
    hosts = [LocalHost(f"adapter-{index}", tmp_path / f"home-{index}") for index in range(2)]
    results: list[str | BaseException] = []

    def bootstrap(host: LocalHost) -> None:
        try:
            results.append(ensure(host, venv, HOST_PYTHON, offline_bundle))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=bootstrap, args=(host,)) for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [f"{venv}/bin/python"] * 2
    host_import(f"{venv}/bin/python", hosts[0])
    locked = [done.stderr for host in hosts for done in host.results if b"Processing" in done.stderr]
    assert len(locked) == 1 and b"Successfully installed" in locked[0]  # one installed; the other found it done
    assert Path(venv, MARKER).read_text() == offline_bundle.build_id
    assert len(list(Path(venv).glob("lib/python3*/site-packages/scaler-*.dist-info"))) == 1


def test_the_wheels_are_built_once_per_source_state(offline_bundle: Bundle) -> None:
    cache = offline_bundle.wheels[0].parent.parent
    built = {path: path.stat().st_mtime_ns for path in offline_bundle.wheels}
    started = time.monotonic()
    again = bundle(cache, offline=True)
    assert time.monotonic() - started < 2.0
    assert again == offline_bundle and {path: path.stat().st_mtime_ns for path in again.wheels} == built
    key = offline_bundle.wheels[0].parent.name
    assert sorted(path.name for path in cache.iterdir()) == [key, "installed"]
    assert [path.name.split("-")[0] for path in again.wheels][:1] == ["scaler"]


def test_a_changed_tree_has_another_key(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "__pycache__").mkdir()
    before = source_digest(tmp_path)
    (tmp_path / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"ignored")
    assert source_digest(tmp_path) == before
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    assert source_digest(tmp_path) != before
