"""Unchanged Ray programs on workers the symphony adapter starts as Symphony sessions (the emulator, on 127.0.0.1).

``scaler_cluster --config`` runs a scheduler and a symphony adapter whose group starts at zero units,
so the queue alone opens sessions: each session's task runs the service wrapper here, whose worker
dials back. The adapter logs in with credentials from its environment and checks the emulator's TLS
certificate against the CA made for this test. Ray itself is never imported (the compat layer runs the
examples with ``import ray`` blocked), exactly as tests/test_ec2_ray.py does for EC2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaler.utility.net import free_port
from tests.symphony_emulator import Emulator
from tests.test_ec2_ray import EXAMPLES, ROOT, passed, run_ray

USERS = {"grid": "ray-pw"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = Emulator(tmp_path_factory.mktemp("symphony"), USERS, slots=4)
    yield emulator
    emulator.close()


def deployment(tmp_path: Path, port: int, emulator: Emulator) -> Path:
    config = tmp_path / "symphony.toml"
    config.write_text(f"""
cluster_id = "symr{port}"
[scheduler]
address = "tcp://127.0.0.1:{port}"
[scaling]
idle_timeout = 60
stabilization_window = 0
interval = 0.2
[[adapter]]
provider = "symphony"
state_dir = "{tmp_path / "state"}"
reconcile_interval = 0.5
[adapter.options]
url = "{emulator.url}"
ca_file = "{emulator.tls.ca_file}"
python = "{sys.executable}"
worker_args = ["--death-timeout", "20"]
[adapter.options.groups.cpu]
resource_group = "ComputeHosts"
[[adapter.group]]
name = "cpu"
capabilities = "linux"
min_units = 0
max_units = 2
""")
    return config


@pytest.fixture
def cluster(emulator: Emulator, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "scaler.cluster.main", "--config", str(deployment(tmp_path, port, emulator))]
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING", SCALER_SYMPHONY_USERNAME="grid")
    env["SCALER_SYMPHONY_PASSWORD"] = USERS["grid"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    try:
        if process.stdout is None or "scaler cluster at" not in process.stdout.readline():
            raise RuntimeError("scaler_cluster did not start")
        yield f"tcp://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(60)


@pytest.mark.timeout(180)
def test_the_ray_examples_run_unchanged_on_symphony_sessions(emulator: Emulator, cluster: str) -> None:
    before = emulator.calls[("POST", "/v1/clientapi/session")]
    for name in EXAMPLES:
        result = run_ray(ROOT / "examples" / "ray" / f"{name}.py", cluster)
        assert passed(result), f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert emulator.calls[("POST", "/v1/clientapi/session")] > before, "the queue opened Symphony sessions"
    port = cluster.rsplit(":", 1)[1]
    assert {s.tag for s in emulator.sessions.values()} == {f"symr{port}.symphony.cpu"}, "cluster.adapter.group"
