"""Run the shared workloads on one engine and print one JSON line (run inside that engine's venv).

    python benchmarks/peer_run.py --peer scaler|ray|ray-compat|dask|opengris [--tasks 10000]

Every engine gets 2 worker processes of 1 cpu on 127.0.0.1. ``compare.py`` runs this in a
loopback-only network namespace; run it by hand only inside one (``unshare --net``) for Ray.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psutil
import workloads


def _own_tree() -> list[int]:
    return [p.pid for p in psutil.Process().children(recursive=True)]


class ScalerEngine:
    def __init__(self, workers: int = 2) -> None:
        from scaler import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=workers)
        self.client = Client(self.cluster.address)

    def submit(self, fn: Any, *args: Any) -> Any:
        return self.client.submit(fn, *args)

    def gather(self, handles: list[Any]) -> list[Any]:
        return [h.result() for h in handles]

    def get(self, handle: Any) -> Any:
        return self.client.get(handle)

    def put(self, value: Any) -> Any:
        return self.client.put(value)

    def pids(self) -> list[int]:
        return _own_tree()

    def close(self) -> None:
        self.client.close()
        self.cluster.shutdown()


class RayEngine:
    def __init__(self, compat: bool) -> None:
        if compat:
            from scaler.compat import ray
        else:
            import ray  # type: ignore[no-redef]
        self.ray = ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        self.remotes: dict[Any, Any] = {}

    def submit(self, fn: Any, *args: Any) -> Any:
        remote = self.remotes.get(fn)
        if remote is None:
            remote = self.remotes[fn] = self.ray.remote(fn)
        return remote.remote(*args)

    def gather(self, handles: list[Any]) -> list[Any]:
        return list(self.ray.get(handles))

    def get(self, handle: Any) -> Any:
        return self.ray.get(handle)

    def put(self, value: Any) -> Any:
        return self.ray.put(value)

    def pids(self) -> list[int]:
        return _own_tree()

    def close(self) -> None:
        self.ray.shutdown()


class DaskEngine:
    def __init__(self) -> None:
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        self.client = Client(self.cluster)

    def submit(self, fn: Any, *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def gather(self, handles: list[Any]) -> list[Any]:
        return list(self.client.gather(handles))

    def get(self, handle: Any) -> Any:
        return handle.result()

    def put(self, value: Any) -> Any:
        return self.client.scatter(value)

    def pids(self) -> list[int]:
        return _own_tree()

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


def make(peer: str) -> Any:
    if peer == "scaler":
        return ScalerEngine()
    if peer in ("ray", "ray-compat"):
        return RayEngine(compat=peer == "ray-compat")
    if peer == "dask":
        return DaskEngine()
    if peer == "opengris":
        from opengris_engine import OpenGrisEngine

        return OpenGrisEngine()
    raise SystemExit(f"unknown peer {peer!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peer", required=True)
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    figures: dict[str, Any] = {"peer": args.peer}
    figures.update(workloads.measure(lambda: make(args.peer), args.tasks, 2, transfers=args.peer != "ray-compat"))
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
