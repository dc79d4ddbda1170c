"""The deployment file's schema as msgspec Structs: unknown keys and wrong types are refused by path."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class SchedulerSection(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    address: str = "tcp://127.0.0.1:6378"
    heartbeat_interval: float = 1.0
    peer_timeout: float = 10.0
    max_queued_tasks: int = 1_000_000
    max_queued_bytes: int = 4 << 30
    prefetch: int = 16
    curve_keys: str | None = None
    insecure: bool = False


class ScalingSection(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    idle_timeout: float = 10.0
    stabilization_window: float = 5.0
    max_launch_per_round: int = 20
    interval: float = 0.5
    drain_timeout: float = 300.0


class GroupSection(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    capabilities: str = "cpu=1"
    workers_per_unit: int = 1
    min_units: int = 0
    max_units: int = 1
    priority: int = 0
    cost: float = 1.0


class AdapterSection(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    provider: str
    name: str = ""
    reconcile_interval: float = 1.0
    boot_timeout: float = 60.0
    orphans: Literal["terminate", "adopt"] = "terminate"
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    state_dir: str = "~/.cache/scaler"
    options: dict[str, Any] = {}
    group: list[GroupSection] = []


class Config(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    scheduler: SchedulerSection = SchedulerSection()
    scaling: ScalingSection = ScalingSection()
    adapter: list[AdapterSection] = []
