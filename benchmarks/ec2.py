"""The ec2 adapter from an empty cluster on a moto server with the boot simulator (all on 127.0.0.1).

    python benchmarks/ec2.py [--tasks 400] [--max-instances 20] [--seconds 1] [--boot-seconds 0]

A scheduler and ``scaler_worker_adapter_ec2`` (one group, ``cpu=1``, one worker per instance,
``min_units = 0``) run as processes; the boot simulator (tests/ec2_harness.py) runs each instance's
user data here, so every instance is a real worker process. N tasks of ``--seconds`` are submitted at
once. Prints: time to the first worker, makespan against the ideal (N x seconds / max instances, plus
``--boot-seconds``, a simulated boot time: by default an instance's script starts within one poll),
peak instances, EC2 API calls per reconcile, and the instances left once the queue drained and the
idle timeout plus one reconcile passed (must be 0).

Counting: the adapter runs in a child process of this script (``--adapter``) that is
``scaler_worker_adapter_ec2`` plus a botocore ``before-call.ec2`` hook on its client and a count of
its reconciles, so the boot simulator's and this script's own calls are not counted. The child
writes its counts to a JSON file after every reconcile and when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IDLE_TIMEOUT = 5.0
RECONCILE = 1.0
LIVE = ("pending", "running")


def hold(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def deployment(directory: Path, port: int, moto: Any, max_instances: int) -> Path:
    config = directory / "ec2.toml"
    config.write_text(f"""
cluster_id = "bench{port}"
[scheduler]
address = "tcp://127.0.0.1:{port}"
[scaling]
idle_timeout = {IDLE_TIMEOUT}
stabilization_window = 2
max_launch_per_round = 20
interval = 0.25
[[adapter]]
provider = "ec2"
state_dir = "{directory / "state"}"
reconcile_interval = {RECONCILE}
[adapter.options]
region = "us-east-1"
endpoint_url = "{moto.url}"
worker_args = ["--death-timeout", "20"]
[adapter.options.groups.cpu]
instance_types = ["t3.micro"]
subnets = {list(moto.subnets)!r}
image_id = "{moto.image_id}"
[[adapter.group]]
name = "cpu"
capabilities = "cpu=1"
min_units = 0
max_units = {max_instances}
""")
    return config


# -- the adapter's process: scaler_worker_adapter_ec2 with counters -------------------------------------


def run_counted_adapter(config_path: Path, counts_path: Path) -> None:
    """``scaler_worker_adapter_ec2 --config`` whose EC2 calls (by operation) and reconciles are counted."""
    from scaler.adapters.cli import build_runners, lock_adapters, run_all

    from scaler.config import load_config
    from scaler.utility.logs import setup_logging

    setup_logging("adapter-ec2", "WARNING")
    config = load_config(config_path)
    locks = lock_adapters(config, "ec2")
    runners = build_runners(config, "ec2", None)
    calls: collections.Counter[str] = collections.Counter()
    reconciles = [0]

    def save() -> None:
        counts_path.write_text(json.dumps({"reconciles": reconciles[0], "calls": dict(calls)}))

    def count(model: Any, **_: Any) -> None:
        calls[str(model.name)] += 1

    for runner in runners:
        runner.provider.client.meta.events.register("before-call.ec2", count)  # type: ignore[union-attr]
        reconcile = runner.reconcile

        async def counted(starting: bool = False, reconcile: Any = reconcile) -> None:
            await reconcile(starting)
            reconciles[0] += 1
            save()

        runner.reconcile = counted  # type: ignore[method-assign]
    asyncio.run(run_all(runners))
    save()
    for lock in locks:
        lock.release()


# -- the benchmark ---------------------------------------------------------------------------------------


def delayed_simulator(delay: float) -> Any:
    """The boot simulator with each instance's user data started ``delay`` seconds after it is first seen
    (real EC2 takes tens of seconds from RunInstances to a running script; the simulator, one poll)."""
    from tests.ec2_harness import BootSimulator

    class Delayed(BootSimulator):
        seen: dict[str, float]

        def _boot(self, instance_id: str) -> None:
            first = self.__dict__.setdefault("seen", {}).setdefault(instance_id, time.monotonic())
            if time.monotonic() - first >= delay:
                super()._boot(instance_id)

    return Delayed


def live_instances(moto: Any, cluster_id: str) -> int:
    filters = [{"Name": "tag:scaler:cluster", "Values": [cluster_id]}, {"Name": "instance-state-name", "Values": LIVE}]
    pages = moto.client().get_paginator("describe_instances").paginate(Filters=filters)
    return sum(len(r["Instances"]) for page in pages for r in page["Reservations"])


def benchmark(tasks: int, max_instances: int, seconds: float, boot: float = 0.0) -> dict[str, Any]:
    from scaler import Client
    from scaler.utility.net import free_port
    from tests.ec2_harness import AWS_ENV, MotoEc2

    os.environ.update(AWS_ENV)
    moto = MotoEc2()
    directory = Path(tempfile.mkdtemp(prefix="scaler-bench-ec2-"))
    simulator = delayed_simulator(boot)(moto, directory / "instances")
    port = free_port()
    config, counts = deployment(directory, port, moto, max_instances), directory / "counts.json"
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "scaler.scheduler.main", "--config", str(config)], env=env, stdout=subprocess.DEVNULL
    )
    adapter = subprocess.Popen([sys.executable, __file__, "--adapter", str(config), str(counts)], env=env)
    cluster_id = f"bench{port}"
    try:
        with Client(f"tcp://127.0.0.1:{port}") as client:
            start = time.monotonic()
            futures = [client.submit(hold, seconds) for _ in range(tasks)]
            first_worker, peak = math.nan, 0
            while not all(f.done() for f in futures):
                time.sleep(0.25)
                if math.isnan(first_worker) and int(client.scheduler_status().status["workers"]) > 0:
                    first_worker = time.monotonic() - start
                peak = max(peak, live_instances(moto, cluster_id))
            makespan = time.monotonic() - start
            if sum(f.result() for f in futures) != tasks * seconds:
                raise RuntimeError("wrong results")
            drained = time.monotonic()
            time.sleep(IDLE_TIMEOUT + 2 * RECONCILE + 2.0)  # idle timeout, stabilization, one reconcile
            left = live_instances(moto, cluster_id)
            while live_instances(moto, cluster_id) and time.monotonic() - drained < 120:
                time.sleep(0.25)
            all_gone_after = time.monotonic() - drained
    finally:
        adapter.terminate()
        adapter.wait(60)
        scheduler.terminate()
        scheduler.wait(30)
        simulator.stop()
        moto.stop()
    counted = json.loads(counts.read_text())
    reconciles, calls = int(counted["reconciles"]), dict(counted["calls"])
    ideal = math.ceil(tasks / max_instances) * seconds + boot
    return {
        "tasks": tasks,
        "task_seconds": seconds,
        "max_instances": max_instances,
        "boot_s": boot,
        "first_worker_s": round(first_worker, 2),
        "makespan_s": round(makespan, 2),
        "ideal_s": ideal,
        "ratio": round(makespan / ideal, 2),
        "peak_instances": peak,
        "reconciles": reconciles,
        "ec2_calls": calls,
        "ec2_calls_per_reconcile": round(sum(calls.values()) / max(reconciles, 1), 2),
        "instances_left_after_idle_timeout_and_a_reconcile": left,
        "all_instances_gone_after_s": round(all_gone_after, 1),
        "idle_timeout_s": IDLE_TIMEOUT,
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--adapter":
        run_counted_adapter(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--max-instances", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--boot-seconds", type=float, default=0.0, help="simulated boot time of an instance")
    options = parser.parse_args()
    figures = benchmark(options.tasks, options.max_instances, options.seconds, options.boot_seconds)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
