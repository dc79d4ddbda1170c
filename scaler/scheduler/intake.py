"""Every value a peer sends is checked here, where it enters, before the engine or the policy sees it.

The engine, the object store and the scaling policy trust what they are handed: a capability string
that does not parse, a group with ``max_units < min_units``, or a shared-memory descriptor naming a
file that is gone would otherwise fail later, inside the loop, far from the peer that sent it (and
stop the scheduler for everyone). ``check`` raises ``Rejected`` with the reason; the server drops the
message, counts it in ``rejected_messages`` and logs it with the peer. Limits that are the engine's
own policy (``num_returns``, refs per task) stay with the engine, which refuses by name.
"""

from __future__ import annotations

import math
from typing import Any

from scaler.adapters.provider import UnitState
from scaler.protocol import messages as m
from scaler.scheduler.bundles import MAX_BUNDLES, PG_ID, SLOT, STRATEGIES
from scaler.scheduler.holds import MAX_HOLDS
from scaler.scheduler.objects import ObjectStore
from scaler.scheduler.tasks import Task, producer_of
from scaler.utility import shm
from scaler.utility.capabilities import PG_PREFIX, CapabilityError, node_label, parse_capabilities

UNIT_STATES = frozenset(state.value for state in UnitState)
MAX_UNITS = 100_000
MAX_HISTORY = 100
MAX_RETRIES = 1_000
MAX_ID = 256  # characters in any id or name a peer chooses
MAX_KEY = 4096  # characters in a named value's key (a namespace and a name)
MAX_NOTICE = 86_400.0  # seconds ahead a worker may announce its host's end


class Rejected(ValueError):
    """A message that must not reach the engine; the text says why."""


def _id(value: str, what: str) -> None:
    if not value or len(value) > MAX_ID:
        raise Rejected(f"{what} must be 1 to {MAX_ID} characters, got {len(value)}")


def _number(value: float, what: str, low: float = 0.0, high: float = math.inf) -> None:
    if not (low <= value <= high) or (isinstance(value, float) and not math.isfinite(value)):
        raise Rejected(f"{what} must be between {low:g} and {high:g}, got {value!r}")


def _capabilities(text: str, what: str) -> None:
    try:
        parse_capabilities(text)
    except CapabilityError as exc:
        raise Rejected(f"{what}: {exc}") from None


class Intake:
    def __init__(self, store: ObjectStore, tasks: dict[str, Task]) -> None:
        self.store = store
        self.tasks = tasks

    def check(self, shm_prefix: str, msg: Any, payload: list[Any]) -> int:
        """The bytes ``payload`` holds, wherever they live; raise ``Rejected`` unless ``msg`` (with
        ``payload``) from a peer given ``shm_prefix`` may be served."""
        nbytes = 0
        if payload:
            try:
                nbytes = shm.check_descriptors(payload, shm_prefix)
            except ValueError as exc:
                raise Rejected(str(exc)) from None
        checker = _CHECKS.get(type(msg))
        if checker is not None:
            checker(self, msg)
        return nbytes

    def _submit(self, msg: m.SubmitTask) -> None:
        task_id = msg.task_id
        if not (0 < len(task_id) <= MAX_ID and 0 < len(msg.func_id) <= MAX_ID) or "#" in task_id:
            _id(task_id, "task_id")
            _id(msg.func_id, "func_id")
            raise Rejected(f"task_id {task_id!r} contains '#', which result ids use")
        if task_id in self.tasks or task_id in self.store:
            raise Rejected(f"task_id {task_id!r} is already in use")
        _capabilities(msg.capabilities, "capabilities")
        if msg.node and node_label(msg.node) is None:
            raise Rejected(f"node {msg.node[:80]!r} is not a worker name work can be placed on")
        if msg.placement and not (PG_ID.match(msg.placement) and -1 <= msg.bundle < MAX_BUNDLES):
            raise Rejected(f"placement {msg.placement[:80]!r}, bundle {msg.bundle}: not a placement group and bundle")
        if not (0 <= msg.max_retries <= MAX_RETRIES and 0 <= msg.timeout < math.inf and msg.num_returns >= 0):
            _number(msg.max_retries, "max_retries", 0, MAX_RETRIES)  # each is checked here once per message,
            _number(msg.timeout, "timeout", 0)  # the slow way only to say which one is wrong
            _number(msg.num_returns, "num_returns", 0)

    def _put(self, msg: m.PutObject) -> None:
        _id(msg.object_id, "object_id")
        if msg.object_id in self.store:
            raise Rejected(f"object {msg.object_id!r} already exists; an object is never overwritten")
        if producer_of(msg.object_id) in self.tasks:
            raise Rejected(f"object id {msg.object_id!r} is a task's result")

    def _kv_put(self, msg: m.KVPut) -> None:
        if not 0 < len(msg.key) <= MAX_KEY:
            raise Rejected(f"key must be 1 to {MAX_KEY} characters, got {len(msg.key)}")
        if msg.actor_id:
            _id(msg.actor_id, "actor_id")

    def _reserve_bundles(self, msg: m.ReserveBundles) -> None:
        if not PG_ID.match(msg.pg_id):
            raise Rejected(f"pg_id {msg.pg_id[:80]!r} is not 8 to 64 lowercase hex digits")
        if not 0 < len(msg.bundles) <= MAX_BUNDLES:
            raise Rejected(f"a placement group has 1 to {MAX_BUNDLES} bundles, got {len(msg.bundles)}")
        if msg.strategy not in STRATEGIES:
            raise Rejected(f"strategy {msg.strategy[:80]!r} is not one of {', '.join(STRATEGIES)}")
        if len(msg.name) > MAX_KEY:
            raise Rejected(f"name must be at most {MAX_KEY} characters, got {len(msg.name)}")
        if len(msg.parent) > MAX_ID:
            raise Rejected(f"parent must be at most {MAX_ID} characters, got {len(msg.parent)}")
        for index, bundle in enumerate(msg.bundles):
            _capabilities(bundle, f"bundle {index}")
            quantities = parse_capabilities(bundle).quantities
            if not any(amount > 0 for _, amount in quantities):
                raise Rejected(f"bundle {index} ({bundle!r}) reserves nothing: a bundle needs a quantity above 0")
            if any(name == SLOT or name.startswith(PG_PREFIX) for name, _ in quantities):
                raise Rejected(
                    f"bundle {index} ({bundle[:80]!r}): {SLOT} and {PG_PREFIX}* are placement groups' own names"
                )
        _capabilities(",".join(msg.bundles), "the bundles summed")  # a STRICT_PACK group's one unit: finite

    def _free_bundles(self, msg: m.FreeBundles) -> None:
        _id(msg.pg_id, "pg_id")
        if msg.parent:
            _id(msg.parent, "parent")

    def _adapter_state(self, msg: m.AdapterState) -> None:
        _id(msg.adapter, "adapter")
        names: set[str] = set()
        for group in msg.groups:
            where = f"group {group.name!r}"
            _id(group.name, "group name")
            if group.name in names:
                raise Rejected(f"{where} is declared twice")
            names.add(group.name)
            _capabilities(group.capabilities, f"{where} capabilities")
            _number(group.workers_per_unit, f"{where} workers_per_unit", 1, MAX_UNITS)
            _number(group.min_units, f"{where} min_units", 0, MAX_UNITS)
            _number(group.max_units, f"{where} max_units", group.min_units, MAX_UNITS)
            _number(group.cost, f"{where} cost", 0)
        for unit in msg.units:
            _id(unit.unit_id, "unit_id")
            if unit.group not in names:
                raise Rejected(f"unit {unit.unit_id!r} names group {unit.group!r}, which the adapter does not declare")
            if unit.state not in UNIT_STATES:
                raise Rejected(f"unit {unit.unit_id!r} has unknown state {unit.state!r}")
            if len(unit.history) > MAX_HISTORY:
                raise Rejected(f"unit {unit.unit_id!r} reports {len(unit.history)} moves (at most {MAX_HISTORY})")
        for name, count in msg.launching.items():
            if name not in names:
                raise Rejected(f"launching names group {name!r}, which the adapter does not declare")
            _number(count, f"group {name!r} launching", 0, MAX_UNITS)
        if msg.max_cost_per_hour is not None:
            _number(msg.max_cost_per_hour, "max_cost_per_hour", 0)


def _stream_item(_: Intake, msg: m.StreamItem) -> None:
    _id(msg.task_id, "task_id")
    if msg.index < 0 or msg.attempt < 0:
        raise Rejected(f"stream item index and attempt must be >= 0, got {msg.index} and {msg.attempt}")
    if len(msg.holds) > MAX_HOLDS:
        raise Rejected(f"stream item holds {len(msg.holds)} refs (at most {MAX_HOLDS})")


def _worker_interrupted(_: Intake, msg: m.WorkerInterrupted) -> None:
    _number(msg.seconds_left, "seconds_left", 0, MAX_NOTICE)
    _id(msg.action, "action")


_CHECKS: dict[type, Any] = {
    m.WorkerInterrupted: _worker_interrupted,
    m.StreamItem: _stream_item,
    m.SubmitTask: Intake._submit,
    m.PutObject: Intake._put,
    m.KVPut: Intake._kv_put,
    m.ReserveBundles: Intake._reserve_bundles,
    m.FreeBundles: Intake._free_bundles,
    m.AdapterState: Intake._adapter_state,
}
