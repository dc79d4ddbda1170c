"""Errors a user of Scaler can see. The scheduler pickles these (it never unpickles user data)."""

from __future__ import annotations

import concurrent.futures


class ScalerError(Exception):
    """Base of every error raised by Scaler itself (not by user code)."""


class TaskCancelledError(concurrent.futures.CancelledError, ScalerError):
    """The task was cancelled before it finished."""


class WorkerCrashedError(ScalerError):
    """The worker process running the task died more often than ``max_retries`` allows."""


class WorkerLostError(WorkerCrashedError):
    """As ``WorkerCrashedError``, the last time because the whole worker was lost (its host or agent died)."""


class TaskTimeoutError(ScalerError, TimeoutError):
    """The task ran longer than its ``timeout`` and was killed."""


class MemoryLimitError(ScalerError, MemoryError):
    """The task process used more memory than the worker's limit and was killed."""


class ActorDiedError(ScalerError):
    """The actor a method call was sent to has died (killed, crashed past its restarts, or never started)."""


class ActorUnavailableError(ActorDiedError):
    """The actor's process died while running this call, and the actor is restarting (``max_restarts``)."""


class ObjectLostError(ScalerError):
    """An object a task or client needs no longer exists (released, or its owner disconnected)."""


class OwnerDiedError(ObjectLostError):
    """The object is gone because the client that created it (its owner) disconnected or died."""


class BackpressureError(ScalerError):
    """The client has too many queued tasks or bytes in the scheduler."""


class TaskRejectedError(ScalerError):
    """The scheduler refused the task (bad capability string, duplicate id, over a limit)."""


class ConnectionFailedError(ScalerError, ConnectionError):
    """The scheduler could not be reached, refused us, or went away."""


class SchedulerShutdownError(ConnectionFailedError):
    """The scheduler shut down while the task was pending."""
