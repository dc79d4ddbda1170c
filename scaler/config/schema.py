"""The deployment file's schema as msgspec Structs: unknown keys, wrong types and impossible values are
refused by path (``$.scheduler.peer_timeout: Expected `float` > 0.0``).

The bounds live here, once: command-line flags are checked by decoding them into the same Structs
(``scaler.config.flags``), so a negative ``--peer-timeout`` and a negative ``peer_timeout`` in a file
are refused by the same rule.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Seconds = Annotated[float, msgspec.Meta(gt=0)]  # an interval or timeout: zero would spin or never wait
Delay = Annotated[float, msgspec.Meta(ge=0)]  # a wait that may be zero
LIMIT = 2**62  # what every count and byte limit stays under (peers encode them as 64-bit integers)
Count = Annotated[int, msgspec.Meta(ge=0, le=LIMIT)]
AtLeastOne = Annotated[int, msgspec.Meta(ge=1, le=LIMIT)]


class Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class SchedulerSection(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    address: str = "tcp://127.0.0.1:6378"
    heartbeat_interval: Seconds = 1.0
    peer_timeout: Seconds = 10.0
    max_queued_tasks: AtLeastOne = 1_000_000
    max_queued_bytes: AtLeastOne = 4 << 30
    prefetch: Count = 16
    curve_keys: str | None = None
    insecure: bool = False


class ScalingSection(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    idle_timeout: Delay = 10.0
    stabilization_window: Delay = 5.0
    max_launch_per_round: AtLeastOne = 20
    interval: Seconds = 0.5
    drain_timeout: Delay = 300.0


DEFAULT_WORKER_CAPABILITIES = "cpu=1"


class GroupSection(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    # "" = the unit's shape where the provider knows it (ec2: the instance type), else ``cpu=1``;
    # given quantities override the shape's, given labels are added to it
    capabilities: str = ""
    # "auto": one worker per unit, sized to it (only providers whose spec has ``sized_units``)
    workers_per_unit: AtLeastOne | Literal["auto"] = 1
    min_units: Count = 0
    max_units: Count = 1
    priority: int = 0
    cost: Annotated[float, msgspec.Meta(ge=0)] = 1.0  # per unit-hour (the budget's unit too)

    def worker_capabilities(self) -> str:
        """What each worker advertises before any provider looks at its units' shape."""
        return self.capabilities or DEFAULT_WORKER_CAPABILITIES

    def workers(self) -> int:
        """Workers per unit as a number: ``"auto"`` is one worker sized to its unit."""
        return 1 if self.workers_per_unit == "auto" else self.workers_per_unit


class AdapterSection(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    provider: str
    name: str = ""
    reconcile_interval: Seconds = 1.0
    boot_timeout: Seconds = 60.0
    orphans: Literal["terminate", "adopt"] = "terminate"
    backoff_base: Seconds = 1.0
    backoff_max: Seconds = 60.0
    death_timeout: Seconds = 30.0
    call_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0
    max_threads: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    state_dir: str = "~/.cache/scaler"
    worker_scheduler_address: str = ""  # what its workers dial, if not [scheduler].address (NAT, another name)
    # the most its running and pending units may cost per hour (sum of each group's cost x units); none: no limit
    max_cost_per_hour: Annotated[float, msgspec.Meta(ge=0, le=LIMIT)] | None = None
    options: dict[str, Any] = {}  # checked against the provider's options Struct when the file loads
    group: list[GroupSection] = []


class HeadSection(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where ``Cluster``/``scaler run`` start the scheduler and the adapters when it is not the caller's
    machine (workers that cannot reach it): a host reached over SSH, with scaler installed."""

    address: Annotated[str, msgspec.Meta(min_length=1)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 22
    user: str = ""  # "" = the caller's user
    key_file: str = ""  # "" = the ssh-agent, then ~/.ssh/id_* keys
    known_hosts: str = "~/.ssh/known_hosts"
    unknown_hosts: Literal["refuse", "accept-new"] = "refuse"
    python: str = "python3"  # the head's interpreter that has scaler (and the providers' extras) installed
    connect_timeout: Seconds = 10.0


class Config(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    cluster_id: str = ""  # tags every unit; "" = generated once and kept in each adapter's state_dir
    head: HeadSection | None = None  # only Cluster/scaler run read it; scaler_cluster runs where it is started
    scheduler: SchedulerSection = SchedulerSection()
    scaling: ScalingSection = ScalingSection()
    adapter: list[AdapterSection] = []


class WorkerFlags(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``scaler_worker``'s numeric flags, checked by the same rules as the file's values."""

    death_timeout: Seconds = 30.0
    heartbeat_interval: Seconds = 1.0
    task_memory_limit_mb: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    cancel_grace: Delay = 3.0


class SchedulerFlags(SchedulerSection, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``scaler_scheduler``'s flags: the ``[scheduler]`` keys plus the ones only a flag sets."""

    max_message_bytes: AtLeastOne = 4 << 30


# The numeric tuning knobs each command takes as flags (``scaler_init`` passes the same ones through).
SCHEDULER_TUNING: tuple[str, ...] = tuple(
    name for name in SchedulerFlags.__struct_fields__ if name not in ("address", "curve_keys", "insecure")
)
WORKER_TUNING: tuple[str, ...] = WorkerFlags.__struct_fields__
