"""The Symphony provider's options and entry point, light enough to import when a config is checked.

No ibm-cloud-sdk-core here: a deployment file is checked (misspelt keys refused by key path) on a
machine without the ``symphony`` extra; the provider (``scaler.adapters.symphony.provider``) is imported
only when the adapter starts, with ``pip install 'scaler[symphony]'`` as the hint if the SDK is missing.
Credentials are never required in the file: ``username`` and ``password`` left empty are read from the
environment variables ``username_env`` and ``password_env`` names when the adapter first logs in.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from scaler.adapters.spec import Options, ProviderSpec

Positive = Annotated[float, msgspec.Meta(gt=0)]


class SymphonyGroup(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where the sessions of one worker group run, and how its workers are sized."""

    resource_group: str = ""  # the resource group whose hosts' ncpus/nram size the workers; "" = configured only
    session_type: str = ""  # a session type of the application profile; "" = the profile's default
    priority: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 1  # the session's priority in its consumer


class SymphonyOptions(Options, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: str  # the SYMREST base, e.g. https://symhead:8050/platform/rest/symrest
    ca_file: str = ""  # the cluster's CA certificate (PEM); "" = the system's trust store
    auth: Literal["login", "basic"] = "login"  # login: the token cookies + CSRF flow; basic: Basic on each call
    username: str = ""  # "" = the environment variable ``username_env``
    password: str = ""  # "" = the environment variable ``password_env`` (prefer it: keep secrets out of files)
    username_env: str = "SCALER_SYMPHONY_USERNAME"
    password_env: str = "SCALER_SYMPHONY_PASSWORD"
    application: str = "ScalerWorker"  # the application profile registered from adapters/symphony/ScalerWorker.xml
    service: str = "ScalerWorkerService"  # its service, which runs scaler.adapters.symphony.service
    groups: dict[str, SymphonyGroup] = {}  # settings by worker group name; a group not listed takes the defaults
    python: str = "python3"  # the interpreter on the compute hosts that has scaler installed
    # With CURVE keys: a directory on the compute hosts (a shared file system, or placed by the grid team)
    # holding client.key_secret and server.key; the task input then names it instead of carrying the keys.
    curve_keys_dir: str = ""
    worker_args: tuple[str, ...] = ()  # added to each worker's command line
    request_timeout: Positive = 30.0  # seconds per REST call
    token_lifetime: Positive = 8 * 3600.0  # how long a login token lasts (8 hours on Symphony)
    renew_before: Positive = 1800.0  # the token is renewed this long before it expires

    def __post_init__(self) -> None:
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"url {self.url!r} must be the SYMREST base, https://HOST:PORT/platform/rest/symrest")
        if self.renew_before >= self.token_lifetime:
            raise ValueError("renew_before must be shorter than token_lifetime")


SPEC = ProviderSpec(
    "symphony",
    SymphonyOptions,
    "scaler.adapters.symphony.provider:make_provider",
    "pip install 'scaler[symphony]'",
    sized_units=True,
)
