"""Scaling figures with real processes (issue: adapters and queue-depth scaling).

    python benchmarks/scaling.py [--scenario 1|2|all]

Scenario 1: 15 tasks of 6 s, local adapter, at most 10 workers of 1 cpu, from zero (ideal 12 s).
Scenario 2: 200 tasks of 1 s, at most 20 workers, a fake provider whose units boot in 5 s
(ideal 10 s + 5 s boot). Prints makespan vs ideal, peak workers, worker-seconds, scale up/down
reversals, and how long after the last task every unit was gone (target: idle timeout + 5 s).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scaler import Client
from scaler.utility.net import free_port

IDLE_TIMEOUT = 3.0


def hold(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def scenario(
    name: str, provider: str, options: str, max_units: int, tasks: int, seconds: float, ideal: float
) -> dict[str, object]:
    port = free_port()
    state = tempfile.mkdtemp(prefix="scaler-bench-")
    config = Path(state) / "deploy.toml"
    config.write_text(f"""
[scheduler]
address = "tcp://127.0.0.1:{port}"
[scaling]
idle_timeout = {IDLE_TIMEOUT}
stabilization_window = 2
max_launch_per_round = 20
interval = 0.25
[[adapter]]
provider = "{provider}"
reconcile_interval = 0.25
state_dir = "{state}"
{options}
[[adapter.group]]
name = "cpu"
capabilities = "cpu=1"
max_units = {max_units}
""")
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "scaler.scheduler.main", "--config", str(config)], env=env, stdout=subprocess.DEVNULL
    )
    adapter = subprocess.Popen(
        [sys.executable, "-m", f"scaler.adapters.{provider}.main", "--config", str(config)], env=env
    )
    try:
        with Client(f"tcp://127.0.0.1:{port}") as client:
            start = time.monotonic()
            futures = [client.submit(hold, seconds) for _ in range(tasks)]
            worker_seconds, peak, last = 0.0, 0, start
            while not all(f.done() for f in futures):
                time.sleep(0.25)
                now = time.monotonic()
                workers = int(client.scheduler_status().status["workers"])
                worker_seconds += workers * (now - last)
                peak, last = max(peak, workers), now
            makespan = time.monotonic() - start
            if sum(f.result() for f in futures) != tasks * seconds:
                raise RuntimeError("wrong results")
            finished = time.monotonic()
            while int(client.scheduler_status().status["workers"]) > 0 and time.monotonic() - finished < 60:
                now = time.monotonic()
                worker_seconds += int(client.scheduler_status().status["workers"]) * (now - last)
                last = now
                time.sleep(0.25)
            gone_after = time.monotonic() - finished
            decisions = client.scheduler_status().decisions
    finally:
        adapter.terminate()
        adapter.wait(20)
        scheduler.terminate()
        scheduler.wait(10)
    actions = [("launch" if " launch " in d else "terminate") for d in decisions]
    reversals = sum(1 for a, b in itertools.pairwise(actions) if a == "terminate" and b == "launch")
    return {
        "scenario": name,
        "makespan_s": round(makespan, 2),
        "ideal_s": ideal,
        "ratio": round(makespan / ideal, 3),
        "peak_workers": peak,
        "worker_seconds": round(worker_seconds, 1),
        "reversals": reversals,
        "all_units_gone_after_s": round(gone_after, 1),
        "idle_timeout_s": IDLE_TIMEOUT,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenario", choices=("1", "2", "all"), default="all")
    chosen = parser.parse_args().scenario
    if chosen in ("1", "all"):
        print(json.dumps(scenario("15x6s local max10", "local", "", 10, 15, 6.0, 12.0)))
    if chosen in ("2", "all"):
        fake = "options = { boot_seconds = 5 }"
        print(json.dumps(scenario("200x1s fake boot5s max20", "fake", fake, 20, 200, 1.0, 15.0)))


if __name__ == "__main__":
    main()
