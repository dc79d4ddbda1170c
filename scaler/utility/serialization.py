"""Turning user objects into payload frames and back (only clients and task processes do this).

Objects are pickled with protocol 5: large buffers (numpy arrays, bytes-like) travel out of band as
their own zero-copy frames. ``pickle`` is tried first and ``cloudpickle`` used when it fails or when
the result names ``__main__`` (functions and classes of a user's script travel by value).
Code shipped by value keeps its file name and line numbers (cloudpickle 3.1.3 and later blank the
file name to ``<dynamic-code>``), so a remote traceback points into the user's own file as Ray's do:
code objects are pickled with ``marshal``, which keeps every field of the code object.

Object references inside arguments are found while pickling: a ref reduces to ``_load_ref(id)`` and
records its id in the active ``collect_refs`` list. On the worker, ``resolve_refs`` supplies the
values: a ref marked top-level (``Resolve``) is always replaced by its value; other refs are
replaced when ``nested`` is true and otherwise arrive as refs (Ray semantics). The refs inside a
result or a put value are found the same way (``dumps_holding``): the stored object holds them.
"""

from __future__ import annotations

import io
import marshal
import pickle
import threading
import traceback
import types
from collections import ChainMap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import cloudpickle
from tblib import pickling_support

from scaler.utility import shm

OUT_OF_BAND_MIN = 64 * 1024

_local = threading.local()


class RemoteTraceback(Exception):
    """Carries the text of a remote traceback; set as ``__cause__`` of a re-raised remote error."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\nRemote traceback:\n{self.text}"


class UnpicklableRemoteError(Exception):
    """A task raised an exception that could not be pickled; this keeps its type name and text."""

    def __init__(self, type_name: str, text: str) -> None:
        super().__init__(f"{type_name}: {text}")
        self.type_name = type_name


def _reduce_code(code: types.CodeType) -> tuple[Any, tuple[bytes]]:
    return marshal.loads, (marshal.dumps(code),)


class _ByValuePickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle's pickler, except that code objects keep their file name."""

    dispatch_table = ChainMap({types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table)


def _cloudpickle_dumps(obj: Any, buffer_callback: Callable[[pickle.PickleBuffer], bool | None]) -> bytes:
    out = io.BytesIO()
    _ByValuePickler(out, protocol=5, buffer_callback=buffer_callback).dump(obj)
    return out.getvalue()


def buffer_of(frame: Any) -> Any:
    """A zmq.Frame or bytes-like as something pickle can read without a copy."""
    buf = getattr(frame, "buffer", None)
    return buf if buf is not None else frame


def dumps(obj: Any, shm_prefix: str | None = None) -> list[Any]:
    """Pickle ``obj`` into frames: ``[pickle bytes, *out-of-band buffers]``.

    Large payloads go to shared memory under ``shm_prefix`` (the prefix the receiving scheduler
    gave this connection; "" for none); ``None`` uses this process's prefix (task processes).
    """
    buffers: list[Any] = []

    def keep(buf: pickle.PickleBuffer) -> bool | None:
        raw = buf.raw()
        if raw.nbytes < OUT_OF_BAND_MIN:
            return True
        buffers.append(raw)
        return None

    try:
        data = pickle.dumps(obj, protocol=5, buffer_callback=keep)
        if b"__main__" in data or b"<lambda>" in data or b"<locals>" in data:
            raise pickle.PicklingError("needs pickling by value")
    except (pickle.PicklingError, AttributeError, TypeError):
        buffers.clear()
        data = _cloudpickle_dumps(obj, keep)
    return shm.maybe_pack([data, *buffers], shm_prefix) if buffers else [data]


def loads(frames: Sequence[Any]) -> Any:
    if not frames:
        raise ValueError("no frames to unpickle")
    frames = shm.unpack(frames)
    return pickle.loads(buffer_of(frames[0]), buffers=[buffer_of(f) for f in frames[1:]])


@contextmanager
def collect_refs() -> Iterator[list[tuple[str, bool]]]:
    """Within this block, every ref that gets pickled appends ``(object id, top_level)``."""
    previous = getattr(_local, "collected", None)
    found: list[tuple[str, bool]] = []
    _local.collected = found
    try:
        yield found
    finally:
        _local.collected = previous


def dumps_holding(obj: Any, shm_prefix: str | None = None) -> tuple[list[Any], list[str]]:
    """``dumps(obj)`` and the ids of the refs inside ``obj``, each once: what its object holds."""
    previous = getattr(_local, "collected", None)  # as ``collect_refs``, without its generator: once per result
    found: list[tuple[str, bool]] = []
    _local.collected = found
    try:
        frames = dumps(obj, shm_prefix)
    finally:
        _local.collected = previous
    return frames, list(dict.fromkeys(object_id for object_id, _ in found)) if found else []


def note_ref(object_id: str, top_level: bool = False) -> None:
    collected = getattr(_local, "collected", None)
    if collected is not None:
        collected.append((object_id, top_level))


@contextmanager
def resolve_refs(values: Callable[[str], Any], nested: bool) -> Iterator[None]:
    previous = getattr(_local, "resolver", None)
    _local.resolver = (values, nested)
    try:
        yield
    finally:
        _local.resolver = previous


ref_factory: Callable[[str], Any] | None = None


def load_ref(object_id: str, top_level: bool) -> Any:
    """Rebuild a pickled ref: its value when the active resolver says so, else a ref object."""
    resolver = getattr(_local, "resolver", None)
    if resolver is not None and (top_level or resolver[1]):
        return resolver[0](object_id)
    if ref_factory is None:
        raise RuntimeError("no ObjectRef type registered (import scaler.client first)")
    return ref_factory(object_id)


class Resolve:
    """Marks a ref given as a top-level argument: always replaced by its value on the worker."""

    __slots__ = ("object_id",)

    def __init__(self, object_id: str) -> None:
        self.object_id = object_id

    def __reduce__(self) -> tuple[Any, tuple[str, bool]]:
        note_ref(self.object_id, True)
        return load_ref, (self.object_id, True)


def dumps_exception(exc: BaseException) -> list[Any]:
    """Pickle an exception with its traceback (tblib); fall back to a stand-in keeping type and text."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        pickling_support.install(exc)
        frames = dumps((exc, text))
        loads(frames)
        return frames
    except Exception:
        stand_in = UnpicklableRemoteError(type(exc).__qualname__, str(exc))
        return dumps((stand_in, text))


def loads_exception(frames: Sequence[Any]) -> BaseException:
    try:
        exc, text = loads(frames)
    except Exception as load_error:
        return UnpicklableRemoteError("unknown", f"could not unpickle the remote error: {load_error!r}")
    if isinstance(exc, BaseException):
        if exc.__cause__ is None:
            exc.__cause__ = RemoteTraceback(text)
        return exc
    return UnpicklableRemoteError("unknown", repr(exc))
