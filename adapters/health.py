"""Each group's launch health: backing off, stopped, or fine, and the reason the scheduler sees.

The policy per error class is in ``scaler.adapters.errors``: retryable errors back off exponentially
(``backoff_base`` doubling up to ``backoff_max``), errors that retrying cannot fix stop the group
for the adapter's lifetime, and a ``ProviderBug`` backs off at ``backoff_max``, its traceback
logged once. A group backing off or stopped is reported ``failing``, so the scaling policy spills
its demand to the next group.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from scaler.adapters.errors import PartialLaunchError, ProviderBug, ProviderError

log = logging.getLogger(__name__)


@dataclass
class GroupHealth:
    adapter: str
    backoff_base: float
    backoff_max: float
    failures: dict[str, int] = field(default_factory=dict)
    until: dict[str, float] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)
    bugs_seen: set[tuple[str, str]] = field(default_factory=set)

    def can_launch(self, group: str, now: float) -> bool:
        return group not in self.stopped and self.until.get(group, 0.0) <= now

    def succeeded(self, group: str) -> None:
        self.failures.pop(group, None)
        self.why.pop(group, None)
        self.until.pop(group, None)

    def failed(self, group: str, error: ProviderError, now: float) -> None:
        cause = error.cause if isinstance(error, PartialLaunchError) else error
        text = f"{type(cause).__name__}: {cause}"
        if isinstance(error, PartialLaunchError):
            text = f"{type(cause).__name__} after {len(error.units)} unit(s) launched: {cause}"
        if not cause.retryable:
            self.stopped[group] = f"stopped: {text} (fix it, then restart the adapter)"
            log.error("adapter %s: group %s is stopped, no more launches: %s", self.adapter, group, text)
            return
        failures = self.failures.get(group, 0) + 1
        self.failures[group] = failures
        if isinstance(cause, ProviderBug):
            delay = self.backoff_max
            self.why[group] = f"bug: {text}"
            original = type(cause.__cause__).__name__ if cause.__cause__ is not None else type(cause).__name__
            if (group, original) not in self.bugs_seen:
                self.bugs_seen.add((group, original))
                log.error(
                    "adapter %s: an exception no error table knows (a bug in the provider or its table); "
                    "group %s backs off %.0fs: %s",
                    self.adapter,
                    group,
                    delay,
                    text,
                    exc_info=cause,
                )
            else:
                log.warning("adapter %s: %s; group %s backs off %.0fs", self.adapter, text, group, delay)
        else:
            delay = min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
            self.why[group] = text
            log.warning("adapter %s: %s; group %s backs off %.1fs", self.adapter, text, group, delay)
        self.until[group] = now + delay

    def failing(self, now: float) -> dict[str, str]:
        out = {g: why for g, why in self.why.items() if self.until.get(g, 0.0) > now}
        out.update(self.stopped)
        return out
