"""Another local user cannot use my cluster: a loopback scheduler requires its per-cluster secret.

The "other user" is a real process running as uid ``nobody``. It gets a private copy of the modules a
client needs (root's venv is not readable by other users) and an interpreter it may execute. As a
control, the same process handed the secret does reach the cluster, so a refusal means authentication
refused it, not a harness that cannot connect at all.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaler import Client, LocalCluster
from scaler.utility.security import SECRET_ENV, find_secret, secret_path

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534
PACKAGES = ("zmq", "pyzmq.libs", "msgspec", "cloudpickle", "tblib", "psutil")
ATTEMPT = """
import os, sys
from scaler import Client, ClientConfig, ConnectionFailedError
try:
    client = Client(sys.argv[1], ClientConfig(connect_timeout=4))
except ConnectionFailedError as exc:
    print("REFUSED", exc)
    raise SystemExit(0)
print("RAN AS UID", client.submit(os.getuid).result(30))
"""


def _site_dir(name: str) -> Path:
    spec = importlib.util.find_spec("zmq")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyzmq is not importable")
    return Path(spec.origin).parent.parent / name


def _interpreter_for_nobody() -> str:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (os.path.realpath(sys.executable), f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                user=NOBODY,
                group=NOBODY,
                extra_groups=[],
            )
        except OSError:
            continue
        if probe.stdout.strip() == version:
            return candidate
    pytest.fail(f"no Python {version} interpreter that uid {NOBODY} may run (looked beside {sys.executable}, /usr/bin)")


@pytest.fixture(scope="module")
def as_nobody() -> Iterator[list[str]]:
    if os.geteuid() != 0:
        pytest.skip("switching to another uid needs root")
    home = Path(tempfile.mkdtemp(prefix="scaler-nobody-"))  # not pytest's tmp dirs: a concurrent run may prune them
    for name in PACKAGES:
        shutil.copytree(_site_dir(name), home / name)
    shutil.copytree(ROOT / "scaler", home / "scaler", ignore=shutil.ignore_patterns("__pycache__"))
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield [
        _interpreter_for_nobody(),
        "-I",
        "-c",
        f"import sys; sys.path.insert(0, {str(home)!r}); exec(sys.argv.pop(1))",
    ]
    shutil.rmtree(home, ignore_errors=True)


def attempt(argv: list[str], address: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [*argv, ATTEMPT, address],
        capture_output=True,
        text=True,
        timeout=60,
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        env={"HOME": "/nonexistent", "PATH": "/usr/bin:/bin", **env},
        cwd="/",
    )
    if result.returncode != 0:
        raise AssertionError(f"the other user's client crashed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return result.stdout.strip()


def test_another_uid_is_refused_and_my_own_clients_need_no_step(as_nobody: list[str]) -> None:
    with LocalCluster(n_workers=1) as cluster, Client(cluster.address) as client:
        assert client.submit(os.getuid).result(30) == 0
        secret = find_secret(cluster.address)
        assert secret is not None and secret_path(cluster.address).read_bytes().split(b"\n")[0] == secret
        assert (
            secret_path(cluster.address).stat().st_mode & 0o077 == 0
            and secret_path(cluster.address).parent.stat().st_mode & 0o077 == 0
        )
        outcome = attempt(as_nobody, cluster.address, {})
        assert outcome.startswith("REFUSED") and "cluster secret" in outcome, outcome
        wrong = attempt(as_nobody, cluster.address, {SECRET_ENV: "0" * 48})
        assert wrong.startswith("REFUSED"), wrong
        control = attempt(as_nobody, cluster.address, {SECRET_ENV: secret.decode()})
        assert control == "RAN AS UID 0", "the harness itself must be able to reach the cluster"
    assert not secret_path(cluster.address).exists(), "a stopped scheduler removes its secret"


def test_a_scheduler_started_by_hand_is_found_by_a_client_of_the_same_user() -> None:
    from scaler.utility.net import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "scaler.scheduler.main", address], env=env, stdout=subprocess.PIPE
    )
    worker = subprocess.Popen([sys.executable, "-m", "scaler.worker.main", address], env=env)
    try:
        assert scheduler.stdout is not None and scheduler.stdout.readline().startswith(b"SCALER_ADDRESS")
        with Client(address) as client:
            assert client.submit(pow, 2, 8).result(30) == 256
    finally:
        worker.terminate()
        scheduler.terminate()
        worker.wait(10)
        scheduler.wait(10)


def test_a_client_started_with_the_scheduler_is_not_misled_by_a_killed_schedulers_secret() -> None:
    from scaler.utility.net import free_port
    from scaler.utility.security import write_secret

    port = free_port()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    address = f"tcp://127.0.0.1:{port}"
    path = write_secret(address, b"stale" * 8)
    path.write_bytes(b"stale" * 8 + b"\n" + str(gone.pid).encode())  # as a SIGKILLed scheduler leaves it
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    scheduler = subprocess.Popen([sys.executable, "-m", "scaler.scheduler.main", address], env=env)
    worker = subprocess.Popen([sys.executable, "-m", "scaler.worker.main", address], env=env)
    try:
        with Client(address) as client:  # dialed before the scheduler has bound, most likely
            assert client.submit(pow, 3, 3).result(30) == 27
    finally:
        worker.terminate()
        scheduler.terminate()
        worker.wait(10)
        scheduler.wait(10)


def test_the_secret_is_only_ever_offered_to_the_loopback_scheduler_it_belongs_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scaler.utility.security import SECRET_ADDRESS_ENV, write_secret

    monkeypatch.setenv("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="scaler-xdg-"))
    write_secret("tcp://127.0.0.1:41000", b"one")
    write_secret("tcp://127.0.0.2:41000", b"two")
    assert find_secret("tcp://127.0.0.1:41000") == b"one" and find_secret("tcp://localhost:41000") == b"one"
    assert find_secret("tcp://127.0.0.2:41000") == b"two", "two loopback hosts on one port keep their own"
    assert find_secret("tcp://203.0.113.9:41000") is None, "never to another host, whatever the port"
    monkeypatch.setenv(SECRET_ENV, "from-env")
    monkeypatch.setenv(SECRET_ADDRESS_ENV, "tcp://127.0.0.1:41000")
    assert find_secret("tcp://127.0.0.1:41000") == b"from-env"
    assert find_secret("tcp://127.0.0.2:41000") == b"two", "an inherited secret is only for its own cluster"
    assert find_secret("tcp://203.0.113.9:41000") is None
