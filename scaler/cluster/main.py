"""``scaler_cluster``: a scheduler plus local workers in one command, until Ctrl-C.

Without ``--config``: a fixed number of local workers (``--workers``). With ``--config F``: the
scheduler reads ``[scheduler]``/``[scaling]`` from F and the file's adapters run in this process,
so workers come and go with the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scaler.cluster.local_cluster import LocalCluster, LocalClusterConfig
from scaler.utility.net import parse_tcp


def run_with_config(config_path: Path, log_level: str, curve_keys: Path | None = None, insecure: bool = False) -> None:
    import msgspec

    from scaler.adapters.cli import build_runners, lock_adapters, run_all
    from scaler.adapters.lock import AdapterLockedError
    from scaler.config import ConfigError, load_config
    from scaler.utility.lifetime import die_with_parent, parent_from_env
    from scaler.utility.logs import setup_logging

    die_with_parent(parent_from_env("SCALER_CLUSTER_PARENT_PID"), signal.SIGTERM)  # a Cluster's child ends with it
    try:
        config = load_config(config_path)
        overrides: dict[str, Any] = {}
        if curve_keys is not None:
            overrides["curve_keys"] = str(curve_keys.resolve())
        if insecure:
            overrides["insecure"] = True
        if overrides:  # flags override the file, for the scheduler and the adapters alike
            config = msgspec.structs.replace(config, scheduler=msgspec.structs.replace(config.scheduler, **overrides))
        locks = lock_adapters(config, None)  # held until this process ends
        runners = build_runners(config, None, None)
    except (ConfigError, ValueError, ImportError, KeyError, AdapterLockedError, OSError) as exc:
        print(f"scaler_cluster: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging("cluster", log_level)
    os.environ["SCALER_LOG_LEVEL"] = log_level
    env = dict(os.environ, SCALER_PARENT_PID=str(os.getpid()), SCALER_LOG_LEVEL=log_level)
    argv = [sys.executable, "-m", "scaler.scheduler.main", "--config", str(config_path)]
    if curve_keys is not None:
        argv += ["--curve-keys", str(curve_keys.resolve())]
    if insecure:
        argv.append("--insecure")
    scheduler = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE)
    try:
        line = scheduler.stdout.readline().decode() if scheduler.stdout else ""
        if not line.startswith("SCALER_ADDRESS"):
            raise SystemExit(f"scaler_cluster: the scheduler did not start (exit code {scheduler.wait()})")
        print(
            f"scaler cluster at {line.split(maxsplit=1)[1].strip()} with adapters "
            f"{', '.join(r.config.name for r in runners) or '(none)'}",
            flush=True,
        )
        bound = line.split(maxsplit=1)[1].strip()
        if bound != config.scheduler.address:  # port 0 in the file: the adapters' workers dial the real port
            runners = build_runners(config, None, bound)
        asyncio.run(run_all(runners))
    finally:
        scheduler.terminate()
        scheduler.wait(10)
        for lock in locks:
            lock.release()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="scaler_cluster", description="Run a scheduler and local workers.")
    p.add_argument(
        "address", nargs="?", default=None, help="where the scheduler binds (default tcp://127.0.0.1:0, a free port)"
    )
    p.add_argument("--workers", "-n", type=int, default=None, help="number of workers (default: one per CPU)")
    p.add_argument("--capabilities", "-c", default="cpu=1", help="capabilities of each worker")
    p.add_argument("--config", type=Path, default=None, help="deployment TOML: scale workers with its adapters")
    p.add_argument("--curve-keys", type=Path, default=None, help="directory made by scaler_keygen: require CURVE")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without CURVE keys")
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    if a.workers is not None and a.workers < 1:
        p.error(f"--workers: must be at least 1, got {a.workers}")
    if a.config is not None:
        if a.address is not None:
            p.error(f"the address {a.address} is given beside --config {a.config}: set [scheduler].address in the file")
        if a.workers is not None:
            p.error(f"--workers is given beside --config {a.config}: the file's [[adapter.group]] sizes the workers")
        run_with_config(a.config, a.log_level, a.curve_keys, a.insecure)
        return
    try:
        host, port = parse_tcp(a.address or "tcp://127.0.0.1:0")
    except ValueError as exc:
        p.error(str(exc))
    keys = str(a.curve_keys.resolve()) if a.curve_keys is not None else None
    config = LocalClusterConfig(host=host, port=port, log_level=a.log_level, curve_keys=keys, insecure=a.insecure)
    try:
        cluster = LocalCluster(a.workers, a.capabilities, config)
    except RuntimeError as exc:
        print(f"scaler_cluster: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    bound = f" (bound to {cluster.bind_address})" if cluster.bind_address != cluster.address else ""
    print(
        f"scaler cluster at {cluster.address}{bound} with {cluster.n_workers} workers ({cluster.capabilities})",
        flush=True,
    )
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
