"""The ``ray.exceptions`` names, with Ray 2.60's class hierarchy and constructors.

Every public exception class of Ray's module is here, so that an ``except ray.exceptions.X``
clause works on every path. In the patch path all of them replace the installed Ray's: replacing
only some would split the hierarchy (Ray's own ``OwnerDiedError`` does not derive from our
``ObjectLostError``). Scaler raises these where Ray raises them:

- ``RayTaskError``: the task raised (``as_instanceof_cause`` makes it also an instance of the task's
  exception type, as Ray does, so ``except ValueError`` and ``except RayTaskError`` both catch it).
- ``TaskCancelledError``: ``ray.cancel``. ``GetTimeoutError``: ``ray.get`` or ``as_completed`` timed out.
- ``WorkerCrashedError``: the process running the task died on its last allowed attempt;
  ``NodeDiedError``: the whole worker (its host or agent) was lost then.
- ``ActorDiedError``: the actor was killed, crashed past ``max_restarts``, failed to start, called
  ``exit_actor``, or its owner (the process that created it, unless it is detached) died;
  ``ActorUnavailableError``: its process died while running the call and it is restarting.
- ``OwnerDiedError``: the object's owner (the process that created it) died; ``ObjectLostError``:
  the object was released.
- ``OutOfMemoryError``: the task went over the worker's memory limit; ``RaySystemError``: any other
  error of Scaler itself. ``ActorAlreadyExistsError``: a named actor's name is taken.

The other classes are never raised; they have Ray's name and bases (and Exception's constructor).
``FROM_SCALER`` is the one table from Scaler's own errors (``scaler.errors``) to these classes, and
``from_scaler`` applies it.
"""

from __future__ import annotations

from typing import Any

from scaler import errors as _core


class RayError(Exception):
    """Super class of all ray exception types."""

    _scaler_text: str | None = None  # the message of the Scaler error this one was made from

    def __str__(self) -> str:
        return self._scaler_text if self._scaler_text is not None else self._ray_str()

    def _ray_str(self) -> str:
        return super().__str__()


class CrossLanguageError(RayError):
    """Raised from another language (never by Scaler)."""


class TaskCancelledError(RayError):
    """Raised when this task is cancelled."""

    def __init__(self, task_id: Any = None, error_message: str | None = None) -> None:
        super().__init__(*(arg for arg in (task_id, error_message) if arg is not None))
        self.task_id = task_id
        self.error_message = error_message

    def _ray_str(self) -> str:
        head = f"Task: {self.task_id} was cancelled. " if self.task_id else ""
        return head + (self.error_message or "")


class RayTaskError(RayError):
    """A task raised an exception; ``cause`` is that exception."""

    def __init__(
        self,
        function_name: str = "",
        traceback_str: str = "",
        cause: BaseException | None = None,
        proctitle: str | None = None,
        pid: int | None = None,
        ip: str | None = None,
        actor_repr: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.proctitle, self.pid, self.ip, self.actor_repr, self.actor_id = proctitle, pid, ip, actor_repr, actor_id
        super().__init__(self._message())

    def _message(self) -> str:
        cause = self.cause
        head = f"{type(cause).__name__}: {cause}" if cause is not None else "task failed"
        return f"ray::{self.function_name}() failed: {head}\n{self.traceback_str}".rstrip()

    def __str__(self) -> str:
        return self._message()

    def as_instanceof_cause(self) -> RayTaskError:
        """This error as an instance of both RayTaskError and the type of its cause."""
        cause = self.cause
        if cause is None or isinstance(cause, RayTaskError):
            return cause if isinstance(cause, RayTaskError) else self
        cause_cls = type(cause)
        try:
            cls = _dual_class(cause_cls)
            error = cls.__new__(cls)
            error.__dict__.update(getattr(cause, "__dict__", {}))
            error.args = cause.args
            error.function_name, error.traceback_str, error.cause = self.function_name, self.traceback_str, cause
            if isinstance(error, RayTaskError):
                return error
            return self
        except TypeError:
            return self


_dual_classes: dict[type, type] = {}


def _dual_class(cause_cls: type) -> Any:
    cls = _dual_classes.get(cause_cls)
    if cls is None:

        def __str__(self: RayTaskError) -> str:
            return RayTaskError._message(self)

        cls = type(f"RayTaskError({cause_cls.__name__})", (RayTaskError, cause_cls), {"__str__": __str__})
        cls.__module__ = __name__
        _dual_classes[cause_cls] = cls
    return cls


class LocalRayletDiedError(RayError):
    """The task's local raylet died (never raised by Scaler)."""


class WorkerCrashedError(RayError):
    """The worker process running the task died unexpectedly (on its last allowed attempt)."""

    def _ray_str(self) -> str:
        return "The worker died unexpectedly while executing this task."


class RayActorError(RayError):
    """The actor had an outage before finishing the call: ``ActorDiedError`` or ``ActorUnavailableError``."""

    BASE_ERROR_MSG = "The actor experienced an error before finishing this task."

    def __init__(
        self,
        actor_id: str | None = None,
        error_msg: str = BASE_ERROR_MSG,
        actor_init_failed: bool = False,
        preempted: bool = False,
    ) -> None:
        super().__init__(error_msg)
        self.actor_id = actor_id
        self.error_msg = error_msg
        self._actor_init_failed = actor_init_failed
        self._preempted = preempted

    def _ray_str(self) -> str:
        return self.error_msg

    @property
    def preempted(self) -> bool:
        return self._preempted

    @property
    def actor_init_failed(self) -> bool:
        return self._actor_init_failed


class ActorDiedError(RayActorError):
    """The actor is dead: killed, crashed past ``max_restarts``, failed to start, or its owner died."""

    BASE_ERROR_MSG = "The actor died unexpectedly before finishing this task."

    def __init__(self, cause: RayTaskError | str | None = None) -> None:
        if isinstance(cause, RayTaskError):
            message = f"The actor died because of an error raised in its creation task, {cause}"
            super().__init__(cause.actor_id, message, actor_init_failed=True)
        else:
            super().__init__(None, cause or ActorDiedError.BASE_ERROR_MSG)

    @staticmethod
    def from_task_error(task_error: RayTaskError) -> ActorDiedError:
        return ActorDiedError(task_error)


class ActorUnavailableError(RayActorError):
    """The actor is unavailable for now (restarting); the call may or may not have run."""

    def __init__(self, error_message: str = "", actor_id: bytes | str | None = None) -> None:
        actor_hex = actor_id.hex() if isinstance(actor_id, bytes) else actor_id
        message = (
            f"The actor {actor_hex} is unavailable: {error_message}. "
            "The task may or may not have been executed on the actor."
        )
        super().__init__(actor_hex, message)


class RaySystemError(RayError):
    """An error of the engine (Scaler), not of the task."""

    def __init__(self, client_exc: Any = None, traceback_str: str | None = None) -> None:
        super().__init__(*(arg for arg in (client_exc, traceback_str) if arg is not None))
        self.client_exc = client_exc
        self.traceback_str = traceback_str

    def _ray_str(self) -> str:
        text = f"System error: {self.client_exc}"
        return f"{text}\ntraceback: {self.traceback_str}" if self.traceback_str else text


class AuthenticationError(RayError):
    """Ray's token authentication failed (never raised by Scaler, whose peers use CURVE keys)."""


class UserCodeException(RayError):
    """An exception in user code, wrapped (never raised by Scaler)."""


class ObjectStoreFullError(RayError):
    """The object store is full (never raised by Scaler)."""


class OutOfDiskError(RayError):
    """The local disk is full (never raised by Scaler)."""


class OutOfMemoryError(RayError):
    """The task went over the memory it may use (Scaler: the worker's memory limit) and was killed."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def _ray_str(self) -> str:
        return self.message


class NodeDiedError(RayError):
    """The node running the task (Scaler: the whole worker, its host or agent) died or was lost."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def _ray_str(self) -> str:
        return self.message


class ObjectLostError(RayError):
    """The object no longer exists."""

    def __init__(self, object_ref_hex: str = "", owner_address: bytes | None = None, call_site: str = "") -> None:
        super().__init__(object_ref_hex)
        self.object_ref_hex = object_ref_hex
        self.owner_address = owner_address
        self.call_site = call_site

    def _ray_str(self) -> str:
        return f"Failed to retrieve object {self.object_ref_hex}."


class ObjectFetchTimedOutError(ObjectLostError):
    """Fetching the object timed out (never raised by Scaler)."""


class RpcError(RayError):
    """An error of Ray's RPC layer (never raised by Scaler)."""


class ReferenceCountingAssertionError(ObjectLostError, AssertionError):
    """The object was deleted while still referenced (never raised by Scaler)."""


class ObjectFreedError(ObjectLostError):
    """The object was freed with Ray's internal ``free`` (never raised by Scaler)."""


class OwnerDiedError(ObjectLostError):
    """The object's owner, the process that created it (``.remote()`` or ``ray.put``), died."""


class ObjectReconstructionFailedError(ObjectLostError):
    """The object could not be reconstructed (never raised by Scaler, which keeps objects until released)."""


class GetTimeoutError(RayError, TimeoutError):
    """``ray.get`` or ``ray.wait`` did not finish within its timeout."""


class PlasmaObjectNotAvailable(RayError):
    """Never raised by Scaler."""


class AsyncioActorExit(RayError):
    """Never raised by Scaler."""


class RuntimeEnvSetupError(RayError):
    """A runtime environment could not be set up (never raised by Scaler)."""


class TaskPlacementGroupRemoved(RayError):
    """Never raised by Scaler (no placement groups)."""


class ActorPlacementGroupRemoved(RayError):
    """Never raised by Scaler (no placement groups)."""


class PendingCallsLimitExceeded(RayError):
    """Never raised by Scaler (no ``max_pending_calls``)."""


class TaskUnschedulableError(RayError):
    """A task pinned by a hard ``NodeAffinitySchedulingStrategy`` to a node that is gone or too small
    (raised at ``.remote()``); other tasks no worker can serve wait (and scale a group)."""


class ActorUnschedulableError(RayError):
    """An actor pinned by a hard ``NodeAffinitySchedulingStrategy`` to a node that is gone or too small."""


class ObjectRefStreamEndOfStreamError(RayError):
    """Never raised by Scaler (its generators end with ``StopIteration``)."""


class StreamingGeneratorReplayInconsistentError(RaySystemError):
    """Never raised by Scaler."""


class OufOfBandObjectRefSerializationException(RayError):
    """Never raised by Scaler."""


class RayChannelError(RaySystemError):
    """Never raised by Scaler (no compiled graphs)."""


class RayChannelTimeoutError(RayChannelError, TimeoutError):
    """Never raised by Scaler (no compiled graphs)."""


class RayCgraphCapacityExceeded(RaySystemError):
    """Never raised by Scaler (no compiled graphs)."""


class RayDirectTransportError(RaySystemError):
    """Never raised by Scaler."""


class UnserializableException(RayError):
    """Never raised by Scaler."""


class ActorAlreadyExistsError(ValueError, RayError):
    """A named actor with this name already exists in the namespace."""

    def __init__(self, error_message: str = "") -> None:
        super().__init__(error_message)
        self.error_message = error_message

    def _ray_str(self) -> str:
        return self.error_message


class ActorHandleNotFoundError(ValueError, RayError):
    """Never raised by Scaler."""


# Scaler's errors and the class each becomes; the first match wins, so subclasses come first.
FROM_SCALER: tuple[tuple[type[BaseException], type[RayError]], ...] = (
    (_core.TaskCancelledError, TaskCancelledError),
    (_core.ActorUnavailableError, ActorUnavailableError),
    (_core.ActorDiedError, ActorDiedError),
    (_core.WorkerLostError, NodeDiedError),
    (_core.WorkerCrashedError, WorkerCrashedError),
    (_core.OwnerDiedError, OwnerDiedError),
    (_core.ObjectLostError, ObjectLostError),
    (_core.MemoryLimitError, OutOfMemoryError),
    (_core.ScalerError, RaySystemError),
)


def from_scaler(exc: BaseException, object_id: str = "") -> RayError | None:
    """The ``ray.exceptions`` error a Ray program sees for Scaler's ``exc`` (None: not Scaler's)."""
    for scaler_type, ray_type in FROM_SCALER:
        if isinstance(exc, scaler_type):
            error = ray_type()
            if isinstance(error, ObjectLostError):
                error.object_ref_hex = object_id
            error._scaler_text = text = str(exc)
            error.args = (text,)
            return error
    return None


RAY_EXCEPTION_TYPES = [
    PlasmaObjectNotAvailable,
    RayError,
    RayTaskError,
    WorkerCrashedError,
    RayActorError,
    ObjectStoreFullError,
    ObjectLostError,
    ObjectFetchTimedOutError,
    ReferenceCountingAssertionError,
    ObjectReconstructionFailedError,
    OwnerDiedError,
    GetTimeoutError,
    AsyncioActorExit,
    RuntimeEnvSetupError,
    TaskPlacementGroupRemoved,
    ActorPlacementGroupRemoved,
    PendingCallsLimitExceeded,
    LocalRayletDiedError,
    TaskUnschedulableError,
    ActorDiedError,
    ActorUnschedulableError,
    ActorUnavailableError,
    RayChannelError,
    RayChannelTimeoutError,
    OufOfBandObjectRefSerializationException,
    RayCgraphCapacityExceeded,
    UnserializableException,
    ActorAlreadyExistsError,
    ActorHandleNotFoundError,
    AuthenticationError,
]

__all__ = [
    "RAY_EXCEPTION_TYPES",
    "ActorAlreadyExistsError",
    "ActorDiedError",
    "ActorHandleNotFoundError",
    "ActorPlacementGroupRemoved",
    "ActorUnavailableError",
    "ActorUnschedulableError",
    "AsyncioActorExit",
    "AuthenticationError",
    "CrossLanguageError",
    "GetTimeoutError",
    "LocalRayletDiedError",
    "NodeDiedError",
    "ObjectFetchTimedOutError",
    "ObjectFreedError",
    "ObjectLostError",
    "ObjectReconstructionFailedError",
    "ObjectRefStreamEndOfStreamError",
    "ObjectStoreFullError",
    "OufOfBandObjectRefSerializationException",
    "OutOfDiskError",
    "OutOfMemoryError",
    "OwnerDiedError",
    "PendingCallsLimitExceeded",
    "PlasmaObjectNotAvailable",
    "RayActorError",
    "RayCgraphCapacityExceeded",
    "RayChannelError",
    "RayChannelTimeoutError",
    "RayDirectTransportError",
    "RayError",
    "RaySystemError",
    "RayTaskError",
    "ReferenceCountingAssertionError",
    "RpcError",
    "RuntimeEnvSetupError",
    "StreamingGeneratorReplayInconsistentError",
    "TaskCancelledError",
    "TaskPlacementGroupRemoved",
    "TaskUnschedulableError",
    "UnserializableException",
    "UserCodeException",
    "WorkerCrashedError",
]
