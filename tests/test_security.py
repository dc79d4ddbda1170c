"""CurveZMQ: non-loopback binds need keys or --insecure; a wrong key is refused."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from scaler import Client, ClientConfig, ConnectionFailedError
from scaler.utility.net import free_port
from scaler.utility.security import generate


def start_scheduler(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "scaler.scheduler.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("SCALER_ADDRESS"):
        process.kill()
        raise AssertionError(f"scheduler did not start: {line} {process.stderr.read() if process.stderr else ''}")
    return process, line.split()[1]


def test_non_loopback_bind_without_keys_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scaler.scheduler.main", f"tcp://0.0.0.0:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "without CurveZMQ keys" in result.stderr and "--insecure" in result.stderr


def test_right_key_works_and_wrong_key_is_refused(tmp_path: Path) -> None:
    good = generate(tmp_path / "good")
    bad = generate(tmp_path / "bad")
    (bad.directory / "server.key").write_bytes((good.directory / "server.key").read_bytes())
    scheduler, address = start_scheduler(f"tcp://127.0.0.1:{free_port()}", "--curve-keys", str(good.directory))
    worker = subprocess.Popen(
        [sys.executable, "-m", "scaler.worker.main", address, "--curve-keys", str(good.directory)]
    )
    try:
        with Client(address, ClientConfig(curve_keys=str(good.directory), connect_timeout=10)) as client:
            assert client.submit(pow, 2, 6).result(30) == 64
        start = time.monotonic()
        with pytest.raises(ConnectionFailedError, match=r"CURVE|no answer"):
            Client(address, ClientConfig(curve_keys=str(bad.directory), connect_timeout=5))
        assert time.monotonic() - start < 8
        with pytest.raises(ConnectionFailedError):
            Client(address, ClientConfig(connect_timeout=2))
    finally:
        worker.terminate()
        scheduler.terminate()
        worker.wait(10)
        scheduler.wait(10)


def test_keygen_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scaler.utility.keygen", str(tmp_path / "k")], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    assert {p.name for p in (tmp_path / "k").iterdir()} >= {
        "server.key",
        "server.key_secret",
        "client.key",
        "authorized",
    }
