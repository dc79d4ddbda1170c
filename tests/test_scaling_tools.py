"""The dry-run simulator, scaler_top, and scaler_cluster --config, as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from scaler import Client, LocalCluster
from scaler.config import load_config
from scaler.scaling.simulate import TraceTask, read_trace, simulate
from scaler.utility.net import free_port
from tests.conftest import wait_until

SIM_CONFIG = """
[scaling]
idle_timeout = 5
stabilization_window = 5
[[adapter]]
provider = "fake"
options = { boot_seconds = 5 }
[[adapter.group]]
name = "cpu"
capabilities = "cpu=1"
max_units = 20
"""


def test_simulation_replays_a_trace_through_the_policy(tmp_path: Path) -> None:
    config_path = tmp_path / "sim.toml"
    config_path.write_text(SIM_CONFIG)
    result = simulate(load_config(config_path), [TraceTask(0.0, 1.0, "cpu=1")] * 200, boot_seconds=5)
    assert 15.0 <= result.makespan <= 15.5, "10 s of work on 20 workers after a 5 s boot"
    assert result.peak_workers == 20 and result.reversals == 0
    assert result.timeline[-1][1] == 0, "every unit is gone after the idle timeout"
    late = simulate(load_config(config_path), [TraceTask(0, 1, "cpu=1"), TraceTask(30, 1, "cpu=1")], 5)
    assert [d.action for _, d in late.decisions] == ["launch", "terminate", "launch", "terminate"]


def test_simulator_command_and_trace_errors(tmp_path: Path) -> None:
    (tmp_path / "sim.toml").write_text(SIM_CONFIG)
    (tmp_path / "trace.csv").write_text("arrival,duration,capabilities\n" + "0,2,cpu=1\n" * 30)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scaler.scaling.simulate",
            "--config",
            str(tmp_path / "sim.toml"),
            "--trace",
            str(tmp_path / "trace.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "makespan_s=" in result.stdout and "launch 20" in result.stdout
    (tmp_path / "bad.csv").write_text("0,2\nsoon,1\n")
    try:
        read_trace(tmp_path / "bad.csv")
        raise AssertionError("a bad trace must be refused")
    except ValueError as exc:
        assert "bad.csv:2" in str(exc)


def test_scaler_top_shows_queues_workers_and_decisions() -> None:
    with LocalCluster(n_workers=1) as cluster, Client(cluster.address) as client:
        client.options(capabilities="cpu=1,gpu=1").submit(pow, 2, 2)
        wait_until(lambda: client.scheduler_status().status.get("queue[cpu=1,gpu=1]") == 1)
        result = subprocess.run(
            [sys.executable, "-m", "scaler.top.main", cluster.address, "--once"],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, COLUMNS="160"),
        )
    assert result.returncode == 0, result.stderr
    for text in ("queues by capability set", "cpu=1,gpu=1", "workers", "adapters and groups", "scaling decisions"):
        assert text in result.stdout


def test_scaler_cluster_with_a_config_scales_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "cluster.toml"
    config.write_text(f"""
[scheduler]
address = "tcp://127.0.0.1:{port}"
[scaling]
idle_timeout = 1
stabilization_window = 1
[[adapter]]
provider = "local"
name = "c{port}"
reconcile_interval = 0.3
state_dir = "{tmp_path}"
[[adapter.group]]
name = "cpu"
capabilities = "cpu=1"
max_units = 3
""")
    cluster = subprocess.Popen(
        [sys.executable, "-m", "scaler.cluster.main", "--config", str(config), "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert cluster.stdout is not None and "scaler cluster at" in cluster.stdout.readline()
        with Client(f"tcp://127.0.0.1:{port}") as client:
            start = time.monotonic()
            futures = [client.submit(time.sleep, 0.5) for _ in range(30)]
            wait_until(lambda: client.scheduler_status().status["workers"] >= 1, 20)
            assert time.monotonic() - start < 15, "workers appear soon after work is submitted"
            client.get(futures, timeout=60)
            wait_until(lambda: client.scheduler_status().status["workers"] == 0, 20)
        cluster.send_signal(signal.SIGINT)
        assert cluster.wait(30) == 0
    finally:
        cluster.kill()
    left = [p for p in psutil.process_iter(["cmdline"]) if f"c{port}-{port}." in " ".join(p.info["cmdline"] or [])]
    assert not left
