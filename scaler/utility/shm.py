"""Same-host large payloads through shared memory instead of three socket copies.

When a peer runs on the scheduler's host (same hostname and boot id), the scheduler's Welcome
gives it a segment prefix. Such a peer writes any payload of at least ``SHM_MIN`` bytes into one
``/dev/shm`` file and sends a small *descriptor frame* in place of the payload frames. Readers map
the file copy-on-write, so unpickled numpy arrays are zero-copy views that are still writable
(writes stay private to the reader). The scheduler owns every segment it is handed: it unlinks it
when the object or task is dropped, expands descriptors into real frames for peers on other hosts,
and removes all segments with its prefix when it stops.

A scheduler that was killed cannot remove its segments, and ``/dev/shm`` is RAM. Segment names start
``scaler-<scheduler pid>-``, so ``sweep_orphans`` (run by every scheduler as it starts) removes the
segments whose scheduler is gone: its pid no longer runs, or runs a process started after the
segment was last written (the pid was reused). A live scheduler's segments are never touched.
"""

from __future__ import annotations

import glob
import itertools
import mmap
import os
import queue
import socket
import stat
import struct
import threading
from collections.abc import Sequence
from typing import Any

import msgspec
import zmq

REF_MAGIC = b"\x00SCALER-SHMREF1\x00"
SEG_MAGIC = b"\x00SCALER-SHMSEG1\x00"
SHM_DIR = "/dev/shm"
SHM_MIN = 512 * 1024
_MAX_DESCRIPTOR = 1024

_prefix: str | None = None
_counter = itertools.count()
_lengths = msgspec.msgpack.Decoder(list[int])
_encode = msgspec.msgpack.Encoder()


def host_domain() -> str:
    """Identifies this machine's shared-memory domain: hostname plus kernel boot id."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = "?"
    return f"{socket.gethostname()}/{boot}"


def available() -> bool:
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)


def enable(prefix: str) -> None:
    global _prefix
    _prefix = prefix if prefix and available() else None


def _length(frame: Any) -> int:
    return frame.nbytes if isinstance(frame, memoryview) else len(frame)


def maybe_pack(frames: list[Any], prefix: str | None = None) -> list[Any]:
    """Write ``frames`` into one segment and return ``[descriptor]`` when worth it, else ``frames``.

    A segment is ``SEG_MAGIC, u32 n, msgpack(lengths) (n bytes), data...``; the descriptor frame
    is ``REF_MAGIC + name``. Sent to another host, the segment itself travels as one frame.
    """
    prefix = _prefix if prefix is None else prefix
    if not prefix:
        return frames
    lengths = [_length(f) for f in frames]
    if sum(lengths) < SHM_MIN:
        return frames
    name = f"{prefix}{os.getpid()}-{next(_counter)}"
    path = os.path.join(SHM_DIR, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return frames
    header = _encode.encode(lengths)
    try:
        for part in (SEG_MAGIC + struct.pack("<I", len(header)) + header, *frames):
            view = memoryview(part).cast("B")
            while view.nbytes:
                view = view[os.write(fd, view) :]
    except OSError:
        os.close(fd)
        os.unlink(path)
        return frames
    os.close(fd)
    return [REF_MAGIC + name.encode()]


def descriptor_name(frame: Any) -> str | None:
    """The segment name if ``frame`` is a descriptor frame, else None (cheap for other frames: the
    scheduler asks this of every payload frame it receives)."""
    kind = type(frame)
    size = frame.nbytes if kind is memoryview else len(frame)
    if size > _MAX_DESCRIPTOR or size <= len(REF_MAGIC):
        return None
    data = frame if kind is bytes else frame.bytes if kind is zmq.Frame else bytes(frame)  # .bytes is cached
    if data[0] != 0 or not data.startswith(REF_MAGIC):  # a pickle frame starts with 0x80
        return None
    name = data[len(REF_MAGIC) :].decode(errors="replace")
    if "/" in name or not name.startswith("scaler-"):
        return None
    return name


def check_descriptors(frames: Sequence[Any], own_prefix: str) -> int:
    """The bytes ``frames`` hold (as ``payload_nbytes``); refuse (ValueError) a descriptor frame that
    does not name a live segment of the sending peer.

    ``own_prefix`` is the prefix the scheduler gave that peer ("" for a peer that got none): a peer
    can then never make the scheduler read, forward or unlink another peer's segment, or any other
    file. One pass, as the scheduler asks it of every payload it receives."""
    total = 0
    for frame in frames:
        name = descriptor_name(frame)
        if name is None:
            total += _length(frame)
            continue
        if not own_prefix or not name.startswith(own_prefix):
            raise ValueError(f"shared-memory descriptor {name!r} names no segment of this peer")
        try:
            info = os.stat(os.path.join(SHM_DIR, name), follow_symlinks=False)
        except OSError:
            raise ValueError(f"shared-memory segment {name!r} does not exist") from None
        if not stat.S_ISREG(info.st_mode) or info.st_size < len(SEG_MAGIC) + 4:
            raise ValueError(f"shared-memory segment {name!r} is not a segment")
        total += info.st_size
    return total


def payload_nbytes(frames: Sequence[Any]) -> int:
    """The bytes a payload holds, wherever they live: a descriptor counts as its segment's size."""
    total = 0
    for frame in frames:
        name = descriptor_name(frame)
        if name is None:
            total += _length(frame)
            continue
        try:
            total += os.stat(os.path.join(SHM_DIR, name)).st_size
        except OSError:
            total += _length(frame)
    return total


def _map(name: str) -> memoryview:
    fd = os.open(os.path.join(SHM_DIR, name), os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        return memoryview(mmap.mmap(fd, size, access=mmap.ACCESS_COPY))
    finally:
        os.close(fd)


def _split(segment: memoryview) -> list[memoryview]:
    start = len(SEG_MAGIC)
    (n,) = struct.unpack_from("<I", segment, start)
    lengths = _lengths.decode(segment[start + 4 : start + 4 + n])
    pos = start + 4 + n
    out: list[memoryview] = []
    for length in lengths:
        if length < 0 or pos + length > segment.nbytes:
            raise ValueError("shared-memory segment shorter than its header says")
        out.append(segment[pos : pos + length])
        pos += length
    return out


def unpack(frames: Sequence[Any]) -> Sequence[Any]:
    """Frames as the pickler made them: a descriptor or a whole segment becomes its parts."""
    if len(frames) != 1:
        return frames
    frame = frames[0]
    name = descriptor_name(frame)
    if name is not None:
        return _split(_map(name))
    view = frame.buffer if hasattr(frame, "buffer") else memoryview(frame)
    if view.nbytes >= len(SEG_MAGIC) and bytes(view[: len(SEG_MAGIC)]) == SEG_MAGIC:
        return _split(view.cast("B"))
    return frames


def expand(frames: Sequence[Any]) -> list[Any]:
    """Replace descriptor frames by their whole segment, one frame each (for another host)."""
    out: list[Any] = []
    for frame in frames:
        name = descriptor_name(frame)
        out.append(frame if name is None else _map(name))
    return out


def release(frames: Sequence[Any]) -> None:
    """Unlink the segments (of this process's prefix) named by descriptor frames among ``frames``.

    The unlink happens on a helper thread: freeing a 64 MiB segment's pages takes ~10 ms, which
    the scheduler's loop must not wait for."""
    global _unlinks
    if _prefix is None:
        return
    for frame in frames:
        name = descriptor_name(frame)
        if name is not None and name.startswith(_prefix):
            if _unlinks is None:
                _unlinks = queue.SimpleQueue()
                threading.Thread(target=_unlinker, args=(_unlinks,), name="scaler-shm-unlink", daemon=True).start()
            _unlinks.put(os.path.join(SHM_DIR, name))


_unlinks: queue.SimpleQueue[str] | None = None


def _unlinker(paths: queue.SimpleQueue[str]) -> None:
    while True:
        try:
            os.unlink(paths.get())
        except OSError:
            pass


def _started(pid: int) -> float | None:
    """When process ``pid`` started; None if none runs; +inf if it cannot be told (keep its segments)."""
    import psutil  # only a scheduler starting needs it: every other process keeps its memory

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.Error:
        return float("inf")


def sweep_orphans() -> tuple[int, int]:
    """Remove segments whose scheduler is gone; return (segments, bytes) removed."""
    removed = freed = 0
    started: dict[int, float | None] = {}
    for path in glob.glob(os.path.join(SHM_DIR, "scaler-*-*")):
        owner = os.path.basename(path).split("-")[1]
        if not owner.isdigit():
            continue
        try:
            info = os.stat(path)
        except OSError:
            continue
        pid = int(owner)
        if pid not in started:
            started[pid] = _started(pid)
        since = started[pid]
        if since is not None and (since == float("inf") or since <= info.st_mtime + 1.0):
            continue
        try:
            os.unlink(path)
        except OSError:
            continue
        removed += 1
        freed += info.st_size
    return removed, freed


def remove_prefix(prefix: str) -> int:
    if not prefix.startswith("scaler-"):
        return 0
    removed = 0
    for path in glob.glob(os.path.join(SHM_DIR, glob.escape(prefix) + "*")):
        try:
            os.unlink(path)
            removed += 1
        except OSError:
            pass
    return removed
