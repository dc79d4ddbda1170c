"""Task records and the one table of legal state transitions (DESIGN §2)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from scaler.utility.capabilities import Capabilities


class TaskState(enum.Enum):
    WAITING = "waiting"  # queued, but some dependency does not exist yet
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


S = TaskState
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    S.WAITING: frozenset({S.QUEUED, S.FAILED, S.CANCELLED}),
    S.QUEUED: frozenset({S.ASSIGNED, S.FAILED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.RUNNING, S.QUEUED, S.DONE, S.FAILED, S.CANCELLED}),
    S.RUNNING: frozenset({S.QUEUED, S.DONE, S.FAILED, S.CANCELLED}),
    S.DONE: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
TERMINAL = frozenset({S.DONE, S.FAILED, S.CANCELLED})


class IllegalTransition(RuntimeError):
    pass


@dataclass(slots=True, eq=False)
class Task:
    task_id: str
    client: bytes
    func_id: str
    caps_key: str
    request: Capabilities
    deps: list[str]
    frames: list[Any]
    name: str
    num_returns: int
    max_retries: int
    timeout: float
    stream_output: bool
    resolve_nested: bool
    retry_exceptions: bool
    nbytes: int
    state: TaskState = TaskState.WAITING
    worker: bytes | None = None
    attempts: int = 0
    missing: int = 0
    cancel_requested: bool = False
    released: bool = False
    blocked: bool = False
    pinned: list[str] = field(default_factory=list)
    actor_id: str = ""
    calls_actor: str = ""
    detached: bool = False
    children: list[str] = field(default_factory=list)
    placement: str = ""  # the placement group it runs in
    run_caps: str = ""  # in a placement group: the request its worker is sent (``caps_key`` names the bundle's)

    def move(self, to: TaskState) -> None:
        if to not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"task {self.task_id}: {self.state.value} -> {to.value} is not allowed")
        self.state = to

    def result_ids(self) -> list[str]:
        if self.num_returns == 1:
            return [self.task_id]
        return [f"{self.task_id}#{i}" for i in range(max(self.num_returns, 0))]

    @property
    def label(self) -> str:
        return f"task {self.task_id} ({self.name})" if self.name else f"task {self.task_id}"


def producer_of(object_id: str) -> str:
    """The id of the task whose result ``object_id`` is (results are ``task_id`` or ``task_id#i``)."""
    return object_id.split("#", 1)[0]
