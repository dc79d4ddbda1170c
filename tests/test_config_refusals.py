"""Bad configuration is refused at start with the file (or flag), the key and the reason; exit code 2."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scaler import Client, ClientConfig
from scaler.config import ConfigError, load_config
from scaler.utility.net import free_port


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60)


BAD_VALUES = [
    ("[scheduler]\npeer_timeout = -1", "$.scheduler.peer_timeout", "> 0.0"),
    ("[scheduler]\nheartbeat_interval = 0", "$.scheduler.heartbeat_interval", "> 0.0"),
    ("[scheduler]\nmax_queued_tasks = -5", "$.scheduler.max_queued_tasks", ">= 1"),
    ("[scheduler]\nprefetch = -1", "$.scheduler.prefetch", ">= 0"),
    ("[scheduler]\nmax_queued_bytes = 99999999999999999999", "$.scheduler.max_queued_bytes", "<="),
    ("[scheduler]\npeer_timeout = 2\nheartbeat_interval = 5", "$.scheduler.peer_timeout", "twice heartbeat"),
    ("[scaling]\ninterval = -0.5", "$.scaling.interval", "> 0.0"),
    ("[scaling]\ndrain_timeout = -1", "$.scaling.drain_timeout", ">= 0"),
    ('[[adapter]]\nprovider = "local"\nreconcile_interval = -1', "$.adapter[0].reconcile_interval", "> 0.0"),
    ('[[adapter]]\nprovider = "local"\n[[adapter.group]]\nname = "a"\ncost = -2', "$.adapter[0].group[0].cost", ">= 0"),
    (
        '[[adapter]]\nprovider = "local"\nbackoff_base = 5\nbackoff_max = 1\n[[adapter.group]]\nname = "a"',
        "backoff_max",
        "",
    ),
]


@pytest.mark.parametrize(("text", "key", "why"), BAD_VALUES, ids=[case[1] for case in BAD_VALUES])
def test_a_file_value_out_of_bounds_is_refused_by_file_and_key(tmp_path: Path, text: str, key: str, why: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and key in str(info.value) and why in str(info.value)


def test_scaler_cluster_with_a_negative_peer_timeout_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(
        '[scheduler]\npeer_timeout = -1\n[[adapter]]\nprovider = "local"\n[[adapter.group]]\nname = "cpu"\n'
    )
    result = run("scaler.cluster.main", "--config", str(path))
    assert result.returncode == 2, result
    assert f"{path}: $.scheduler.peer_timeout: Expected `float` > 0.0" in result.stderr


@pytest.mark.parametrize(
    ("module", "args", "flag"),
    [
        ("scaler.scheduler.main", ("tcp://127.0.0.1:0", "--peer-timeout", "-1"), "--peer-timeout"),
        ("scaler.scheduler.main", ("tcp://127.0.0.1:0", "--prefetch", "-3"), "--prefetch"),
        ("scaler.scheduler.main", ("tcp://127.0.0.1:0", "--heartbeat-interval", "0"), "--heartbeat-interval"),
        ("scaler.scheduler.main", ("tcp://127.0.0.1:0", "--max-queued-bytes", "9" * 23), "--max-queued-bytes"),
        ("scaler.scheduler.main", ("tcp://127.0.0.1:0", "--max-message-bytes", "9" * 23), "--max-message-bytes"),
        (
            "scaler.scheduler.main",
            ("tcp://127.0.0.1:0", "--peer-timeout", "0.2"),
            "--peer-timeout/--heartbeat-interval",
        ),
        ("scaler.worker.main", ("tcp://127.0.0.1:1", "--death-timeout", "-1"), "--death-timeout"),
        ("scaler.worker.main", ("tcp://127.0.0.1:1", "--cancel-grace", "-1"), "--cancel-grace"),
        ("scaler.cluster.main", ("--workers", "0"), "--workers"),
    ],
)
def test_a_flag_out_of_bounds_is_refused_by_name(module: str, args: tuple[str, ...], flag: str) -> None:
    result = run(module, *args)
    assert result.returncode == 2
    assert f"error: {flag}: " in result.stderr


def test_an_address_beside_config_is_refused_not_ignored() -> None:
    config = Path(__file__).resolve().parent.parent / "configs" / "local.toml"
    result = run("scaler.cluster.main", "tcp://127.0.0.1:7", "--config", str(config))
    assert result.returncode == 2
    assert "tcp://127.0.0.1:7" in result.stderr and "[scheduler].address" in result.stderr


def test_insecure_names_the_bind_in_a_warning() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "scaler.scheduler.main", f"tcp://0.0.0.0:{port}", "--insecure", "--log-level", "INFO"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().startswith("SCALER_ADDRESS")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=15)
    warnings = [line for line in err.splitlines() if "WARNING" in line and "--insecure" in line]
    assert warnings and f"tcp://0.0.0.0:{port}" in warnings[0], err


def test_port_zero_with_adapters_starts_workers_on_the_port_it_got(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(f"""
[scheduler]
address = "tcp://127.0.0.1:0"
[[adapter]]
provider = "local"
name = "p0"
reconcile_interval = 0.3
state_dir = "{tmp_path}"
[[adapter.group]]
name = "cpu"
capabilities = "cpu=1"
max_units = 1
""")
    argv = [sys.executable, "-m", "scaler.cluster.main", "--config", str(config), "--log-level", "WARNING"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        address = line.split()[3] if line.startswith("scaler cluster at ") else ""
        assert address.startswith("tcp://127.0.0.1:") and not address.endswith(":0"), line
        with Client(address, ClientConfig(connect_timeout=10)) as client:
            assert client.submit(pow, 2, 5).result(60) == 32
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        finally:
            process.kill()
            process.wait(5)
