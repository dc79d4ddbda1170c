"""The scheduler's configuration: one frozen object, filled from command-line flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scaler.scaling.model import ScalingConfig


@dataclass(frozen=True)
class SchedulerConfig:
    address: str = "tcp://127.0.0.1:6378"
    heartbeat_interval: float = 1.0
    peer_timeout: float = 10.0
    max_queued_tasks: int = 1_000_000
    max_queued_bytes: int = 4 << 30
    max_message_bytes: int = 4 << 30
    push_result_bytes: int = 1 << 20
    prefetch: int = 16
    curve_keys: Path | None = None
    insecure: bool = False
    log_level: str = "INFO"
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
