"""The fake provider's options and entry point, light enough to import when a config is checked."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from scaler.adapters.spec import Options, ProviderSpec

ErrorKind = Literal["capacity", "quota", "throttled", "auth"]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class FakeOptions(Options, frozen=True, forbid_unknown_fields=True, kw_only=True):
    worker_args: tuple[str, ...] = ()  # added to each worker's command line
    boot_seconds: NonNegative = 0.0  # a launched unit's workers start this much later
    launch_seconds: NonNegative = 0.0  # each launch call takes this long before it answers
    fail: dict[str, tuple[ErrorKind, Annotated[int, msgspec.Meta(ge=0)]]] = {}  # group -> (error kind, count)


SPEC = ProviderSpec("fake", FakeOptions, "scaler.adapters.fake.provider:make_provider")
