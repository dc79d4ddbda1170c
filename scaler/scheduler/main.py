"""``scaler_scheduler tcp://HOST:PORT``: run a scheduler until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import msgspec

from scaler.config import ConfigError, load_config
from scaler.config.flags import FlagError, check_flags, timing_problem
from scaler.config.schema import SCHEDULER_TUNING, SchedulerFlags
from scaler.scaling.model import ScalingConfig
from scaler.scheduler.config import SchedulerConfig
from scaler.utility import shm
from scaler.utility.lifetime import die_with_parent, parent_from_env
from scaler.utility.logs import setup_logging
from scaler.utility.security import SecurityError


def parse_args(argv: list[str] | None) -> SchedulerConfig:
    d = SchedulerConfig()
    p = argparse.ArgumentParser(prog="scaler_scheduler", description="Run a Scaler scheduler.")
    p.add_argument("address", nargs="?", default=None, help="tcp://HOST:PORT to bind (port 0: any free port)")
    p.add_argument(
        "--config", type=Path, default=None, help="deployment TOML ([scheduler] and [scaling]); flags override"
    )
    p.add_argument("--heartbeat-interval", type=float, default=None)
    p.add_argument("--peer-timeout", type=float, default=None, help="seconds of silence before a peer is dropped")
    p.add_argument("--max-queued-tasks", type=int, default=None, help="per client")
    p.add_argument("--max-queued-bytes", type=int, default=None, help="per client")
    p.add_argument("--max-message-bytes", type=int, default=None)
    p.add_argument("--prefetch", type=int, default=None, help="unstarted short tasks a busy worker may hold")
    p.add_argument("--curve-keys", type=Path, default=None, help="directory made by scaler_keygen")
    p.add_argument("--insecure", action="store_true", default=None, help="allow a non-loopback bind without CURVE keys")
    p.add_argument("--log-level", default=None, help="default: $SCALER_LOG_LEVEL or INFO")
    a = p.parse_args(argv)
    base: dict[str, object] = {}
    scaling = ScalingConfig()
    if a.config is not None:
        try:
            file = load_config(a.config)
        except ConfigError as exc:
            p.error(str(exc))
        s = file.scheduler
        base = {
            "address": s.address,
            "heartbeat_interval": s.heartbeat_interval,
            "peer_timeout": s.peer_timeout,
            "max_queued_tasks": s.max_queued_tasks,
            "max_queued_bytes": s.max_queued_bytes,
            "prefetch": s.prefetch,
            "curve_keys": Path(s.curve_keys) if s.curve_keys else None,
            "insecure": s.insecure,
        }
        scaling = ScalingConfig(**msgspec.structs.asdict(file.scaling))
    flags = {
        "address": a.address,
        "heartbeat_interval": a.heartbeat_interval,
        "peer_timeout": a.peer_timeout,
        "max_queued_tasks": a.max_queued_tasks,
        "max_queued_bytes": a.max_queued_bytes,
        "max_message_bytes": a.max_message_bytes,
        "prefetch": a.prefetch,
        "curve_keys": a.curve_keys,
        "insecure": a.insecure,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        check_flags({k: v for k, v in given.items() if k in SCHEDULER_TUNING}, SchedulerFlags)
    except FlagError as exc:
        p.error(str(exc))
    base.update(given)
    beat, timeout = base.get("heartbeat_interval", d.heartbeat_interval), base.get("peer_timeout", d.peer_timeout)
    why = timing_problem(float(beat), float(timeout))  # type: ignore[arg-type]
    if why:
        p.error(f"--peer-timeout/--heartbeat-interval: {why}")
    base["log_level"] = a.log_level or os.environ.get("SCALER_LOG_LEVEL", "INFO")
    return replace(d, scaling=scaling, **base)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    die_with_parent(parent_from_env(), signal.SIGTERM)
    setup_logging("scheduler", config.log_level)
    removed, freed = shm.sweep_orphans()
    if removed:
        logging.getLogger(__name__).info(
            "removed %d shared-memory segments (%.1f MiB) left by schedulers that are gone", removed, freed / 2**20
        )
    from scaler.scheduler.server import SchedulerServer

    try:
        server = SchedulerServer(config)
    except (SecurityError, ValueError) as exc:
        print(f"scaler_scheduler: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:
        print(f"scaler_scheduler: cannot bind {config.address}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"SCALER_ADDRESS {server.address}", flush=True)
    server.run()


if __name__ == "__main__":
    main()
