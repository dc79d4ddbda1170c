"""``scaler_cluster``: a scheduler plus local workers in one command, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import time
from typing import Any

from scaler.cluster.local_cluster import LocalCluster, LocalClusterConfig
from scaler.utility.net import parse_tcp


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="scaler_cluster", description="Run a scheduler and local workers.")
    p.add_argument("address", nargs="?", default="tcp://127.0.0.1:0", help="where the scheduler binds (port 0: free)")
    p.add_argument("--workers", "-n", type=int, default=None, help="number of workers (default: one per CPU)")
    p.add_argument("--capabilities", "-c", default="cpu=1", help="capabilities of each worker")
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    try:
        host, port = parse_tcp(a.address)
    except ValueError as exc:
        p.error(str(exc))
    config = LocalClusterConfig(host=host, port=port, log_level=a.log_level)
    cluster = LocalCluster(a.workers, a.capabilities, config)
    print(f"scaler cluster at {cluster.address} with {cluster.n_workers} workers ({cluster.capabilities})", flush=True)
    stop = False

    def on_signal(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop:
        time.sleep(0.2)
    cluster.shutdown()


if __name__ == "__main__":
    main()
