"""The provider contract: three verbs on plain values (DESIGN §4).

A provider allocates *units* (a process group, a host lease, an instance, an allocation), each
running ``workers_per_unit`` workers of a group's shape. ``list_units`` is the ground truth,
read back from the provider (process table, tags, leases), never from the runner's memory.
Launching with a ``request_id`` already seen must not launch again.

A provider is either async (the ``Provider`` protocol) or, for blocking SDKs (boto3, paramiko,
ibm-cloud-sdk-core), a ``SyncProvider`` with plain methods, which the runner calls in a bounded
thread pool. Either may declare ``errors``, its backend's exceptions mapped to ours
(``scaler.adapters.errors``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from scaler.adapters.errors import ErrorTable

from scaler.protocol.messages import GroupSpec

# A group is the same frozen value on the wire and in the contract: name, capabilities of each
# worker, workers per unit, min/max units, priority, cost.
WorkerGroup = GroupSpec


class UnitState(enum.Enum):
    REQUESTED = "requested"
    BOOTING = "booting"
    RUNNING = "running"
    DRAINING = "draining"
    TERMINATING = "terminating"
    TERMINATION_FAILED = "termination_failed"
    TERMINATED = "terminated"
    FAILED = "failed"


@dataclass(frozen=True)
class Unit:
    unit_id: str
    group: str
    state: UnitState
    created: float
    request_id: str = ""
    details: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Provider(Protocol):
    async def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]: ...

    async def terminate(self, unit_ids: list[str]) -> None: ...

    async def list_units(self) -> list[Unit]: ...


@runtime_checkable
class SizesGroups(Protocol):
    """An optional hook, of any provider: ``groups(configured)`` returns the configured groups as the
    provider sizes them (same names, same order), e.g. capabilities from an instance type. The runner
    calls it once, before its first report, like any provider call (a ``SyncProvider``'s in a thread, with
    ``call_timeout``); it may be a coroutine on an async provider. Empty capabilities are then ``cpu=1``."""

    def groups(self, configured: tuple[WorkerGroup, ...]) -> Any: ...


class SyncProvider:
    """A provider over a blocking SDK: the runner runs each call in its thread pool, with its timeout.

    A call past ``call_timeout`` cannot be killed: its thread is abandoned (it finishes in the
    background, and what it did is found through ``list_units``), and the pool's bound
    (``max_threads``) limits how many such threads there can be.
    """

    errors: ErrorTable = ()

    def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        raise NotImplementedError

    def terminate(self, unit_ids: list[str]) -> None:
        raise NotImplementedError

    def list_units(self) -> list[Unit]:
        raise NotImplementedError
