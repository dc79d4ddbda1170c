"""Provider errors as our own hierarchy, so the runner backs off, stops or falls back the same way for all.

Each provider declares, as data, how its backend's exceptions map to our classes: an ``errors``
attribute holding an ``ErrorTable``, a tuple of ``(exception type or predicate, our class)`` rows,
most specific first. The runner wraps every provider call in ``translate(table, what)``, which
raises ``Ours(...) from exc`` for the first matching row, then for the few rows every provider
shares (``COMMON``).

What the runner does with each class (``retryable`` says whether waiting can help):

- ``CapacityError``, ``QuotaError``, ``ThrottledError``, ``CallTimeoutError``: the group backs off
  exponentially and is reported failing, so the scaling policy spills to the next group.
- ``AuthError``, ``ConfigurationError`` (``retryable = False``): the group is stopped, no more
  launches until the adapter is restarted (after the credentials or the config are fixed); its
  status says why.
- ``ProviderBug``: an exception no table knows. It is a bug in the provider or its table: logged
  once with its traceback and shown in the group's status, and the group backs off at
  ``backoff_max`` (not stopped: a backend hiccup the table forgot should not need a restart, but it
  is never retried quickly or silently).
- ``PartialLaunchError``: a launch got some units and failed for the rest. It carries the units it
  got (``.units``, tracked as usual) and ``.cause``, our class for the failure, whose policy applies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaler.adapters.provider import Unit


class ProviderError(Exception):
    """A provider call failed; ``retryable`` says whether backing off and retrying can help."""

    retryable = True


class CapacityError(ProviderError):
    """The provider has no capacity of this shape now (try later, or another group)."""


class QuotaError(ProviderError):
    """An account limit was reached (another group or provider may still have room)."""


class ThrottledError(ProviderError):
    """Too many requests: back off."""


class CallTimeoutError(ProviderError):
    """A provider call did not return within ``call_timeout``; it may still complete (reconciled later)."""


class AuthError(ProviderError):
    """Credentials are missing or refused: retrying will not help until fixed."""

    retryable = False


class ConfigurationError(ProviderError):
    """The provider or group is configured wrongly (unknown image, bad region, missing program)."""

    retryable = False


class ProviderBug(ProviderError):
    """An exception no error table knows: a bug in the provider or its table."""


class PartialLaunchError(ProviderError):
    """A launch got some of its units: ``units`` are running, ``cause`` says why the rest failed."""

    def __init__(self, units: Sequence[Unit], cause: ProviderError) -> None:
        super().__init__(f"{len(units)} unit(s) launched, the rest failed: {cause}")
        self.units = list(units)
        self.cause = cause
        self.retryable = cause.retryable


Match = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
ErrorTable = tuple[tuple[Match, type[ProviderError]], ...]

COMMON: ErrorTable = (
    (PermissionError, AuthError),
    ((MemoryError, BlockingIOError), CapacityError),
)


def _matches(match: Match, exc: BaseException) -> bool:
    if isinstance(match, tuple) or isinstance(match, type):
        return isinstance(exc, match)
    return bool(match(exc))


def classify(table: ErrorTable, exc: BaseException) -> type[ProviderError]:
    """Our class for ``exc``: the first matching row of ``table``, then of ``COMMON``, else ``ProviderBug``."""
    for match, ours in (*table, *COMMON):
        if _matches(match, exc):
            return ours
    return ProviderBug


@contextmanager
def translate(table: ErrorTable, what: str) -> Iterator[None]:
    """Raise our class for any backend exception raised inside, chained with ``from exc``."""
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:
        raise classify(table, exc)(f"{what}: {type(exc).__name__}: {exc}") from exc


def table_of(provider: object) -> ErrorTable:
    """A provider's declared table (``errors`` attribute), or none."""
    table: ErrorTable = getattr(provider, "errors", ())
    return table
