"""SYMREST's errors as ours: one table, by the HTTP status of ibm-cloud-sdk-core's ``ApiException`` and its message.

401/403 stop the group (the credentials or the user's permissions on the application must be fixed;
a 401 is only seen here after ``Symrest.call`` has already logged in again once). 429 and 503 back the
group off, as do other 5xx answers and an unreachable API. A refusal (an error answer, or a task's
``errorMessage`` in a submit's answer) that names slots is capacity (the consumer or resource group has
no free slot now), one that names a quota or a limit is a quota. A
TLS failure (wrong ``ca_file``) and the remaining 4xx (unknown application, bad request) are
configuration: no retry helps until the config is fixed.
"""

from __future__ import annotations

from collections.abc import Callable

from ibm_cloud_sdk_core import ApiException
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import SSLError, Timeout
from scaler.adapters.errors import (
    AuthError,
    CapacityError,
    ConfigurationError,
    ErrorTable,
    QuotaError,
    ThrottledError,
)

SLOTS = ("slot",)
QUOTAS = ("quota", "limit")


class TaskRefused(Exception):
    """A submit answered with a task's ``errorMessage`` instead of its id (the HTTP call itself succeeded)."""


def status(*codes: int) -> Callable[[BaseException], bool]:
    """A row's predicate: an ``ApiException`` whose HTTP status is one of ``codes``."""

    def matches(exc: BaseException) -> bool:
        return isinstance(exc, ApiException) and exc.status_code in codes

    return matches


def refusal(*words: str) -> Callable[[BaseException], bool]:
    """A row's predicate: a refused task, or a 4xx/503 ``ApiException``, whose message names one of ``words``."""

    def matches(exc: BaseException) -> bool:
        if isinstance(exc, TaskRefused):
            message = str(exc)
        elif isinstance(exc, ApiException) and (400 <= exc.status_code < 500 or exc.status_code == 503):
            message = str(exc.message or "")
        else:
            return False
        return any(word in message.lower() for word in words)

    return matches


def server_error(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status_code >= 500


ERRORS: ErrorTable = (
    (status(401, 403), AuthError),
    (status(429), ThrottledError),  # before the words: "rate limit exceeded" is not a quota
    (refusal(*SLOTS), CapacityError),
    (refusal(*QUOTAS), QuotaError),
    (status(503), ThrottledError),
    (server_error, ThrottledError),
    ((ApiException, TaskRefused), ConfigurationError),  # the remaining 4xx, a task refused for another reason
    (SSLError, ConfigurationError),  # before ConnectionError, its base: the CA file does not fit the cluster
    ((RequestsConnectionError, Timeout), ThrottledError),  # unreachable API: back off
)
