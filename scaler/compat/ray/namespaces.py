"""Ray namespaces: the scope in which named actors are registered and looked up.

A job (one driver's session) is in the namespace its ``ray.init(namespace=...)`` names, or else in
an anonymous one of its own: a fresh UUID, as in Ray, so unrelated programs sharing a scheduler
never see or collide on each other's named actors. Tasks, nested tasks and actors run in the
namespace of the job that submitted them. A worker's task process runs tasks of many jobs, one
at a time, so the namespace cannot belong to that process's session: the compat layer ships the
job's namespace with each function and actor host, and ``applied`` makes it the current one
while that task (or, for an actor, its whole life) runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

_of_task: str | None = None  # in a task's process: the namespace of the job whose task runs now


def anonymous() -> str:
    """A namespace no other job has: a job that names none gets this, as in Ray."""
    return str(uuid.uuid4())


def checked(namespace: object, where: str) -> str:
    """``namespace`` if Ray accepts it as one (a non-empty string), else Ray's error."""
    if not isinstance(namespace, str):
        raise TypeError(f"{where}: namespace must be None or a string, not {type(namespace).__name__}")
    if not namespace:
        raise ValueError(f'{where}: "" is not a valid namespace. Pass None to not specify a namespace.')
    return namespace


@contextmanager
def applied(namespace: str) -> Iterator[None]:
    """``namespace`` is the current job's in this process for the block; the previous one after."""
    global _of_task
    saved, _of_task = _of_task, namespace
    try:
        yield
    finally:
        _of_task = saved


def of_task() -> str | None:
    """The namespace of the job whose task (or actor) runs in this process now, if any."""
    return _of_task


def actor_key(namespace: str, name: str) -> str:
    """The scheduler key-value entry of a named actor. The namespace's length comes first, so no
    two (namespace, name) pairs share a key even when either holds a ``/``."""
    return f"ray-actor/{len(namespace)}:{namespace}/{name}"
