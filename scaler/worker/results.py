"""A task's return value as result objects, one per ``num_returns``, each a value or an error.

A task with ``num_returns=N`` (N > 1) whose function returns an iterator (a generator) has it
iterated by ``collect`` as Ray stores a generator's values: one value per result, in order. If the
iterator raises after yielding k values, the first k results hold those values and the other N-k
hold the error (a *partial* result, ``Partial``); if it stops after k < N values, the others hold a
``ValueError``. Raising before the first value, or yielding more than N values, fails every result
as any task error does. With k = N values before the error, every result holds a value (as in Ray,
which stops storing after N; the worker logs the error).

``encode`` reports the error of a partial result beside the result objects, so the worker sends
``TaskDone`` with status ``error`` (or ``fatal``) and one object per result whose ``is_error`` flag
says which. The scheduler applies the usual retry rule to it (re-run only with
``retry_exceptions``; the last attempt's results count) and otherwise stores each object as sent.
The Ray layer uses ``Partial`` too, for ``num_returns=1``, ``"dynamic"`` and ``"streaming"``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from scaler.errors import TaskCancelledError
from scaler.protocol import messages as m
from scaler.utility import serialization as ser

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Partial:
    """Values produced in order, and the error that stopped the producer (``None``: it finished)."""

    values: list[Any] = field(default_factory=list)
    error: BaseException | None = None


def collect(iterator: Iterator[Any], limit: int) -> Partial:
    """Up to ``limit`` values of ``iterator``, and the exception that ended it early, if any.

    Cancelling the task is not an error of the iterator: it propagates. So does a ``ValueError``
    when the iterator has more than ``limit`` values."""
    partial = Partial()
    try:
        for value in iterator:
            if len(partial.values) == limit:
                break
            partial.values.append(value)
        else:
            return partial
    except TaskCancelledError:
        raise
    except Exception as exc:
        partial.error = exc
        return partial
    raise ValueError(f"the generator yielded more than num_returns={limit} values")


def result_ids(task_id: str, num_returns: int) -> list[str]:
    """The ids of a task's result objects (as ``scheduler.tasks.Task.result_ids``)."""
    return [task_id] if num_returns == 1 else [f"{task_id}#{i}" for i in range(num_returns)]


Encoded = tuple[list[m.ObjHeader], list[Any], BaseException | None]  # result headers, frames, a partial's error


def encode(task_id: str, num_returns: int, result: Any) -> Encoded:
    """Headers and frames of the result objects, and the error of a partial result (else ``None``)."""
    if isinstance(result, Partial):
        return _encode_partial(task_id, num_returns, result)
    if num_returns == 1:
        frames, holds = ser.dumps_holding(result)
        return [m.ObjHeader(task_id, len(frames), holds=holds)], frames, None
    values = [] if num_returns == 0 else list(result)
    if len(values) != num_returns:
        raise ValueError(f"task declared num_returns={num_returns} but returned {len(values)} values")
    return (*_encode_values(result_ids(task_id, num_returns), values), None)


def _encode_values(object_ids: list[str], values: list[Any]) -> tuple[list[m.ObjHeader], list[Any]]:
    headers: list[m.ObjHeader] = []
    out: list[Any] = []
    for object_id, value in zip(object_ids, values, strict=True):
        frames, holds = ser.dumps_holding(value)
        headers.append(m.ObjHeader(object_id, len(frames), holds=holds))
        out.extend(frames)
    return headers, out


def _encode_partial(
    task_id: str, num_returns: int, partial: Partial
) -> tuple[list[m.ObjHeader], list[Any], BaseException | None]:
    values, error = partial.values, partial.error
    if len(values) > num_returns:
        raise ValueError(f"the generator yielded {len(values)} values, but num_returns={num_returns}")
    if error is None and len(values) < num_returns:
        error = ValueError(f"the generator yielded {len(values)} values, but num_returns={num_returns}")
    if error is not None and not values:
        raise error
    object_ids = result_ids(task_id, num_returns)
    headers, out = _encode_values(object_ids[: len(values)], values)
    if error is not None and len(values) == num_returns:
        log.warning("task %s raised after yielding all its %d values: %r", task_id, num_returns, error)
    elif error is not None:
        error_frames = ser.dumps_exception(error)
        for object_id in object_ids[len(values) :]:
            headers.append(m.ObjHeader(object_id, len(error_frames), True))
            out.extend(error_frames)
    return headers, out, error
