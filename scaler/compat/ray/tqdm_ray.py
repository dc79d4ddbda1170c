"""``ray.experimental.tqdm_ray``: progress bars that work the same in the driver and in tasks.

A bar writes one status line (``desc: n/total unit``) to standard error when it changes, at most
every ``flush_interval_s`` seconds, and when it closes; on a terminal the line is redrawn in place.
Inside a task, standard error is the task's, so with output forwarding on (``log_to_driver``,
``Cluster(forward_logs=True)``) the lines appear at the driver tagged with their task. Ray's
central bar manager (``instance``) is not offered.
"""

from __future__ import annotations

import builtins
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from scaler.compat.ray.unsupported import module_getattr

__getattr__ = module_getattr("ray.experimental.tqdm_ray")

_lock = threading.Lock()


class tqdm:  # Ray's (and tqdm's) lower-case name
    """A tqdm-compatible progress bar: ``update``, ``set_description``, ``refresh``, ``close``, iteration."""

    DEFAULT_FLUSH_INTERVAL_SECONDS = 1.0

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        desc: str | None = None,
        total: int | None = None,
        unit: str | None = None,
        position: int | None = None,
        flush_interval_s: float | None = None,
    ) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        self._iterable = iterable
        self.desc = desc or ""
        self._total = total
        self.unit = unit or "it"
        self.position = position or 0
        self._interval = self.DEFAULT_FLUSH_INTERVAL_SECONDS if flush_interval_s is None else flush_interval_s
        self._n = 0
        self._last_draw = 0.0
        self._closed = False
        self._inline = _is_terminal()

    @property
    def total(self) -> int | None:
        return self._total

    @total.setter
    def total(self, value: int | None) -> None:
        self._total = value

    @property
    def n(self) -> int:
        return self._n

    def __enter__(self) -> tqdm:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        if self._iterable is None:
            raise TypeError("this tqdm bar was not given an iterable")
        try:
            for item in self._iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return self._total or 0

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""
        if refresh:
            self.refresh()

    def update(self, n: int = 1) -> None:
        self._n += n
        if time.monotonic() - self._last_draw >= self._interval:
            self.refresh()

    def refresh(self) -> None:
        if not self._closed:
            self._draw(final=False)

    def close(self) -> None:
        if not self._closed:
            self._draw(final=True)
            self._closed = True

    def _line(self) -> str:
        count = f"{self._n}/{self._total}" if self._total is not None else str(self._n)
        percent = f" {100 * self._n // self._total:3d}%" if self._total else ""
        return f"{self.desc + ': ' if self.desc else ''}{count} {self.unit}{percent}"

    def _draw(self, final: bool) -> None:
        self._last_draw = time.monotonic()
        with _lock:
            if self._inline:
                sys.stderr.write("\r" + self._line() + ("\n" if final else ""))
            else:
                sys.stderr.write(self._line() + "\n")
            sys.stderr.flush()


def safe_print(*args: Any, **kwargs: Any) -> None:
    """``print`` that does not tear a progress line being drawn."""
    with _lock:
        builtins.print(*args, **kwargs)


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


__all__ = ["safe_print", "tqdm"]
