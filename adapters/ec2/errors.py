"""EC2's errors as ours, by the ``Code`` of botocore's ``ClientError`` (one table, read by the runner and the ladder).

Capacity errors move the ladder to its next cell and back the group off once every cell is out;
quota and throttling back the group off (the scaling policy spills to the next group); auth and
configuration errors stop the group until the adapter is restarted with the cause fixed. A code
ending in ``.*`` matches every code with that prefix (``InvalidAMIID.NotFound``, ``.Malformed``...).
"""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from scaler.adapters.errors import (
    AuthError,
    CapacityError,
    ConfigurationError,
    ErrorTable,
    QuotaError,
    ThrottledError,
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` ("" for any other exception)."""
    if not isinstance(exc, ClientError):
        return ""
    return str(exc.response.get("Error", {}).get("Code", ""))


def codes(*wanted: str) -> Callable[[BaseException], bool]:
    """A table row's predicate: a ``ClientError`` whose code is one of ``wanted`` (``X.*``: any ``X.`` code)."""

    def matches(exc: BaseException) -> bool:
        code = error_code(exc)
        return bool(code) and any(code == w or (w.endswith(".*") and code.startswith(w[:-1])) for w in wanted)

    return matches


ERRORS: ErrorTable = (
    (codes("InsufficientInstanceCapacity", "Unsupported", "InsufficientFreeAddressesInSubnet"), CapacityError),
    (codes("VcpuLimitExceeded", "InstanceLimitExceeded", "MaxSpotInstanceCountExceeded"), QuotaError),
    (codes("RequestLimitExceeded", "Throttling", "ThrottlingException"), ThrottledError),
    (
        codes(
            "UnauthorizedOperation",
            "AuthFailure",
            "OptInRequired",
            "Blocked",
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
            "ExpiredToken",
        ),
        AuthError,
    ),
    (
        codes(
            "InvalidAMIID.*",
            "InvalidSubnetID.*",
            "InvalidSubnet.*",
            "InvalidParameterValue",
            "InvalidParameterCombination",
            "InvalidParameter",
            "InvalidGroup.*",
            "InvalidSecurityGroupID.*",
            "InvalidLaunchTemplateId.*",
            "InvalidLaunchTemplateName.*",
            "InvalidUserData.Malformed",
            "InvalidInstanceType",
            "MissingParameter",
        ),
        ConfigurationError,
    ),
    (NoCredentialsError, AuthError),
    ((EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError), ThrottledError),  # unreachable API: back off
)
