"""CurveZMQ: non-loopback binds need keys or --insecure; a wrong key is refused."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scaler import Client, ClientConfig, ConnectionFailedError
from scaler.utility.net import free_port
from scaler.utility.security import generate


def start_command(module: str, first_line: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m module args`` and return it with its first stdout line, which must start so."""
    argv = [sys.executable, "-m", module, *args]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(first_line):
        process.kill()
        raise AssertionError(f"{module} did not start: {line} {process.stderr.read() if process.stderr else ''}")
    return process, line


def start_scheduler(*args: str) -> tuple[subprocess.Popen[str], str]:
    process, line = start_command("scaler.scheduler.main", "SCALER_ADDRESS", *args)
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
        assert time.monotonic() - start < 15
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


def test_insecure_flag_allows_a_wildcard_bind_reached_over_loopback() -> None:
    port = free_port()
    scheduler, address = start_scheduler(f"tcp://0.0.0.0:{port}", "--insecure")
    dial = f"tcp://127.0.0.1:{port}"
    worker = subprocess.Popen([sys.executable, "-m", "scaler.worker.main", dial])
    try:
        assert address.endswith(f":{port}")
        with Client(dial, ClientConfig(connect_timeout=10)) as client:
            assert client.submit(pow, 3, 4).result(30) == 81
    finally:
        worker.terminate()
        scheduler.terminate()
        worker.wait(10)
        scheduler.wait(10)


def start_cluster(*args: str) -> tuple[subprocess.Popen[str], str]:
    extra = ("--workers", "1", "--log-level", "WARNING")
    return start_command("scaler.cluster.main", "scaler cluster at ", *args, *extra)


def stop_cluster(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        assert process.wait(15) == 0
    finally:
        process.kill()
        process.wait(5)


def test_scaler_cluster_passes_insecure_to_its_scheduler() -> None:
    port = free_port()
    refused = subprocess.run(
        [sys.executable, "-m", "scaler.cluster.main", f"tcp://0.0.0.0:{port}", "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "without CurveZMQ keys" in refused.stderr and "--insecure" in refused.stderr
    process, line = start_cluster(f"tcp://0.0.0.0:{port}", "--insecure")
    try:
        assert f"tcp://127.0.0.1:{port}" in line and f"bound to tcp://0.0.0.0:{port}" in line
        with Client(f"tcp://127.0.0.1:{port}", ClientConfig(connect_timeout=10)) as client:
            assert client.submit(pow, 2, 7).result(30) == 128
    finally:
        stop_cluster(process)


def test_scaler_cluster_passes_curve_keys_to_its_scheduler_and_workers(tmp_path: Path) -> None:
    keys = generate(tmp_path / "keys")
    address = f"tcp://127.0.0.1:{free_port()}"
    process, _ = start_cluster(address, "--curve-keys", str(keys.directory))
    try:
        with Client(address, ClientConfig(curve_keys=str(keys.directory), connect_timeout=10)) as client:
            assert client.submit(pow, 2, 9).result(30) == 512, "the cluster's own workers authenticate too"
        with pytest.raises(ConnectionFailedError):
            Client(address, ClientConfig(connect_timeout=2))
    finally:
        stop_cluster(process)


def test_scaler_cluster_with_a_config_passes_curve_keys_to_scheduler_adapters_and_workers(tmp_path: Path) -> None:
    keys = generate(tmp_path / "keys")
    port = free_port()
    config = tmp_path / "cluster.toml"
    config.write_text(f"""
[scheduler]
address = "tcp://127.0.0.1:{port}"
[[adapter]]
provider = "local"
name = "k{port}"
reconcile_interval = 0.3
state_dir = "{tmp_path}"
[[adapter.group]]
name = "cpu"
capabilities = "cpu=1"
max_units = 1
""")
    args = ("--config", str(config), "--curve-keys", str(keys.directory), "--log-level", "WARNING")
    process, _ = start_command("scaler.cluster.main", "scaler cluster at", *args)
    try:
        address = f"tcp://127.0.0.1:{port}"
        with Client(address, ClientConfig(curve_keys=str(keys.directory), connect_timeout=10)) as client:
            assert client.submit(pow, 3, 5).result(60) == 243, "the adapter's workers authenticate too"
        with pytest.raises(ConnectionFailedError):
            Client(address, ClientConfig(connect_timeout=2))
    finally:
        stop_cluster(process)


def test_a_stopped_local_cluster_s_secret_is_forgotten_so_a_later_scheduler_on_its_port_is_dialled_right() -> None:
    from scaler import LocalCluster
    from scaler.utility.security import handed_secret

    with LocalCluster(n_workers=1) as cluster:
        assert handed_secret(cluster.bind_address) is not None
        address = cluster.bind_address
    assert handed_secret(address) is None, "a scheduler reusing the port would be offered a dead cluster's secret"
