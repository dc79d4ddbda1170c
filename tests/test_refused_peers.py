"""A worker or adapter whose connection the scheduler refuses (a wrong or stale cluster secret) still
obeys SIGTERM and its death timeout: it never blocks forever on a send (found by benchmarks/chaos.py).

libzmq ends a DEALER's session for good when the handshake fails, and a blocking send on a DEALER with
no session waits forever, so the agent's loop and the runner's ``await send`` stopped for good.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaler.utility.net import free_port
from scaler.utility.security import SECRET_ENV

WRONG = {SECRET_ENV: "not-the-cluster-secret", "SCALER_LOG_LEVEL": "WARNING"}


def spawn(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *argv], env=dict(os.environ, **WRONG), stdout=subprocess.PIPE)


@pytest.fixture
def scheduler() -> Iterator[str]:
    address = f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    env.pop(SECRET_ENV, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "scaler.scheduler.main", address], env=env, stdout=subprocess.PIPE
    )
    assert process.stdout is not None and process.stdout.readline().startswith(b"SCALER_ADDRESS")
    yield address
    process.terminate()
    process.wait(10)


def exits_within(process: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        process.wait(seconds)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
        return False


def test_refused_worker_exits_non_zero_without_waiting_out_its_death_timeout(scheduler: str) -> None:
    worker = spawn("scaler.worker.main", scheduler, "--death-timeout", "60")
    assert exits_within(worker, 20), "the refused worker hung instead of leaving"
    assert worker.returncode != 0, "a supervisor must see that the worker failed"


def test_refused_worker_obeys_sigterm(scheduler: str) -> None:
    worker = spawn("scaler.worker.main", scheduler, "--death-timeout", "60")
    time.sleep(1.5)
    worker.send_signal(signal.SIGTERM)
    assert exits_within(worker, 10), "the refused worker ignored SIGTERM"


def test_refused_adapter_obeys_sigterm(scheduler: str, tmp_path: Path) -> None:
    config = tmp_path / "deploy.toml"
    config.write_text(
        f'[scheduler]\naddress = "{scheduler}"\n[[adapter]]\nprovider = "local"\nstate_dir = "{tmp_path}"\n'
        '[[adapter.group]]\nname = "cpu"\nmin_units = 1\nmax_units = 1\n'
    )
    adapter = spawn("scaler.adapters.local.main", "--config", str(config), "--log-level", "WARNING")
    time.sleep(2.0)
    adapter.send_signal(signal.SIGTERM)
    assert exits_within(adapter, 10), "the refused adapter ignored SIGTERM"
