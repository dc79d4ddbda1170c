"""``scaler_worker tcp://HOST:PORT --capabilities cpu=2,gpu=1,linux``: run one worker agent."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from scaler.config.flags import FlagError, check_flags
from scaler.config.schema import WorkerFlags
from scaler.utility.capabilities import CapabilityError, canonical
from scaler.utility.lifetime import die_with_parent, parent_from_env
from scaler.utility.logs import setup_logging
from scaler.utility.security import SecurityError, keys_from_env
from scaler.worker.config import WorkerConfig
from scaler.worker.interruption import METADATA_ENV, REAL_METADATA


def parse_args(argv: list[str] | None) -> WorkerConfig:
    p = argparse.ArgumentParser(prog="scaler_worker", description="Run a Scaler worker agent.")
    p.add_argument("scheduler", help="tcp://HOST:PORT of the scheduler")
    p.add_argument("--capabilities", "-c", default="cpu=1", help="e.g. cpu=2,gpu=1,memory_gb=16,linux")
    p.add_argument("--name", default="")
    p.add_argument("--unit-id", default="", help="set by worker adapters: the unit this worker belongs to")
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set by worker adapters: the unit's cluster, adapter, group and request (carried, not used)",
    )
    p.add_argument("--death-timeout", type=float, default=30.0, help="exit after this long without the scheduler")
    p.add_argument("--heartbeat-interval", type=float, default=1.0)
    p.add_argument("--task-memory-limit-mb", type=float, default=0.0, help="kill a task process above this RSS")
    p.add_argument("--cancel-grace", type=float, default=3.0, help="seconds an interrupted task gets before a kill")
    p.add_argument("--curve-keys", type=Path, default=None, help="directory made by scaler_keygen")
    p.add_argument("--log-level", default=None, help="default: $SCALER_LOG_LEVEL or INFO")
    p.add_argument(
        "--instance-metadata",
        default=None,
        metavar="URL",
        help=f"watch this instance metadata service for a spot interruption notice (EC2: {REAL_METADATA}); "
        f"default: ${METADATA_ENV}, else not watched",
    )
    p.add_argument("--metadata-interval", type=float, default=5.0, help="seconds between looks for a notice")
    p.add_argument(
        "--leave-before", type=float, default=5.0, help="after a notice, exit this many seconds before the deadline"
    )
    a = p.parse_args(argv)
    try:
        caps = canonical(a.capabilities)
    except CapabilityError as exc:
        p.error(f"--capabilities: {exc}")
    try:
        check_flags(
            {
                "death_timeout": a.death_timeout,
                "heartbeat_interval": a.heartbeat_interval,
                "task_memory_limit_mb": a.task_memory_limit_mb,
                "cancel_grace": a.cancel_grace,
            },
            WorkerFlags,
        )
    except FlagError as exc:
        p.error(str(exc))
    if not 0.05 <= a.metadata_interval <= 3600:
        p.error(f"--metadata-interval must be between 0.05 and 3600 seconds, got {a.metadata_interval:g}")
    if not 0 <= a.leave_before <= 600:
        p.error(f"--leave-before must be between 0 and 600 seconds, got {a.leave_before:g}")
    metadata = a.instance_metadata if a.instance_metadata is not None else os.environ.get(METADATA_ENV, "")
    if metadata and not metadata.startswith(("http://", "https://")):
        p.error(f"--instance-metadata must be an http:// URL, got {metadata!r}")
    env_keys = keys_from_env()
    keys = a.curve_keys or (env_keys.directory if env_keys is not None else None)
    return WorkerConfig(
        scheduler=a.scheduler,
        capabilities=caps,
        name=a.name,
        unit_id=a.unit_id,
        death_timeout=a.death_timeout,
        heartbeat_interval=a.heartbeat_interval,
        task_memory_limit_mb=a.task_memory_limit_mb,
        cancel_grace=a.cancel_grace,
        curve_keys=keys,
        log_level=a.log_level or os.environ.get("SCALER_LOG_LEVEL", "INFO"),
        instance_metadata=metadata,
        metadata_interval=a.metadata_interval,
        leave_before=a.leave_before,
    )


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    die_with_parent(parent_from_env())
    setup_logging("worker", config.log_level)
    from scaler.worker.agent import WorkerAgent

    try:
        agent = WorkerAgent(config)
    except (SecurityError, ValueError) as exc:
        print(f"scaler_worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    os._exit(agent.run())


if __name__ == "__main__":
    main()
