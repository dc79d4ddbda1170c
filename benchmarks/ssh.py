"""The ssh adapter's start-up: from ``scaler_cluster --config`` to the first task's result, cold and warm.

    python benchmarks/ssh.py [--runs 3] [--online]

The host is an OpenSSH server on 127.0.0.2 (tests/sshd_harness.py) whose interpreter is Debian's
``/usr/bin/python3``, without scaler, so the host is bootstrapped (``bootstrap = true``). Each run:

- **cold**: an empty venv directory on the host and an empty wheel cache in the adapter's state_dir:
  the adapter builds scaler's wheel (and, offline, collects its dependencies' wheels), sends them over
  SFTP, makes the venv and installs them, then starts the unit;
- **warm**: a new ``scaler_cluster`` with the same venv (same build) and the same wheel cache: one
  remote check, then the unit starts;
- **installed**: a host whose ``python`` already has scaler (this interpreter), no bootstrap: SSH and
  the worker's own start only.

The clock starts when ``scaler_cluster`` is started; one ``pow`` task is submitted as soon as the
scheduler answers, and the clock stops at its result. The group starts at zero units, so the queue
launches the unit. ``--online`` installs the dependencies from the host's package index instead of
sending their wheels (``offline_bootstrap = false``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST_PYTHON = "/usr/bin/python3"


def deployment(directory: Path, farm: Any, port: int, adapter_state: Path, host: str, offline: bool = True) -> Path:
    config = directory / f"ssh-{port}.toml"
    config.write_text(f"""
cluster_id = "bench{port}"
[scheduler]
address = "tcp://127.0.0.1:{port}"
[scaling]
idle_timeout = 60
stabilization_window = 0
interval = 0.2
[[adapter]]
provider = "ssh"
state_dir = "{adapter_state}"
reconcile_interval = 0.5
call_timeout = 900
[adapter.options]
key_file = "{farm.user_key}"
known_hosts = "{farm.known_hosts}"
state_dir = "{directory / "remote"}"
worker_args = ["--death-timeout", "20"]
terminate_grace = 3
offline_bootstrap = {"true" if offline else "false"}
[adapter.options.hosts.h]
address = "{farm.hosts["h"].address}"
port = {farm.hosts["h"].port}
group = "cpu"
{host}
[[adapter.group]]
name = "cpu"
min_units = 0
max_units = 1
""")
    return config


def first_result(config: Path, port: int) -> float:
    """Seconds from starting ``scaler_cluster --config`` to the result of one task; the cluster is then stopped."""
    from scaler import Client

    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    log = config.with_suffix(".log")
    argv = [sys.executable, "-m", "scaler.cluster.main", "--config", str(config), "--log-level", "INFO"]
    start = time.monotonic()
    with log.open("w") as errors:
        cluster = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        if cluster.stdout is None or "scaler cluster at" not in cluster.stdout.readline():
            raise RuntimeError(f"scaler_cluster did not start: {log.read_text()[-3000:]}")
        with Client(f"tcp://127.0.0.1:{port}") as client:
            if client.submit(pow, 2, 10).result(900) != 1024:
                raise RuntimeError("wrong result")
        return time.monotonic() - start
    finally:
        cluster.terminate()
        cluster.wait(90)


def benchmark(runs: int, offline: bool, keep: bool = False) -> dict[str, Any]:
    from scaler.utility.net import free_port
    from tests.sshd_harness import make_farm

    if not os.access(HOST_PYTHON, os.X_OK):
        raise SystemExit(f"{HOST_PYTHON} is missing: the bare host needs a Python without scaler")
    directory = Path(tempfile.mkdtemp(prefix="scaler-bench-ssh-"))
    farm = make_farm(directory / "farm")
    farm.add("h")
    bootstrap = f'python = "{HOST_PYTHON}"\nbootstrap = true\nvenv = "{directory / "venv"}"\n'
    figures: dict[str, list[float]] = {"cold_s": [], "warm_s": [], "installed_s": []}
    try:
        for _ in range(runs):
            shutil.rmtree(directory / "venv", ignore_errors=True)  # an empty venv dir ...
            wheels = directory / "state"
            shutil.rmtree(wheels, ignore_errors=True)  # ... and an empty wheel cache
            for phase in ("cold_s", "warm_s"):
                port = free_port()
                config = deployment(directory, farm, port, wheels, bootstrap, offline)
                figures[phase].append(round(first_result(config, port), 2))
            port = free_port()
            config = deployment(directory, farm, port, directory / "state-installed", f'python = "{sys.executable}"')
            figures["installed_s"].append(round(first_result(config, port), 2))
    finally:
        farm.close()
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
    summary: dict[str, Any] = {"runs": runs, "offline_bootstrap": offline, **figures}
    if keep:
        summary["kept"] = str(directory)  # the deployment files and each scaler_cluster's log
    for phase, values in figures.items():
        summary[f"{phase.removesuffix('_s')}_median_s"] = round(statistics.median(values), 2)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--online", action="store_true", help="dependencies from the host's index, not sent")
    parser.add_argument("--keep", action="store_true", help="keep the directory with the clusters' logs")
    options = parser.parse_args()
    print(json.dumps(benchmark(options.runs, not options.online, options.keep), indent=2))


if __name__ == "__main__":
    main()
