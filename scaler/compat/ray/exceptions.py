"""The ``ray.exceptions`` names Ray programs catch, raised by the compat layer.

``RayTaskError.as_instanceof_cause`` builds a class deriving from both ``RayTaskError`` and the
task's own exception type (as Ray does), so ``except ValueError`` and ``except RayTaskError``
both catch a task's ``ValueError``. In the patch path these classes replace the installed Ray's.
"""

from __future__ import annotations

from typing import Any


class RayError(Exception):
    """Base of the errors the Ray-compatible API raises."""


class RayTaskError(RayError):
    def __init__(self, function_name: str = "", traceback_str: str = "", cause: BaseException | None = None) -> None:
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
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


class GetTimeoutError(RayError, TimeoutError):
    """``ray.get`` or ``ray.wait`` did not finish within its timeout."""


class TaskCancelledError(RayError):
    """The task was cancelled (``ray.cancel``)."""


class WorkerCrashedError(RayError):
    """The process running the task died more often than ``max_retries`` allows."""


class RayActorError(RayError):
    """The actor died before or while running this method call."""


class ActorDiedError(RayActorError):
    """The actor is dead: killed, crashed past ``max_restarts``, or its constructor failed."""


class ObjectLostError(RayError):
    """The object no longer exists."""


class OutOfMemoryError(RayError):
    """The task process went over the worker's memory limit."""


class RaySystemError(RayError):
    """An error of the engine, not of the task."""


__all__ = [
    "ActorDiedError",
    "GetTimeoutError",
    "ObjectLostError",
    "OutOfMemoryError",
    "RayActorError",
    "RayError",
    "RaySystemError",
    "RayTaskError",
    "TaskCancelledError",
    "WorkerCrashedError",
]
