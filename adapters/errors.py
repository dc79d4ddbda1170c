"""Provider errors as our own hierarchy, so the runner can back off and fall back the same way for all.

``classify()`` is the one context manager a provider wraps its backend calls in: it maps the
backend's exception to ``CapacityError``/``QuotaError``/``ThrottledError``/``AuthError`` (or
``ProviderError``), chained with ``from exc``. Providers teach it their backend's exceptions with
``register``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class ProviderError(Exception):
    """A provider call failed; ``retryable`` says whether backing off and retrying can help."""

    retryable = True


class CapacityError(ProviderError):
    """The provider has no capacity of this shape now (try later, or another group)."""


class QuotaError(ProviderError):
    """An account limit was reached (another group or provider may still have room)."""


class ThrottledError(ProviderError):
    """Too many requests: back off."""


class AuthError(ProviderError):
    """Credentials are missing or refused: retrying will not help until fixed."""

    retryable = False


Classifier = Callable[[BaseException], type[ProviderError] | None]
_classifiers: list[Classifier] = []


def register(classifier: Classifier) -> None:
    """Teach ``classify`` a backend: ``classifier(exc)`` returns our class for it, or None."""
    _classifiers.append(classifier)


@contextmanager
def classify(what: str) -> Iterator[None]:
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:
        for classifier in _classifiers:
            kind = classifier(exc)
            if kind is not None:
                raise kind(f"{what}: {exc}") from exc
        if isinstance(exc, PermissionError):
            raise AuthError(f"{what}: {exc}") from exc
        if isinstance(exc, (MemoryError, BlockingIOError)):
            raise CapacityError(f"{what}: {exc}") from exc
        raise ProviderError(f"{what}: {exc}") from exc
