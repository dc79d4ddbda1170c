"""The local provider's options and entry point, light enough to import when a config is checked."""

from __future__ import annotations

from scaler.adapters.spec import Options, ProviderSpec


class LocalOptions(Options, frozen=True, forbid_unknown_fields=True, kw_only=True):
    worker_args: tuple[str, ...] = ()  # added to each worker's command line


SPEC = ProviderSpec("local", LocalOptions, "scaler.adapters.local.provider:make_provider")
