"""Where the CPU time of a task goes, process by process: CPU microseconds per no-op task.

    python benchmarks/cpu_per_task.py [--tasks 20000]

Reads each process's user+system CPU time (psutil) before and after submit+gather of N no-op tasks
on a 2-worker local cluster: the client (this process, all threads), the scheduler, the worker
agents and their task processes. Sum over processes vs wall time shows how close the run is to
the 2-core ceiling.
"""

from __future__ import annotations

import argparse
import json
import time

import psutil

from scaler import Client, LocalCluster


def noop(x: int) -> int:
    return x


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20_000)
    args = parser.parse_args()
    with LocalCluster(n_workers=2) as cluster, Client(cluster.address) as client:
        client.get([client.submit(noop, i) for i in range(2000)])
        time.sleep(0.5)
        roles: dict[str, list[psutil.Process]] = {"client": [psutil.Process()]}
        if cluster.scheduler is not None:
            roles["scheduler"] = [psutil.Process(cluster.scheduler.pid)]
        roles["agents"] = [psutil.Process(w.pid) for w in cluster.workers]
        roles["task processes"] = [c for a in roles["agents"] for c in a.children()]
        before = {role: sum(cpu(p) for p in procs) for role, procs in roles.items()}
        start = time.perf_counter()
        client.get([client.submit(noop, i) for i in range(args.tasks)])
        wall = time.perf_counter() - start
        after = {role: sum(cpu(p) for p in procs) for role, procs in roles.items()}
    per_task = {role: round((after[role] - before[role]) / args.tasks * 1e6, 1) for role in roles}
    print(
        json.dumps(
            {
                "tasks_per_s": round(args.tasks / wall),
                "wall_us_per_task": round(wall / args.tasks * 1e6, 1),
                "cpu_us_per_task": per_task,
                "cpu_us_total": round(sum(per_task.values()), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
