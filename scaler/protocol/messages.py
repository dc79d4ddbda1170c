"""The control-message schema spoken between clients, workers, adapters and the scheduler.

Every control message is a tagged ``msgspec.Struct``; one zmq multipart message carries a *batch*:
frame 0 is the msgpack-encoded list of messages, and the frames after it are the opaque user
payloads (cloudpickle bytes and out-of-band buffers) that those messages announce through their
``nbufs`` fields, in order. The scheduler validates the header on decode and never unpickles a
payload. Bump ``PROTOCOL_VERSION`` on any incompatible change.
"""

from __future__ import annotations

from typing import Union

import msgspec

PROTOCOL_VERSION = 1


class Msg(msgspec.Struct, tag=True, array_like=True, omit_defaults=True):
    """Base of every control message (tagged by class name, encoded as an array)."""


class ObjHeader(msgspec.Struct, array_like=True):
    """Announces one stored object travelling with a message: its id, frame count, error flag and,
    from a worker, the refs inside it (kept alive while it is; see scaler/scheduler/holds.py)."""

    object_id: str
    nbufs: int
    is_error: bool = False
    holds: list[str] = []


# -- session --------------------------------------------------------------------------------


class Hello(Msg):
    kind: str  # "client" | "worker" | "adapter" | "monitor"
    version: int
    name: str = ""
    capabilities: str = ""
    pid: int = 0
    host: str = ""
    domain: str = ""  # shared-memory domain (hostname/boot id): same as the scheduler's => same host
    unit: str = ""  # a worker started by an adapter: the unit it belongs to


class Welcome(Msg):
    peer_id: str
    heartbeat_interval: float
    max_queued_tasks: int
    max_queued_bytes: int
    shm_prefix: str = ""  # non-empty: this peer may hand large payloads over in shared memory


class Refused(Msg):
    reason: str


class Heartbeat(Msg):
    load: int = 0


class HeartbeatAck(Msg):
    pass


class Goodbye(Msg):
    reason: str = ""


class Shutdown(Msg):
    reason: str


# -- client -> scheduler --------------------------------------------------------------------


class SubmitTask(Msg):
    task_id: str
    func_id: str
    capabilities: str
    deps: list[str]
    nbufs: int
    name: str = ""
    num_returns: int = 1
    max_retries: int = 3
    timeout: float = 0.0
    stream_output: bool = False
    resolve_nested: bool = True
    retry_exceptions: bool = False
    borrowed: list[str] = []  # refs nested in the arguments: kept alive, not waited for
    actor_id: str = ""  # set on the task that hosts an actor
    detached: bool = False  # survives its client's disconnect
    parent: str = ""  # the task whose code submitted this one (a recursive cancel reaches it)
    placement: str = ""  # a placement group's id: the task runs inside one of its bundles
    bundle: int = -1  # which bundle (-1: any)
    node: str = ""  # run only on the worker of this name


class PutObject(Msg):
    object_id: str
    nbufs: int
    holds: list[str] = []  # refs inside the value: kept alive while the object is
    lent_to: str = ""  # a task that keeps the object (and what it holds) until it ends
    is_error: bool = False  # the payload is an error (``dumps_exception``) that every reader gets raised


class GetObject(Msg):
    object_id: str


class Release(Msg):
    object_ids: list[str]


class CancelTasks(Msg):
    task_ids: list[str]
    force: bool = False
    recursive: bool = True  # also the tasks they submitted, and theirs


class ReserveBundles(Msg):
    """Create a placement group: reserve every bundle (a capability request) at once, on workers
    chosen by ``strategy`` (PACK, SPREAD, STRICT_PACK, STRICT_SPREAD); see scaler/scheduler/bundles.py."""

    pg_id: str
    bundles: list[str]
    strategy: str = "PACK"
    name: str = ""
    detached: bool = False  # outlives the client that made it
    parent: str = ""  # the task whose code made it: the group is its job's, and ends with that job's client


class FreeBundles(Msg):
    """Remove a placement group: its reservations end, its tasks are cancelled."""

    pg_id: str
    parent: str = ""  # the task whose code removes it: its job's client may


class StatusRequest(Msg):
    pass


class KVPut(Msg):
    """Store a small named value (actor names). With ``if_absent``, an existing value wins; with
    ``actor_id``, the value goes when that actor dies."""

    key: str
    nbufs: int
    if_absent: bool = False
    actor_id: str = ""


class KVGet(Msg):
    key: str


class KVDelete(Msg):
    key: str


class KVReply(Msg):
    key: str
    found: bool
    nbufs: int = 0


# -- scheduler -> client --------------------------------------------------------------------


class TaskResult(Msg):
    """A task reached a terminal state. ``objects`` lists payloads pushed with it (may be empty).

    With status "done" each result object holds its own outcome (``ObjHeader.is_error``: a
    generator that raised part-way leaves values and errors); otherwise every result is the error."""

    task_id: str
    status: str  # "done" | "failed" | "cancelled"
    objects: list[ObjHeader] = []
    message: str = ""


class ObjectReply(Msg):
    """An object's payload; if not ``found``, the payload (if any) is the error to raise, e.g. ``OwnerDiedError``."""

    object_id: str
    found: bool
    nbufs: int = 0
    is_error: bool = False
    message: str = ""


class TaskRejected(Msg):
    task_id: str
    reason: str


class StreamReady(Msg):
    """Item ``index`` of a streaming task is stored as ``object_id`` (``scaler/scheduler/streams.py``).

    ``nbufs`` > 0: its payload is pushed with this message (a small one, as ``TaskResult`` pushes).
    A task's items reach its client in order, and all of them before its ``TaskResult``."""

    task_id: str
    index: int
    object_id: str
    nbufs: int = 0


class TaskOutput(Msg):
    task_id: str
    stream: str
    text: str


class PlacementGroupInfo(msgspec.Struct, array_like=True):
    """A placement group as the scheduler holds it; ``workers``: each bundle's worker ("" if not placed)."""

    pg_id: str
    name: str
    strategy: str
    state: str  # PENDING | CREATED | RESCHEDULING
    bundles: list[str]
    workers: list[str]
    detached: bool = False


class StatusReply(Msg):
    status: dict[str, int | float | str]
    workers: list[dict[str, int | float | str]] = []
    adapters: list[dict[str, int | float | str]] = []
    decisions: list[str] = []
    units: list[dict[str, int | float | str]] = []  # adapters' units: state, cause, since, last moves
    placement_groups: list[PlacementGroupInfo] = []


# -- scheduler -> worker --------------------------------------------------------------------


class RunTask(Msg):
    """Run a task. ``objects`` are payloads attached here (function/deps the worker lacks)."""

    task_id: str
    func_id: str
    capabilities: str
    deps: list[str]
    objects: list[ObjHeader]
    nbufs: int
    name: str = ""
    num_returns: int = 1
    timeout: float = 0.0
    stream_output: bool = False
    resolve_nested: bool = True
    attempt: int = 0


class CancelOnWorker(Msg):
    task_ids: list[str]
    force: bool = False


class Reclaim(Msg):
    """Hand back up to ``count`` assigned tasks that have not started."""

    count: int


class ObjectsFreed(Msg):
    object_ids: list[str]


# -- adapter <-> scheduler ------------------------------------------------------------------


class GroupSpec(msgspec.Struct, array_like=True, frozen=True):
    """A worker group an adapter can launch: the shape of each worker and of each unit."""

    name: str
    capabilities: str
    workers_per_unit: int = 1
    min_units: int = 0
    max_units: int = 1
    priority: int = 0
    cost: float = 1.0


class UnitMove(msgspec.Struct, array_like=True, frozen=True):
    """One move of a unit: the state it entered, why, and when (wall time)."""

    state: str
    cause: str
    at: float


class UnitReport(msgspec.Struct, array_like=True, frozen=True):
    unit_id: str
    group: str
    state: str  # requested | booting | running | draining | terminating | termination_failed | terminated | failed
    created: float = 0.0
    cause: str = ""
    history: list[UnitMove] = []  # its last moves, oldest first


class AdapterState(Msg):
    """An adapter's groups and units (ground truth from its provider), sent after every reconcile."""

    adapter: str
    groups: list[GroupSpec]
    units: list[UnitReport]
    failing: dict[str, str] = {}  # group -> why it cannot launch now (backing off)
    acked: str = ""  # the last ScaleCommand request id handled
    launching: dict[str, int] = {}  # group -> units whose launch call has not answered yet (pending supply)
    max_cost_per_hour: float | None = None  # the adapter's budget (None: none): scale-up keeps its cost under it


class ScaleCommand(Msg):
    """The scheduler's answer to an AdapterState: units to launch per group and units to terminate."""

    request_id: str
    launch: dict[str, int] = {}
    terminate: list[str] = []
    connected: list[str] = []  # units whose workers have joined the scheduler
    drain: list[str] = []  # units the scheduler stopped feeding; terminate follows when their tasks end
    reasons: list[str] = []


# -- worker -> scheduler --------------------------------------------------------------------


class TasksStarted(Msg):
    task_ids: list[str]


class TaskDone(Msg):
    """A task ended on a worker. status: done | error | fatal | crashed | cancelled | timeout | memory | missing.

    An error/fatal normally carries one error object; one whose generator raised part-way carries
    one object per result instead, values and errors (``scaler/worker/results.py``)."""

    task_id: str
    status: str
    objects: list[ObjHeader] = []
    message: str = ""
    attempt: int = 0
    duration: float = 0.0  # seconds the function ran


class StreamItem(Msg):
    """Item ``index`` (0, 1, ...) of a streaming generator task, sent the moment it is yielded, before
    the task's ``TaskDone``; ``nbufs`` frames of its value follow, ``holds`` are the refs inside it.
    Task process -> agent -> scheduler, or from an actor's dedicated host. The scheduler takes it only
    from the worker the task is assigned to, for its current ``attempt``."""

    task_id: str
    index: int
    nbufs: int
    attempt: int = 0
    holds: list[str] = []


class TaskBlocked(Msg):
    task_id: str


class TaskUnblocked(Msg):
    task_id: str


class Reclaimed(Msg):
    task_ids: list[str]


class WorkerInterrupted(Msg):
    """The worker's host goes away soon (a spot interruption notice): drain it and replace its unit.

    ``seconds_left`` is counted from when the worker sent this (no clocks compared across hosts)."""

    seconds_left: float
    action: str = "terminate"


# -- agent <-> task process (a task staged behind the running one; see scaler/worker/staging.py) --


class Unstage(Msg):
    """Agent -> task process: do not start these staged tasks if you have not yet."""

    task_ids: list[str]


class Unstaged(Msg):
    """Task process -> agent: these staged tasks were not started; they are the agent's again."""

    task_ids: list[str]


class BlockAck(Msg):
    """Agent -> task process: your TaskBlocked is seen; nothing more will be staged behind it."""


AnyMsg = Union[  # noqa: UP007 - a runtime alias msgspec decodes into
    Hello,
    Welcome,
    Refused,
    Heartbeat,
    HeartbeatAck,
    Goodbye,
    Shutdown,
    SubmitTask,
    PutObject,
    GetObject,
    Release,
    CancelTasks,
    StatusRequest,
    KVPut,
    KVGet,
    KVDelete,
    ReserveBundles,
    FreeBundles,
    KVReply,
    AdapterState,
    ScaleCommand,
    TaskResult,
    ObjectReply,
    TaskRejected,
    StreamReady,
    TaskOutput,
    StatusReply,
    RunTask,
    CancelOnWorker,
    Reclaim,
    ObjectsFreed,
    TasksStarted,
    TaskDone,
    StreamItem,
    TaskBlocked,
    TaskUnblocked,
    Reclaimed,
    WorkerInterrupted,
    Unstage,
    Unstaged,
    BlockAck,
]
