"""The worker agent's configuration: one frozen object, filled from command-line flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorkerConfig:
    scheduler: str
    capabilities: str = "cpu=1"
    name: str = ""
    unit_id: str = ""
    death_timeout: float = 30.0
    heartbeat_interval: float = 1.0
    task_memory_limit_mb: float = 0.0
    cancel_grace: float = 3.0
    cache_bytes: int = 2 << 30
    process_cache_bytes: int = 1 << 30
    idle_process_ttl: float = 30.0
    curve_keys: Path | None = None
    log_level: str = "INFO"
    instance_metadata: str = ""  # base URL of the instance metadata service to watch; "" = do not
    metadata_interval: float = 5.0  # seconds between looks for a spot interruption notice
    leave_before: float = 5.0  # seconds before an interruption deadline the worker exits
